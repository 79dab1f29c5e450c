//! The Kubernetes API client (kube-rs) from a kubeconfig under `--root` (kubeadm's
//! admin.conf): every call bounded (connect, read and an overall bound) and cut short by a
//! stop request, errors by kind ([`KubeError`]).

use super::KubeError;
use crate::act::cancel::Cancel;
use crate::node::paths::Root;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, ListParams, ObjectList, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Connecting (TCP + TLS) gives up after this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer that stops arriving for this long is given up (requests; watches have their own
/// idle bound, see the approver).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// No single request takes longer than this, whatever the server does.
pub const CALL_BOUND: Duration = Duration::from_secs(15);
/// How often a waiting call looks at the stop request: SIGTERM is honoured well within 1 s.
const CANCEL_POLL: Duration = Duration::from_millis(100);
/// The signer whose CSRs the approver decides.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// A CSR as the API returns it.
pub type Csr = CertificateSigningRequest;

/// A connected client. Cheap to clone (kube's client is a shared handle).
#[derive(Clone)]
pub struct Kube {
    /// Requests: read timeout on.
    client: kube::Client,
    /// Watches: no read timeout (a quiet watch is normal); the caller bounds idleness.
    watcher: kube::Client,
    url: String,
    cancel: Cancel,
    /// Told after each call and watch event, so that the daemon can page its executable out
    /// once the API side is quiet again (`daemon::memory`).
    activity: Option<Arc<tokio::sync::Notify>>,
}

/// Run `f` until it finishes, `bound` passes, or `cancel` is set.
pub async fn race<F: Future>(f: F, bound: Duration, cancel: &Cancel) -> Option<F::Output> {
    crate::act::cancel::race(f, bound, CANCEL_POLL, || cancel.is_cancelled()).await
}

/// Sleep for `d`, or less when a stop is requested; false when stopped. It looks at the stop
/// request every [`CANCEL_POLL`]: for a command's short waits (a retry's backoff).
pub async fn sleep(d: Duration, cancel: &Cancel) -> bool {
    race(tokio::time::sleep(d), d + CANCEL_POLL, cancel)
        .await
        .is_some()
}

/// Sleep for `d`, or until a stop is requested through [`Cancel::cancel`], without waking
/// meanwhile; false when stopped. For the long waits of the daemon's own tasks (backoffs of
/// up to 5 minutes, the ClusterConfiguration refresh's 15): polling the stop flag would wake
/// an idle daemon ten times a second (issue 19: CPU ≈ 0). The daemon calls `cancel()` at
/// SIGTERM and aborts what has not ended soon after (`daemon::api::KubeTasks::finish`).
pub async fn pause(d: Duration, cancel: &Cancel) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = cancel.stopped() => {}
    }
    !cancel.is_cancelled()
}

impl Kube {
    /// Tell `n` about each call and watch event from now on.
    pub fn reporting_to(mut self, n: Arc<tokio::sync::Notify>) -> Kube {
        self.activity = Some(n);
        self
    }

    /// Note some work with the API (a call made, a watch event taken in).
    pub fn touched(&self) {
        if let Some(n) = &self.activity {
            n.notify_one();
        }
    }

