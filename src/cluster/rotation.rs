//! The CA rotation record in etcd (`/kubeadm-certd/ca-rotation/<ca>`, beside the halt record):
//! read, and changed only by compare-and-swap on its mod revision, so that two writers (a
//! node recording its step, an operator's `--abort`) never overwrite each other.

use super::client::{self, PROBE_TIMEOUT};
use super::endpoints::{self, Identity};
use super::settings::Coordination;
use super::{quorum, Coordinator, Deferral, Permit};
use crate::node::NodePaths;
use crate::plan::rotation::{record_key, Rotation};
use anyhow::{anyhow, Context, Result};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

/// A record and the revision a swap must compare with.
pub type Versioned = (Rotation, i64);

fn decode(key: &str, v: &[u8]) -> Result<Rotation> {
    serde_json::from_slice(v).with_context(|| format!("{key}: the rotation record is not valid"))
}

async fn get(c: &mut etcd_client::Client, ca: &str) -> Result<Option<Versioned>> {
    let key = record_key(ca);
    let r = tokio::time::timeout(PROBE_TIMEOUT, c.get(key.as_str(), None))
        .await
        .map_err(|_| anyhow!("reading {key}: no answer"))?
        .map_err(|e| anyhow!("reading {key}: {}", client::describe(&e)))?;
    match r.kvs().first() {
        None => Ok(None),
        Some(kv) => Ok(Some((decode(&key, kv.value())?, kv.mod_revision()))),
    }
}

impl Coordinator {
    /// The names of the voting members (MemberList through any member that answers).
    pub fn voting_members(&self) -> Result<Vec<String>> {
        let ms = self.read(async { self.pool.refresh_members().await.map_err(|e| anyhow!(e)) })?;
        Ok(ms
            .iter()
            .filter(|m| !m.is_learner)
            .map(|m| m.label())
            .collect())
    }

    /// The rotation record of `ca` and its revision.
    pub fn rotation(&self, ca: &str) -> Result<Option<Versioned>> {
        self.read(async {
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            let r = get(&mut c, ca).await;
            if r.is_err() {
                self.pool.invalidate();
            }
            r
        })
    }

    /// Write `r` if the record is still at `rev` (0: if there is none); whether it was
    /// written. Never cut short by a stop request: a step's progress must be recorded.
    pub fn swap_rotation(&self, rev: i64, r: &Rotation) -> Result<bool> {
        let key = record_key(&r.ca);
        let val = serde_json::to_vec(r).context("encoding the rotation record")?;
        self.rt.block_on(async {
            let mut c = self.pool.working().await.map_err(|e| anyhow!(e))?;
            let guard = if rev == 0 {
                Compare::create_revision(key.as_str(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)
            };
            let txn = Txn::new()
                .when([guard])
                .and_then([TxnOp::put(key.as_str(), val, None)]);
            let out = tokio::time::timeout(PROBE_TIMEOUT, c.txn(txn))
                .await
                .map_err(|_| anyhow!("writing {key}: no answer"))
                .and_then(|r| r.map_err(|e| anyhow!("writing {key}: {}", client::describe(&e))));
            match out {
                Ok(t) => Ok(t.succeeded()),
                Err(e) => {
                    self.pool.invalidate();
                    Err(e)
                }
            }
        })
    }
}

impl Permit<'_> {
    /// The quorum guard, asked before a rotation step writes anything, without the guard's own
    /// warning: the caller logs why it waits once, as a standing condition, rather than every
    /// cycle. A break-glass permit never allows a rotation step.
    pub fn quorum_allows(&self) -> Result<(), Deferral> {
        if self.is_break_glass() {
            return Err(Deferral {
                unhealthy: Vec::new(),
                reason: "no etcd quorum is reachable".into(),
            });
        }
        let hs = self
            .coord
            .read(async { self.coord.pool.health().await.map_err(|e| anyhow!(e)) })
            .map_err(|e| Deferral {
                unhealthy: Vec::new(),
                reason: format!("{e:#}"),
            })?;
        match quorum::decide(&hs, &self.coord.is_local()) {
            quorum::Verdict::Allow => Ok(()),
            quorum::Verdict::Defer(d) => Err(d),
        }
    }
}

/// The record of `ca`, read through the first endpoint that answers: one connection and one
/// GET, without the member list and health probes a [`Coordinator`] starts with, so that a
/// daemon with no rotation under way adds almost nothing to etcd's load. `None` when there is
/// none; an error when no endpoint answered.
///
/// A stop request cuts it short (`stop` is polled several times a second): members that
/// accept connections but never answer must not hold a SIGTERM up.
pub fn peek(
    paths: &NodePaths,
    settings: &Coordination,
    ca: &str,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Rotation>> {
    let view = endpoints::local_view(paths);
    let mut urls = endpoints::seeds(&view, settings);
    urls.extend(endpoints::last_seen_urls(paths));
    urls.dedup();
    let opts = client::options(&Identity::resolve(paths, settings))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the rotation record")?;
    let read = async {
        let mut errors = Vec::new();
        for u in &urls {
            let found = async {
                let mut c = client::single(u, &opts).await?;
                get(&mut c, ca).await
            };
            match found.await {
                Ok(r) => return Ok(r.map(|(r, _)| r)),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        Err(anyhow!(
            "no etcd endpoint answered{}{}",
            if errors.is_empty() { "" } else { ": " },
            errors.join("; ")
        ))
    };
    rt.block_on(super::race(read, super::CALL_BOUND, stop))
        .unwrap_or_else(|| Err(anyhow!(super::INTERRUPTED)))
}
