//! `<stateDir>/kubelet-config-pending.json`: the cluster-wide `serverTLSBootstrap` (the
//! kubelet-config ConfigMap) that `kubelet-serving-certs enable|disable` or the daemon could
//! not set because the API did not answer. The daemon sets it when the API answers, also
//! after a restart, then removes the file.

use crate::act::store::atomic::{create_dir_all_mode, write_atomic};
use crate::node::NodePaths;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: bool,
    since: String,
}

fn file(paths: &NodePaths) -> PathBuf {
    paths.state.join("kubelet-config-pending.json")
}

/// The pending value, if any (an unreadable file counts as none: the setting or the next
/// `kubelet-serving-certs` run says it again).
pub fn read(paths: &NodePaths) -> Option<bool> {
    read_request(paths).map(|(enable, _)| enable)
}

/// The pending value and when it was asked for (RFC 3339): each write is a new request, so
/// a running daemon tells a new one from one it has already taken up.
pub fn read_request(paths: &NodePaths) -> Option<(bool, String)> {
    let b = crate::node::fsread::read_node_file(&paths.root, &file(paths)).ok()?;
    serde_json::from_slice::<Pending>(&b)
        .ok()
        .map(|p| (p.server_tls_bootstrap, p.since))
}

/// Remember that the ConfigMap should get `enable`.
pub fn write(paths: &NodePaths, enable: bool, now: OffsetDateTime) -> Result<()> {
    create_dir_all_mode(&paths.state, 0o700)?;
    let p = Pending {
        server_tls_bootstrap: enable,
        since: crate::logging::rfc3339(now),
    };
    let text = serde_json::to_vec_pretty(&p)?;
    write_atomic(&file(paths), &text, 0o600).with_context(|| paths.show(&file(paths)))
}

/// Forget it (done, or superseded).
pub fn clear(paths: &NodePaths) -> Result<()> {
    match std::fs::remove_file(file(paths)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| paths.show(&file(paths)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let root = crate::node::paths::Root::new(d.path());
        let paths = crate::config::Settings::default().paths(&root);
        assert_eq!(read(&paths), None);
        write(&paths, true, time::macros::datetime!(2026-12-01 10:00 UTC)).unwrap();
        assert_eq!(read(&paths), Some(true));
        write(&paths, false, time::macros::datetime!(2026-12-01 10:00 UTC)).unwrap();
        assert_eq!(read(&paths), Some(false));
        assert_eq!(
            read_request(&paths),
            Some((false, "2026-12-01T10:00:00Z".to_string()))
        );
        clear(&paths).unwrap();
        clear(&paths).unwrap();
        assert_eq!(read(&paths), None);
    }
}
