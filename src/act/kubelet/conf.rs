//! kubelet.conf on clusters made before kubeadm 1.17 (kubeadm#1753): its user embeds a client
//! certificate (`client-certificate-data`) that the kubelet never rotates, instead of pointing
//! at /var/lib/kubelet/pki/kubelet-client-current.pem, which it does rotate. When the embedded
//! certificate expires the kubelet can no longer reach the API server. `detect` warns about it;
//! `repair` rewrites the two fields to file references, as `kubeadm init phase kubelet-finalize`
//! does on newer clusters.

use crate::act::store::{
    atomic::replace_node_file as replace_file, backup::backup_one as backup_file,
};
use crate::node::fsread::{read_node_file_chroot, ReadError};
use crate::node::kubelet_edit::{line_diff, read_text};
use crate::node::yamledit::{self, Step};
use crate::node::NodePaths;
use crate::pki::external::load_ca;
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys;
use crate::pki::table::CaId;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_yaml::Value;
use std::path::PathBuf;
use time::OffsetDateTime;

/// The rotated client certificate and key, as the kubelet keeps them.
pub const CURRENT_PEM: &str = "kubelet-client-current.pem";
const CERT_DATA: &str = "client-certificate-data";
const KEY_DATA: &str = "client-key-data";
const CERT_FILE: &str = "client-certificate";
const KEY_FILE: &str = "client-key";

/// kubelet.conf embeds its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// Host path of kubelet.conf.
    pub file: String,
    /// The current context's user.
    pub user: String,
    /// Host path it should reference.
    pub target: String,
    /// NotAfter of the embedded certificate, when it parses.
    pub not_after: Option<OffsetDateTime>,
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: user '{}' embeds its client certificate ({CERT_DATA})",
            self.file, self.user
        )?;
        if let Some(t) = self.not_after {
            write!(f, ", which expires {}", crate::logging::rfc3339(t))?;
        }
        write!(
            f,
            ", instead of referencing {}, which the kubelet rotates (clusters created before \
             kubeadm 1.17, kubeadm#1753); when it expires the kubelet loses the API server. \
             Fix: `kubeadm-certd repair-kubelet-conf` (or `kubeadm init phase kubelet-finalize all`)",
            self.target
        )
    }
}

/// What `repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The user already references files; nothing was written.
    AlreadyRepaired {
        /// Its `client-certificate` value.
        client_certificate: String,
    },
    /// The two fields were rewritten.
    Repaired {
        /// The copy of the old kubelet.conf.
        backup: PathBuf,
        /// The change, with the embedded values left out.
        diff: String,
        /// NotAfter of kubelet-client-current.pem.
        not_after: OffsetDateTime,
    },
}

/// kubelet.conf, resolved.
pub fn kubelet_conf(paths: &NodePaths) -> PathBuf {
    paths.kubelet_conf()
}

/// The current context's user name and its `user` mapping.
fn current_user(doc: &Value) -> Result<(String, &serde_yaml::Mapping)> {
    use crate::pki::kubeconfig::{named_entry as named, str_field as s};
    let ctx_name = s(doc, "current-context")
        .filter(|c| !c.is_empty())
        .context("has no current-context")?;
    let user = named(doc, "contexts", &ctx_name)
        .and_then(|c| c.get("context").and_then(|c| s(c, "user")))
        .with_context(|| format!("current-context {ctx_name:?} names no context with a user"))?;
    let map = named(doc, "users", &user)
        .and_then(|u| u.get("user"))
        .and_then(Value::as_mapping)
        .with_context(|| format!("user {user:?} of the current context does not exist"))?;
    Ok((user, map))
}

fn field<'a>(m: &'a serde_yaml::Mapping, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

fn embedded_cert(b64: &str) -> Option<CertInfo> {
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    inspect::parse_cert_file(&pem).ok()?.into_iter().next()
}

