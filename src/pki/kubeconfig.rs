//! Kubeconfig files: read the current context's embedded credentials (kubeadm
//! `kubeConfigReadWriter.Read`), and replace them leaving every other byte alone.

use crate::node::yamledit::{self, Step};
use base64::Engine;
use serde_yaml::Value;

/// Why a kubeconfig cannot be used. Messages name no path; callers prefix it.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// Not YAML, or not a kubeconfig.
    #[error("not a valid kubeconfig: {0}")]
    Invalid(String),
    /// The structure kubeadm requires is missing.
    #[error("{0}")]
    Structure(String),
}

/// The current context's credentials, decoded.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// Name of the current context's user entry.
    pub user: String,
    /// Name of the current context's cluster entry.
    pub cluster: String,
    /// Decoded `client-certificate-data` (PEM).
    pub client_cert: Vec<u8>,
    /// Decoded `client-key-data` (PEM).
    pub client_key: Vec<u8>,
    /// Decoded `certificate-authority-data` (PEM).
    pub ca: Vec<u8>,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|e| s(e, "name") == Some(name))
}

/// Refuse a list with two entries of the same name: which one a client uses is undefined.
pub fn unique_names(doc: &Value, list: &str) -> Result<(), KubeconfigError> {
    let Some(seq) = doc.get(list).and_then(Value::as_sequence) else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::new();
    for n in seq.iter().filter_map(|e| s(e, "name")) {
        if !seen.insert(n) {
            return Err(KubeconfigError::Structure(format!(
                "{list} has more than one entry named {n:?}"
            )));
        }
    }
    Ok(())
}

fn decode(field: &str, v: &str) -> Result<Vec<u8>, KubeconfigError> {
    base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|e| KubeconfigError::Structure(format!("{field} is not valid base64: {e}")))
}

/// Parse a kubeconfig and extract the current context's embedded credentials.
pub fn parse(text: &str) -> Result<Kubeconfig, KubeconfigError> {
    crate::node::yamlguard::check_nesting(text).map_err(KubeconfigError::Invalid)?;
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| KubeconfigError::Invalid(e.to_string()))?;
    if !doc.is_mapping() {
        return Err(KubeconfigError::Invalid(
            "top level is not a mapping".into(),
        ));
    }
    let st = |m: String| KubeconfigError::Structure(m);
    for list in ["clusters", "contexts", "users"] {
        unique_names(&doc, list)?;
    }
    let current = s(&doc, "current-context")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| st("has no current-context".into()))?;
    let ctx = named(&doc, "contexts", current)
        .and_then(|c| c.get("context"))
        .ok_or_else(|| st(format!("current-context {current:?} names no context")))?;
    let user = s(ctx, "user").ok_or_else(|| st(format!("context {current:?} has no user")))?;
    let cluster =
        s(ctx, "cluster").ok_or_else(|| st(format!("context {current:?} has no cluster")))?;
    let u = named(&doc, "users", user)
        .and_then(|u| u.get("user"))
        .ok_or_else(|| {
            st(format!(
                "context {current:?} names user {user:?}, which does not exist"
            ))
        })?;
    let c = named(&doc, "clusters", cluster)
        .and_then(|c| c.get("cluster"))
        .ok_or_else(|| {
            st(format!(
                "context {current:?} names cluster {cluster:?}, which does not exist"
            ))
        })?;
    let embedded = |v: &Value, data: &str, file: &str| -> Result<Vec<u8>, KubeconfigError> {
        match (s(v, data), s(v, file)) {
            (Some(d), _) if !d.is_empty() => decode(data, d),
            (_, Some(_)) => Err(st(format!(
                "uses a file reference ({file}) instead of embedded {data}; kubeadm renews only embedded credentials"
            ))),
            _ => Err(st(format!("has no embedded {data}"))),
        }
    };
    Ok(Kubeconfig {
        user: user.to_string(),
        cluster: cluster.to_string(),
        client_cert: embedded(u, "client-certificate-data", "client-certificate")?,
        client_key: embedded(u, "client-key-data", "client-key")?,
        ca: embedded(c, "certificate-authority-data", "certificate-authority")?,
    })
}

/// Replace the three credential fields of the current context; every other byte stays.
pub fn replace_credentials(
    text: &str,
    kc: &Kubeconfig,
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_pem: &[u8],
) -> Result<String, KubeconfigError> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let e = |e: yamledit::YamlEditError| KubeconfigError::Structure(format!("cannot edit: {e}"));
    let user = [Step::Key("users"), Step::Named(&kc.user), Step::Key("user")];
    let cluster = [
        Step::Key("clusters"),
        Step::Named(&kc.cluster),
        Step::Key("cluster"),
    ];
    let mut out = text.to_string();
    let edits: [(&[Step], &str, String); 3] = [
        (&user, "client-certificate-data", b64(cert_pem)),
        (&user, "client-key-data", b64(key_pem)),
        (&cluster, "certificate-authority-data", b64(ca_pem)),
    ];
    for (base, field, value) in edits {
        let mut path = base.to_vec();
        path.push(Step::Key(field));
        out = yamledit::replace_scalar(&out, &path, &value).map_err(e)?;
    }
    Ok(out)
}
/// A string field of a YAML value (`None` when absent or not a string).
pub fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// The entry named `name` in one of a kubeconfig's lists (`clusters`, `contexts`, `users`).
pub fn named_entry<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|e| str_field(e, "name").as_deref() == Some(name))
}
