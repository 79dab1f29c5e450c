//! The post-recovery checks of issue 6 item 2, and reading the commit journal.

use super::*;
use kubelet::{EventKind, KubeletHarness};
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

/// Run openssl, returning stdout; panics with stderr on failure.
pub fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ps(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The certificate at `cert` and the key at `key` share their public key, and the
/// certificate chains to `ca`.
pub fn assert_pair(cert: &Path, key: &Path, ca: &Path) {
    let a = openssl(&["x509", "-in", ps(cert), "-noout", "-pubkey"]);
    let b = openssl(&["pkey", "-in", ps(key), "-pubout"]);
    assert_eq!(a, b, "{} does not match {}", cert.display(), key.display());
    let v = openssl(&["verify", "-CAfile", ps(ca), ps(cert)]);
    assert!(
        v.trim().ends_with(": OK"),
        "{} does not chain to {}: {v}",
        cert.display(),
        ca.display()
    );
}

/// What the node looks like after recovery, compared with before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing on the node changed and nothing had to be undone.
    Untouched,
    /// Temp files of an unfinished commit were removed; the node's files are as before.
    RolledBack,
    /// The journal's renames were finished: every renewed file is new.
    RolledForward,
    /// The renewal had completed; parked manifests were moved back.
    Recovered,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Untouched => "untouched",
            Outcome::RolledBack => "rolled back",
            Outcome::RolledForward => "rolled forward",
            Outcome::Recovered => "recovered",
        })
    }
}

/// Every assertion of issue 6 item 2 on the node after recovery. `changed` are the files the
/// interrupted command was to replace; `past_backup` says whether it got past its backup.
pub fn assert_node_sound(n: &Node, changed: &[String], past_backup: bool) {
    let post = n.snapshot();
    // Every manifest is back, byte-identical, and nothing is left parked.
    for (rel, bytes) in n.pre.iter().filter(|(k, _)| k.starts_with(MANIFESTS)) {
        assert!(
            post.get(rel) == Some(bytes),
            "{rel} is not back byte-identical"
        );
    }
    let now_manifests: Vec<&String> = post.keys().filter(|k| k.starts_with(MANIFESTS)).collect();
    let pre_manifests: Vec<&String> = n.pre.keys().filter(|k| k.starts_with(MANIFESTS)).collect();
    assert_eq!(
        now_manifests, pre_manifests,
        "manifestsDir holds other files"
    );
    assert!(
        !post.keys().any(|k| k.starts_with(PARKING)),
        "files left in the parking dir"
    );
    // Every cert/key pair matches and chains to its CA; the CAs are untouched.
    for ca in CAS {
        for ext in ["crt", "key"] {
            let rel = format!("{PKI}/{ca}.{ext}");
            assert_eq!(post.get(&rel), n.pre.get(&rel), "{rel} changed");
        }
        let (crt, key) = (
            n.p(&format!("{PKI}/{ca}.crt")),
            n.p(&format!("{PKI}/{ca}.key")),
        );
        assert_pair(&crt, &key, &crt);
    }
    for (base, ca) in LEAVES {
        assert_pair(
            &n.p(&format!("{PKI}/{base}.crt")),
            &n.p(&format!("{PKI}/{base}.key")),
            &n.p(&format!("{PKI}/{ca}.crt")),
        );
    }
    // Every kubeconfig parses and its key matches its cert (which chains to the CA).
    let tmp = tempfile::tempdir().expect("tmp");
    for k in KUBECONFIGS {
        let rel = format!("{KUBECONFIG_DIR}/{k}");
        let text = String::from_utf8(post[&rel].clone()).expect("utf-8 kubeconfig");
        let kc = kubeadm_certd::pki::kubeconfig::parse(&text)
            .unwrap_or_else(|e| panic!("{rel} does not parse: {e}"));
        let (c, key) = (
            tmp.path().join(format!("{k}.crt")),
            tmp.path().join(format!("{k}.key")),
        );
        std::fs::write(&c, &kc.client_cert).expect("write");
        std::fs::write(&key, &kc.client_key).expect("write");
        assert_pair(&c, &key, &n.p(&format!("{PKI}/ca.crt")));
        let der = |b: &[u8]| pem::parse(b).expect("PEM").into_contents();
        assert_eq!(
            der(&kc.ca),
            der(&post[&format!("{PKI}/ca.crt")]),
            "{rel}: certificate-authority-data is not ca.crt"
        );
    }
    // kubelet.conf points at the kubelet's rotated files; nothing may touch it.
    let kl = format!("{KUBECONFIG_DIR}/kubelet.conf");
    assert_eq!(post.get(&kl), n.pre.get(&kl), "kubelet.conf changed");
    // No temp file in the pki, manifests, kubeconfig or kubelet dirs.
    let left: Vec<&String> = post.keys().filter(|k| is_staged(k)).collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    // The material from before the change is in the backup.
    let backups = n.backups();
    if past_backup {
        let first = backups.first().expect("a backup dir");
        for rel in changed {
            let copy = first.join(rel);
            assert!(
                std::fs::read(&copy).ok().as_ref() == n.pre.get(rel),
                "{} does not hold the pre-run {rel}",
                copy.display()
            );
        }
    }
    for (rel, before) in n.pre.iter().filter(|(k, _)| !k.starts_with(MANIFESTS)) {
        if post.get(rel) != Some(before) {
            assert!(
                backups
                    .iter()
                    .any(|b| std::fs::read(b.join(rel)).ok().as_ref() == Some(before)),
                "{rel} changed and no backup holds its old contents"
            );
        }
    }
}

