//! The `coordination:` config section: how (and whether) restarts are coordinated across the
//! control-plane nodes through the cluster's own etcd.

use anyhow::{bail, Result};
use serde::Deserialize;
use std::time::Duration;

/// The section as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CoordinationFragment {
    mode: Option<String>,
    #[serde(rename = "lockTTL")]
    lock_ttl: Option<String>,
    lock_timeout: Option<String>,
    break_glass_after: Option<String>,
    etcd: Option<EtcdFragment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EtcdFragment {
    endpoints: Option<Vec<String>>,
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
}

/// When to coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Coordinate when the etcd cluster has more than one member.
    Auto,
    /// Always coordinate (etcd must be reachable, or break glass applies).
    Etcd,
    /// Never coordinate: this node acts alone.
    None,
}

/// Explicit etcd connection settings (external etcd); host paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs to start from instead of the local manifests.
    pub endpoints: Vec<String>,
    /// CA bundle; default `<certificatesDir>/etcd/ca.crt`.
    pub ca_file: Option<String>,
    /// Client certificate; default `<certificatesDir>/etcd/healthcheck-client.crt`.
    pub cert_file: Option<String>,
    /// Client key; default `<certificatesDir>/etcd/healthcheck-client.key`.
    pub key_file: Option<String>,
}

/// Validated coordination settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordination {
    /// auto | etcd | none
    pub mode: Mode,
    /// TTL of the lease the lock lives on.
    pub lock_ttl: Duration,
    /// How long one attempt waits for the lock.
    pub lock_timeout: Duration,
    /// With no quorum reachable for this long, restart without the lock.
    pub break_glass_after: Duration,
    /// External etcd, or overrides of the discovered endpoints / identity.
    pub etcd: EtcdSettings,
}

impl Default for Coordination {
    fn default() -> Self {
        Coordination {
            mode: Mode::Auto,
            lock_ttl: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(30 * 60),
            break_glass_after: Duration::from_secs(5 * 60),
            etcd: EtcdSettings::default(),
        }
    }
}

/// etcd's lease TTL is in whole seconds; below 5 s an election could expire a live holder.
const MIN_TTL: Duration = Duration::from_secs(5);

fn duration(key: &str, v: &str) -> Result<Duration> {
    let d = humantime::parse_duration(v.trim())
        .map_err(|e| anyhow::anyhow!("coordination.{key}: invalid duration {v:?}: {e}"))?;
    if d.is_zero() {
        bail!("coordination.{key}: duration must be positive, got {v:?}");
    }
    if d > Duration::from_secs(365 * 86_400) {
        bail!("coordination.{key}: {v:?} is longer than a year");
    }
    Ok(d)
}

fn abs(key: &str, v: String) -> Result<String> {
    if !v.starts_with('/') {
        bail!("coordination.etcd.{key}: must be an absolute path, got {v:?}");
    }
    Ok(v)
}

impl Coordination {
    /// Apply a fragment over the defaults and validate it; errors name the key.
    pub fn from_fragment(f: CoordinationFragment) -> Result<Coordination> {
        let mut s = Coordination::default();
        if let Some(m) = f.mode {
            s.mode = match m.as_str() {
                "auto" => Mode::Auto,
                "etcd" => Mode::Etcd,
                "none" => Mode::None,
                _ => bail!("coordination.mode: expected auto, etcd or none, got {m:?}"),
            };
        }
        if let Some(v) = f.lock_ttl {
            s.lock_ttl = duration("lockTTL", &v)?;
            if s.lock_ttl < MIN_TTL || s.lock_ttl.subsec_nanos() != 0 {
                bail!("coordination.lockTTL: must be whole seconds and at least 5s, got {v:?}");
            }
        }
        if let Some(v) = f.lock_timeout {
            s.lock_timeout = duration("lockTimeout", &v)?;
        }
        if let Some(v) = f.break_glass_after {
            s.break_glass_after = duration("breakGlassAfter", &v)?;
        }
        if let Some(e) = f.etcd {
            if let Some(eps) = e.endpoints {
                for u in &eps {
                    if !u.starts_with("https://") {
                        bail!("coordination.etcd.endpoints: {u:?} is not an https:// URL");
                    }
                }
                s.etcd.endpoints = eps;
            }
            s.etcd.ca_file = e.ca_file.map(|v| abs("caFile", v)).transpose()?;
            s.etcd.cert_file = e.cert_file.map(|v| abs("certFile", v)).transpose()?;
            s.etcd.key_file = e.key_file.map(|v| abs("keyFile", v)).transpose()?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<Coordination> {
        let f: CoordinationFragment =
            serde_yaml::from_str(y).map_err(|e| anyhow::anyhow!("{e}"))?;
        Coordination::from_fragment(f)
    }

    #[test]
    fn defaults_and_values() {
        let d = Coordination::default();
        assert_eq!(d.mode, Mode::Auto);
        assert_eq!(d.lock_ttl, Duration::from_secs(30));
        assert_eq!(d.lock_timeout, Duration::from_secs(1800));
        assert_eq!(d.break_glass_after, Duration::from_secs(300));
        let s = parse(
            "mode: etcd\nlockTTL: 10s\nlockTimeout: 1m\nbreakGlassAfter: 2m\netcd:\n  endpoints: [https://10.0.0.1:2379]\n  caFile: /x/ca.crt\n",
        )
        .unwrap();
        assert_eq!(s.mode, Mode::Etcd);
        assert_eq!(s.lock_ttl, Duration::from_secs(10));
        assert_eq!(s.etcd.endpoints, vec!["https://10.0.0.1:2379".to_string()]);
        assert_eq!(s.etcd.ca_file.as_deref(), Some("/x/ca.crt"));
    }

    #[test]
    fn errors_name_the_key() {
        for (y, key) in [
            ("mode: sometimes\n", "coordination.mode"),
            ("lockTTL: 2s\n", "coordination.lockTTL"),
            ("lockTTL: 1500ms\n", "coordination.lockTTL"),
            ("lockTimeout: soon\n", "coordination.lockTimeout"),
            ("breakGlassAfter: 0s\n", "coordination.breakGlassAfter"),
            ("etcd:\n  caFile: rel/ca.crt\n", "coordination.etcd.caFile"),
            (
                "etcd:\n  endpoints: [http://x:2379]\n",
                "coordination.etcd.endpoints",
            ),
        ] {
            let e = parse(y).unwrap_err();
            assert!(format!("{e:#}").contains(key), "{y}: {e:#}");
        }
        let e = parse("lockTtl: 3s\n").unwrap_err();
        assert!(format!("{e:#}").contains("lockTtl"), "{e:#}");
        let e = parse("etcd:\n  endpoint: [https://x:2379]\n").unwrap_err();
        assert!(format!("{e:#}").contains("endpoint"), "{e:#}");
    }
}
