//! Golden and property tests for `kubeadm_certd::plan::report`.
//!
//! Expected strings are derived by hand from Go's algorithms (text/tabwriter
//! column blocks, `ShortHumanDuration`, `%-8v`) and checked against real
//! `kubeadm certs check-expiration` output pasted in public issues.

use kubeadm_certd::plan::report::format::{
    kubeadm_date, residual_seconds, rfc3339_utc, short_human_duration, TabWriter,
};
use kubeadm_certd::plan::report::{
    render_json, render_text, CaRow, CertRow, KubeletRow, Report, RowStatus,
};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn cert(name: &str, not_after: Option<OffsetDateTime>, ca: &str, external: bool) -> CertRow {
    CertRow {
        name: name.into(),
        path: format!("/etc/kubernetes/pki/{name}.crt"),
        not_before: None,
        not_after,
        ca_name: ca.into(),
        external,
        status: if not_after.is_some() {
            RowStatus::Ok
        } else {
            RowStatus::Missing
        },
    }
}

fn ca(name: &str, not_after: Option<OffsetDateTime>, external: bool) -> CaRow {
    CaRow {
        name: name.into(),
        path: format!("/etc/kubernetes/pki/{name}.crt"),
        not_before: None,
        not_after,
        external,
        status: if not_after.is_some() {
            RowStatus::Ok
        } else {
            RowStatus::Missing
        },
    }
}

/// Compares our output with a pasted sample line by line. Pastes keep the
/// `%-8v` trailing spaces on most lines but may lose them on the last one.
fn assert_matches_sample(ours: &str, sample: &str) {
    let ours: Vec<&str> = ours.lines().collect();
    let theirs: Vec<&str> = sample.lines().collect();
    assert_eq!(ours.len(), theirs.len(), "line count\n{}", ours.join("\n"));
    for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        if i + 1 == theirs.len() {
            assert_eq!(o.trim_end(), t.trim_end(), "line {i}");
        } else {
            assert_eq!(o, t, "line {i}");
        }
    }
}

/// kubernetes/kubeadm#2866 (2023-04-26, external etcd, kubeadm ~1.27): real output.
#[test]
fn reproduces_kubeadm_issue_2866() {
    let now = datetime!(2023-04-26 12:00 UTC);
    let a = Some(datetime!(2024-04-09 09:16:30 UTC));
    let b = Some(datetime!(2024-04-09 09:17:05 UTC));
    let c = Some(datetime!(2029-11-03 14:13:00 UTC));
    let r = Report {
        certs: vec![
            cert("scheduler.conf", b, "ca", false),
            cert("admin.conf", b, "ca", false),
            cert("apiserver", a, "ca", false),
            cert("apiserver-kubelet-client", a, "ca", false),
            cert("controller-manager.conf", a, "ca", false),
            cert("front-proxy-client", a, "front-proxy-ca", false),
        ],
        cas: vec![ca("front-proxy-ca", c, false), ca("ca", c, false)],
        kubelet: vec![],
    };
    let sample = "\
CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Apr 09, 2024 09:17 UTC   348d            ca                      no      
apiserver                  Apr 09, 2024 09:16 UTC   348d            ca                      no      
apiserver-kubelet-client   Apr 09, 2024 09:16 UTC   348d            ca                      no      
controller-manager.conf    Apr 09, 2024 09:16 UTC   348d            ca                      no      
front-proxy-client         Apr 09, 2024 09:16 UTC   348d            front-proxy-ca          no      
scheduler.conf             Apr 09, 2024 09:17 UTC   348d            ca                      no      

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Nov 03, 2029 14:13 UTC   6y              no      
front-proxy-ca          Nov 03, 2029 14:13 UTC   6y              no  
";
    let out = render_text(&r, now);
    assert_matches_sample(&out, sample);
    // Exact bytes: the last line carries the full `%-8v` padding too.
    assert!(out.ends_with("6y              no      \n"), "{out:?}");
}