/// Classify the node after recovery: which of `changed` are new, and what recovery printed.
pub fn outcome(n: &Node, changed: &[String], recover_out: &str) -> Outcome {
    let post = n.snapshot();
    let new: Vec<&String> = changed
        .iter()
        .filter(|r| post.get(*r) != n.pre.get(*r))
        .collect();
    if new.is_empty() {
        if recover_out.contains("removed unfinished temp file") {
            return Outcome::RolledBack;
        }
        return Outcome::Untouched;
    }
    assert_eq!(
        new.len(),
        changed.len(),
        "only part of the change is on disk: {new:?} of {changed:?}\n{recover_out}"
    );
    if recover_out.contains("finished interrupted renewal") {
        Outcome::RolledForward
    } else {
        Outcome::Recovered
    }
}

/// Pids the stand-in kubelet started for `component` at or after `t`.
pub fn started_since(h: &KubeletHarness, component: &str, t: SystemTime) -> Vec<i32> {
    h.events_for(&format!("{component}.yaml"))
        .iter()
        .filter(|e| e.kind == EventKind::Started && e.at >= t)
        .map(|e| e.pid)
        .collect()
}

/// Wait until every component runs under the stand-in kubelet.
pub fn assert_all_running(n: &Node) {
    let h = n.kubelet();
    let ok = KubeletHarness::wait_until(LIMIT, || {
        COMPONENTS
            .iter()
            .all(|c| h.running_pid(&format!("{c}.yaml")).is_some())
    });
    assert!(ok, "not every component runs again: {:?}", h.events());
}

/// The journal's entries as (node-relative target, node-relative staged) pairs.
pub fn journal(n: &Node) -> Option<Vec<(String, String)>> {
    let bytes = std::fs::read(n.p(JOURNAL)).ok()?;
    let j: serde_json::Value = serde_json::from_slice(&bytes).expect("journal JSON");
    let rel = |v: &serde_json::Value| {
        v.as_str()
            .expect("path")
            .trim_start_matches('/')
            .to_string()
    };
    Some(
        j["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| (rel(&e["target"]), rel(&e["staged"])))
            .collect(),
    )
}

/// The journal exists and the first entry whose target ends with `suffix` is renamed.
pub fn committed_first(n: &Node, suffix: &str) -> bool {
    journal(n).is_some_and(|j| {
        j.iter()
            .find(|(t, _)| t.ends_with(suffix))
            .is_some_and(|(_, s)| !n.p(s).exists())
    })
}

/// The first backup holds every file of `files` with its pre-run bytes.
pub fn backed_up(n: &Node, files: &[String]) -> bool {
    n.backups().first().is_some_and(|b| {
        files
            .iter()
            .all(|f| std::fs::read(b.join(f)).ok().as_ref() == n.pre.get(f))
    })
}
