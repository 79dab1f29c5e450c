//! `kubelet-serving-certs` and `repair-kubelet-conf` (placeholder until implemented).

use super::Ctx;
use anyhow::Result;

/// `kubelet-serving-certs enable|disable`.
pub fn serving_certs(_ctx: &Ctx, _enable: bool, _no_restart: bool) -> Result<()> {
    anyhow::bail!("not implemented yet")
}

/// `repair-kubelet-conf`.
pub fn repair(_ctx: &Ctx) -> Result<()> {
    anyhow::bail!("not implemented yet")
}