/// kubernetes/kubernetes#83932 (2019-10-15, kubeadm 1.17 dev): kubeconfig rows
/// had an empty CERTIFICATE AUTHORITY cell. First table as pasted in the PR.
/// 364d to Oct 15, 2020 (after Feb 29) means `now` was at least Oct 16, 2019.
#[test]
fn reproduces_kubernetes_pr_83932_cert_table() {
    let now = datetime!(2019-10-16 08:26 UTC);
    let t = Some(datetime!(2020-10-15 08:25:40 UTC));
    let names = [
        ("admin.conf", ""),
        ("apiserver", "ca"),
        ("apiserver-etcd-client", "etcd-ca"),
        ("apiserver-kubelet-client", "ca"),
        ("controller-manager.conf", ""),
        ("etcd-healthcheck-client", "etcd-ca"),
        ("etcd-peer", "etcd-ca"),
        ("etcd-server", "etcd-ca"),
        ("front-proxy-client", "front-proxy-ca"),
    ];
    let r = Report {
        certs: names.iter().map(|(n, c)| cert(n, t, c, false)).collect(),
        ..Report::default()
    };
    let sample = "\
CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Oct 15, 2020 08:25 UTC   364d                                    no      
apiserver                  Oct 15, 2020 08:25 UTC   364d            ca                      no      
apiserver-etcd-client      Oct 15, 2020 08:25 UTC   364d            etcd-ca                 no      
apiserver-kubelet-client   Oct 15, 2020 08:25 UTC   364d            ca                      no      
controller-manager.conf    Oct 15, 2020 08:25 UTC   364d                                    no      
etcd-healthcheck-client    Oct 15, 2020 08:25 UTC   364d            etcd-ca                 no      
etcd-peer                  Oct 15, 2020 08:25 UTC   364d            etcd-ca                 no      
etcd-server                Oct 15, 2020 08:25 UTC   364d            etcd-ca                 no      
front-proxy-client         Oct 15, 2020 08:25 UTC   364d            front-proxy-ca          no      
";
    let out = render_text(&r, now);
    assert!(out.starts_with(sample), "{out}");
    // An empty CA list still prints the header, after the flushing blank line.
    assert!(out.ends_with(
        "no      \n\nCERTIFICATE AUTHORITY   EXPIRES   RESIDUAL TIME   EXTERNALLY MANAGED\n"
    ));
}

fn full_report(now: OffsetDateTime) -> Report {
    let kubelet = |name: &str, not_after: Option<OffsetDateTime>, path: &str| KubeletRow {
        name: name.into(),
        path: path.into(),
        not_before: None,
        not_after,
        status: if not_after.is_some() {
            RowStatus::Ok
        } else {
            RowStatus::Missing
        },
        note: String::new(),
    };
    Report {
        certs: vec![
            cert("super-admin.conf", None, "ca", false),
            cert(
                "admin.conf",
                Some(now + Duration::days(365) - Duration::hours(1)),
                "ca",
                false,
            ),
            cert(
                "apiserver",
                Some(datetime!(2026-11-01 0:00 UTC)),
                "ca",
                false,
            ),
            cert("apiserver-etcd-client", None, "etcd-ca", false),
            cert(
                "apiserver-kubelet-client",
                Some(now + Duration::minutes(330)),
                "ca",
                false,
            ),
            cert(
                "controller-manager.conf",
                Some(now + Duration::seconds(2530)),
                "ca",
                false,
            ),
            cert(
                "etcd-healthcheck-client",
                Some(now + Duration::seconds(59)),
                "etcd-ca",
                false,
            ),
            cert(
                "etcd-peer",
                Some(now - Duration::seconds(1)),
                "etcd-ca",
                false,
            ),
            cert(
                "etcd-server",
                Some(now + Duration::days(30)),
                "etcd-ca",
                false,
            ),
            cert(
                "front-proxy-client",
                Some(now + Duration::days(200)),
                "front-proxy-ca",
                true,
            ),
            cert("scheduler.conf", Some(now + Duration::days(100)), "", false),
        ],
        cas: vec![
            ca(
                "front-proxy-ca",
                Some(datetime!(2036-11-25 12:00 UTC)),
                true,
            ),
            ca("etcd-ca", None, false),
            ca("ca", Some(datetime!(2036-11-24 12:00 UTC)), false),
        ],
        kubelet: vec![
            kubelet("kubelet-serving", None, "/var/lib/kubelet/pki/kubelet.crt"),
            kubelet(
                "kubelet-client",
                Some(now + Duration::days(300)),
                "/var/lib/kubelet/pki/kubelet-client-current.pem",
            ),
        ],
    }
}

