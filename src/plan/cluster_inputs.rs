//! The renewal settings the cluster's ClusterConfiguration gives (issue 18 item 1), applied
//! over the config file's: `certificateValidityPeriod` -> `certificateValidity`,
//! `encryptionAlgorithm` -> the algorithm of every new key, `certificatesDir` (when it is not
//! kubeadm's default). A key set explicitly in the config file wins. Pure: the caller says
//! what a live read gave (or why there was none); the copy in the state dir is read here.
//!
//! All or nothing: the document is parsed and every used field validated first
//! (`node::cluster_config::parse`), and the result must pass the config's own checks
//! (`certificateValidity` longer than `renewBefore` with room for a cycle); otherwise none of
//! its values is used and one warning says why.

use crate::config::{ClusterOrigin, Origin, Settings};
use crate::node::cluster_config::{self as cc, ClusterConfig, EncryptionAlgorithm};
use crate::node::NodePaths;
use time::OffsetDateTime;

/// What a live read of `kube-system/kubeadm-config` gave in this run.
#[derive(Debug, Clone)]
pub enum Live {
    /// No live read was tried; why (e.g. the daemon reads the API in the background).
    NotTried(String),
    /// The `ClusterConfiguration` document, and when it was read.
    Read {
        /// The document.
        text: String,
        /// When.
        at: OffsetDateTime,
    },
    /// The read failed (the API did not answer, the ConfigMap or its key is missing).
    Failed(String),
}

/// A ClusterConfiguration in use.
#[derive(Debug, Clone)]
pub struct Known {
    /// The validated fields.
    pub config: ClusterConfig,
    /// When it was read, RFC 3339.
    pub read_at: String,
    /// Read live in this run (else the cached copy).
    pub live: bool,
    /// Why the cached copy was used (no live read, or why it failed).
    pub why_cached: Option<String>,
}

/// The settings to renew with, and what the cluster said.
#[derive(Debug, Clone)]
pub struct Effective {
    /// The config file's settings with the cluster's values applied (see the module doc).
    pub settings: Settings,
    /// The node paths under those settings (certificatesDir may have changed).
    pub paths: NodePaths,
    /// The ClusterConfiguration used, if any (also for `controlPlaneEndpoint` and
    /// `kubernetesVersion`).
    pub known: Option<Known>,
    /// A live document that parsed and validated (the caller may keep it in the state dir).
    pub live_text: Option<String>,
    /// Problems to say once each (a malformed ConfigMap, an unusable cached copy): one line
    /// naming the object or file and what is wrong.
    pub warnings: Vec<String>,
}

/// Apply `live` (or else the copy in the state dir) over `raw`, the config file's settings.
pub fn effective(paths: &NodePaths, raw: &Settings, live: Live) -> Effective {
    let mut warnings = Vec::new();
    let mut live_text = None;
    let mut known = None;
    let why_cached = match live {
        Live::Read { text, at } => match cc::parse::parse(&text) {
            Ok(config) => {
                known = Some(Known {
                    config,
                    read_at: crate::logging::rfc3339(at),
                    live: true,
                    why_cached: None,
                });
                live_text = Some(text);
                None
            }
            Err(e) => {
                warnings.push(format!(
                    "ConfigMap {}, key {}: {e}; not used{}",
                    cc::CONFIGMAP,
                    cc::DATA_KEY,
                    fallback_note(paths)
                ));
                Some(format!("the live copy cannot be used: {e}"))
            }
        },
        Live::NotTried(why) | Live::Failed(why) => Some(why),
    };
    if known.is_none() {
        match cc::read(paths) {
            Ok(Some(c)) => match c.config() {
                Ok(Some(config)) => {
                    known = Some(Known {
                        config,
                        read_at: c.read_at.clone(),
                        live: false,
                        why_cached,
                    })
                }
                Ok(None) => {}
                Err(e) => warnings.push(format!(
                    "{}: the ClusterConfiguration kept there cannot be used: {e}; not used",
                    paths.show(&cc::path(paths))
                )),
            },
            Ok(None) => {}
            Err(e) => warnings.push(format!("{e}; not used")),
        }
    }
    let settings = match &known {
        Some(k) => match apply(raw, k) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!(
                    "the ClusterConfiguration of ConfigMap {} as read at {}: {e}; none of its values is used",
                    cc::CONFIGMAP,
                    k.read_at
                ));
                known = None;
                raw.clone()
            }
        },
        None => raw.clone(),
    };
    let paths = settings.paths(&paths.root);
    Effective {
        settings,
        paths,
        known,
        live_text,
        warnings,
    }
}

