//! Where each renewal setting came from (issue 18 item 1): the config file (a key set
//! explicitly there always wins), the cluster's ClusterConfiguration (read live or from the
//! copy in the state dir), or the default. `renew --dry-run` and the renewal's log line say it.

/// One setting's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Set explicitly in the config file, under this key.
    ConfigFile(&'static str),
    /// From the cluster's ClusterConfiguration.
    Cluster(ClusterOrigin),
    /// The built-in default, and why no other source gave it.
    Default(String),
}

/// Which copy of the ClusterConfiguration, read when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOrigin {
    /// The field the value came from (`certificateValidityPeriod`, ...).
    pub field: &'static str,
    /// Its apiVersion (`kubeadm.k8s.io/v1beta4`).
    pub api_version: String,
    /// When the ConfigMap was read, RFC 3339.
    pub read_at: String,
    /// Read from the API in this run (else the copy kept in the state dir).
    pub live: bool,
    /// Why the copy was used and not a live read (cached copies only), or a note such as
    /// "unset: kubeadm's default".
    pub note: Option<String>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::ConfigFile(key) => write!(f, "the config file ({key})"),
            Origin::Cluster(c) => {
                write!(
                    f,
                    "the cluster's ClusterConfiguration ({}, {}) as read at {} ({})",
                    c.field,
                    c.api_version,
                    c.read_at,
                    if c.live {
                        "live"
                    } else {
                        "cached in the state dir"
                    }
                )?;
                match &c.note {
                    Some(n) => write!(f, "; {n}"),
                    None => Ok(()),
                }
            }
            Origin::Default(why) => write!(f, "the default ({why})"),
        }
    }
}

/// The origin of each setting a renewal takes from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// `certificateValidity`.
    pub validity: Origin,
    /// The new keys' algorithm (`encryptionAlgorithm`).
    pub key: Origin,
    /// `certificatesDir`.
    pub certificates_dir: Origin,
}

impl Default for Sources {
    fn default() -> Self {
        let none = || Origin::Default("no ClusterConfiguration known".into());
        Sources {
            validity: none(),
            key: none(),
            certificates_dir: none(),
        }
    }
}
