//! Connections to etcd. etcd-client balances over its endpoints without health checks, so one
//! stopped member breaks every request (reference/etcd.md): health is probed with one client
//! per member, and the "working" client is built only over the members that answer, then
//! rebuilt when a request fails (the local member goes down during its own restart).

use super::endpoints::Identity;
use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{
    AlarmAction, AlarmOptions, AlarmType, Certificate, Client, ConnectOptions,
    Identity as TlsIdentity, TlsOptions,
};
use std::sync::Mutex;
use std::time::Duration;

/// Bound on one health or membership request.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One etcd member as MemberList reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member id.
    pub id: u64,
    /// Member name (the node name under kubeadm); empty until a learner has started.
    pub name: String,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// A learner does not vote.
    pub is_learner: bool,
}

impl Member {
    /// The name to show humans.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            format!("{:x}", self.id)
        } else {
            self.name.clone()
        }
    }
}

/// What a member said when asked for its Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The leader's member id as this member sees it (0: none).
    pub leader: u64,
    /// Raft index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Server version.
    pub version: String,
    /// Errors the member reports.
    pub errors: Vec<String>,
}

/// One member's health: its Status, or why it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHealth {
    /// The member.
    pub member: Member,
    /// Its status or the error.
    pub status: std::result::Result<Status, String>,
}

/// Connect options carrying the identity, read from disk now (a renewed healthcheck-client
/// certificate is used from the next connect on).
pub fn options(id: &Identity) -> Result<ConnectOptions> {
    let pem = id.load()?;
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(pem.ca))
        .identity(TlsIdentity::from_pem(pem.cert, pem.key));
    Ok(ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(PROBE_TIMEOUT)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
        .with_require_leader(true))
}

async fn bounded<T, F>(what: &str, f: F) -> Result<T>
where
    F: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| anyhow!("{what}: {}", describe(&e))),
        Err(_) => bail!(
            "{what}: no answer within {}",
            humantime::format_duration(PROBE_TIMEOUT)
        ),
    }
}

/// An etcd-client error as one line for people. A gRPC status displays as `code: '…',
/// message: "…", source: Some(<Debug of the transport error>)`; this gives its message and
/// the root cause instead: `tcp connect error: Connection refused (os error 111)`.
pub fn describe(e: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(st) = e else {
        return e.to_string();
    };
    let mut out = st.message().to_string();
    let mut root = None;
    let mut cur = std::error::Error::source(st);
    while let Some(c) = cur {
        root = Some(c.to_string());
        cur = c.source();
    }
    if let Some(r) = root.filter(|r| !out.contains(r.as_str())) {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&r);
    }
    if out.is_empty() {
        out = st.code().description().to_string();
    }
    out
}

/// A client to exactly one endpoint.
pub async fn single(url: &str, opts: &ConnectOptions) -> Result<Client> {
    bounded(url, Client::connect([url], Some(opts.clone()))).await
}

