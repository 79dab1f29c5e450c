use super::*;
use crate::node::paths::Root;
use std::time::Duration;

const DAY: u64 = 86_400;
const V4: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncertificateValidityPeriod: 17520h\nencryptionAlgorithm: ECDSA-P256\ncertificatesDir: /etc/kubernetes/pki\n";

fn node() -> (tempfile::TempDir, NodePaths) {
    let d = tempfile::tempdir().unwrap();
    let p = Settings::default().paths(&Root::new(d.path()));
    (d, p)
}

fn live(text: &str) -> Live {
    Live::Read {
        text: text.into(),
        at: time::macros::datetime!(2026-12-01 10:00 UTC),
    }
}

fn cache(p: &NodePaths, doc: &str) {
    std::fs::create_dir_all(&p.state).unwrap();
    let c = cc::CachedClusterConfig {
        read_at: "2026-11-30T09:00:00Z".into(),
        source: cc::CONFIGMAP.into(),
        kubernetes_version: None,
        api_version: None,
        cluster_configuration: Some(doc.into()),
    };
    std::fs::write(cc::path(p), serde_json::to_vec(&c).unwrap()).unwrap();
}

#[test]
fn a_live_v1beta4_document_sets_validity_and_algorithm() {
    let (_d, p) = node();
    let e = effective(&p, &Settings::default(), live(V4));
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(730 * DAY)
    );
    assert_eq!(
        e.settings.encryption_algorithm,
        Some(EncryptionAlgorithm::EcdsaP256)
    );
    assert!(e.live_text.is_some());
    let lines = describe(&e.settings).join("\n");
    assert!(
        lines.contains("certificate validity: 730d, from the cluster's ClusterConfiguration (certificateValidityPeriod, kubeadm.k8s.io/v1beta4) as read at 2026-12-01T10:00:00Z (live)"),
        "{lines}"
    );
    assert!(
        lines.contains(
            "new keys: ECDSA-P256, from the cluster's ClusterConfiguration (encryptionAlgorithm"
        ),
        "{lines}"
    );
    assert!(
        lines.contains("certificates dir: /etc/kubernetes/pki, from the default"),
        "{lines}"
    );
}

#[test]
fn the_cached_copy_stands_in_when_the_api_does_not_answer() {
    let (_d, p) = node();
    cache(&p, V4);
    let e = effective(
        &p,
        &Settings::default(),
        Live::Failed("the API did not answer".into()),
    );
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(730 * DAY)
    );
    let k = e.known.unwrap();
    assert!(!k.live);
    let text = e.settings.sources.validity.to_string();
    assert!(
        text.contains(
            "as read at 2026-11-30T09:00:00Z (cached in the state dir); the API did not answer"
        ),
        "{text}"
    );
}

#[test]
fn explicit_config_keys_win() {
    let (_d, p) = node();
    let raw = Settings::parse(
        "certificateValidity: 400d\nencryptionAlgorithm: RSA-3072\ncertificatesDir: /srv/pki\n",
    )
    .unwrap();
    let e = effective(
        &p,
        &raw,
        live(
            &format!("{V4}certificatesDir: /opt/pki\n")
                .replace("certificatesDir: /etc/kubernetes/pki\n", ""),
        ),
    );
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(400 * DAY)
    );
    assert_eq!(
        e.settings.encryption_algorithm,
        Some(EncryptionAlgorithm::Rsa3072)
    );
    assert_eq!(e.settings.certificates_dir, "/srv/pki");
    assert_eq!(
        e.settings.sources.validity,
        Origin::ConfigFile("certificateValidity")
    );
    // Not set in the config: the cluster's non-default certificatesDir is used.
    let e = effective(
        &p,
        &Settings::default(),
        live("apiVersion: kubeadm.k8s.io/v1beta4\ncertificatesDir: /opt/pki\n"),
    );
    assert_eq!(e.settings.certificates_dir, "/opt/pki");
    assert!(e.paths.pki.ends_with("opt/pki"));
    assert_eq!(
        e.settings.encryption_algorithm,
        Some(EncryptionAlgorithm::Rsa2048)
    );
    assert!(e
        .settings
        .sources
        .key
        .to_string()
        .contains("kubeadm's default RSA-2048"));
}

#[test]
fn a_malformed_document_is_one_warning_and_nothing_applied() {
    let (_d, p) = node();
    let bad = V4.replace("17520h", "two years");
    let e = effective(&p, &Settings::default(), live(&bad));
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(e.warnings[0].starts_with("ConfigMap kube-system/kubeadm-config, key ClusterConfiguration: certificateValidityPeriod \"two years\""), "{}", e.warnings[0]);
    assert!(e.known.is_none() && e.live_text.is_none());
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(365 * DAY)
    );
    assert_eq!(e.settings.encryption_algorithm, None);
    // With a good copy kept, that copy is the fallback.
    cache(&p, V4);
    let e = effective(&p, &Settings::default(), live(&bad));
    assert_eq!(e.warnings.len(), 1);
    assert!(e.warnings[0].contains("using the copy last read instead"));
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(730 * DAY)
    );
}

#[test]
fn a_validity_the_config_would_refuse_is_not_applied_at_all() {
    let (_d, p) = node();
    // 20 days is shorter than renewBefore (30 days): every renewal would be due at once.
    let e = effective(
        &p,
        &Settings::default(),
        live("apiVersion: kubeadm.k8s.io/v1beta4\ncertificateValidityPeriod: 480h\nencryptionAlgorithm: RSA-4096\n"),
    );
    assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    assert!(e.warnings[0].contains("renewBefore"), "{}", e.warnings[0]);
    assert_eq!(
        e.settings.certificate_validity,
        Duration::from_secs(365 * DAY)
    );
    assert_eq!(e.settings.encryption_algorithm, None, "half-applied");
}

#[test]
fn without_any_copy_nothing_changes() {
    let (_d, p) = node();
    let raw = Settings::default();
    let e = effective(&p, &raw, Live::NotTried("no API here".into()));
    assert!(e.warnings.is_empty() && e.known.is_none());
    assert_eq!(e.settings.encryption_algorithm, None);
    assert_eq!(e.paths.pki, p.pki);
    let broken = |p: &NodePaths| std::fs::write(cc::path(p), "{not json").unwrap();
    std::fs::create_dir_all(&p.state).unwrap();
    broken(&p);
    let e = effective(&p, &raw, Live::NotTried("x".into()));
    assert_eq!(e.warnings.len(), 1);
    assert!(
        e.warnings[0].contains("cluster-config.json"),
        "{}",
        e.warnings[0]
    );
}
