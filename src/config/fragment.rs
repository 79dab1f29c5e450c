//! The config file as written (every key optional) and its validation into [`Settings`].

use super::{Settings, TimeSync};
use anyhow::{bail, Result};
use serde::Deserialize;
use std::time::Duration;

/// The file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fragment {
    certificates_dir: Option<String>,
    kubeconfig_dir: Option<String>,
    manifests_dir: Option<String>,
    kubelet_config: Option<String>,
    kubelet_pki_dir: Option<String>,
    state_dir: Option<String>,
    renew_before: Option<String>,
    certificate_validity: Option<String>,
    exclude: Option<Vec<String>>,
    check_interval: Option<String>,
    jitter: Option<String>,
    ca_warn_before: Option<String>,
    ca_validity: Option<String>,
    restart: Option<RestartFragment>,
    kubelet: Option<KubeletFragment>,
    metrics: Option<MetricsFragment>,
    coordination: Option<crate::cluster::settings::CoordinationFragment>,
    backups: Option<BackupsFragment>,
    require_time_sync: Option<BoolOrWord>,
    approver: Option<super::approver::ApproverFragment>,
    encryption_algorithm: Option<String>,
    idle_pageout: Option<bool>,
}

/// `true`, `false` or a word such as `auto`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum BoolOrWord {
    Bool(bool),
    Word(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackupsFragment {
    keep: Option<usize>,
    max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestartFragment {
    enabled: Option<bool>,
    parking_dir: Option<String>,
    timeout: Option<String>,
    min_hold: Option<String>,
    max_per_day: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KubeletFragment {
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: Option<bool>,
    revive_client_cert: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricsFragment {
    textfile: Option<String>,
}

/// A positive humantime duration; `key` names the setting in errors.
fn duration(key: &str, v: &str) -> Result<Duration> {
    let d = humantime::parse_duration(v.trim())
        .map_err(|e| anyhow::anyhow!("{key}: invalid duration {v:?}: {e}"))?;
    if d.is_zero() {
        bail!("{key}: duration must be positive, got {v:?}");
    }
    // Certificates cannot be dated past 9999; no setting needs more than a century.
    if d > MAX_DURATION {
        bail!("{key}: {v:?} is longer than 100 years");
    }
    Ok(d)
}

/// The longest duration any setting accepts.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

pub(super) fn abs_path(key: &str, v: String) -> Result<String> {
    if !v.starts_with('/') {
        bail!("{key}: must be an absolute path, got {v:?}");
    }
    Ok(v)
}

impl Settings {
    /// Apply a fragment over the defaults and validate it.
    pub fn from_fragment(f: Fragment) -> Result<Settings> {
        // An explicit certificateValidity / certificatesDir / encryptionAlgorithm wins over the
        // cluster's ClusterConfiguration (issue 18): remember which were set.
        let mut s = Settings {
            certificate_validity_explicit: f.certificate_validity.is_some(),
            certificates_dir_explicit: f.certificates_dir.is_some(),
            ..Settings::default()
        };
        if s.certificate_validity_explicit {
            s.sources.validity = super::Origin::ConfigFile("certificateValidity");
        }
        if s.certificates_dir_explicit {
            s.sources.certificates_dir = super::Origin::ConfigFile("certificatesDir");
        }
        if let Some(a) = f.encryption_algorithm {
            use crate::node::cluster_config::EncryptionAlgorithm;
            s.encryption_algorithm =
                Some(EncryptionAlgorithm::parse(a.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "encryptionAlgorithm: must be one of {}, got {a:?}",
                        EncryptionAlgorithm::names()
                    )
                })?);
            s.sources.key = super::Origin::ConfigFile("encryptionAlgorithm");
        }
        let paths = [
            (
                "certificatesDir",
                f.certificates_dir,
                &mut s.certificates_dir,
            ),
            ("kubeconfigDir", f.kubeconfig_dir, &mut s.kubeconfig_dir),
            ("manifestsDir", f.manifests_dir, &mut s.manifests_dir),
            ("kubeletConfig", f.kubelet_config, &mut s.kubelet_config),
            ("kubeletPkiDir", f.kubelet_pki_dir, &mut s.kubelet_pki_dir),
            ("stateDir", f.state_dir, &mut s.state_dir),
        ];
        for (key, val, slot) in paths {
            if let Some(v) = val {
                *slot = abs_path(key, v)?;
            }
        }
        let durations = [
            ("renewBefore", f.renew_before, &mut s.renew_before),
            (
                "certificateValidity",
                f.certificate_validity,
                &mut s.certificate_validity,
            ),
            ("checkInterval", f.check_interval, &mut s.check_interval),
            ("caWarnBefore", f.ca_warn_before, &mut s.ca_warn_before),
            ("caValidity", f.ca_validity, &mut s.ca_validity),
        ];
        for (key, val, slot) in durations {
            if let Some(v) = val {
                *slot = duration(key, &v)?;
            }
        }
        if let Some(j) = f.jitter {
            // Zero jitter is a legitimate choice, unlike the other durations.
            s.jitter = match j.trim() {
                "0" | "0s" => Duration::ZERO,
                _ => duration("jitter", &j)?,
            };
        }
        if let Some(ex) = f.exclude {
            for name in &ex {
                if crate::pki::table::handler(name).is_none() {
                    bail!("exclude: unknown certificate name {name:?}");
                }
            }
            s.exclude = ex;
        }
        if let Some(r) = f.restart {
            if let Some(e) = r.enabled {
                s.restart.enabled = e;
            }
            if let Some(p) = r.parking_dir {
                s.restart.parking_dir = abs_path("restart.parkingDir", p)?;
            }
            if let Some(t) = r.timeout {
                s.restart.timeout = duration("restart.timeout", &t)?;
            }
            if let Some(h) = r.min_hold {
                s.restart.min_hold = Some(duration("restart.minHold", &h)?);
            }
            if let Some(m) = r.max_per_day {
                if m == 0 {
                    bail!("restart.maxPerDay: must be at least 1 (use restart.enabled: false to never restart)");
                }
                s.restart.max_per_day = m;
            }
        }
        if let Some(k) = f.kubelet {
            s.kubelet_server_tls_bootstrap = k.server_tls_bootstrap;
            if let Some(r) = k.revive_client_cert {
                s.kubelet_revive_client_cert = r;
            }
        }
        if let Some(m) = f.metrics {
            s.metrics_textfile = match m.textfile {
                Some(t) if t.is_empty() => None,
                Some(t) => Some(abs_path("metrics.textfile", t)?),
                None => s.metrics_textfile,
            };
        }
        if let Some(c) = f.coordination {
            s.coordination = crate::cluster::settings::Coordination::from_fragment(c)?;
        }
        if let Some(b) = f.backups {
            if let Some(k) = b.keep {
                if k == 0 {
                    bail!("backups.keep: must be at least 1 (recovery needs the newest set)");
                }
                s.backups.keep = k;
            }
            if let Some(a) = b.max_age {
                s.backups.max_age = duration("backups.maxAge", &a)?;
            }
        }
        if let Some(t) = f.require_time_sync {
            s.require_time_sync = match t {
                BoolOrWord::Bool(true) => TimeSync::Required,
                BoolOrWord::Bool(false) => TimeSync::Off,
                BoolOrWord::Word(w) if w == "auto" => TimeSync::Auto,
                BoolOrWord::Word(w) => {
                    bail!("requireTimeSync: must be auto, true or false, got {w:?}")
                }
            };
        }
        if let Some(a) = f.approver {
            s.approver = super::ApproverSettings::from_fragment(a)?;
        }
        if let Some(p) = f.idle_pageout {
            s.idle_pageout = p;
        }
        s.check_renewal_gap()?;
        Ok(s)
    }

    /// Refuse settings that make a renewed certificate due again at once (issue 12): the
    /// daemon would renew, back up and restart every cycle, for ever.
    pub fn check_renewal_gap(&self) -> Result<()> {
        // As written in the file: whole days as `30d`, else humantime.
        let h = |d: Duration| {
            if d.as_secs().is_multiple_of(86_400) {
                format!("{}d", d.as_secs() / 86_400)
            } else {
                humantime::format_duration(d).to_string()
            }
        };
        if self.certificate_validity <= self.renew_before {
            bail!(
                "certificateValidity ({}) must be longer than renewBefore ({}): every renewed certificate would be due again at once",
                h(self.certificate_validity),
                h(self.renew_before)
            );
        }
        let gap = self.certificate_validity - self.renew_before;
        let needed = self.check_interval + self.jitter + self.longest_restart();
        if gap < needed {
            bail!(
                "certificateValidity ({}) minus renewBefore ({}) leaves {} between renewals, less than checkInterval ({}) + jitter ({}) + the longest restart ({}) = {}: a renewed certificate would be due again before the next scan",
                h(self.certificate_validity),
                h(self.renew_before),
                h(gap),
                h(self.check_interval),
                h(self.jitter),
                h(self.longest_restart()),
                h(needed)
            );
        }
        Ok(())
    }
}
