//! Restarts still owed: written with the commit journal, so that a crash between renaming the
//! new files in and restarting the components that use them is finished by `recover` or the
//! daemon, instead of leaving components on certificates they loaded before.

use crate::act::store::atomic;
use crate::node::NodePaths;
use anyhow::{Context, Result};

fn path(paths: &NodePaths) -> std::path::PathBuf {
    paths.state.join("restarts-owed.json")
}

/// Components to restart, in order.
pub fn read(paths: &NodePaths) -> Vec<String> {
    crate::node::fsread::read_regular(&path(paths), 64 * 1024)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| crate::pki::table::Component::from_name(c).is_some())
        .collect()
}

/// Record the components a commit owes a restart.
pub fn write(paths: &NodePaths, components: &[String]) -> Result<()> {
    if components.is_empty() {
        return clear(paths);
    }
    let text = serde_json::to_vec(components).context("encoding owed restarts")?;
    atomic::write_atomic(&path(paths), &text, 0o600)
}

/// One component has been restarted.
pub fn done(paths: &NodePaths, component: &str) -> Result<()> {
    let rest: Vec<String> = read(paths).into_iter().filter(|c| c != component).collect();
    write(paths, &rest)
}

/// Nothing is owed any more (all done, or the failure was reported).
pub fn clear(paths: &NodePaths) -> Result<()> {
    match std::fs::remove_file(path(paths)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).context("removing the owed-restarts file"),
    }
}