/// Every row kind. Column widths: max(minwidth 10, widest cell + padding 3),
/// and `!MISSING!` cells count, so the first column is 31 + 3 = 34 wide.
/// Missing rows end in padded empty cells (3 + 25 + 16 + 24 spaces), like kubeadm.
#[test]
fn full_table_every_row_kind() {
    let now = datetime!(2026-11-28 12:00 UTC);
    let expected = concat!(
        "CERTIFICATE                       EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n",
        "admin.conf                        Nov 28, 2027 11:00 UTC   364d            ca                      no      \n",
        "apiserver                         Nov 01, 2026 00:00 UTC   <invalid>       ca                      no      \n",
        "!MISSING! apiserver-etcd-client                                                                    \n",
        "apiserver-kubelet-client          Nov 28, 2026 17:30 UTC   5h              ca                      no      \n",
        "controller-manager.conf           Nov 28, 2026 12:42 UTC   42m             ca                      no      \n",
        "etcd-healthcheck-client           Nov 28, 2026 12:00 UTC   59s             etcd-ca                 no      \n",
        "etcd-peer                         Nov 28, 2026 11:59 UTC   0s              etcd-ca                 no      \n",
        "etcd-server                       Dec 28, 2026 12:00 UTC   30d             etcd-ca                 no      \n",
        "front-proxy-client                Jun 16, 2027 12:00 UTC   200d            front-proxy-ca          yes     \n",
        "scheduler.conf                    Mar 08, 2027 12:00 UTC   100d                                    no      \n",
        "!MISSING! super-admin.conf                                                                         \n",
        "\n",
        "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED\n",
        "ca                      Nov 24, 2036 12:00 UTC   9y              no      \n",
        "!MISSING! etcd-ca                                                \n",
        "front-proxy-ca          Nov 25, 2036 12:00 UTC   10y             yes     \n",
        "\n",
        "KUBELET CERTIFICATE         EXPIRES                  RESIDUAL TIME   FILE\n",
        "kubelet-client              Sep 24, 2027 12:00 UTC   300d            /var/lib/kubelet/pki/kubelet-client-current.pem\n",
        "!MISSING! kubelet-serving                                            \n",
    );
    assert_eq!(render_text(&full_report(now), now), expected);
}

#[test]
fn kubelet_table_only_when_present() {
    let now = datetime!(2026-11-28 12:00 UTC);
    let mut r = full_report(now);
    r.kubelet.clear();
    let out = render_text(&r, now);
    assert!(!out.contains("KUBELET"));
    assert!(out.ends_with("yes     \n"), "{out:?}");
}

#[test]
fn json_matches_kubeadm_printer_plus_extras() {
    let now = datetime!(2026-11-28 12:00 UTC);
    let mut apiserver = cert(
        "apiserver",
        Some(datetime!(2027-11-28 11:55 UTC)),
        "ca",
        false,
    );
    apiserver.not_before = Some(datetime!(2026-11-28 11:55 UTC));
    // Missing: kubeadm sets only name and missing, so caName/external are dropped.
    let mut admin = cert("admin.conf", None, "ca", true);
    admin.path = "/etc/kubernetes/admin.conf".into();
    let r = Report {
        certs: vec![apiserver, admin],
        cas: vec![ca("ca", Some(datetime!(2036-11-24 12:00 UTC)), false)],
        kubelet: vec![KubeletRow {
            name: "kubelet-client".into(),
            path: "/var/lib/kubelet/pki/<current>&.pem".into(),
            not_before: None,
            not_after: Some(now - Duration::milliseconds(2500)),
            status: RowStatus::Expired,
            note: String::new(),
        }],
    };
    let expected = r#"{
    "kind": "CertificateExpirationInfo",
    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
    "certificates": [
        {
            "name": "admin.conf",
            "expirationDate": null,
            "residualTime": 0,
            "externallyManaged": false,
            "missing": true,
            "path": "/etc/kubernetes/admin.conf",
            "notBefore": null,
            "status": "missing"
        },
        {
            "name": "apiserver",
            "expirationDate": "2027-11-28T11:55:00Z",
            "residualTime": 31535700,
            "externallyManaged": false,
            "caName": "ca",
            "missing": false,
            "path": "/etc/kubernetes/pki/apiserver.crt",
            "notBefore": "2026-11-28T11:55:00Z",
            "status": "ok"
        }
    ],
    "certificateAuthorities": [
        {
            "name": "ca",
            "expirationDate": "2036-11-24T12:00:00Z",
            "residualTime": 315273600,
            "externallyManaged": false,
            "missing": false,
            "path": "/etc/kubernetes/pki/ca.crt",
            "notBefore": null,
            "status": "ok"
        }
    ],
    "kubeletCertificates": [
        {
            "name": "kubelet-client",
            "path": "/var/lib/kubelet/pki/\u003ccurrent\u003e\u0026.pem",
            "expirationDate": "2026-11-28T11:59:57Z",
            "notBefore": null,
            "residualTime": -2,
            "missing": false,
            "status": "expired"
        }
    ]
}
"#;
    assert_eq!(render_json(&r, now), expected);
    let v: serde_json::Value = serde_json::from_str(&render_json(&r, now)).unwrap_or_default();
    assert_eq!(
        v["kubeletCertificates"][0]["path"],
        "/var/lib/kubelet/pki/<current>&.pem"
    );
    // `-o yaml`: the same document through sigs.k8s.io/yaml (JSON -> generic maps -> go-yaml
    // v2): keys sorted, `- ` at the parent's indentation, timestamps double-quoted.
    let yaml = kubeadm_certd::plan::report::yaml::json_to_yaml(expected).unwrap();
    let expected_yaml = r#"apiVersion: output.kubeadm.k8s.io/v1alpha3
