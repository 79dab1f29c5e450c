//! promtool: found on PATH (missing fails under CI=true), run on files, and the unit-test
//! files generated from the binary's textfiles.

use super::textfile::Textfile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's rules file.
pub fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring/kubeadm-certd.rules.yaml")
}

/// Whether promtool is on PATH. Missing skips locally (the caller says so) but panics under
/// CI=true: scripts/test installs it, so there a missing promtool is a failure.
pub fn require_promtool() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("promtool").is_file()));
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("promtool not found in PATH but CI=true: install the Debian package prometheus");
    }
    if !found {
        eprintln!("promtool not found: skipping (install the Debian package prometheus)");
    }
    found
}

/// `promtool <args>`; panics with its output unless it succeeds.
pub fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Minutes covered by every timeline (one sample a minute, as a 1m scrape would).
pub const END_MIN: u64 = 300;

/// What node_exporter exported for one node over time: each textfile from its start minute
/// until the next one starts. Scrape labels: `instance` as given, `job="node"`.
pub struct Timeline<'a> {
    pub instance: String,
    pub snaps: Vec<(u64, &'a Textfile)>,
}

impl<'a> Timeline<'a> {
    pub fn new(instance: &str, snaps: &[(u64, &'a Textfile)]) -> Timeline<'a> {
        Timeline {
            instance: format!("{instance}:9100"),
            snaps: snaps.to_vec(),
        }
    }

    /// promtool evaluates from t=0 (2.42 has no start time), so every textfile is placed on the
    /// test clock at its start minute: its Unix-timestamp values (the families whose HELP says
    /// so) move by the same amount, which keeps every "time left" and "age" the binary wrote.
    pub fn shift(&self, i: usize) -> f64 {
        let (start, t) = self.snaps[i];
        (t.scan_time() - (start * 60) as i64) as f64
    }

    /// A sample's value as the test clock sees it.
    pub fn value(&self, i: usize, name: &str, v: f64) -> f64 {
        if self.snaps[i].1.is_timestamp(name) {
            v - self.shift(i)
        } else {
            v
        }
    }

    pub fn input_series(&self) -> Vec<Value> {
        let mut series: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        let slots = END_MIN as usize + 1;
        for (i, (start, t)) in self.snaps.iter().enumerate() {
            let end = self.snaps.get(i + 1).map_or(slots, |s| s.0 as usize);
            for s in &t.samples {
                let key = selector(&s.name, &s.labels, &self.instance);
                let v = series.entry(key).or_insert_with(|| vec![None; slots]);
                for slot in v.iter_mut().take(end).skip(*start as usize) {
                    *slot = Some(self.value(i, &s.name, s.value));
                }
            }
        }
        // node_exporter itself is up for the whole timeline.
        let up = selector("up", &BTreeMap::new(), &self.instance);
        series.insert(up, vec![Some(1.0); slots]);
        series
            .into_iter()
            .map(|(k, v)| json!({"series": k, "values": values(&v)}))
            .collect()
    }
}

/// `name{label="value",...}` with the scrape labels added.
pub fn selector(name: &str, labels: &BTreeMap<String, String>, instance: &str) -> String {
    let mut all = labels.clone();
    all.insert("instance".into(), instance.into());
    all.insert("job".into(), "node".into());
    let inner: Vec<String> = all
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// promtool's expanding notation: `v+0xN` for N+1 equal samples, `_xN` for N missing ones,
/// `stale` where a series disappears from the file.
fn values(v: &[Option<f64>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let run = v[i..].iter().take_while(|x| **x == v[i]).count();
        match v[i] {
            Some(x) => out.push(format!("{x}+0x{}", run - 1)),
            None if i > 0 => {
                out.push("stale".into());
                if run > 1 {
                    out.push(format!("_x{}", run - 1));
                }
            }
            None => out.push(format!("_x{run}")),
        }
        i += run;
    }
    out.join(" ")
}

/// An alert expected at an evaluation: its labels, and its value for the annotations.
pub struct Expected {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One promtool test group: these timelines, `alert` evaluated at `eval_min`.
pub fn group(timelines: &[Timeline], alert: &str, eval_min: u64, exp: &[Expected]) -> Value {
    let rule = alert_rule(alert);
    let input: Vec<Value> = timelines.iter().flat_map(|t| t.input_series()).collect();
    let exp_alerts: Vec<Value> = exp
        .iter()
        .map(|e| {
            let mut labels = e.labels.clone();
            for (k, v) in rule["labels"].as_object().unwrap() {
                labels.insert(k.clone(), v.as_str().unwrap().to_string());
            }
            let ann: BTreeMap<&String, String> = rule["annotations"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k, render(v.as_str().unwrap(), &e.labels, e.value)))
                .collect();
            json!({"exp_labels": labels, "exp_annotations": ann})
        })
        .collect();
    json!({
        "interval": "1m",
        "input_series": input,
        "alert_rule_test": [{
            "eval_time": format!("{eval_min}m"),
            "alertname": alert,
            "exp_alerts": exp_alerts,
        }],
    })
}

/// Write a promtool unit-test file for `groups` into `dir` and run `promtool test rules`.
pub fn run_tests(dir: &Path, name: &str, groups: Vec<Value>) -> String {
    // promtool evaluates the groups in a random order unless told (2.42 sorts them unstably).
    let order: Vec<Value> = rules()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].clone())
        .collect();
    let doc = json!({
        "rule_files": [rules_file()],
        "evaluation_interval": "1m",
        "group_eval_order": order,
        "tests": groups,
    });
    let path = dir.join(format!("{name}.test.yaml"));
    // JSON is YAML; promtool reads it as such.
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    promtool(&["test", "rules", path.to_str().unwrap()])
}

/// The rules file as JSON.
pub fn rules() -> Value {
    let text = std::fs::read_to_string(rules_file()).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// The alerting rule named `alert`.
pub fn alert_rule(alert: &str) -> Value {
    let all = rules();
    let hit = all["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .find(|r| r["alert"] == alert);
    hit.unwrap_or_else(|| panic!("no alert {alert}")).clone()
}

/// The two template actions the annotations use, as Prometheus renders them; any other
/// action fails the test (extend this when the annotations grow).
fn render(template: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let close = rest[open..].find("}}").unwrap() + open;
        let action = rest[open + 2..close].trim();
        if let Some(l) = action.strip_prefix("$labels.") {
            out.push_str(labels.get(l).unwrap_or_else(|| panic!("no label {l}")));
        } else if action == "$value" {
            // Go's %v of a float64: shortest form, no ".0" on whole numbers (as Rust's {}).
            out.push_str(&value.to_string());
        } else if action == "$value | humanizeDuration" {
            out.push_str(&humanize_duration(value));
        } else {
            panic!("template action {action:?} not handled by the test");
        }
        rest = &rest[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Prometheus' humanizeDuration for |v| >= 1 (every value the tests render).
pub fn humanize_duration(v: f64) -> String {
    assert!(v.abs() >= 1.0, "{v}");
    let sign = if v < 0.0 { "-" } else { "" };
    let d = v.abs() as i64;
    let (s, m, h, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86_400);
    if days != 0 {
        format!("{sign}{days}d {h}h {m}m {s}s")
    } else if h != 0 {
        format!("{sign}{h}h {m}m {s}s")
    } else if m != 0 {
        format!("{sign}{m}m {s}s")
    } else {
        format!("{sign}{}s", v.abs())
    }
}
