//! The kubelet config (`/var/lib/kubelet/config.yaml`): the few fields that
//! decide how static pods are picked up and how the kubelet's health is checked.

use std::time::Duration;

use serde::Deserialize;

/// The kubelet's default `fileCheckFrequency`, also used when the file says `0s`.
pub const DEFAULT_FILE_CHECK_FREQUENCY: Duration = Duration::from_secs(20);
/// The kubelet's default `healthzBindAddress`.
pub const DEFAULT_HEALTHZ_BIND_ADDRESS: &str = "127.0.0.1";
/// The kubelet's default `healthzPort`.
pub const DEFAULT_HEALTHZ_PORT: u16 = 10248;

/// What kubeadm-certd reads from a `KubeletConfiguration`, with the kubelet's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletConfigInfo {
    /// How often the static pod directory is re-listed (0s or absent means 20s).
    pub file_check_frequency: Duration,
    /// Address of the plain-HTTP healthz endpoint.
    pub healthz_bind_address: String,
    /// Port of the healthz endpoint; 0 means disabled.
    pub healthz_port: u16,
    /// `serverTLSBootstrap` as written; `None` when absent (the kubelet then uses false).
    pub server_tls_bootstrap: Option<bool>,
    /// `staticPodPath`; `None` when absent or empty (no file source).
    pub static_pod_path: Option<String>,
}