certificateAuthorities:
- expirationDate: "2036-11-24T12:00:00Z"
  externallyManaged: false
  missing: false
  name: ca
  notBefore: null
  path: /etc/kubernetes/pki/ca.crt
  residualTime: 315273600
  status: ok
certificates:
- expirationDate: null
  externallyManaged: false
  missing: true
  name: admin.conf
  notBefore: null
  path: /etc/kubernetes/admin.conf
  residualTime: 0
  status: missing
- caName: ca
  expirationDate: "2027-11-28T11:55:00Z"
  externallyManaged: false
  missing: false
  name: apiserver
  notBefore: "2026-11-28T11:55:00Z"
  path: /etc/kubernetes/pki/apiserver.crt
  residualTime: 31535700
  status: ok
kind: CertificateExpirationInfo
kubeletCertificates:
- expirationDate: "2026-11-28T11:59:57Z"
  missing: false
  name: kubelet-client
  notBefore: null
  path: /var/lib/kubelet/pki/<current>&.pem
  residualTime: -2
  status: expired
"#;
    assert_eq!(yaml, expected_yaml);
    let back: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, v, "the YAML reads back as the JSON document");
}

#[test]
fn json_empty_lists_like_go_nil_slices() {
    let out = render_json(&Report::default(), datetime!(2026-11-28 12:00 UTC));
    assert_eq!(
        out,
        "{\n    \"kind\": \"CertificateExpirationInfo\",\n    \"apiVersion\": \"output.kubeadm.k8s.io/v1alpha3\",\n    \"certificates\": null,\n    \"certificateAuthorities\": null,\n    \"kubeletCertificates\": []\n}\n"
    );
}

#[test]
fn dates() {
    let t = datetime!(2026-08-19 11:03:59.9 +02:00);
    assert_eq!(kubeadm_date(t), "Aug 19, 2026 09:03 UTC");
    assert_eq!(rfc3339_utc(t), "2026-08-19T09:03:59Z");
    assert_eq!(
        kubeadm_date(datetime!(0999-01-02 03:04 UTC)),
        "Jan 02, 0999 03:04 UTC"
    );
}

#[test]
fn residual_truncates_toward_zero_and_saturates() {
    let now = datetime!(2026-11-28 12:00 UTC);
    let ms = Duration::milliseconds;
    assert_eq!(residual_seconds(now + ms(1999), now), 1);
    assert_eq!(residual_seconds(now - ms(1500), now), -1); // prints 0s
    assert_eq!(residual_seconds(now - ms(2500), now), -2); // prints <invalid>
    assert_eq!(
        short_human_duration(residual_seconds(now - ms(1999), now)),
        "0s"
    );
    // Go's Time.Sub saturates at ±(2^63-1) ns: kubeadm shows 292y at most.
    let far = datetime!(9999-12-31 23:59 UTC);
    assert_eq!(residual_seconds(far, now), 9_223_372_036);
    assert_eq!(short_human_duration(residual_seconds(far, now)), "292y");
    assert_eq!(
        residual_seconds(datetime!(-9999-01-01 0:00 UTC), now),
        -9_223_372_036
    );
}

