//! check-expiration as each kubeadm release prints it (issue 18, item 3): a certificate with
//! 30 h left, one with 400 d, a CA with 4 y 300 d, and a missing super-admin.conf, printed in
//! the style of each release range of `plan::report::style` (where the sources are cited).
//!
//! The expected tables were written from kubeadm's format strings and Go's tabwriter rules
//! (widths: max(minwidth 10, widest cell + padding 3); `!MISSING!` rows end in padded empty
//! cells), not produced by this crate; the residual times from apimachinery's
//! `ShortHumanDuration` (30 h → 1d, 400 d → 1y, 1760 d → 4y) and `HumanDuration`
//! (30h, 400d, 4y300d). `human_duration` is checked against Go's own test tables.

use kubeadm_certd::node::version::KubeVersion;
use kubeadm_certd::plan::report::style::{human_duration, Options, Style};
use kubeadm_certd::plan::report::{
    render_json_with, render_text, render_text_with, CaRow, CertRow, Report, RowStatus,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

fn report() -> Report {
    let cert = |name: &str, left: Option<Duration>| CertRow {
        name: name.into(),
        path: if name.ends_with(".conf") {
            format!("/etc/kubernetes/{name}")
        } else {
            format!("/etc/kubernetes/pki/{name}.crt")
        },
        not_before: None,
        not_after: left.map(|l| NOW + l),
        ca_name: "ca".into(),
        external: false,
        status: if left.is_some() {
            RowStatus::Ok
        } else {
            RowStatus::Missing
        },
    };
    Report {
        certs: vec![
            cert("super-admin.conf", None),
            cert("apiserver", Some(Duration::days(400))),
            cert("admin.conf", Some(Duration::hours(30))),
        ],
        cas: vec![CaRow {
            name: "ca".into(),
            path: "/etc/kubernetes/pki/ca.crt".into(),
            not_before: None,
            not_after: Some(NOW + Duration::days(4 * 365 + 300)),
            external: false,
            status: RowStatus::Ok,
        }],
        kubelet: vec![],
    }
}

fn style(v: &str) -> Style {
    Style::for_version(Some(KubeVersion::parse(v).unwrap()))
}

fn text(v: &str) -> String {
    let opts = Options {
        style: style(v),
        configmap_read: false,
    };
    render_text_with(&report(), NOW, &opts)
}

const V1_23_0: &str = concat!(
        "CERTIFICATE                  EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n",
        "admin.conf                   Dec 02, 2026 18:00 UTC   1d                                      no      \n",
        "apiserver                    Jan 05, 2028 12:00 UTC   1y              ca                      no      \n",
        "!MISSING! super-admin.conf                                                                    \n",
        "\n",
        "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n",
        "ca                      Sep 26, 2031 12:00 UTC   4y              no      \n",
    );

const V1_23_1_TO_V1_30: &str = concat!(
        "CERTIFICATE                  EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n",
        "admin.conf                   Dec 02, 2026 18:00 UTC   1d              ca                      no      \n",
        "apiserver                    Jan 05, 2028 12:00 UTC   1y              ca                      no      \n",
        "!MISSING! super-admin.conf                                                                    \n",
        "\n",
        "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n",
        "ca                      Sep 26, 2031 12:00 UTC   4y              no      \n",
    );

const V1_31_ON: &str = concat!(
        "CERTIFICATE                  EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n",
        "admin.conf                   Dec 02, 2026 18:00 UTC   30h             ca                      no      \n",
        "apiserver                    Jan 05, 2028 12:00 UTC   400d            ca                      no      \n",
        "!MISSING! super-admin.conf                                                                    \n",
        "\n",
        "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n",
        "ca                      Sep 26, 2031 12:00 UTC   4y300d          no      \n",
    );

#[test]
fn v1_23_0_short_durations_and_no_ca_for_kubeconfig_rows() {
    assert_eq!(text("v1.23.0"), V1_23_0);
    assert_eq!(text("v1.22.17"), V1_23_0);
}

#[test]
fn v1_23_1_to_v1_30_short_durations() {
    for v in [
        "v1.23.1", "v1.24.17", "v1.27.3", "v1.29.15", "v1.30.0", "v1.30.14",
    ] {
        assert_eq!(text(v), V1_23_1_TO_V1_30, "{v}");
    }
}

#[test]
fn v1_31_on_human_durations() {
    for v in [
        "v1.31.0",
        "v1.32.9",
        "v1.33.0",
        "v1.35.1",
        "v1.36.0",
        "v1.37.0-alpha.1",
    ] {
        assert_eq!(text(v), V1_31_ON, "{v}");
    }
}

#[test]
fn undetected_release_keeps_the_output_from_before() {
    assert_eq!(render_text(&report(), NOW), V1_23_1_TO_V1_30);
    assert_eq!(
        render_text_with(&report(), NOW, &Options::default()),
        V1_23_1_TO_V1_30
    );
}

#[test]
fn header_lines_only_when_the_configmap_was_read() {
    let with = |v: &str| {
        let opts = Options {
            style: style(v),
            configmap_read: true,
        };
        render_text_with(&report(), NOW, &opts)
    };
    let old = concat!(
        "[check-expiration] Reading configuration from the cluster...\n",
        "[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n",
        "\n",
    );
    let yaml = concat!(
        "[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n",
        "[check-expiration] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n",
        "\n",
    );
    let file = concat!(
        "[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n",
        "[check-expiration] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.\n",
        "\n",
    );
    assert_eq!(with("v1.23.0"), format!("{old}{V1_23_0}"));
    assert_eq!(with("v1.30.14"), format!("{old}{V1_23_1_TO_V1_30}"));
    assert_eq!(with("v1.31.0"), format!("{yaml}{V1_31_ON}"));
    assert_eq!(with("v1.32.4"), format!("{yaml}{V1_31_ON}"));
    assert_eq!(with("v1.33.0"), format!("{file}{V1_31_ON}"));
    assert_eq!(with("v1.36.2"), format!("{file}{V1_31_ON}"));
    // Not read: no header in any release.
    for v in ["v1.23.0", "v1.30.14", "v1.32.4", "v1.36.2"] {
        assert!(text(v).starts_with("CERTIFICATE "), "{v}");
    }
}

#[test]
fn json_follows_the_release() {
    let json = |v: &str| render_json_with(&report(), NOW, &style(v));
    for v in ["v1.23.0", "v1.29.15", "v1.30.0", "v1.33.1", "v1.36.0"] {
        let out = json(v);
        assert!(
            out.starts_with("{\n    \"kind\": \"CertificateExpirationInfo\",\n    \"apiVersion\": \"output.kubeadm.k8s.io/v1alpha3\",\n"),
            "{v}: {out}"
        );
        // Residual times are seconds in every release; only the table formats them.
        assert!(out.contains("\"residualTime\": 108000,"), "{v}: {out}");
        assert!(out.contains("\"residualTime\": 34560000,"), "{v}: {out}");
    }
    let admin = |out: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "admin.conf")
            .unwrap()
            .clone()
    };
    // v1.23.0 printed no CA for kubeconfig rows (caName is omitempty).
    assert!(admin(&json("v1.23.0")).get("caName").is_none());
    assert_eq!(admin(&json("v1.23.1"))["caName"], "ca");
    assert_eq!(admin(&json("v1.31.0"))["caName"], "ca");
    assert!(!style("v1.29.15").has_output_flag && style("v1.30.0").has_output_flag);
}

