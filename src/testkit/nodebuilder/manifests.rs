//! kubeadm v1.31-style static pod manifests and kubelet config for built nodes.

use super::NodeSpec;

/// The kubelet config.yaml kubeadm writes (trimmed to the fields that matter here; the
/// layout, `0s` durations and key order follow kubeadm's dump).
pub const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: \"\"
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: \"0\"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
";

/// (component name, manifest text) for the four control-plane components.
pub fn all(spec: &NodeSpec, root: &std::path::Path) -> Vec<(&'static str, String)> {
    let sx: Sx<'_> = spec.standin.as_deref().map(|exe| (exe, root));
    let adv = spec.advertise.to_string();
    let p = spec.ports;
    let mut out = vec![
        (
            "kube-apiserver",
            apiserver(sx, &adv, p.apiserver, p.etcd_client, spec.external_etcd),
        ),
        (
            "kube-controller-manager",
            simple(
                sx,
                "kube-controller-manager",
                p.controller_manager,
                &controller_manager_args(),
            ),
        ),
        (
            "kube-scheduler",
            simple(sx, "kube-scheduler", p.scheduler, &scheduler_args()),
        ),
    ];
    if !spec.external_etcd {
        out.insert(
            0,
            (
                "etcd",
                etcd(
                    sx,
                    &spec.node_name,
                    &adv,
                    p.etcd_client,
                    p.etcd_peer,
                    p.etcd_metrics,
                ),
            ),
        );
    }
    out
}

/// (stand-in executable, node root) when building a demo node's manifests.
type Sx<'a> = Option<(&'a std::path::Path, &'a std::path::Path)>;

