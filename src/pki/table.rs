//! kubeadm's certificate handlers: name, long name, where the certificate lives, which CA
//! signs it (kubeadm `renewal/manager.go`, `certs/certlist.go`).

/// The three kubeadm CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaId {
    /// `ca` (ca.crt/ca.key)
    Ca,
    /// `etcd-ca` (etcd/ca.crt/ca.key)
    EtcdCa,
    /// `front-proxy-ca` (front-proxy-ca.crt/.key)
    FrontProxyCa,
}

impl CaId {
    /// All CAs, in check-expiration order.
    pub const ALL: [CaId; 3] = [CaId::Ca, CaId::EtcdCa, CaId::FrontProxyCa];

    /// kubeadm's CA name (`caName` in check-expiration).
    pub fn name(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd-ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }

    /// Base file name relative to certificatesDir (`.crt`/`.key` appended).
    pub fn base(self) -> &'static str {
        match self {
            CaId::Ca => "ca",
            CaId::EtcdCa => "etcd/ca",
            CaId::FrontProxyCa => "front-proxy-ca",
        }
    }
}

/// Where a handler's certificate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// `<certificatesDir>/<base>.crt` and `.key`.
    Pki(&'static str),
    /// `<kubeconfigDir>/<file>`, embedded client credentials.
    Kubeconfig(&'static str),
}

/// A control-plane static pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// etcd
    Etcd,
    /// kube-apiserver
    KubeApiserver,
    /// kube-controller-manager
    KubeControllerManager,
    /// kube-scheduler
    KubeScheduler,
}

impl Component {
    /// Restart order: etcd first, then the API server, then its clients.
    pub const ORDER: [Component; 4] = [
        Component::Etcd,
        Component::KubeApiserver,
        Component::KubeControllerManager,
        Component::KubeScheduler,
    ];

    /// The static pod's name (and its manifest's base name).
    pub fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::KubeApiserver => "kube-apiserver",
            Component::KubeControllerManager => "kube-controller-manager",
            Component::KubeScheduler => "kube-scheduler",
        }
    }

    /// Parse a component name.
    pub fn from_name(s: &str) -> Option<Component> {
        Component::ORDER.into_iter().find(|c| c.name() == s)
    }
}

/// One renewable certificate.
#[derive(Debug, Clone, Copy)]
pub struct Handler {
    /// kubeadm's name, used by `renew` and check-expiration.
    pub name: &'static str,
    /// kubeadm's long name, used in its messages.
    pub long_name: &'static str,
    /// The file.
    pub location: Location,
    /// The signing CA.
    pub ca: CaId,
    /// Fallback consumers when the manifests do not say (kubeadm upgrade's grouping).
    pub consumers: &'static [Component],
}

/// kubeadm's handlers, sorted by name as `renew all` and check-expiration list them.
pub const HANDLERS: [Handler; 11] = [
    Handler {
        name: "admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
        location: Location::Kubeconfig("admin.conf"),
        ca: CaId::Ca,
        consumers: &[],
    },
    Handler {
        name: "apiserver",
        long_name: "certificate for serving the Kubernetes API",
        location: Location::Pki("apiserver"),
        ca: CaId::Ca,
        consumers: &[Component::KubeApiserver],
    },
    Handler {
        name: "apiserver-etcd-client",
        long_name: "certificate the apiserver uses to access etcd",
        location: Location::Pki("apiserver-etcd-client"),
        ca: CaId::EtcdCa,
        consumers: &[Component::KubeApiserver],
    },
    Handler {
        name: "apiserver-kubelet-client",
        long_name: "certificate for the API server to connect to kubelet",
        location: Location::Pki("apiserver-kubelet-client"),
        ca: CaId::Ca,
        consumers: &[Component::KubeApiserver],
    },
    Handler {
        name: "controller-manager.conf",
        long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
        location: Location::Kubeconfig("controller-manager.conf"),
        ca: CaId::Ca,
        consumers: &[Component::KubeControllerManager],
    },
    Handler {
        name: "etcd-healthcheck-client",
        long_name: "certificate for liveness probes to healthcheck etcd",
        location: Location::Pki("etcd/healthcheck-client"),
        ca: CaId::EtcdCa,
        consumers: &[],
    },
    Handler {
        name: "etcd-peer",
        long_name: "certificate for etcd nodes to communicate with each other",
        location: Location::Pki("etcd/peer"),
        ca: CaId::EtcdCa,
        consumers: &[Component::Etcd],
    },
    Handler {
        name: "etcd-server",
        long_name: "certificate for serving etcd",
        location: Location::Pki("etcd/server"),
        ca: CaId::EtcdCa,
        consumers: &[Component::Etcd],
    },
    Handler {
        name: "front-proxy-client",
        long_name: "certificate for the front proxy client",
        location: Location::Pki("front-proxy-client"),
        ca: CaId::FrontProxyCa,
        consumers: &[Component::KubeApiserver],
    },
    Handler {
        name: "scheduler.conf",
        long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
        location: Location::Kubeconfig("scheduler.conf"),
        ca: CaId::Ca,
        consumers: &[Component::KubeScheduler],
    },
    Handler {
        name: "super-admin.conf",
        long_name: "certificate embedded in the kubeconfig file for the super-admin",
        location: Location::Kubeconfig("super-admin.conf"),
        ca: CaId::Ca,
        consumers: &[],
    },
];

/// Look a handler up by kubeadm name.
pub fn handler(name: &str) -> Option<&'static Handler> {
    HANDLERS.iter().find(|h| h.name == name)
}

/// Whether the handler exists only with a local (stacked) etcd.
pub fn needs_local_etcd(h: &Handler) -> bool {
    h.ca == CaId::EtcdCa
}