/// Go's `TestHumanDuration` and `TestHumanDurationBoundaries` (kubernetes/apimachinery
/// `pkg/util/duration/duration_test.go` at kubernetes-1.36.0), in whole seconds: kubeadm
/// passes `time.Duration(ResidualTimeSeconds) * time.Second`, so `d - 1ms` is `s - 1`.
#[test]
fn human_duration_matches_go_test_tables() {
    const M: i64 = 60;
    const H: i64 = 3600;
    const D: i64 = 24 * H;
    const Y: i64 = 365 * D;
    let cases = [
        (1, "1s"),
        (70, "70s"),
        (190, "3m10s"),
        (70 * M, "70m"),
        (47 * H, "47h"),
        (49 * H, "2d1h"),
        ((8 * 24 + 2) * H, "8d"),
        (367 * D, "367d"),
        (2 * Y + 25 * H, "2y1d"),
        (8 * Y + 2 * H, "8y"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (2 * M - 1, "119s"),
        (2 * M, "2m"),
        (2 * M + 1, "2m1s"),
        (10 * M - 1, "9m59s"),
        (10 * M, "10m"),
        (10 * M + 1, "10m"),
        (3 * H - 1, "179m"),
        (3 * H, "3h"),
        (3 * H + M, "3h1m"),
        (8 * H - 1, "7h59m"),
        (8 * H, "8h"),
        (8 * H + 59 * M, "8h"),
        (2 * D - 1, "47h"),
        (2 * D, "2d"),
        (2 * D + H, "2d1h"),
        (8 * D - 1, "7d23h"),
        (8 * D, "8d"),
        (8 * D + 23 * H, "8d"),
        (2 * Y - 1, "729d"),
        (2 * Y, "2y"),
        (2 * Y + 23 * H, "2y"),
        (2 * Y + 23 * H + 59 * M, "2y"),
        (2 * Y + D - 1, "2y"),
        (2 * Y + D, "2y1d"),
        (3 * Y, "3y"),
        (4 * Y, "4y"),
        (7 * Y, "7y"),
        (8 * Y - 1, "7y364d"),
        (8 * Y, "8y"),
        (8 * Y + 364 * D, "8y"),
        (9 * Y, "9y"),
        // The three cases.
        (30 * H, "30h"),
        (400 * D, "400d"),
        (4 * Y + 300 * D, "4y300d"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(secs), want, "{secs} s");
    }
}
