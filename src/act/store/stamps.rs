//! Small state files of timestamps in stateDir, for the guard rails:
//! `renewed.json` ({certificate: last renewal by the daemon}) and `restarts.json`
//! ({component: restarts by the daemon in the last 24 h}). RFC 3339 UTC, written atomically.
//! An unreadable file counts as empty: losing it loosens a guard for a day, never blocks one.

use crate::act::store::atomic;
use crate::node::NodePaths;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The renewal memory.
pub fn renewed_path(paths: &NodePaths) -> PathBuf {
    paths.state.join("renewed.json")
}

/// The restart history.
pub fn restarts_path(paths: &NodePaths) -> PathBuf {
    paths.state.join("restarts.json")
}

fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

fn fmt(t: OffsetDateTime) -> Result<String> {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .context("formatting a timestamp")
}

fn read_raw<T: serde::de::DeserializeOwned + Default>(p: &std::path::Path) -> T {
    crate::node::fsread::read_regular(p, 256 * 1024)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// When the daemon last renewed each certificate.
pub fn read_renewed(paths: &NodePaths) -> BTreeMap<String, OffsetDateTime> {
    read_raw::<BTreeMap<String, String>>(&renewed_path(paths))
        .into_iter()
        .filter_map(|(k, v)| Some((k, parse(&v)?)))
        .collect()
}

/// Record renewals of `names` at `now`.
pub fn record_renewed(paths: &NodePaths, names: &[&str], now: OffsetDateTime) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut m = read_renewed(paths);
    for n in names {
        m.insert((*n).to_string(), now);
    }
    let text: BTreeMap<String, String> = m
        .into_iter()
        .map(|(k, v)| Ok((k, fmt(v)?)))
        .collect::<Result<_>>()?;
    let bytes = serde_json::to_vec_pretty(&text).context("encoding the renewal memory")?;
    atomic::write_atomic(&renewed_path(paths), &bytes, 0o600)
}

/// The daemon's restarts of each component.
pub fn read_restarts(paths: &NodePaths) -> BTreeMap<String, Vec<OffsetDateTime>> {
    read_raw::<BTreeMap<String, Vec<String>>>(&restarts_path(paths))
        .into_iter()
        .map(|(k, v)| (k, v.iter().filter_map(|s| parse(s)).collect()))
        .collect()
}

/// Record restarts of `components` at `now`, forgetting those older than the window.
pub fn record_restarts(
    paths: &NodePaths,
    components: &[String],
    now: OffsetDateTime,
) -> Result<()> {
    if components.is_empty() {
        return Ok(());
    }
    let mut m = read_restarts(paths);
    for c in components {
        m.entry(c.clone()).or_default().push(now);
    }
    let mut text: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in m {
        let keep: Vec<String> = v
            .into_iter()
            .filter(|t| now - *t < crate::plan::guard::RESTART_WINDOW)
            .map(fmt)
            .collect::<Result<_>>()?;
        if !keep.is_empty() {
            text.insert(k, keep);
        }
    }
    let bytes = serde_json::to_vec_pretty(&text).context("encoding the restart history")?;
    atomic::write_atomic(&restarts_path(paths), &bytes, 0o600)
}
