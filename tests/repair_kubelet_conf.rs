//! kubelet.conf from before kubeadm 1.17 (embedded client certificate): detection, and
//! `repair-kubelet-conf`, which changes only the two credential entries, keeps a backup, and
//! refuses (changing nothing) unless kubelet-client-current.pem is present and sound.

#[path = "support/fakes.rs"]
mod fakes;

use base64::Engine;
use kubeadm_certd::act::kubelet::conf::{self as kubelet_conf, Repair};
use kubeadm_certd::config::Settings;
use kubeadm_certd::node::paths::Root;
use kubeadm_certd::node::NodePaths;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

const CONF: &str = "etc/kubernetes/kubelet.conf";
const PEM: &str = "var/lib/kubelet/pki/kubelet-client-current.pem";
const PEM_HOST: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

fn now() -> OffsetDateTime {
    // Whole seconds, so that certificate times compare exactly.
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn spec() -> NodeSpec {
    let mut s = NodeSpec::new(now());
    s.key = KeyAlg::EcP256;
    s
}

/// The kubelet's pair, read through its absolute link resolved below `root`.
fn read_current(root: &Path) -> Vec<u8> {
    let real = Root::new(root).resolve_chroot(&root.join(PEM)).unwrap();
    std::fs::read(real).unwrap()
}

fn paths(root: &Path) -> NodePaths {
    Settings::default().paths(&Root::new(root))
}

/// The cert and key PEM blocks of a combined file.
fn split_pem(bytes: &[u8]) -> (String, String) {
    let s = String::from_utf8(bytes.to_vec()).unwrap();
    let i = s
        .find("-----BEGIN EC PRIVATE KEY-----")
        .or_else(|| s.find("-----BEGIN PRIVATE KEY-----"))
        .unwrap();
    (s[..i].to_string(), s[i..].to_string())
}

/// Turn a post-1.17 kubelet.conf into what kubeadm wrote before 1.17: the current pem's
/// certificate and key embedded.
fn embed(root: &Path) -> (String, String) {
    let original = std::fs::read_to_string(root.join(CONF)).unwrap();
    let (cert, key) = split_pem(&read_current(root));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let refs = format!("    client-certificate: {PEM_HOST}\n    client-key: {PEM_HOST}\n");
    assert!(original.contains(&refs), "{original}");
    let data = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&cert),
        b64(&key)
    );
    let embedded = original.replace(&refs, &data);
    std::fs::write(root.join(CONF), &embedded).unwrap();
    (original, embedded)
}

/// Every entry under `dir`: file bytes, symlink targets, modes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let body = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_dir() {
                todo.push(p.clone());
                Vec::new()
            } else {
                std::fs::read(&p).unwrap()
            };
            out.insert(
                p.strip_prefix(dir).unwrap().to_path_buf(),
                (m.permissions().mode(), body),
            );
        }
    }
    out
}

#[test]
fn detects_and_repairs_only_the_two_entries() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    build(root, &spec()).unwrap();
    let p = paths(root);
    assert_eq!(
        kubelet_conf::detect(&p),
        None,
        "a post-1.17 kubelet.conf is not the trap"
    );

    let (original, embedded) = embed(root);
    let trap = kubelet_conf::detect(&p).expect("embedded credentials are detected");
    assert_eq!(trap.file, "/etc/kubernetes/kubelet.conf");
    assert_eq!(trap.user, "system:node:cp1");
    assert_eq!(trap.target, PEM_HOST);
    let leaf = kubeadm_certd::pki::inspect::parse_combined(&read_current(root))
        .unwrap()
        .0
        .remove(0);
    assert_eq!(trap.not_after, Some(leaf.not_after));
    let msg = trap.to_string();
    for needle in [
        "kubeadm-certd repair-kubelet-conf",
        "kubeadm init phase kubelet-finalize all",
        PEM_HOST,
        "1.17",
    ] {
        assert!(msg.contains(needle), "warning lacks {needle:?}: {msg}");
    }

    let r = kubelet_conf::repair(&p, now()).unwrap();
    let Repair::Repaired {
        backup,
        diff,
        not_after,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(not_after, leaf.not_after);
    let repaired = std::fs::read_to_string(root.join(CONF)).unwrap();
    // Byte for byte what kubeadm >= 1.17 writes, i.e. the embedded file with two entries renamed.
    assert_eq!(repaired, original);
    let (a, b): (Vec<&str>, Vec<&str>) = (embedded.lines().collect(), repaired.lines().collect());
    assert_eq!(a.len(), b.len());
    let changed: Vec<(&str, &str)> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (*x, *y))
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(changed[0].0.starts_with("    client-certificate-data: "));
    assert_eq!(changed[0].1, format!("    client-certificate: {PEM_HOST}"));
    assert!(changed[1].0.starts_with("    client-key-data: "));
    assert_eq!(changed[1].1, format!("    client-key: {PEM_HOST}"));

    assert_eq!(std::fs::read_to_string(&backup).unwrap(), embedded);
    assert!(
        backup.starts_with(root.join("var/lib/kubeadm-certd/backups")),
        "{backup:?}"
    );
    let mode = std::fs::metadata(root.join(CONF))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The diff names the change but never shows the embedded key.
    let key_b64 = embedded
        .lines()
        .find_map(|l| l.strip_prefix("    client-key-data: "))
        .unwrap();
    assert!(
        !diff.contains(key_b64) && !diff.contains(&key_b64[..40]),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("+    client-key: {PEM_HOST}")),
        "{diff}"
    );

    assert_eq!(kubelet_conf::detect(&p), None);
    let again = kubelet_conf::repair(&p, now()).unwrap();
    assert_eq!(
        again,
        Repair::AlreadyRepaired {
            client_certificate: PEM_HOST.into()
        }
    );
    assert_eq!(std::fs::read_to_string(root.join(CONF)).unwrap(), original);
}

