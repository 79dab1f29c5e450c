//! The `ClusterConfiguration` document kept in `kube-system/kubeadm-config` (data key
//! `ClusterConfiguration`), reduced to the fields kubeadm-certd uses, parsed in full and
//! validated before anything is used (all or nothing).
//!
//! What kubeadm stores there and how (kubernetes/kubernetes):
//! - `cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go` @13299357 (v1.31+): `kubernetesVersion`,
//!   `controlPlaneEndpoint`, `certificatesDir`, `featureGates`, `encryptionAlgorithm`
//!   (`EncryptionAlgorithmType`), `certificateValidityPeriod` (`*metav1.Duration`); defaults
//!   (`defaults.go` @7edc7fbd) RSA-2048 and 8760h.
//! - `staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/duration.go` @819ecd4d: a
//!   `metav1.Duration` is written as Go's `time.Duration.String()` (`8760h0m0s`) and read with
//!   `time.ParseDuration` (so `17520h` is accepted too).
//! - `cmd/kubeadm/app/apis/kubeadm/v1beta3/conversion.go` @debfba10: v1beta3 has neither
//!   field; converting it sets RSA-2048 and one year.
//! - `cmd/kubeadm/app/apis/kubeadm/types.go` (`ClusterConfiguration.EncryptionAlgorithmType`):
//!   a `PublicKeysECDSA` feature gate, when present, wins (true: ECDSA-P256, false: RSA-2048).
//! - ECDSA-P384 is accepted since kubernetes PR #131677 (merged 2025-05, kubeadm#3197).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// kubeadm's `encryptionAlgorithm` values (v1beta4 `EncryptionAlgorithmType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    /// `RSA-2048`, kubeadm's default.
    Rsa2048,
    /// `RSA-3072`
    Rsa3072,
    /// `RSA-4096`
    Rsa4096,
    /// `ECDSA-P256`
    EcdsaP256,
    /// `ECDSA-P384`
    EcdsaP384,
}

impl EncryptionAlgorithm {
    /// Every value, in kubeadm's documentation order.
    pub const ALL: [EncryptionAlgorithm; 5] = [
        EncryptionAlgorithm::Rsa2048,
        EncryptionAlgorithm::Rsa3072,
        EncryptionAlgorithm::Rsa4096,
        EncryptionAlgorithm::EcdsaP256,
        EncryptionAlgorithm::EcdsaP384,
    ];

    /// The name as kubeadm spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            EncryptionAlgorithm::Rsa2048 => "RSA-2048",
            EncryptionAlgorithm::Rsa3072 => "RSA-3072",
            EncryptionAlgorithm::Rsa4096 => "RSA-4096",
            EncryptionAlgorithm::EcdsaP256 => "ECDSA-P256",
            EncryptionAlgorithm::EcdsaP384 => "ECDSA-P384",
        }
    }

    /// Exactly one of kubeadm's names (case matters, as in kubeadm's validation).
    pub fn parse(s: &str) -> Option<EncryptionAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// `RSA-2048, RSA-3072, ...` for messages.
    pub fn names() -> String {
        Self::ALL.map(|a| a.as_str()).join(", ")
    }
}

impl std::fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// kubeadm's default `certificatesDir`.
pub const DEFAULT_CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";

/// The apiVersions read (v1beta2 is kubeadm 1.15–1.22's; v1beta3 1.22–1.35; v1beta4 1.31+).
pub const API_VERSIONS: [&str; 3] = [
    "kubeadm.k8s.io/v1beta2",
    "kubeadm.k8s.io/v1beta3",
    "kubeadm.k8s.io/v1beta4",
];

/// The fields used, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `kubeadm.k8s.io/v1beta4`, ...
    pub api_version: String,
    /// `kubernetesVersion` as written (`v1.33.4`).
    pub kubernetes_version: Option<String>,
    /// `certificateValidityPeriod` (v1beta4; `None` when unset or in older versions).
    pub certificate_validity: Option<Duration>,
    /// The algorithm kubeadm would use: `featureGates.PublicKeysECDSA` when present, else
    /// `encryptionAlgorithm`; `None` when neither says (kubeadm's default, RSA-2048).
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Where the algorithm came from, for messages: `encryptionAlgorithm` or
    /// `featureGates.PublicKeysECDSA`.
    pub encryption_algorithm_field: &'static str,
    /// `controlPlaneEndpoint` (host or host:port), when set.
    pub control_plane_endpoint: Option<String>,
    /// `certificatesDir`, when set.
    pub certificates_dir: Option<String>,
}

