//! `check-expiration -o json`: kubeadm's `CertificateExpirationInfo` plus our fields.
//!
//! Sources (kubernetes/kubernetes):
//! - `cmd/kubeadm/app/apis/output/v1alpha3/types.go`: `CertificateExpirationInfo`
//!   (embedded `TypeMeta` → `kind`, `apiVersion` first) and `Certificate` field order
//!   `name, expirationDate, residualTime, externallyManaged, caName (omitempty), missing`.
//! - `cmd/kubeadm/app/cmd/certs.go` @803d40a5 `fetchCertificateExpirationInfo`: a missing
//!   entry sets only `Name` and `Missing`; `residualTime` is `int64(ResidualTime()/time.Second)`.
//! - `staging/src/k8s.io/cli-runtime/pkg/printers/json.go`: `json.MarshalIndent(obj, "", "    ")`
//!   followed by `'\n'`.
//! - `metav1.Time` marshals as `t.UTC().Format(time.RFC3339)`, or `null` when zero.
//!
//! Our additions per item: `path`, `notBefore`, `status`; top level: `kubeletCertificates`
//! (always present, possibly `[]`).

use serde::Serialize;
use time::OffsetDateTime;

use super::format::{residual_seconds, rfc3339_utc};
use super::style::Style;
use super::{sorted_by_name, Report, RowStatus};

const KIND: &str = "CertificateExpirationInfo";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info<'a> {
    kind: &'static str,
    api_version: &'static str,
    /// `None` = Go's nil slice, which encodes as `null`.
    certificates: Option<Vec<Item<'a>>>,
    certificate_authorities: Option<Vec<Item<'a>>>,
    kubelet_certificates: Vec<KubeletItem<'a>>,
}

/// kubeadm's `output.Certificate`, then our fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    name: &'a str,
    expiration_date: Option<String>,
    residual_time: i64,
    externally_managed: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    ca_name: &'a str,
    missing: bool,
    path: &'a str,
    not_before: Option<String>,
    status: RowStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletItem<'a> {
    name: &'a str,
    path: &'a str,
    expiration_date: Option<String>,
    not_before: Option<String>,
    residual_time: i64,
    missing: bool,
    status: RowStatus,
    #[serde(skip_serializing_if = "str::is_empty")]
    note: &'a str,
}

struct Common<'a> {
    name: &'a str,
    path: &'a str,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
    ca_name: &'a str,
    external: bool,
    status: RowStatus,
}

impl<'a> Common<'a> {
    fn item(self, now: OffsetDateTime) -> Item<'a> {
        let not_before = self.not_before.map(rfc3339_utc);
        match self.not_after {
            Some(na) => Item {
                name: self.name,
                expiration_date: Some(rfc3339_utc(na)),
                residual_time: residual_seconds(na, now),
                externally_managed: self.external,
                ca_name: self.ca_name,
                missing: false,
                path: self.path,
                not_before,
                status: self.status,
            },
            // kubeadm fills in only Name and Missing for an absent certificate.
            None => Item {
                name: self.name,
                expiration_date: None,
                residual_time: 0,
                externally_managed: false,
                ca_name: "",
                missing: true,
                path: self.path,
                not_before,
                status: self.status,
            },
        }
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Go's encoding/json escapes these even inside strings (HTML safety);
/// none of them can occur outside a string in JSON, so a plain replace is exact.
fn go_html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(ch),
        }
    }
    out
}

/// [`render_json_with`] in v1.30's style, as printed before issue 18.
pub fn render_json(r: &Report, now: OffsetDateTime) -> String {
    render_json_with(r, now, &Style::UNDETECTED)
}

/// Renders the JSON document exactly as `kubeadm certs check-expiration -o json`
/// would (4-space indent, trailing newline), with our extra fields appended. `style` gives the
/// `apiVersion` and whether kubeconfig rows name their CA (the table's rule: a release that
/// has no `-o` gets the form of the table it prints). kubeadm prints no header lines here.
pub fn render_json_with(r: &Report, now: OffsetDateTime, style: &Style) -> String {
    let certificates = sorted_by_name(&r.certs, |c| &c.name)
        .into_iter()
        .map(|c| {
            Common {
                name: &c.name,
                path: &c.path,
                not_before: c.not_before,
                not_after: c.not_after,
                ca_name: if !style.kubeconfig_ca && c.name.ends_with(".conf") {
                    ""
                } else {
                    &c.ca_name
                },
                external: c.external,
                status: c.status,
            }
            .item(now)
        })
        .collect();
    let cas = sorted_by_name(&r.cas, |c| &c.name)
        .into_iter()
        .map(|c| {
            Common {
                name: &c.name,
                path: &c.path,
                not_before: c.not_before,
                not_after: c.not_after,
                ca_name: "",
                external: c.external,
                status: c.status,
            }
            .item(now)
        })
        .collect();
    let kubelet = sorted_by_name(&r.kubelet, |k| &k.name)
        .into_iter()
        .map(|k| KubeletItem {
            name: &k.name,
            path: &k.path,
            expiration_date: k.not_after.map(rfc3339_utc),
            not_before: k.not_before.map(rfc3339_utc),
            residual_time: k.not_after.map_or(0, |na| residual_seconds(na, now)),
            missing: k.not_after.is_none() && k.status == RowStatus::Missing,
            status: k.status,
            note: &k.note,
        })
        .collect();
    let info = Info {
        kind: KIND,
        api_version: style.api_version,
        certificates: non_empty(certificates),
        certificate_authorities: non_empty(cas),
        kubelet_certificates: kubelet,
    };

    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Cannot fail: plain structs with string keys, written into a Vec.
    if info.serialize(&mut ser).is_err() {
        return String::new();
    }
    let mut out = go_html_escape(&String::from_utf8_lossy(&buf));
    out.push('\n');
    out
}