/// What the fallback is, for the warning about a malformed live copy.
fn fallback_note(paths: &NodePaths) -> &'static str {
    match cc::read(paths).ok().flatten().map(|c| c.config()) {
        Some(Ok(Some(_))) => " (using the copy last read instead)",
        _ => " (renewing as without a ClusterConfiguration)",
    }
}

/// `raw` with `known`'s values where the config file did not set them.
pub fn apply(raw: &Settings, known: &Known) -> Result<Settings, String> {
    let c = &known.config;
    let origin = |field: &'static str, note: Option<String>| {
        Origin::Cluster(ClusterOrigin {
            field,
            api_version: c.api_version.clone(),
            read_at: known.read_at.clone(),
            live: known.live,
            note: note.or_else(|| known.why_cached.clone()),
        })
    };
    let mut s = raw.clone();
    if !raw.certificate_validity_explicit {
        match c.certificate_validity {
            Some(v) => {
                s.certificate_validity = v;
                s.sources.validity = origin("certificateValidityPeriod", None);
            }
            None => {
                // kubeadm's default is also one year (v1beta3 conversion, v1beta4 defaults).
                s.sources.validity = Origin::Default(format!(
                    "the cluster's ClusterConfiguration ({}) sets no certificateValidityPeriod: kubeadm's one year",
                    c.api_version
                ));
            }
        }
    }
    if raw.encryption_algorithm.is_none() {
        let (alg, note) = match c.encryption_algorithm {
            Some(a) => (a, None),
            None => (
                EncryptionAlgorithm::Rsa2048,
                Some("unset: kubeadm's default RSA-2048".to_string()),
            ),
        };
        s.encryption_algorithm = Some(alg);
        s.sources.key = origin(c.encryption_algorithm_field, note);
    }
    if !raw.certificates_dir_explicit {
        match c.certificates_dir.as_deref() {
            Some(d) if d != cc::parse::DEFAULT_CERTIFICATES_DIR => {
                s.certificates_dir = d.to_string();
                s.sources.certificates_dir = origin("certificatesDir", None);
            }
            _ => {
                s.sources.certificates_dir = Origin::Default(
                    "the cluster's ClusterConfiguration names kubeadm's default".into(),
                )
            }
        }
    }
    s.check_renewal_gap().map_err(|e| format!("{e:#}"))?;
    Ok(s)
}

/// The line about the validity of new certificates and where it came from.
pub fn describe_validity(s: &Settings) -> String {
    format!(
        "certificate validity: {}, from {}",
        days(s.certificate_validity),
        s.sources.validity
    )
}

/// The lines `renew --dry-run` prints about where the settings came from.
pub fn describe(s: &Settings) -> Vec<String> {
    let key = match s.encryption_algorithm {
        Some(a) => format!("new keys: {a}, from {}", s.sources.key),
        None => format!("new keys: the old key's algorithm, from {}", s.sources.key),
    };
    vec![
        describe_validity(s),
        key,
        format!(
            "certificates dir: {}, from {}",
            s.certificates_dir, s.sources.certificates_dir
        ),
    ]
}

/// `730d` for whole days, else humantime (`36h`): as the config file writes durations.
pub fn days(d: std::time::Duration) -> String {
    if d.as_secs().is_multiple_of(86_400) && d.subsec_nanos() == 0 {
        format!("{}d", d.as_secs() / 86_400)
    } else {
        crate::logging::human_duration(d)
    }
}

#[cfg(test)]
mod tests;