/// As written; unknown fields are ignored (kubeadm has many more).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    api_version: Option<String>,
    kind: Option<String>,
    kubernetes_version: Option<String>,
    control_plane_endpoint: Option<String>,
    certificates_dir: Option<String>,
    encryption_algorithm: Option<String>,
    certificate_validity_period: Option<String>,
    feature_gates: Option<BTreeMap<String, bool>>,
}

/// Parse and validate a ClusterConfiguration document. The error says what is wrong, one
/// line, naming the field; the caller names the object it came from.
pub fn parse(text: &str) -> Result<ClusterConfig, String> {
    crate::node::yamlguard::check_nesting(text)?;
    let raw: Raw =
        serde_yaml::from_str(text).map_err(|e| format!("not a ClusterConfiguration: {e}"))?;
    let api_version = raw.api_version.ok_or("apiVersion is missing")?;
    if !API_VERSIONS.contains(&api_version.as_str()) {
        return Err(format!(
            "apiVersion {api_version:?} is not one kubeadm-certd reads ({})",
            API_VERSIONS.join(", ")
        ));
    }
    if let Some(k) = raw.kind.as_deref().filter(|k| *k != "ClusterConfiguration") {
        return Err(format!("kind is {k:?}, not ClusterConfiguration"));
    }
    let v1beta4 = api_version.ends_with("/v1beta4");
    let certificate_validity = match raw.certificate_validity_period.as_deref() {
        Some(v) if v1beta4 => {
            let d = parse_go_duration(v)
                .map_err(|e| format!("certificateValidityPeriod {v:?}: {e}"))?;
            if d.is_zero() {
                return Err(format!("certificateValidityPeriod {v:?} must be positive"));
            }
            Some(d)
        }
        _ => None,
    };
    let mut encryption_algorithm_field = "encryptionAlgorithm";
    let mut encryption_algorithm = match raw.encryption_algorithm.as_deref() {
        Some("") | None => None,
        Some(a) if v1beta4 => Some(EncryptionAlgorithm::parse(a).ok_or_else(|| {
            format!(
                "encryptionAlgorithm {a:?} is not one of {}",
                EncryptionAlgorithm::names()
            )
        })?),
        Some(_) => None,
    };
    if let Some(on) = raw
        .feature_gates
        .as_ref()
        .and_then(|g| g.get("PublicKeysECDSA"))
    {
        encryption_algorithm_field = "featureGates.PublicKeysECDSA";
        encryption_algorithm = Some(if *on {
            EncryptionAlgorithm::EcdsaP256
        } else {
            EncryptionAlgorithm::Rsa2048
        });
    }
    let control_plane_endpoint = match raw.control_plane_endpoint {
        Some(e) if !e.is_empty() => {
            super::endpoint::split_host_port(&e)
                .map_err(|why| format!("controlPlaneEndpoint {e:?}: {why}"))?;
            Some(e)
        }
        _ => None,
    };
    let certificates_dir = match raw.certificates_dir {
        Some(d) if !d.is_empty() => {
            if !d.starts_with('/') {
                return Err(format!("certificatesDir {d:?} is not an absolute path"));
            }
            Some(d)
        }
        _ => None,
    };
    Ok(ClusterConfig {
        api_version,
        kubernetes_version: raw.kubernetes_version.filter(|v| !v.is_empty()),
        certificate_validity,
        encryption_algorithm,
        encryption_algorithm_field,
        control_plane_endpoint,
        certificates_dir,
    })
}

