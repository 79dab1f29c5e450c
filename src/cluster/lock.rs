//! The restart lock: etcd's v3 lock on a lease of our own, kept alive by our own loop (the
//! server's default session lease is never refreshed, see reference/etcd.md), with a holder
//! record on the same lease so `cluster status` can name the holder and the waiters.

use super::client::Pool;
use anyhow::{anyhow, Context, Result};
use etcd_client::{GetOptions, LockOptions, SortOrder, SortTarget};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The lock's name; etcd keys the queue as `<name>/<lease hex>`.
pub const LOCK_NAME: &str = "/kubeadm-certd/restart-lock";
/// Holder/waiter records, one per lease: `<prefix><lease hex>` = [`Holder`].
pub const HOLDERS_PREFIX: &str = "/kubeadm-certd/holders/";

/// Who is in the lock's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Node name.
    pub node: String,
    /// When it joined the queue, RFC 3339 UTC.
    pub since: String,
    /// Its lease (hex), filled in when read back.
    #[serde(default)]
    pub lease: String,
}

/// A lease of ours and its keep-alive loop; lost when a keep-alive says it expired or none
/// succeeded for a whole TTL.
pub struct Lease {
    /// The lease id.
    pub id: i64,
    lost: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Whether the lease (and so the lock) may be gone.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stop the keep-alive loop.
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    tokio::time::timeout(super::client::PROBE_TIMEOUT, f)
        .await
        .map_err(|_| anyhow!("{what}: no answer"))?
        .map_err(|e| anyhow!("{what}: {}", super::client::describe(&e)))
}

/// Grant a lease of `ttl`, write the holder record on it, start the keep-alive loop.
pub async fn grant(pool: &Arc<Pool>, ttl: Duration, holder: &Holder) -> Result<Lease> {
    let mut c = pool.working().await.map_err(|e| anyhow!(e))?;
    let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(30).max(5);
    let g = match bounded("lease grant", c.lease_grant(ttl_s, None)).await {
        Ok(g) => g,
        Err(e) => {
            pool.invalidate();
            return Err(e);
        }
    };
    let id = g.id();
    let key = format!("{HOLDERS_PREFIX}{id:x}");
    let val = serde_json::to_vec(holder)?;
    let put = etcd_client::PutOptions::new().with_lease(id);
    if let Err(e) = bounded("holder record", c.put(key, val, Some(put))).await {
        let _ = bounded("lease revoke", c.lease_revoke(id)).await;
        pool.invalidate();
        return Err(e);
    }
    let lost = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(keep_alive(pool.clone(), id, ttl, lost.clone()));
    Ok(Lease { id, lost, task })
}

/// One keep-alive round trip; the TTL left (0: the lease is gone).
async fn keep_alive_once(pool: &Pool, id: i64) -> Result<i64> {
    let mut c = pool.working().await.map_err(|e| anyhow!(e))?;
    let (mut keeper, mut stream) = bounded("keep-alive", c.lease_keep_alive(id)).await?;
    bounded("keep-alive", keeper.keep_alive()).await?;
    let msg = bounded("keep-alive", stream.message()).await?;
    msg.map(|m| m.ttl())
        .ok_or_else(|| anyhow!("keep-alive stream closed"))
}

/// Keep the lease alive every third of its TTL through whichever members answer.
async fn keep_alive(pool: Arc<Pool>, id: i64, ttl: Duration, lost: Arc<AtomicBool>) {
    let mut last_ok = Instant::now();
    let mut wait = ttl / 3;
    loop {
        tokio::time::sleep(wait).await;
        match keep_alive_once(&pool, id).await {
            Ok(left) if left > 0 => {
                last_ok = Instant::now();
                wait = ttl / 3;
            }
            Ok(_) => {
                tracing::warn!(
                    MESSAGE_ID = crate::logging::MSG_LOCK_LOST,
                    "the restart lock's lease {id:x} expired; no further manifest will be moved"
                );
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                pool.invalidate();
                if last_ok.elapsed() >= ttl {
                    tracing::warn!(
                        MESSAGE_ID = crate::logging::MSG_LOCK_LOST,
                        "no keep-alive of lease {id:x} succeeded for {}: the restart lock may be lost ({e:#}); no further manifest will be moved",
                        humantime::format_duration(ttl)
                    );
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
                wait = Duration::from_millis(500);
            }
        }
    }
}

/// Wait in the lock's queue until it is ours; retries through a rebuilt client when the
/// member serving the call goes away. The caller bounds it.
pub async fn lock(pool: &Pool, lease: &Lease) -> Result<Vec<u8>> {
    loop {
        if lease.lost() {
            return Err(anyhow!("the lease was lost while waiting for the lock"));
        }
        match pool.working().await {
            Ok(mut c) => {
                let opts = LockOptions::new().with_lease(lease.id);
                match c.lock(LOCK_NAME, Some(opts)).await {
                    Ok(r) => return Ok(r.key().to_vec()),
                    Err(e) => {
                        tracing::debug!("lock call failed, retrying: {e}");
                        pool.invalidate();
                    }
                }
            }
            Err(e) => tracing::debug!("no working etcd client while waiting for the lock: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Give the lock back and end the lease (which also removes the holder record).
pub async fn release(pool: &Pool, lease: &Lease, key: Option<&[u8]>) -> Result<()> {
    lease.stop();
    let mut c = pool.working().await.map_err(|e| anyhow!(e))?;
    if let Some(k) = key {
        let _ = bounded("unlock", c.unlock(k.to_vec())).await;
    }
    if bounded("lease revoke", c.lease_revoke(lease.id))
        .await
        .is_ok()
    {
        return Ok(());
    }
    // The working client may still route to a member that went away meanwhile (its
    // channel keeps the old endpoint list): once more over the members that answer now,
    // rather than leave the others waiting for the lease's TTL.
    pool.invalidate();
    let mut c = pool.working().await.map_err(|e| anyhow!(e))?;
    bounded("lease revoke", c.lease_revoke(lease.id))
        .await
        .map(|_| ())
        .context("releasing the restart lock")
}

/// The queue: the holder first, then the waiters in order.
pub async fn queue(pool: &Pool) -> Result<Vec<Holder>> {
    let mut c = pool.working().await.map_err(|e| anyhow!(e))?;
    let opts = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend);
    let keys = bounded("lock queue", c.get(format!("{LOCK_NAME}/"), Some(opts))).await?;
    let recs = bounded(
        "holder records",
        c.get(HOLDERS_PREFIX, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let mut out = Vec::new();
    for kv in keys.kvs() {
        let hex = format!("{:x}", kv.lease());
        let rec = recs.kvs().iter().find(|r| {
            r.key_str()
                .ok()
                .is_some_and(|k| k.strip_prefix(HOLDERS_PREFIX) == Some(hex.as_str()))
        });
        let mut h = rec
            .and_then(|r| serde_json::from_slice::<Holder>(r.value()).ok())
            .unwrap_or(Holder {
                node: "unknown".into(),
                since: String::new(),
                lease: String::new(),
            });
        h.lease = hex;
        out.push(h);
    }
    Ok(out)
}