/// The demo's stand-in command line for a component: the real flags follow `--`.
fn standin_command(sx: Sx<'_>, command: &[String], scheme: &str, port: u16) -> Vec<String> {
    let Some((exe, root)) = sx else {
        return command.to_vec();
    };
    let mut v = vec![
        exe.display().to_string(),
        "standin".into(),
        "--node-root".into(),
        root.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    if scheme == "HTTP" {
        v.push("--http".into());
    }
    v.push("--".into());
    v.extend(command.iter().cloned());
    v
}

fn pod(
    sx: Sx<'_>,
    name: &str,
    command: &[String],
    probe: (&str, &str, u16, &str),
    volumes: &[(&str, &str)],
) -> String {
    let (host, scheme, port, path) = probe;
    let command = standin_command(sx, command, scheme, port);
    let mut cmd = String::new();
    for c in &command {
        cmd.push_str(&format!("    - {c}\n"));
    }
    let mut mounts = String::new();
    let mut vols = String::new();
    for (vname, host_path) in volumes {
        mounts.push_str(&format!(
            "    - mountPath: {host_path}\n      name: {vname}\n      readOnly: true\n"
        ));
        vols.push_str(&format!("  - hostPath:\n      path: {host_path}\n      type: DirectoryOrCreate\n    name: {vname}\n"));
    }
    let probe = |kind: &str, threshold: u32| {
        format!("    {kind}:\n      failureThreshold: {threshold}\n      httpGet:\n        host: {host}\n        path: {path}\n        port: {port}\n        scheme: {scheme}\n      initialDelaySeconds: 10\n      periodSeconds: 10\n      timeoutSeconds: 15\n")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{cmd}    image: registry.k8s.io/{name}:v1.31.0\n    imagePullPolicy: IfNotPresent\n{live}    name: {name}\n    resources:\n      requests:\n        cpu: 100m\n{start}    volumeMounts:\n{mounts}  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n  volumes:\n{vols}status: {{}}\n",
        live = probe("livenessProbe", 8),
        start = probe("startupProbe", 24),
    )
}

fn etcd(sx: Sx<'_>, node: &str, adv: &str, client: u16, peer: u16, metrics: u16) -> String {
    let pki = "/etc/kubernetes/pki/etcd";
    let cmd: Vec<String> = vec![
        "etcd".into(),
        format!("--advertise-client-urls=https://127.0.0.1:{client}"),
        format!("--cert-file={pki}/server.crt"),
        "--client-cert-auth=true".into(),
        "--data-dir=/var/lib/etcd".into(),
        format!("--initial-advertise-peer-urls=https://127.0.0.1:{peer}"),
        format!("--initial-cluster={node}=https://127.0.0.1:{peer}"),
        format!("--key-file={pki}/server.key"),
        format!("--listen-client-urls=https://127.0.0.1:{client}"),
        format!("--listen-metrics-urls=http://127.0.0.1:{metrics}"),
        format!("--listen-peer-urls=https://127.0.0.1:{peer}"),
        format!("--name={node}"),
        format!("--peer-cert-file={pki}/peer.crt"),
        "--peer-client-cert-auth=true".into(),
        format!("--peer-key-file={pki}/peer.key"),
        format!("--peer-trusted-ca-file={pki}/ca.crt"),
        "--snapshot-count=10000".into(),
        format!("--trusted-ca-file={pki}/ca.crt"),
    ];
    let _ = adv;
    pod(
        sx,
        "etcd",
        &cmd,
        ("127.0.0.1", "HTTP", metrics, "/livez"),
        &[("etcd-certs", pki), ("etcd-data", "/var/lib/etcd")],
    )
}

fn apiserver(sx: Sx<'_>, adv: &str, port: u16, etcd: u16, external_etcd: bool) -> String {
    let k = "/etc/kubernetes/pki";
    let mut cmd: Vec<String> = vec![
        "kube-apiserver".into(),
        format!("--advertise-address={adv}"),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        format!("--client-ca-file={k}/ca.crt"),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
    ];
    if !external_etcd {
        cmd.push(format!("--etcd-cafile={k}/etcd/ca.crt"));
        cmd.push(format!("--etcd-certfile={k}/apiserver-etcd-client.crt"));
        cmd.push(format!("--etcd-keyfile={k}/apiserver-etcd-client.key"));
        cmd.push(format!("--etcd-servers=https://127.0.0.1:{etcd}"));
    }
    cmd.extend([
        format!("--kubelet-client-certificate={k}/apiserver-kubelet-client.crt"),
        format!("--kubelet-client-key={k}/apiserver-kubelet-client.key"),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        format!("--proxy-client-cert-file={k}/front-proxy-client.crt"),
        format!("--proxy-client-key-file={k}/front-proxy-client.key"),
        "--requestheader-allowed-names=front-proxy-client".into(),
        format!("--requestheader-client-ca-file={k}/front-proxy-ca.crt"),
        format!("--secure-port={port}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
        format!("--service-account-key-file={k}/sa.pub"),
        format!("--service-account-signing-key-file={k}/sa.key"),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        format!("--tls-cert-file={k}/apiserver.crt"),
        format!("--tls-private-key-file={k}/apiserver.key"),
    ]);
    pod(
        sx,
        "kube-apiserver",
        &cmd,
        (adv, "HTTPS", port, "/livez"),
        &[("ca-certs", "/etc/ssl/certs"), ("k8s-certs", k)],
    )
}

fn controller_manager_args() -> Vec<String> {
    let k = "/etc/kubernetes";
    vec![
        "kube-controller-manager".into(),
        format!("--authentication-kubeconfig={k}/controller-manager.conf"),
        format!("--authorization-kubeconfig={k}/controller-manager.conf"),
        "--bind-address=127.0.0.1".into(),
        format!("--client-ca-file={k}/pki/ca.crt"),
        format!("--cluster-signing-cert-file={k}/pki/ca.crt"),
        format!("--cluster-signing-key-file={k}/pki/ca.key"),
        format!("--kubeconfig={k}/controller-manager.conf"),
        "--leader-elect=true".into(),
        format!("--requestheader-client-ca-file={k}/pki/front-proxy-ca.crt"),
        format!("--root-ca-file={k}/pki/ca.crt"),
        format!("--service-account-private-key-file={k}/pki/sa.key"),
        "--use-service-account-credentials=true".into(),
    ]
}

fn scheduler_args() -> Vec<String> {
    let k = "/etc/kubernetes";
    vec![
        "kube-scheduler".into(),
        format!("--authentication-kubeconfig={k}/scheduler.conf"),
        format!("--authorization-kubeconfig={k}/scheduler.conf"),
        "--bind-address=127.0.0.1".into(),
        format!("--kubeconfig={k}/scheduler.conf"),
        "--leader-elect=true".into(),
    ]
}

fn simple(sx: Sx<'_>, name: &str, port: u16, args: &[String]) -> String {
    let mut args = args.to_vec();
    args.push(format!("--secure-port={port}"));
    let conf = if name == "kube-scheduler" {
        "scheduler.conf"
    } else {
        "controller-manager.conf"
    };
    let file = format!("/etc/kubernetes/{conf}");
    let mut vols = vec![("ca-certs", "/etc/ssl/certs")];
    if name == "kube-controller-manager" {
        vols.push(("k8s-certs", "/etc/kubernetes/pki"));
    }
    let text = pod(
        sx,
        name,
        &args,
        ("127.0.0.1", "HTTPS", port, "/healthz"),
        &vols,
    );
    // kubeconfigs are mounted as single files (FileOrCreate), as kubeadm does.
    text.replace(
        "  volumes:\n",
        &format!("  volumes:\n  - hostPath:\n      path: {file}\n      type: FileOrCreate\n    name: kubeconfig\n"),
    )
}