    /// Connect with the kubeconfig at host path `kubeconfig` (resolved under `root`).
    /// `Ok(None)` when the file does not exist: a node without admin.conf (a worker) has no
    /// client, and that is not an error.
    pub async fn connect(
        root: &Root,
        kubeconfig: &str,
        cancel: &Cancel,
    ) -> Result<Option<Kube>, KubeError> {
        let path = root.resolve(kubeconfig);
        let cfg_err = |why: String| KubeError::Config {
            path: kubeconfig.to_string(),
            why,
        };
        let bytes = match crate::node::fsread::read_node_file(root, &path) {
            Ok(b) => b,
            Err(crate::node::fsread::ReadError::Missing) => return Ok(None),
            Err(e) => return Err(cfg_err(e.to_string())),
        };
        let text = String::from_utf8(bytes).map_err(|_| cfg_err("not UTF-8 text".into()))?;
        let mut kc = Kubeconfig::from_yaml(&text).map_err(|e| cfg_err(e.to_string()))?;
        under_root(&mut kc, root).map_err(cfg_err)?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| cfg_err(e.to_string()))?;
        // Our own retries (bounded, logged): kube's retry layer would hide a 503 loop.
        config.default_retry = false;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.write_timeout = Some(READ_TIMEOUT);
        let url = config.cluster_url.to_string();
        let url = url.trim_end_matches('/').to_string();
        let mut watch_cfg = config.clone();
        watch_cfg.read_timeout = None;
        config.read_timeout = Some(READ_TIMEOUT);
        config.reset_reader_on_write = true;
        let build = |c: kube::Config| {
            kube::Client::try_from(c).map_err(|e| KubeError::from_kube(e, "connecting", &url))
        };
        Ok(Some(Kube {
            client: build(config)?,
            watcher: build(watch_cfg)?,
            url: url.clone(),
            cancel: cancel.clone(),
            activity: None,
        }))
    }

    /// The server URL, as the kubeconfig names it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stop handle this client honours.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Run one request, bounded by [`CALL_BOUND`] and the stop request.
    async fn call<T, F>(&self, what: &str, f: F) -> Result<T, KubeError>
    where
        F: Future<Output = Result<T, kube::Error>>,
    {
        let r = race(f, CALL_BOUND, &self.cancel).await;
        self.touched();
        match r {
            Some(r) => r.map_err(|e| KubeError::from_kube(e, what, &self.url)),
            None if self.cancel.is_cancelled() => Err(KubeError::Cancelled),
            None => Err(KubeError::TimedOut {
                url: self.url.clone(),
                after: CALL_BOUND,
            }),
        }
    }

    fn csrs(&self) -> Api<Csr> {
        Api::all(self.client.clone())
    }

    /// Every kubelet-serving CSR (one page; the list's resourceVersion starts the watch).
    pub async fn list_csrs(&self) -> Result<ObjectList<Csr>, KubeError> {
        let lp = ListParams::default().fields(&format!("spec.signerName={KUBELET_SERVING}"));
        self.call("listing kubelet-serving CSRs", self.csrs().list(&lp))
            .await
    }

    /// Watch kubelet-serving CSRs from `resource_version`; the server ends the watch after
    /// `timeout_secs`. Only opening the stream is bounded here; the caller bounds idleness.
    pub async fn watch_csrs(
        &self,
        resource_version: &str,
        timeout_secs: u32,
    ) -> Result<impl futures::Stream<Item = Result<WatchEvent<Csr>, kube::Error>> + use<>, KubeError>
    {
        let wp = WatchParams::default()
            .fields(&format!("spec.signerName={KUBELET_SERVING}"))
            .timeout(timeout_secs);
        let api: Api<Csr> = Api::all(self.watcher.clone());
        self.call("watching kubelet-serving CSRs", async move {
            api.watch(&wp, resource_version).await
        })
        .await
    }

    /// One CSR.
    pub async fn get_csr(&self, name: &str) -> Result<Csr, KubeError> {
        self.call(&format!("reading CSR {name}"), self.csrs().get(name))
            .await
    }

    /// Write `csr` (its status conditions) through the `/approval` subresource, the only
    /// place the approver writes. With `metadata.resourceVersion` set, a CSR that changed
    /// since it was read gives 409.
    pub async fn put_approval(&self, csr: &Csr) -> Result<Csr, KubeError> {
        let name = csr.metadata.name.clone().unwrap_or_default();
        let api = self.csrs();
        self.call(
            &format!("writing the approval of CSR {name}"),
            api.replace_subresource("approval", &name, &PostParams::default(), csr),
        )
        .await
    }

    /// Every Node.
    pub async fn nodes(&self) -> Result<Vec<Node>, KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = self
            .call("listing Nodes", api.list(&ListParams::default()))
            .await?;
        Ok(list.items)
    }

    /// How many Nodes carry kubeadm's control-plane label (metadata only: a Node's status can
    /// be large). kubeadm has labelled control-plane Nodes so since v1.20.
    pub async fn control_plane_nodes(&self) -> Result<usize, KubeError> {
        let api: Api<Node> = Api::all(self.client.clone());
        let lp = ListParams::default().labels(crate::plan::approve::CONTROL_PLANE_LABELS[0]);
        let list = self
            .call("listing control-plane Nodes", api.list_metadata(&lp))
            .await?;
        Ok(list.items.len())
    }

    /// The ClusterIPs of `default/kubernetes`, the API server's in-cluster addresses (two on
    /// a dual-stack cluster).
    pub async fn kubernetes_service_ips(&self) -> Result<Vec<std::net::IpAddr>, KubeError> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), "default");
        let svc = self
            .call("reading Service default/kubernetes", api.get("kubernetes"))
            .await?;
        let spec = svc.spec.unwrap_or_default();
        let ips = spec
            .cluster_ips
            .unwrap_or_default()
            .into_iter()
            .chain(spec.cluster_ip)
            .filter_map(|ip| ip.parse().ok())
            .collect();
        Ok(ips)
    }

    /// The server's version (`/version` gitVersion, e.g. `v1.34.2`).
    pub async fn git_version(&self) -> Result<String, KubeError> {
        let v = self
            .call("reading /version", self.client.apiserver_version())
            .await?;
        Ok(v.git_version)
    }

    /// A ConfigMap.
    pub async fn configmap(&self, ns: &str, name: &str) -> Result<ConfigMap, KubeError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        self.call(&format!("reading ConfigMap {ns}/{name}"), api.get(name))
            .await
    }

    /// Replace a ConfigMap; its `metadata.resourceVersion` makes the write optimistic (409
    /// when someone else wrote it since).
    pub async fn replace_configmap(&self, cm: &ConfigMap) -> Result<ConfigMap, KubeError> {
        let ns = cm.metadata.namespace.clone().unwrap_or_default();
        let name = cm.metadata.name.clone().unwrap_or_default();
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
        self.call(
            &format!("writing ConfigMap {ns}/{name}"),
            api.replace(&name, &PostParams::default(), cm),
        )
        .await
    }
}