/// MemberList through one endpoint.
pub async fn member_list(url: &str, opts: &ConnectOptions) -> Result<Vec<Member>> {
    let mut c = single(url, opts).await?;
    let resp = bounded(url, c.member_list()).await?;
    Ok(resp
        .members()
        .iter()
        .map(|m| Member {
            id: m.id(),
            name: m.name().to_string(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect())
}

/// Status plus the cluster's alarms (as errors) from one member, over its own connection.
pub async fn status(member: &Member, opts: &ConnectOptions) -> std::result::Result<Status, String> {
    let url = member
        .client_urls
        .first()
        .ok_or_else(|| "no client URL (not started)".to_string())?;
    let run = async {
        let mut c = single(url, opts).await?;
        let s = bounded(url, c.status()).await?;
        let alarms = bounded(
            url,
            c.alarm(AlarmAction::Get, AlarmType::None, Some(AlarmOptions::new())),
        )
        .await?;
        let mut errors: Vec<String> = s.errors().to_vec();
        for a in alarms.alarms() {
            errors.push(format!(
                "alarm {:?} on member {:x}",
                a.alarm(),
                a.member_id()
            ));
        }
        Ok::<_, anyhow::Error>(Status {
            leader: s.leader(),
            raft_index: s.raft_index(),
            raft_term: s.raft_term(),
            version: s.version().to_string(),
            errors,
        })
    };
    run.await.map_err(|e| format!("{e:#}"))
}

/// Status of every member, concurrently, each over its own connection.
pub async fn health(members: &[Member], opts: &ConnectOptions) -> Vec<MemberHealth> {
    let mut set = tokio::task::JoinSet::new();
    for (i, m) in members.iter().enumerate() {
        let (m, opts) = (m.clone(), opts.clone());
        set.spawn(async move {
            let status = status(&m, &opts).await;
            (i, MemberHealth { member: m, status })
        });
    }
    let mut out: Vec<(usize, MemberHealth)> = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, h)| h).collect()
}

/// The membership and the working client, shared by the lock's keep-alive loop and callers.
pub struct Pool {
    seeds: Vec<String>,
    identity: Identity,
    members: Mutex<Vec<Member>>,
    working: Mutex<Option<Client>>,
}

/// The cluster could not be used: no member answered, or fewer than a quorum.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

impl Pool {
    /// A pool starting from `seeds`; nothing is contacted yet.
    pub fn new(seeds: Vec<String>, identity: Identity) -> Pool {
        Pool {
            seeds,
            identity,
            members: Mutex::new(Vec::new()),
            working: Mutex::new(None),
        }
    }

    /// Connect options with the identity as it is on disk now.
    pub fn options(&self) -> Result<ConnectOptions> {
        options(&self.identity)
    }

    /// The members last seen.
    pub fn known(&self) -> Vec<Member> {
        self.members.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// MemberList through the first seed or known member that answers.
    pub async fn refresh_members(&self) -> Result<Vec<Member>, Unreachable> {
        let opts = self.options().map_err(|e| Unreachable(format!("{e:#}")))?;
        let mut urls = self.seeds.clone();
        for m in self.known() {
            urls.extend(m.client_urls);
        }
        urls.dedup();
        let mut errors = Vec::new();
        for u in &urls {
            match member_list(u, &opts).await {
                Ok(ms) => {
                    if let Ok(mut g) = self.members.lock() {
                        *g = ms.clone();
                    }
                    return Ok(ms);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if urls.is_empty() {
            return Err(Unreachable("no etcd endpoint known".into()));
        }
        Err(Unreachable(format!(
            "no etcd member answered: {}",
            errors.join("; ")
        )))
    }

    /// Members (refreshed) and their health.
    pub async fn health(&self) -> Result<Vec<MemberHealth>, Unreachable> {
        // While the members elect a leader, MemberList fails ("no leader") but each member
        // still answers Status: ask the members last seen, so that the answer names who is
        // down rather than only "no member answered".
        let ms = match self.refresh_members().await {
            Ok(ms) => ms,
            Err(e) => {
                let known = self.known();
                if known.is_empty() {
                    return Err(e);
                }
                tracing::debug!("etcd member list failed ({e}); using the members last seen");
                known
            }
        };
        let opts = self.options().map_err(|e| Unreachable(format!("{e:#}")))?;
        Ok(health(&ms, &opts).await)
    }

    /// The client over the voting members that answer; built when missing. Fails unless a
    /// quorum of the voting members answers (nothing useful can be done without one).
    pub async fn working(&self) -> Result<Client, Unreachable> {
        if let Some(c) = self.working.lock().ok().and_then(|g| g.clone()) {
            return Ok(c);
        }
        let hs = self.health().await?;
        let voting: Vec<&MemberHealth> = hs.iter().filter(|h| !h.member.is_learner).collect();
        let live: Vec<String> = voting
            .iter()
            .filter(|h| h.status.as_ref().is_ok_and(|s| s.leader != 0))
            .filter_map(|h| h.member.client_urls.first().cloned())
            .collect();
        if live.len() < voting.len() / 2 + 1 {
            let down: Vec<String> = voting
                .iter()
                .filter(|h| h.status.is_err())
                .map(|h| h.member.label())
                .collect();
            return Err(Unreachable(format!(
                "no quorum: {} of {} voting members answer with a leader (down: {})",
                live.len(),
                voting.len(),
                down.join(", ")
            )));
        }
        let opts = self.options().map_err(|e| Unreachable(format!("{e:#}")))?;
        let c = Client::connect(&live, Some(opts))
            .await
            .context("connecting to the live members")
            .map_err(|e| Unreachable(format!("{e:#}")))?;
        if let Ok(mut g) = self.working.lock() {
            *g = Some(c.clone());
        }
        Ok(c)
    }

    /// Forget the working client (after a failed request): the next use rebuilds it.
    pub fn invalidate(&self) {
        if let Ok(mut g) = self.working.lock() {
            *g = None;
        }
    }
}