/// Run `repair` expecting a refusal that mentions every needle, and check nothing changed.
fn refused(root: &Path, at: OffsetDateTime, needles: &[&str]) {
    let before = snapshot(root);
    let e = kubelet_conf::repair(&paths(root), at).unwrap_err();
    let msg = format!("{e:#}");
    for n in ["/etc/kubernetes/kubelet.conf", "nothing changed"]
        .iter()
        .chain(needles)
    {
        assert!(msg.contains(n), "error lacks {n:?}: {msg}");
    }
    assert_eq!(snapshot(root), before, "a refusal changed the tree");
    assert!(kubelet_conf::detect(&paths(root)).is_some());
}

#[test]
fn refuses_without_a_sound_current_pem() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    build(root, &spec()).unwrap();
    embed(root);
    let pem = root.join(PEM);
    let link = std::fs::read_link(&pem).unwrap();
    let good = read_current(root);

    // Expired: the built client certificate has 3 days left.
    refused(
        root,
        now() + Duration::from_secs(4 * 86_400),
        &[PEM_HOST, "not valid now"],
    );

    // Missing.
    std::fs::remove_file(&pem).unwrap();
    refused(root, now(), &[PEM_HOST, "does not exist"]);

    // Signed by another cluster's CA.
    let other = tempfile::tempdir().unwrap();
    build(other.path(), &spec()).unwrap();
    let foreign = read_current(other.path());
    std::fs::write(&pem, &foreign).unwrap();
    refused(
        root,
        now(),
        &[PEM_HOST, "not signed by /etc/kubernetes/pki/ca.crt"],
    );

    // Its key belongs to another certificate.
    let (cert, _) = split_pem(&good);
    let (_, key) = split_pem(&foreign);
    std::fs::write(&pem, format!("{cert}{key}")).unwrap();
    refused(root, now(), &[PEM_HOST, "does not match"]);

    // Back to the kubelet's symlink: now it repairs.
    std::fs::remove_file(&pem).unwrap();
    std::os::unix::fs::symlink(link, &pem).unwrap();
    assert!(matches!(
        kubelet_conf::repair(&paths(root), now()).unwrap(),
        Repair::Repaired { .. }
    ));
}

#[test]
fn command_repairs_then_restarts_the_kubelet() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    build(&root, &spec()).unwrap();
    let (original, _) = embed(&root);

    // A healthz endpoint on a free port, named in the node's kubelet config.
    let cfg = root.join("var/lib/kubelet/config.yaml");
    let text = fakes::with_live_healthz(&std::fs::read_to_string(&cfg).unwrap());
    std::fs::write(&cfg, text).unwrap();

    let bin = d.path().join("bin");
    fakes::install_systemctl(&bin);
    let log = d.path().join("systemctl.log");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubeadm-certd"))
        .arg("--root")
        .arg(&root)
        .arg("repair-kubelet-conf")
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("FAKE_SYSTEMCTL_LOG", &log)
        .env_remove("FAKE_SYSTEMCTL_STATE")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(root.join(CONF)).unwrap(), original);
    assert!(
        stdout.contains("Backup of the old file: /var/lib/kubeadm-certd/backups/"),
        "{stdout}"
    );
    assert!(stdout.contains("systemctl restart kubelet"), "{stdout}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.starts_with("restart kubelet\nis-active kubelet\n"),
        "{calls}"
    );
}
