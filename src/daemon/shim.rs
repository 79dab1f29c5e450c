//! Temporary stand-ins until the metrics and kubelet modules land.
#![allow(missing_docs, dead_code)]
use crate::node::NodePaths;
#[derive(Debug, Default)]
pub struct Counters;
impl Counters {
    pub fn renewal_ok(&mut self, _now: time::OffsetDateTime) {}
    pub fn renewal_failed(&mut self) {}
    pub fn restart(&mut self, _c: &str, _ok: bool) {}
}
pub fn render(_s: &crate::scan::Scan, _c: &Counters, _n: time::OffsetDateTime) -> String {
    String::new()
}
pub fn write_textfile(_p: &std::path::Path, _t: &str) -> anyhow::Result<()> {
    Ok(())
}
pub fn detect(_p: &NodePaths) -> Option<String> {
    None
}
pub fn apply_setting(_c: &crate::commands::Ctx) -> anyhow::Result<()> {
    Ok(())
}
