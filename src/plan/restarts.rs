//! Which static pods a renewal affects, from the manifests on disk (kubeadm's table when a
//! manifest cannot be read).

use crate::node::manifests::find_manifest;
use crate::node::manifests::Manifest;
use crate::node::NodePaths;
use crate::pki::table::{Component, Handler};
use crate::plan::{restart_set, Consumers, Decision, Plan};

/// Consumers read from the manifests directory.
pub struct ManifestConsumers {
    /// Each present component, with its parsed manifest when it parses.
    found: Vec<(Component, Option<Manifest>)>,
}

impl ManifestConsumers {
    /// Read the manifests of the four control-plane components.
    pub fn read(paths: &NodePaths) -> ManifestConsumers {
        let found = Component::ORDER
            .into_iter()
            .filter_map(|c| match find_manifest(paths, c.name()) {
                Ok(Some(f)) => Some((c, Some(f.manifest))),
                Ok(None) => None,
                // Unparsable: it is still there, so fall back to kubeadm's table for it.
                Err(_) => Some((c, None)),
            })
            .collect();
        ManifestConsumers { found }
    }
}

impl Consumers for ManifestConsumers {
    fn uses(&self, c: Component, host_path: &str) -> Option<bool> {
        self.found
            .iter()
            .find(|(x, _)| *x == c)
            .and_then(|(_, m)| m.as_ref())
            .map(|m| m.uses_file(host_path))
    }
    fn present(&self, c: Component) -> bool {
        self.found.iter().any(|(x, _)| *x == c)
    }
}

/// Component names to restart for a set of changed handler files.
pub fn for_changes(paths: &NodePaths, changed: &[(&Handler, Vec<String>)]) -> Vec<String> {
    let consumers = ManifestConsumers::read(paths);
    restart_set(changed, &consumers)
        .into_iter()
        .map(|c| c.name().to_string())
        .collect()
}

/// Component names to restart for a plan's renewals.
pub fn for_plan(paths: &NodePaths, plan: &Plan) -> Vec<String> {
    let changed: Vec<(&Handler, Vec<String>)> = plan
        .items
        .iter()
        .filter(|i| matches!(i.decision, Decision::Renew { .. }))
        .map(|i| (i.handler, handler_files(paths, i.handler)))
        .collect();
    for_changes(paths, &changed)
}

/// Host paths of a handler's files (cert and key, or the kubeconfig).
fn handler_files(paths: &NodePaths, h: &Handler) -> Vec<String> {
    let mut v = vec![paths.show(&crate::pki::material::cert_file(paths, h))];
    if let crate::pki::table::Location::Pki(base) = h.location {
        v.push(paths.show(&crate::pki::material::key_file(paths, base)));
    }
    v
}
