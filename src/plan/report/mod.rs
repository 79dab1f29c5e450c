//! `check-expiration`: kubeadm's tables and JSON, as pure functions of a [`Report`] and `now`.
//!
//! The renderers reproduce `kubeadm certs check-expiration` byte for byte
//! (kubernetes/kubernetes `cmd/kubeadm/app/cmd/certs.go` @803d40a5, `certTextPrinter`
//! and `fetchCertificateExpirationInfo`), plus a kubelet table / JSON array that
//! kubeadm lacks, in the style of the node's kubeadm release ([`style`]). Rows are rendered
//! sorted by name, as kubeadm's handler lists are.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Building a report from a scan.
pub mod build;
/// Go-compatible formatting: tabwriter, ShortHumanDuration, dates.
pub mod format;
mod json;
/// Which kubeadm release prints what: the release → style table, HumanDuration.
pub mod style;
mod text;
pub mod yaml;

pub use json::{render_json, render_json_with};
pub use text::{render_text, render_text_with};

/// Our verdict on one certificate (kubeadm has no such column; JSON field `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Valid and not yet due for renewal.
    Ok,
    /// Valid but inside the renewal window.
    Due,
    /// Inside the renewal window, but its CA ends too soon for a renewal to gain anything
    /// (issue 12's "blocked by CA runway"): rotate the CA.
    Blocked,
    /// NotAfter is in the past.
    Expired,
    /// The file (or kubeconfig entry) does not exist.
    Missing,
    /// The file exists but could not be parsed.
    Invalid,
}

/// A leaf certificate or kubeconfig client certificate (kubeadm's first table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRow {
    /// kubeadm handler name, e.g. `apiserver`, `admin.conf`.
    pub name: String,
    /// File the certificate was read from.
    pub path: String,
    pub not_before: Option<OffsetDateTime>,
    /// `None` renders as a `!MISSING!` row (kubeadm's `Missing: true`).
    pub not_after: Option<OffsetDateTime>,
    /// CA handler name (`ca`, `etcd-ca`, `front-proxy-ca`); may be empty.
    pub ca_name: String,
    /// The signing CA's key is absent (kubeadm's external-CA mode).
    pub external: bool,
    pub status: RowStatus,
}

/// A certificate authority (kubeadm's second table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaRow {
    /// `ca`, `etcd-ca` or `front-proxy-ca`.
    pub name: String,
    pub path: String,
    pub not_before: Option<OffsetDateTime>,
    /// `None` renders as a `!MISSING!` row.
    pub not_after: Option<OffsetDateTime>,
    pub external: bool,
    pub status: RowStatus,
}

/// A kubelet certificate (our third table; kubeadm does not report these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletRow {
    /// `kubelet-client` or `kubelet-serving`.
    pub name: String,
    pub path: String,
    pub not_before: Option<OffsetDateTime>,
    /// `None` renders as a `!MISSING!` row.
    pub not_after: Option<OffsetDateTime>,
    pub status: RowStatus,
    /// Why a file could not be read, or whether the client certificate is revivable and why
    /// (printed under the table; JSON `note`); empty for none.
    pub note: String,
}

/// Everything `check-expiration` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub certs: Vec<CertRow>,
    pub cas: Vec<CaRow>,
    pub kubelet: Vec<KubeletRow>,
}

/// Rows ordered by name (byte order, as Go's string sort), stable for equal names.
fn sorted_by_name<T>(rows: &[T], name: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut v: Vec<&T> = rows.iter().collect();
    v.sort_by(|a, b| name(a).cmp(name(b)));
    v
}