/// Go's `time.ParseDuration` (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`; units ns, us, µs,
/// μs, ms, s, m, h), for non-negative values, exact to the nanosecond. Written out because no
/// maintained crate parses Go's format; humantime rejects `1.5h` and accepts forms Go does
/// not (`1 hour`).
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || "not a Go duration (e.g. 8760h0m0s)".to_string();
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err("must not be negative".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in {s:?}")),
            u => return Err(format!("unknown unit {u:?} in {s:?}")),
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(bad)?;
        // The fraction, truncated to whole nanoseconds as Go does.
        let mut div: u128 = 1;
        let mut f: u128 = 0;
        for d in frac.bytes().take(30) {
            f = f * 10 + u128::from(d - b'0');
            div *= 10;
        }
        part += f * scale / div;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = next;
    }
    // time.Duration is an int64 of nanoseconds.
    if total > i64::MAX as u128 {
        return Err("out of range (more than about 292 years)".into());
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn go_durations() {
        let ok = |s: &str, secs: u64, nanos: u32| {
            assert_eq!(parse_go_duration(s), Ok(Duration::new(secs, nanos)), "{s}")
        };
        ok("8760h0m0s", 8760 * H, 0);
        ok("17520h", 17520 * H, 0);
        ok("1h30m", 5400, 0);
        ok("1.5h", 5400, 0);
        ok("+2h", 2 * H, 0);
        ok("0", 0, 0);
        ok("300ms", 0, 300_000_000);
        ok("1µs", 0, 1000);
        ok(".5s", 0, 500_000_000);
        ok("1.000000001s", 1, 1);
        ok("2562047h47m16.854775807s", 9_223_372_036, 854_775_807);
        for bad in [
            "",
            "h",
            "1",
            "1d",
            "-1h",
            "1h 30m",
            ".s",
            "8760 h",
            "2562047h47m16.854775808s",
            "99999999999999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn v1beta4_as_kubeadm_stores_it() {
        let c = parse(
            "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\n\
             certificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\n\
             clusterName: kubernetes\ncontrolPlaneEndpoint: cp.example:6443\n\
             encryptionAlgorithm: ECDSA-P384\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.1\n",
        )
        .unwrap();
        assert_eq!(c.certificate_validity, Some(Duration::from_secs(8760 * H)));
        assert_eq!(c.encryption_algorithm, Some(EncryptionAlgorithm::EcdsaP384));
        assert_eq!(c.control_plane_endpoint.as_deref(), Some("cp.example:6443"));
        assert_eq!(c.kubernetes_version.as_deref(), Some("v1.34.1"));
    }

    #[test]
    fn older_versions_and_the_feature_gate() {
        let c = parse("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nencryptionAlgorithm: nonsense\ncertificateValidityPeriod: nonsense\n").unwrap();
        assert_eq!(
            (c.certificate_validity, c.encryption_algorithm),
            (None, None)
        );
        let c =
            parse("apiVersion: kubeadm.k8s.io/v1beta3\nfeatureGates:\n  PublicKeysECDSA: true\n")
                .unwrap();
        assert_eq!(c.encryption_algorithm, Some(EncryptionAlgorithm::EcdsaP256));
        assert_eq!(c.encryption_algorithm_field, "featureGates.PublicKeysECDSA");
        let c = parse("apiVersion: kubeadm.k8s.io/v1beta4\nencryptionAlgorithm: RSA-4096\nfeatureGates: {PublicKeysECDSA: false}\n").unwrap();
        assert_eq!(c.encryption_algorithm, Some(EncryptionAlgorithm::Rsa2048));
        assert!(parse("apiVersion: kubeadm.k8s.io/v1beta2\n").is_ok());
    }

    #[test]
    fn every_used_field_is_validated() {
        let v4 = |body: &str| parse(&format!("apiVersion: kubeadm.k8s.io/v1beta4\n{body}"));
        for (body, needle) in [
            (
                "certificateValidityPeriod: 2y\n",
                "certificateValidityPeriod",
            ),
            ("certificateValidityPeriod: 0s\n", "must be positive"),
            ("encryptionAlgorithm: ecdsa-p256\n", "encryptionAlgorithm"),
            ("certificatesDir: etc/pki\n", "certificatesDir"),
            (
                "controlPlaneEndpoint: \"cp:99999\"\n",
                "controlPlaneEndpoint",
            ),
            (
                "controlPlaneEndpoint: \"under_score\"\n",
                "controlPlaneEndpoint",
            ),
            ("kind: InitConfiguration\n", "kind"),
            ("certificatesDir: [a]\n", "not a ClusterConfiguration"),
        ] {
            let e = v4(body).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
        assert!(parse("apiVersion: kubeadm.k8s.io/v1beta1\n").is_err());
        assert!(parse("kind: ClusterConfiguration\n").is_err());
        assert!(parse("{{{").is_err());
    }
}