/// Whether kubelet.conf embeds its client certificate. A missing or unreadable kubelet.conf
/// is not this trap (check-expiration reports unreadable files).
pub fn detect(paths: &NodePaths) -> Option<Trap> {
    let file = kubelet_conf(paths);
    let text = read_text(&paths.root, &file).ok()?;
    let doc: Value = serde_yaml::from_str(&text).ok()?;
    let (user, m) = current_user(&doc).ok()?;
    let data = field(m, CERT_DATA)?;
    Some(Trap {
        file: paths.show(&file),
        user,
        target: paths.show(&paths.kubelet_pki.join(CURRENT_PEM)),
        not_after: embedded_cert(data).map(|c| c.not_after),
    })
}

/// Check kubelet-client-current.pem: present, a certificate with its matching key, valid at
/// `now`, a client certificate signed by ca.crt, and (when the embedded one parses) for the
/// same identity. Returns its certificate.
fn check_current(
    paths: &NodePaths,
    now: OffsetDateTime,
    embedded: Option<&CertInfo>,
) -> Result<CertInfo> {
    let pem_path = paths.kubelet_pki.join(CURRENT_PEM);
    // The kubelet's link is absolute: it resolves below the root.
    let bytes = match read_node_file_chroot(&paths.root, &pem_path) {
        Ok((_, b)) => b,
        Err(ReadError::Missing) => {
            bail!("does not exist (the kubelet has no rotated client certificate to point at)")
        }
        Err(e) => bail!("{e}"),
    };
    let (mut certs, key) = inspect::parse_combined(&bytes).map_err(|e| anyhow!("{e}"))?;
    let cert = certs.remove(0);
    let key = key.context("holds no private key")?;
    let key = keys::parse_key_block(&key).map_err(|e| anyhow!("{e}"))?;
    if key.spki() != cert.spki {
        bail!("its private key does not match its certificate");
    }
    if !cert.valid_at(now) {
        bail!(
            "its certificate is not valid now (valid {} to {})",
            crate::logging::rfc3339(cert.not_before),
            crate::logging::rfc3339(cert.not_after)
        );
    }
    if !cert.client_auth {
        bail!("its certificate is not a client certificate (no clientAuth usage)");
    }
    let ca = load_ca(paths, CaId::Ca).map_err(|e| anyhow!("{e}"))?;
    let ca_path = paths.show(&ca.cert_path);
    let ca = ca
        .cert
        .with_context(|| format!("cannot check its issuer: {ca_path} does not exist"))?;
    if !cert.signed_by(&ca) {
        bail!("its certificate is not signed by {ca_path}");
    }
    if let Some(e) = embedded {
        if e.cn() != cert.cn() {
            bail!(
                "its subject CN {:?} differs from the embedded certificate's {:?}",
                cert.cn().unwrap_or(""),
                e.cn().unwrap_or("")
            );
        }
    }
    Ok(cert)
}

