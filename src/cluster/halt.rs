//! The durable halt record: written (with no lease, so it outlives every daemon) when a
//! restart failed and was rolled back; while it stands no node restarts anything.

use super::client::describe;
use anyhow::{anyhow, Context, Result};
use etcd_client::Client;
use serde::{Deserialize, Serialize};

/// The halt key.
pub const HALT_KEY: &str = "/kubeadm-certd/halt";

/// Who halted the rollout, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// The node whose restart failed.
    pub node: String,
    /// The component that did not come back.
    pub component: String,
    /// What went wrong.
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub time: String,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "halted by {} at {}: {} failed: {}",
            self.node, self.time, self.component, self.reason
        )
    }
}

/// The halt record, if any.
pub async fn get(c: &mut Client) -> Result<Option<Halt>> {
    let r = c
        .get(HALT_KEY, None)
        .await
        .map_err(|e| anyhow!("reading the halt record: {}", describe(&e)))?;
    match r.kvs().first() {
        None => Ok(None),
        Some(kv) => Ok(Some(
            serde_json::from_slice(kv.value()).context("the halt record is not valid JSON")?,
        )),
    }
}

/// Write the halt record.
pub async fn put(c: &mut Client, h: &Halt) -> Result<()> {
    let v = serde_json::to_vec(h)?;
    c.put(HALT_KEY, v, None)
        .await
        .map_err(|e| anyhow!("writing the halt record: {}", describe(&e)))?;
    Ok(())
}

/// Remove the halt record; whether there was one.
pub async fn clear(c: &mut Client) -> Result<bool> {
    let r = c
        .delete(HALT_KEY, None)
        .await
        .map_err(|e| anyhow!("removing the halt record: {}", describe(&e)))?;
    Ok(r.deleted() > 0)
}