#[test]
fn short_human_duration_boundaries() {
    let h = 3600;
    let cases = [
        (i64::MIN, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (86399, "23h"),
        (86400, "1d"),
        (8759 * h, "364d"),
        (8759 * h + 3599, "364d"),
        (8760 * h, "1y"),
        (87600 * h - 1, "9y"),
        (87600 * h, "10y"),
        (i64::MAX, "292471208677y"),
    ];
    for (secs, want) in cases {
        assert_eq!(short_human_duration(secs), want, "{secs}");
    }
}

#[test]
fn tabwriter_kubeadm_shapes() {
    // Differing cell counts: the 2-cell line breaks column 1's block, so the
    // lines around it size column 1 separately (20 vs 10); column 0 spans all
    // three lines and stays at minwidth 10.
    let mut w = TabWriter::kubeadm();
    w.line("a\tbbbbbbbbbbbbbbbbb\tx");
    w.line("cc\ty");
    w.line("d\te\tz");
    assert_eq!(
        w.finish(),
        "a         bbbbbbbbbbbbbbbbb   x\ncc        y\nd         e         z\n"
    );
    // Empty cells are padded; a cell wider than minwidth widens its column
    // (16 + 3 = 19); the trailing (unterminated) cell is never padded, so the
    // second line ends in 3 + 10 spaces.
    let mut w = TabWriter::kubeadm();
    w.line("\tEXPIRES\tLAST");
    w.line("a-very-long-cell\t\t");
    assert_eq!(
        w.finish(),
        "                   EXPIRES   LAST\na-very-long-cell             \n"
    );
    // A blank line flushes: the blocks before and after are independent.
    let mut w = TabWriter::kubeadm();
    w.line("wide-wide-wide\t1");
    w.line("");
    w.line("n\t2");
    assert_eq!(w.finish(), "wide-wide-wide   1\n\nn         2\n");
    // Without a final newline the last line is still emitted, unpadded.
    let mut w = TabWriter::new(0, 0, 1, ' ');
    w.write_str("x\ty");
    assert_eq!(w.finish(), "x y");
}

/// Char offsets at which each non-empty cell starts in `out`: padding is '.',
/// cells never contain '.', so the non-dot chars are exactly the cells.
fn cell_starts(out: &str, cells: &[String]) -> Vec<Option<usize>> {
    let positions: Vec<usize> = out
        .chars()
        .enumerate()
        .filter(|(_, c)| *c != '.')
        .map(|(i, _)| i)
        .collect();
    let mut seen = 0;
    cells
        .iter()
        .map(|c| {
            let start = (!c.is_empty())
                .then(|| positions.get(seen).copied())
                .flatten();
            seen += c.chars().count();
            start
        })
        .collect()
}

proptest! {
    #[test]
    fn tabwriter_aligns_and_preserves(
        lines in prop::collection::vec(prop::collection::vec("[a-c本 -]{0,7}", 1..6), 0..12),
        minwidth in 0usize..12,
        padding in 0usize..4,
    ) {
        let mut w = TabWriter::new(minwidth, 4, padding, '.');
        for cells in &lines {
            w.line(&cells.join("\t"));
        }
        let out = w.finish();
        let out_lines: Vec<&str> = out.split_terminator('\n').collect();
        prop_assert_eq!(out_lines.len(), lines.len());
        let mut starts = Vec::new();
        for (cells, o) in lines.iter().zip(&out_lines) {
            let text: String = o.chars().filter(|c| *c != '.').collect();
            prop_assert_eq!(text, cells.concat());
            let s = cell_starts(o, cells);
            // A column cell is at least max(minwidth, text + padding) wide.
            for k in 0..cells.len().saturating_sub(1) {
                if let (Some(a), Some(b)) = (s[k], s[k + 1]) {
                    prop_assert!(b - a >= minwidth.max(cells[k].chars().count() + padding));
                }
            }
            starts.push(s);
        }
        // Consecutive lines that both have cell k share columns 0..k-1, so cell k
        // starts at the same offset in both.
        for (i, pair) in starts.windows(2).enumerate() {
            for (k, (a, b)) in pair[0].iter().zip(&pair[1]).enumerate() {
                if let (Some(a), Some(b)) = (a, b) {
                    prop_assert_eq!(a, b, "line {} cell {}", i + 1, k);
                }
            }
        }
    }

    #[test]
    fn short_human_duration_is_consistent_and_monotone(a in any::<i64>(), b in any::<i64>()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let rank = |s: i64| {
            let f = short_human_duration(s);
            if f == "<invalid>" {
                return (0u8, 0i64);
            }
            let (num, unit) = f.split_at(f.len() - 1);
            let n: i64 = num.parse().unwrap_or(-1);
            let (u, secs) = match unit {
                "s" => (1, 1),
                "m" => (2, 60),
                "h" => (3, 3600),
                "d" => (4, 86400),
                _ => (5, 86400 * 365),
            };
            // The value is the truncated count of its unit.
            assert!(s < 0 || (n * secs <= s && (n as i128 + 1) * secs as i128 > s as i128), "{s} {f}");
            (u, n)
        };
        prop_assert!(rank(lo) <= rank(hi), "{} {}", lo, hi);
    }
}
