//! The node_exporter textfile: x509-certificate-exporter's metric names for every certificate
//! that loaded (so its dashboards and alerts work), plus kubeadm-certd's own counters. Written
//! atomically after each scan in the classic text exposition format.

use crate::act::store::atomic;
use crate::config::Settings;
use crate::node::paths::Root;
use crate::pki::inspect::CertInfo;
use crate::pki::material::Source;
use crate::plan::scan::Scan;
use anyhow::Result;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// A count by result.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Successes.
    pub ok: u64,
    /// Failures.
    pub failed: u64,
}

impl Counts {
    fn add(&mut self, ok: bool) {
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// What the daemon counts between scans (kept for the life of the process).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Counters {
    /// Certificate renewals.
    pub renewals: Counts,
    /// When a certificate was last renewed successfully.
    pub last_renewal: Option<OffsetDateTime>,
    /// Component restarts, by component name.
    pub restarts: BTreeMap<String, Counts>,
    /// Cycles run, by what started them (start, timer, change).
    pub cycles: BTreeMap<String, u64>,
    /// Certificates refused in the last scan (a current state, replaced every cycle, not a
    /// count: a standing refusal is not a failed renewal).
    pub refused: Vec<String>,
    /// Guard rails in force after the last cycle (issue 12).
    pub guard: GuardGauges,
    /// HA coordination gauges; `None` on a node that acts alone.
    pub cluster: Option<ClusterGauges>,
    /// The Kubernetes side (issue 17): the CSR approver and the API's reachability.
    pub kube: KubeSource,
    /// CA rotation gauges (issue 20); `None` until a cycle has looked.
    pub rotation: Option<RotationGauges>,
}

/// A CA rotation as this node last saw it (issue 20).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RotationGauges {
    /// The CA (`etcd-ca`).
    pub ca: String,
    /// `Phase::code`: 0 none under way, 1 trust-both, 2 reissue, 3 trust-new, 4 reissue-old,
    /// 5 untrust-new.
    pub phase: u8,
    /// Node steps done over node steps in all phases, 0..=1; `None` without a record.
    pub progress: Option<f64>,
    /// Last progress (a step or a phase), Unix seconds; `None` without a record.
    pub last_progress: Option<i64>,
}

impl RotationGauges {
    /// The gauges for `ca` from its record (none: no rotation).
    pub fn of(ca: &str, r: Option<&crate::plan::rotation::Rotation>) -> RotationGauges {
        let parse = |t: &str| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        };
        RotationGauges {
            ca: ca.to_string(),
            phase: r.map_or(0, |r| r.phase.code()),
            progress: r.map(|r| r.progress()),
            last_progress: r.and_then(|r| parse(&r.updated_at)),
        }
    }
}

/// The Kubernetes side's numbers (issue 17), as of when the textfile is rendered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KubeGauges {
    /// Whether the approver runs (its series are written only then).
    pub approver_on: bool,
    /// CSRs approved.
    pub approved: u64,
    /// CSRs not approved, by (rule, action): action `denied` or `left_pending`.
    pub denied: BTreeMap<(String, String), u64>,
    /// When each pending kubelet-serving CSR was created.
    pub pending_created: Vec<Option<OffsetDateTime>>,
    /// Whether the last API call got through; `None` before the first one.
    pub api_reachable: Option<bool>,
}

/// A reader of [`KubeGauges`]: the daemon hands in one over the approver's shared counters,
/// which change between cycles; `None` on a node without a Kubernetes client.
#[derive(Clone, Default)]
pub struct KubeSource(pub Option<std::sync::Arc<dyn Fn() -> KubeGauges + Send + Sync>>);

impl KubeSource {
    fn read(&self) -> Option<KubeGauges> {
        self.0.as_ref().map(|f| f())
    }
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "KubeSource(set)"
        } else {
            "KubeSource(none)"
        })
    }
}

impl PartialEq for KubeSource {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for KubeSource {}

/// HA coordination (issue 11): the restart lock, the halt record, etcd's health.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClusterGauges {
    /// When the current wait for the restart lock began: the first attempt not yet followed
    /// by the lock, across attempts that timed out while this node's restarts stay owed.
    pub wait_started: Option<std::time::Instant>,
    /// Whether this node holds the restart lock now.
    pub lock_held: bool,
    /// Whether a halt record stands.
    pub halt_present: bool,
    /// Voting etcd members that answer Status.
    pub members_healthy: u64,
}

