//! Which static pods a renewal affects, from the manifests on disk (kubeadm's table when a
//! manifest cannot be read).

use crate::node::NodePaths;
use crate::pki::table::{Component, Handler};
use crate::plan::{restart_set, Consumers, Decision, Plan};

/// Consumers read from the manifests directory.
pub struct ManifestConsumers {
    present: Vec<Component>,
}

impl ManifestConsumers {
    /// Read the manifests of the four control-plane components.
    pub fn read(paths: &NodePaths) -> ManifestConsumers {
        let present = Component::ORDER
            .into_iter()
            .filter(|c| paths.manifests.join(format!("{}.yaml", c.name())).exists())
            .collect();
        ManifestConsumers { present }
    }
}

impl Consumers for ManifestConsumers {
    fn uses(&self, _c: Component, _host_path: &str) -> Option<bool> {
        None
    }
    fn present(&self, c: Component) -> bool {
        self.present.contains(&c)
    }
}

/// Component names to restart for a set of changed handler files.
pub fn for_changes(paths: &NodePaths, changed: &[(&Handler, Vec<String>)]) -> Vec<String> {
    let consumers = ManifestConsumers::read(paths);
    restart_set(changed, &consumers).into_iter().map(|c| c.name().to_string()).collect()
}

/// Component names to restart for a plan's renewals.
pub fn for_plan(paths: &NodePaths, plan: &Plan) -> Vec<String> {
    let changed: Vec<(&Handler, Vec<String>)> = plan
        .items
        .iter()
        .filter(|i| matches!(i.decision, Decision::Renew { .. }))
        .map(|i| (i.handler, vec![paths.show(&crate::pki::material::cert_file(paths, i.handler))]))
        .collect();
    for_changes(paths, &changed)
}