/// What is wrong with a kubelet config.
#[derive(Debug, thiserror::Error)]
pub enum KubeletConfigError {
    /// Not YAML/JSON, or a field has the wrong type.
    #[error("not a valid kubelet config: {0}")]
    Parse(#[from] serde_yaml::Error),
    /// Refused before parsing (pathological nesting).
    #[error("{0}")]
    Guard(String),
    /// `kind` is present but is not KubeletConfiguration.
    #[error("kind is {0:?}, expected KubeletConfiguration")]
    WrongKind(String),
    /// `fileCheckFrequency` is not a Go duration.
    #[error("fileCheckFrequency: {0}")]
    FileCheckFrequency(#[from] DurationError),
}

/// Why a string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Does not match Go's `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` (or "0").
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without a unit, other than "0".
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit found.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Negative durations cannot be represented (and make no sense here).
    #[error("negative duration {0:?}")]
    Negative(String),
    /// Larger than Go's int64 nanoseconds.
    #[error("duration {0:?} overflows")]
    Overflow(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    kind: Option<String>,
    file_check_frequency: Option<String>,
    healthz_bind_address: Option<String>,
    healthz_port: Option<u16>,
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: Option<bool>,
    static_pod_path: Option<String>,
}

/// Parses a `KubeletConfiguration` (YAML or JSON) and applies the kubelet's defaults.
pub fn parse_kubelet_config(bytes: &[u8]) -> Result<KubeletConfigInfo, KubeletConfigError> {
    if let Err(e) = crate::node::yamlguard::check_nesting(&String::from_utf8_lossy(bytes)) {
        return Err(KubeletConfigError::Guard(e));
    }
    let raw: RawConfig = serde_yaml::from_slice(bytes)?;
    if let Some(kind) = raw.kind.filter(|k| k != "KubeletConfiguration") {
        return Err(KubeletConfigError::WrongKind(kind));
    }
    let file_check_frequency = match raw.file_check_frequency.as_deref() {
        None => DEFAULT_FILE_CHECK_FREQUENCY,
        Some(s) => match parse_go_duration(s)? {
            Duration::ZERO => DEFAULT_FILE_CHECK_FREQUENCY,
            d => d,
        },
    };
    Ok(KubeletConfigInfo {
        file_check_frequency,
        healthz_bind_address: raw
            .healthz_bind_address
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_HEALTHZ_BIND_ADDRESS.to_owned()),
        healthz_port: raw.healthz_port.unwrap_or(DEFAULT_HEALTHZ_PORT),
        server_tls_bootstrap: raw.server_tls_bootstrap,
        static_pod_path: raw.static_pod_path.filter(|p| !p.is_empty()),
    })
}

/// Parses a duration in Go's `time.ParseDuration` format ("20s", "1m30s",
/// "1.5h", "500ms", "0"). Units: ns, us, µs, μs, ms, s, m, h.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let overflow = || DurationError::Overflow(input.to_owned());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    // Go limits durations to int64 nanoseconds.
    const MAX_NANOS: u128 = i64::MAX as u128;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid()); // "." or a unit with no number
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: input.to_owned(),
                })
            }
        };
        let mut value: u128 = 0;
        for d in int_part.bytes() {
            value = value * 10 + u128::from(d - b'0');
            if value > MAX_NANOS {
                return Err(overflow());
            }
        }
        value = value.checked_mul(scale).ok_or_else(overflow)?;
        // Fraction digits beyond the 18th cannot add a whole nanosecond; Go truncates too.
        let (mut frac, mut div) = (0u128, 1u128);
        for d in frac_part.bytes().take(18) {
            frac = frac * 10 + u128::from(d - b'0');
            div *= 10;
        }
        value += frac * scale / div;
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        rest = after;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let nanos = u64::try_from(total).map_err(|_| overflow())?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, DurationError> {
        parse_go_duration(s)
    }

    #[test]
    fn go_durations() {
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(d("-0"), Ok(Duration::ZERO));
        assert_eq!(d("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(d("+5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(d("2h45m0.5s"), Ok(Duration::from_millis(9_900_500)));
        assert_eq!(d("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(d("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(d("10μs"), Ok(Duration::from_micros(10)));
        assert_eq!(d("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(d("1.0000000001s"), Ok(Duration::from_nanos(1_000_000_000)));
        assert_eq!(
            d("0.3333333333333333333333h"),
            Ok(Duration::from_nanos(1_199_999_999_999))
        );
        assert_eq!(
            d("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
    }

    #[test]
    fn go_duration_errors() {
        assert!(matches!(d(""), Err(DurationError::Invalid(_))));
        assert!(matches!(d("-"), Err(DurationError::Invalid(_))));
        assert!(matches!(d("s"), Err(DurationError::Invalid(_))));
        assert!(matches!(d(".s"), Err(DurationError::Invalid(_))));
        assert!(matches!(d("20"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(d("1m30"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(d("3d"), Err(DurationError::UnknownUnit { .. })));
        assert!(matches!(d("3 s"), Err(DurationError::UnknownUnit { .. })));
        assert!(matches!(d("-1s"), Err(DurationError::Negative(_))));
        assert!(matches!(d("2562048h"), Err(DurationError::Overflow(_))));
        assert!(matches!(
            d("99999999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn kubeadm_default_config() {
        let yaml = b"apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
cgroupDriver: systemd
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
syncFrequency: 0s
";
        let c = parse_kubelet_config(yaml).unwrap();
        assert_eq!(
            c,
            KubeletConfigInfo {
                file_check_frequency: Duration::from_secs(20),
                healthz_bind_address: "127.0.0.1".into(),
                healthz_port: 10248,
                server_tls_bootstrap: None,
                static_pod_path: Some("/etc/kubernetes/manifests".into()),
            }
        );
    }

    #[test]
    fn explicit_values_and_defaults() {
        let c = parse_kubelet_config(
            br#"{"kind":"KubeletConfiguration","fileCheckFrequency":"1m30s","healthzBindAddress":"0.0.0.0","healthzPort":0,"serverTLSBootstrap":true,"staticPodPath":"/srv/pods"}"#,
        )
        .unwrap();
        assert_eq!(c.file_check_frequency, Duration::from_secs(90));
        assert_eq!(c.healthz_bind_address, "0.0.0.0");
        assert_eq!(c.healthz_port, 0);
        assert_eq!(c.server_tls_bootstrap, Some(true));
        assert_eq!(c.static_pod_path.as_deref(), Some("/srv/pods"));

        let c = parse_kubelet_config(b"staticPodPath: ''\nhealthzBindAddress: ''\n").unwrap();
        assert_eq!(c.file_check_frequency, DEFAULT_FILE_CHECK_FREQUENCY);
        assert_eq!(c.healthz_bind_address, DEFAULT_HEALTHZ_BIND_ADDRESS);
        assert_eq!(c.healthz_port, DEFAULT_HEALTHZ_PORT);
        assert_eq!(c.static_pod_path, None);
    }

    #[test]
    fn config_errors() {
        let e = parse_kubelet_config(b"fileCheckFrequency: 20\n").unwrap_err();
        assert!(
            matches!(e, KubeletConfigError::FileCheckFrequency(_)),
            "{e}"
        );
        let e = parse_kubelet_config(b"fileCheckFrequency: 20x\n").unwrap_err();
        assert!(e.to_string().contains("unknown unit"), "{e}");
        let e = parse_kubelet_config(b"kind: Pod\n").unwrap_err();
        assert!(matches!(e, KubeletConfigError::WrongKind(_)), "{e}");
        let e = parse_kubelet_config(b"healthzPort: 70000\n").unwrap_err();
        assert!(matches!(e, KubeletConfigError::Parse(_)), "{e}");
        let e = parse_kubelet_config(b"[not, a, map]").unwrap_err();
        assert!(matches!(e, KubeletConfigError::Parse(_)), "{e}");
    }
}
