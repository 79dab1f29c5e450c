//! What the rules and the dashboard use (PromQL expressions, label templates) against what
//! the binary writes (the fleet's textfiles plus the scrape labels).

use super::nodes::Fleet;
use super::promql::{template_labels, used};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Labels Prometheus adds to every scraped series.
pub const SCRAPE_LABELS: &[&str] = &["instance", "job"];

/// Metric and label names in the samples of every textfile the binary wrote for the fleet.
pub fn written() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut metrics = BTreeSet::new();
    let mut labels: BTreeSet<String> = SCRAPE_LABELS.iter().map(|s| s.to_string()).collect();
    for (_, t) in Fleet::get().all() {
        for s in &t.samples {
            metrics.insert(s.name.clone());
            labels.extend(s.labels.keys().cloned());
        }
    }
    (metrics, labels)
}

/// The dashboard.
pub fn dashboard() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/kubeadm-certd.dashboard.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Every value of `key` that is a string, anywhere in `v`.
pub fn strings_of(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_of(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, key, out)),
        _ => {}
    }
}

/// A dashboard expression as Prometheus would receive it: Grafana's interval variables
/// replaced (`$instance` only occurs inside regex strings, where it stays as it is).
pub fn as_promql(expr: &str) -> String {
    ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(expr.to_string(), |e, v| e.replace(v, "5m"))
}

/// Names in `exprs` (and label templates `{{label}}` / `$labels.x` in `templates`) that the
/// binary does not write; `extra_metrics` are allowed too (recorded series, `up`).
pub fn unknown_names(
    exprs: &[String],
    templates: &[String],
    extra_metrics: &BTreeSet<String>,
) -> Vec<String> {
    let (metrics, labels) = written();
    let mut bad = Vec::new();
    for e in exprs {
        let u = used(e);
        // Only the thresholds are constants; anything else without a name is a tokenizer miss.
        if u.metrics.is_empty() && !e.trim_start().starts_with("vector(") {
            bad.push(format!("no metric found in {e:?}"));
        }
        for m in u.metrics {
            if !metrics.contains(&m) && !extra_metrics.contains(&m) {
                bad.push(format!("metric {m} (in {e:?})"));
            }
        }
        for l in u.labels {
            if !labels.contains(&l) {
                bad.push(format!("label {l} (in {e:?})"));
            }
        }
    }
    for t in templates {
        let mut ls = template_labels(t);
        // Grafana legends: {{label}}.
        ls.extend(
            t.split("{{")
                .skip(1)
                .filter_map(|r| r.split_once("}}").map(|(l, _)| l.trim().to_string()))
                .filter(|l| !l.starts_with('$') && !l.is_empty()),
        );
        for l in ls {
            if !labels.contains(&l) {
                bad.push(format!("label {l} (in template {t:?})"));
            }
        }
    }
    bad
}