/// Point kubelet.conf's user at kubelet-client-current.pem: `client-certificate-data` becomes
/// `client-certificate: <pem>` and `client-key-data` becomes `client-key: <pem>`, every other
/// byte unchanged. Refuses (nothing written) unless the pem is present and sound (see
/// `check_current`). The caller holds the lock; the kubelet is not restarted here.
pub fn repair(paths: &NodePaths, now: OffsetDateTime) -> Result<Repair> {
    let file = kubelet_conf(paths);
    let host = paths.show(&file);
    let pem_path = paths.kubelet_pki.join(CURRENT_PEM);
    let target = paths.show(&pem_path);
    let refuse = |why: String| anyhow!("{host}: not repaired, nothing changed: {why}");

    let text = read_text(&paths.root, &file).with_context(|| host.clone())?;
    crate::node::yamlguard::check_nesting(&text).map_err(refuse)?;
    let doc: Value =
        serde_yaml::from_str(&text).map_err(|e| refuse(format!("not a valid kubeconfig: {e}")))?;
    for list in ["clusters", "contexts", "users"] {
        crate::pki::kubeconfig::unique_names(&doc, list).map_err(|e| refuse(e.to_string()))?;
    }
    let (user, m) = current_user(&doc).map_err(|e| refuse(format!("{e:#}")))?;
    match (field(m, CERT_DATA), field(m, KEY_DATA)) {
        (None, None) => {
            return match (field(m, CERT_FILE), field(m, KEY_FILE)) {
                (Some(c), Some(_)) => Ok(Repair::AlreadyRepaired {
                    client_certificate: c.to_string(),
                }),
                _ => Err(refuse(format!(
                    "user {user:?} has neither embedded credentials nor file references"
                ))),
            };
        }
        (Some(_), Some(_)) => {}
        _ => {
            return Err(refuse(format!(
                "user {user:?} embeds only one of {CERT_DATA} and {KEY_DATA}"
            )))
        }
    }
    let embedded = field(m, CERT_DATA).and_then(embedded_cert);
    let cert = check_current(paths, now, embedded.as_ref())
        .map_err(|e| refuse(format!("{target}: {e:#}")))?;

    let mut new = text.clone();
    for (data, file_key) in [(CERT_DATA, CERT_FILE), (KEY_DATA, KEY_FILE)] {
        let path = [
            Step::Key("users"),
            Step::Named(&user),
            Step::Key("user"),
            Step::Key(data),
        ];
        new = yamledit::replace_entry(&new, &path, file_key, &target)
            .map_err(|e| refuse(format!("cannot rewrite {data}: {e}")))?;
    }
    verify(&new, &target)
        .map_err(|e| refuse(format!("the rewritten file does not check out: {e:#}")))?;

    let backup = backup_file(paths, &file, now)?;
    fail::fail_point!("kubelet-conf::mid-write");
    replace_file(&paths.root, &file, &new).with_context(|| host.clone())?;
    tracing::info!(
        ACTION = "repair-kubelet-conf",
        CERT_PATH = host.as_str(),
        "{host} now references {target} (backup {})",
        paths.show(&backup)
    );
    Ok(Repair::Repaired {
        backup,
        diff: redact(&line_diff(&host, &text, &new)),
        not_after: cert.not_after,
    })
}

/// The re-parsed user has exactly the two file references and no embedded credentials.
fn verify(text: &str, target: &str) -> Result<()> {
    let doc: Value = serde_yaml::from_str(text)?;
    let (_, m) = current_user(&doc)?;
    for k in [CERT_DATA, KEY_DATA] {
        if m.contains_key(k) {
            bail!("{k} is still present");
        }
    }
    for k in [CERT_FILE, KEY_FILE] {
        if field(m, k) != Some(target) {
            bail!("{k} is not {target}");
        }
    }
    Ok(())
}

/// Leave embedded credentials (a private key among them) out of a diff.
fn redact(diff: &str) -> String {
    let mut out = String::with_capacity(diff.len());
    for line in diff.lines() {
        match line.find("-data:") {
            Some(i)
                if line.starts_with(['-', '+'])
                    && !line.starts_with("---")
                    && !line.starts_with("+++") =>
            {
                out.push_str(&line[..i + "-data:".len()]);
                out.push_str(" <embedded, not shown>");
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_embedded_values() {
        let d = "--- /k\n+++ /k\n@@ -2,2 +2,2 @@\n-    client-certificate-data: QUJD\n-    client-key-data: S0VZ\n+    client-certificate: /p\n+    client-key: /p\n";
        let r = redact(d);
        assert!(!r.contains("QUJD") && !r.contains("S0VZ"), "{r}");
        assert!(
            r.contains("-    client-key-data: <embedded, not shown>\n"),
            "{r}"
        );
        assert!(r.contains("+    client-key: /p\n"), "{r}");
    }

    #[test]
    fn verify_wants_both_references() {
        let base = "current-context: c\ncontexts:\n- name: c\n  context: {user: u}\nusers:\n- name: u\n  user:\n";
        let good = format!("{base}    client-certificate: /p\n    client-key: /p\n");
        verify(&good, "/p").unwrap();
        let half = format!("{base}    client-certificate: /p\n    client-key-data: QQ==\n");
        assert!(verify(&half, "/p").is_err());
        assert!(verify(&good, "/q").is_err());
    }
}