/// Resolve the kubeconfig's file references under `root` (kubeadm embeds the data, but a
/// hand-made kubeconfig may point at files), and refuse what would run a program.
fn under_root(kc: &mut Kubeconfig, root: &Root) -> Result<(), String> {
    let resolve = |p: &mut Option<String>| {
        if let Some(v) = p.as_mut() {
            *v = root.resolve(v.as_str()).display().to_string();
        }
    };
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        resolve(&mut c.certificate_authority);
    }
    for a in kc
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        if a.exec.is_some() || a.auth_provider.is_some() {
            return Err("exec and auth-provider credentials are not supported (kubeadm's admin.conf embeds a client certificate)".into());
        }
        resolve(&mut a.client_certificate);
        resolve(&mut a.client_key);
        resolve(&mut a.token_file);
    }
    Ok(())
}

/// Doubling delays between `min` and `max`, with up to 25 % random jitter so that the
/// control-plane daemons do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `min`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter_ms = u64::try_from(d.as_millis() / 4).unwrap_or(0);
        d + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let ds: Vec<u64> = (0..4).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(ds, [1, 2, 4, 4]);
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(1251));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn race_gives_up_at_its_bound_and_at_a_stop() {
        let c = Cancel::new();
        let never = std::future::pending::<()>();
        assert!(race(never, Duration::from_secs(3), &c).await.is_none());
        assert_eq!(race(async { 7 }, Duration::from_secs(3), &c).await, Some(7));
        c.cancel();
        let t = tokio::time::Instant::now();
        assert!(
            race(std::future::pending::<()>(), Duration::from_secs(60), &c)
                .await
                .is_none()
        );
        assert!(t.elapsed() < Duration::from_millis(200));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn pause_sleeps_its_time_or_ends_at_a_stop() {
        let c = Cancel::new();
        let t = tokio::time::Instant::now();
        assert!(pause(Duration::from_secs(300), &c).await);
        assert_eq!(t.elapsed(), Duration::from_secs(300));
        let stopper = {
            let c = c.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                c.cancel();
            })
        };
        let t = tokio::time::Instant::now();
        assert!(!pause(Duration::from_secs(300), &c).await);
        assert_eq!(t.elapsed(), Duration::from_secs(2));
        stopper.await.unwrap();
        // Stopped before the call: the call is not made.
        assert_eq!(race(async { 7 }, Duration::from_secs(3), &c).await, None);
    }
}