impl ClusterGauges {
    /// How long this node has been waiting for the restart lock, in milliseconds (0 when it
    /// is not waiting).
    pub fn lock_wait_ms(&self) -> u64 {
        self.wait_started.map_or(0, |s| {
            u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }
}

/// What the guard rails hold back, as of the last cycle.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuardGauges {
    /// Due certificates blocked by their CA's runway: name -> CA name.
    pub blocked_by_ca: BTreeMap<String, String>,
    /// Components whose restart budget is spent (restarts still owed).
    pub restart_budget_spent: std::collections::BTreeSet<String>,
    /// Renewals deferred by the clock check in the last cycle (1) or not (0).
    pub clock_deferred: bool,
}

impl Counters {
    /// Count a successful renewal, finished at `at`.
    pub fn renewal_ok(&mut self, at: OffsetDateTime) {
        self.renewals.add(true);
        self.last_renewal = Some(at);
    }

    /// Count a failed renewal.
    pub fn renewal_failed(&mut self) {
        self.renewals.add(false);
    }

    /// Count one cycle, started by `trigger`.
    pub fn cycle(&mut self, trigger: &str) {
        *self.cycles.entry(trigger.to_string()).or_default() += 1;
    }

    /// Count one restart attempt of `component`.
    pub fn restart(&mut self, component: &str, ok: bool) {
        self.restarts
            .entry(component.to_string())
            .or_default()
            .add(ok);
    }
}

/// The textfile's resolved path, or `None` when metrics are off.
pub fn textfile_path(root: &Root, settings: &Settings) -> Option<PathBuf> {
    settings
        .metrics_textfile
        .as_deref()
        .map(|p| root.resolve(p))
}

/// One certificate's series.
struct CertSeries {
    filepath: String,
    subject_cn: String,
    issuer_cn: String,
    not_before: i64,
    not_after: i64,
}

/// The issuer's CN, read from the raw issuer name.
fn issuer_cn(c: &CertInfo) -> String {
    X509Name::from_der(&c.issuer_raw)
        .ok()
        .and_then(|(_, n)| {
            n.iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn series(root: &Root, path: &Path, c: &CertInfo) -> CertSeries {
    CertSeries {
        filepath: root.host_path(path).display().to_string(),
        subject_cn: c.cn().unwrap_or_default().to_string(),
        issuer_cn: issuer_cn(c),
        not_before: c.not_before.unix_timestamp(),
        not_after: c.not_after.unix_timestamp(),
    }
}

/// Every certificate that loaded: CAs, kubeadm's leaves and kubeconfigs, the kubelet's.
fn cert_series(scan: &Scan) -> Vec<CertSeries> {
    let mut out = Vec::new();
    for ca in scan.cas.values().filter_map(|r| r.as_ref().ok()) {
        if let Some(c) = &ca.cert {
            out.push(series(&scan.root, &ca.cert_path, c));
        }
    }
    for e in &scan.certs {
        if let Ok(Some(l)) = &e.state {
            let path = match &l.source {
                Source::Pki { cert_path, .. } => cert_path,
                Source::Kubeconfig { path, .. } => path,
            };
            out.push(series(&scan.root, path, &l.leaf));
        }
    }
    for k in &scan.kubelet {
        if let Ok(c) = &k.cert {
            out.push(series(&scan.root, &k.path, c));
        }
    }
    out
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// A HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Builds one metric family at a time: HELP, TYPE, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels_: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{} {value}", labels(labels_));
    }
}

/// A certificate series' value, given the scan time.
type SeriesValue = fn(&CertSeries, i64) -> i64;

/// The textfile for a scan taken at `now` (also the `x509_cert_expired` reference time and
/// the last scan timestamp).
pub fn render(scan: &Scan, counters: &Counters, now: OffsetDateTime) -> String {
    let certs = cert_series(scan);
    let mut o = Out(String::new());
    let x509: [(&str, &str, SeriesValue); 3] = [
        (
            "x509_cert_not_after",
            "The date after which the certificate expires, as a Unix timestamp.",
            |c, _| c.not_after,
        ),
        (
            "x509_cert_not_before",
            "The date before which the certificate is not valid, as a Unix timestamp.",
            |c, _| c.not_before,
        ),
        (
            "x509_cert_expired",
            "1 if the certificate has expired, else 0.",
            |c, now| i64::from(now > c.not_after),
        ),
    ];
    for (name, help, value) in x509 {
        o.family(name, "gauge", help);
        for c in &certs {
            let l = [
                ("filepath", c.filepath.as_str()),
                ("subject_CN", &c.subject_cn),
                ("issuer_CN", &c.issuer_cn),
            ];
            o.sample(name, &l, value(c, now.unix_timestamp()));
        }
    }
    o.family(
        "kubeadm_certd_scan_problems",
        "gauge",
        "Certificate files that could not be read in the last scan.",
    );
    o.sample("kubeadm_certd_scan_problems", &[], scan.problems().len());
    o.family(
        "kubeadm_certd_last_scan_timestamp_seconds",
        "gauge",
        "When the last scan ran, as a Unix timestamp.",
    );
    o.sample(
        "kubeadm_certd_last_scan_timestamp_seconds",
        &[],
        now.unix_timestamp(),
    );
    o.family(
        "kubeadm_certd_last_renewal_timestamp_seconds",
        "gauge",
        "When a certificate was last renewed successfully, as a Unix timestamp (absent until then).",
    );
    if let Some(t) = counters.last_renewal {
        o.sample(
            "kubeadm_certd_last_renewal_timestamp_seconds",
            &[],
            t.unix_timestamp(),
        );
    }
    o.family(
        "kubeadm_certd_renewals_total",
        "counter",
        "Certificate renewals since the daemon started, by result.",
    );
    o.sample(
        "kubeadm_certd_renewals_total",
        &[("result", "ok")],
        counters.renewals.ok,
    );
    o.sample(
        "kubeadm_certd_renewals_total",
        &[("result", "failed")],
        counters.renewals.failed,
    );
    o.family(
        "kubeadm_certd_renewal_refused",
        "gauge",
        "1 for each certificate the last scan refused to renew (see the journal for why).",
    );
    for name in &counters.refused {
        o.sample("kubeadm_certd_renewal_refused", &[("cert", name)], 1);
    }
    o.family(
        "kubeadm_certd_cycles_total",
        "counter",
        "Scan cycles since the daemon started, by trigger (start, timer, change).",
    );
    for (trigger, n) in &counters.cycles {
        o.sample("kubeadm_certd_cycles_total", &[("trigger", trigger)], *n);
    }
    o.family(
        "kubeadm_certd_restarts_total",
        "counter",
        "Component restarts since the daemon started, by component and result.",
    );
    for (component, n) in &counters.restarts {
        o.sample(
            "kubeadm_certd_restarts_total",
            &[("component", component), ("result", "ok")],
            n.ok,
        );
        o.sample(
            "kubeadm_certd_restarts_total",
            &[("component", component), ("result", "failed")],
            n.failed,
        );
    }
    render_guard(&mut o, &counters.guard);
    if let Some(g) = &counters.cluster {
        cluster_gauges(&mut o, g);
    }
    if let Some(g) = counters.kube.read() {
        kube_gauges(&mut o, &g, now);
    }
    rotation_gauges(&mut o, counters.rotation.as_ref());
    o.0
}

/// A CSR pending longer than this counts in `kubeadm_certd_csr_pending_stale`.
pub const CSR_PENDING_STALE: time::Duration = time::Duration::minutes(5);

fn kube_gauges(o: &mut Out, g: &KubeGauges, now: OffsetDateTime) {
    if let Some(r) = g.api_reachable {
        o.family(
            "kubeadm_certd_api_reachable",
            "gauge",
            "1 if the last call to the Kubernetes API (admin.conf) got through, else 0.",
        );
        o.sample("kubeadm_certd_api_reachable", &[], u8::from(r));
    }
    if !g.approver_on {
        return;
    }
    o.family(
        "kubeadm_certd_csr_approved_total",
        "counter",
        "Kubelet serving CSRs this daemon approved since it started.",
    );
    o.sample("kubeadm_certd_csr_approved_total", &[], g.approved);
    o.family(
        "kubeadm_certd_csr_denied_total",
        "counter",
        "Kubelet serving CSRs not approved, by the first rule they failed and the action (denied, or left_pending when approver.deny is false).",
    );
    // Every rule and action from 0, so that increase() sees the first denial of each.
    for rule in crate::plan::approve::Rule::ALL {
        for action in ["denied", "left_pending"] {
            let n = g
                .denied
                .get(&(rule.label().to_string(), action.to_string()))
                .copied()
                .unwrap_or(0);
            o.sample(
                "kubeadm_certd_csr_denied_total",
                &[("rule", rule.label()), ("action", action)],
                n,
            );
        }
    }
    o.family(
        "kubeadm_certd_csr_pending_stale",
        "gauge",
        "Kubelet serving CSRs pending for more than 5 minutes.",
    );
    let stale = g
        .pending_created
        .iter()
        .filter(|c| c.is_some_and(|c| now - c > CSR_PENDING_STALE))
        .count();
    o.sample("kubeadm_certd_csr_pending_stale", &[], stale);
}

/// The rotation gauges: the phase of the etcd CA always (0 until a rotation is seen), its
/// progress and last progress while a record exists.
fn rotation_gauges(o: &mut Out, g: Option<&RotationGauges>) {
    let default = RotationGauges::of("etcd-ca", None);
    let g = g.unwrap_or(&default);
    let ca = [("ca", g.ca.as_str())];
    o.family(
        "kubeadm_certd_ca_rotation_phase",
        "gauge",
        "The CA rotation's phase: 0 none under way, 1 trust-both, 2 reissue, 3 trust-new, 4 reissue-old (abort), 5 untrust-new (abort).",
    );
    o.sample("kubeadm_certd_ca_rotation_phase", &ca, g.phase);
    o.family(
        "kubeadm_certd_ca_rotation_progress",
        "gauge",
        "The CA rotation's progress: node steps done over node steps in all its phases (1 when complete).",
    );
    if let Some(p) = g.progress {
        o.sample("kubeadm_certd_ca_rotation_progress", &ca, format!("{p:.3}"));
    }
    o.family(
        "kubeadm_certd_ca_rotation_last_progress_timestamp_seconds",
        "gauge",
        "When the CA rotation last progressed (a node's step or a phase), as a Unix timestamp.",
    );
    if let Some(t) = g.last_progress {
        o.sample(
            "kubeadm_certd_ca_rotation_last_progress_timestamp_seconds",
            &ca,
            t,
        );
    }
}

fn cluster_gauges(o: &mut Out, g: &ClusterGauges) {
    let rows: [(&str, &str, String); 4] = [
        (
            "kubeadm_certd_lock_wait_seconds",
            "How long this node has been waiting for the cluster-wide restart lock, across attempts while its restarts stay owed (0 when it is not waiting).",
            format!("{:.3}", g.lock_wait_ms() as f64 / 1000.0),
        ),
        (
            "kubeadm_certd_lock_held",
            "1 while this node holds the cluster-wide restart lock, else 0.",
            u8::from(g.lock_held).to_string(),
        ),
        (
            "kubeadm_certd_halt_present",
            "1 while a halt record stops restarts on every node (`kubeadm-certd cluster resume`), else 0.",
            u8::from(g.halt_present).to_string(),
        ),
        (
            "kubeadm_certd_etcd_members_healthy",
            "Voting etcd members that answered Status.",
            g.members_healthy.to_string(),
        ),
    ];
    for (name, help, v) in rows {
        o.family(name, "gauge", help);
        o.sample(name, &[], v);
    }
}

fn render_guard(o: &mut Out, g: &GuardGauges) {
    o.family(
        "kubeadm_certd_renewal_blocked_by_ca",
        "gauge",
        "1 for a due certificate not renewed because its CA's NotAfter leaves nothing to gain.",
    );
    for (name, ca) in &g.blocked_by_ca {
        o.sample(
            "kubeadm_certd_renewal_blocked_by_ca",
            &[("cert", name), ("ca", ca)],
            1,
        );
    }
    o.family(
        "kubeadm_certd_restart_budget_exhausted",
        "gauge",
        "1 for a component the daemon stopped restarting (restart.maxPerDay reached in 24 h).",
    );
    for c in &g.restart_budget_spent {
        o.sample(
            "kubeadm_certd_restart_budget_exhausted",
            &[("component", c)],
            1,
        );
    }
    o.family(
        "kubeadm_certd_clock_deferred",
        "gauge",
        "1 if the last cycle deferred renewals because of the clock (unsynchronised or behind).",
    );
    o.sample(
        "kubeadm_certd_clock_deferred",
        &[],
        i32::from(g.clock_deferred),
    );
}

/// Why the textfile was not written.
#[derive(Debug, thiserror::Error)]
pub enum TextfileError {
    /// Its directory does not exist: node_exporter's textfile collector is not set up there,
    /// and creating directories for a collector that is not there helps nobody.
    #[error(
        "the directory {0} does not exist (is node_exporter's textfile collector set up there?)"
    )]
    NoDirectory(String),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] anyhow::Error),
}

/// Write the textfile atomically (temp file in the same directory, then rename), only when
/// its directory exists. A new file is 0644; an existing one keeps its mode. The temp file's
/// name does not end in `.prom`, so node_exporter never reads a partial file.
pub fn write_textfile(path: &Path, text: &str) -> Result<(), TextfileError> {
    if let Some(dir) = path.parent() {
        if !dir.is_dir() {
            return Err(TextfileError::NoDirectory(dir.display().to_string()));
        }
    }
    Ok(atomic::write_atomic(path, text.as_bytes(), 0o644)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
        assert_eq!(labels(&[("k", "v\"")]), r#"{k="v\""}"#);
        assert_eq!(labels(&[]), "");
        assert_eq!(escape_help("x\\y\nz"), r"x\\y\nz");
    }

    #[test]
    fn counters_count() {
        let mut c = Counters::default();
        let t = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        c.renewal_failed();
        assert_eq!(c.last_renewal, None);
        c.renewal_ok(t);
        c.restart("etcd", true);
        c.restart("etcd", false);
        c.restart("etcd", true);
        assert_eq!(c.renewals, Counts { ok: 1, failed: 1 });
        assert_eq!(c.last_renewal, Some(t));
        assert_eq!(c.restarts["etcd"], Counts { ok: 2, failed: 1 });
    }
}
