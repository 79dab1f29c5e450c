//! The metrics textfile on a built node: x509-certificate-exporter's names and labels for every
//! certificate, values read independently from the files, kubeadm-certd's counters, the text
//! exposition format checked line by line, and the atomic write.

use base64::Engine;
use kubeadm_certd::act::metrics::{render, write_textfile, Counters};
use kubeadm_certd::config::Settings;
use kubeadm_certd::node::paths::Root;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

type Labels = BTreeMap<String, String>;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic() || c == '_' || (colon && c == ':') || (!first && c.is_ascii_digit())
    };
    let mut it = s.chars();
    it.next().is_some_and(|c| ok(c, true)) && it.all(|c| ok(c, false))
}

/// `name{label="value",...} value`, as the classic text format defines it (no timestamps).
fn parse_sample(line: &str) -> Option<Sample> {
    let end = line.find(['{', ' '])?;
    let name = &line[..end];
    if !is_name(name, true) {
        return None;
    }
    let mut rest = &line[end..];
    let mut labels = Labels::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        while let Some(eq) = rest.find('=') {
            let lname = &rest[..eq];
            if !is_name(lname, false) {
                return None;
            }
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            loop {
                match chars.next()? {
                    (i, '"') => {
                        rest = &rest[i + 1..];
                        break;
                    }
                    (_, '\\') => match chars.next()?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        _ => return None,
                    },
                    (_, '\n') => return None,
                    (_, c) => value.push(c),
                }
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return None;
            }
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => break,
            }
        }
        rest = rest.strip_prefix('}')?;
    }
    let value = rest.strip_prefix(' ')?;
    if value.contains(' ') {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value: value.parse().ok()?,
    })
}

/// Parse the whole file, checking HELP/TYPE for every family before its samples, each family
/// declared once and contiguous, and the final newline.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    assert!(text.ends_with('\n'), "no final newline");
    let mut types = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# HELP ") {
            let (name, help) = h.split_once(' ').unwrap();
            assert!(is_name(name, true) && !help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "second HELP for {name}");
            current = name.to_string();
        } else if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            assert_eq!(name, current, "TYPE not right after its HELP: {line}");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
        } else {
            let s = parse_sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            assert_eq!(s.name, current, "sample outside its family: {line}");
            assert!(types.contains_key(&s.name), "sample before TYPE: {line}");
            samples.push(s);
        }
    }
    for (name, kind) in &types {
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{name}");
        }
    }
    (types, samples)
}

fn der_of_pem(pem: &[u8]) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    p.contents
}

/// (not_after, not_before, subject CN, issuer CN), read with x509-parser directly.
fn facts(der: &[u8]) -> (i64, i64, String, String) {
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let cn = |n: &x509_parser::x509::X509Name| {
        n.iter_common_name()
            .next()
            .map(|a| a.as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    (
        c.validity().not_after.timestamp(),
        c.validity().not_before.timestamp(),
        cn(c.subject()),
        cn(c.issuer()),
    )
}

fn kubeconfig_cert(path: &Path) -> Vec<u8> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let b64 = doc["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap();
    der_of_pem(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
}

#[test]
fn textfile_for_a_built_node() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let built =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let mut spec = NodeSpec::new(built);
    spec.key = KeyAlg::EcP256;
    build(root, &spec).unwrap();

    // A kubelet serving certificate whose CN needs escaping.
    let weird = "we\"ird\\no\nde";
    let mut p = rcgen::CertificateParams::new(vec!["cp1".to_string()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, weird);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    std::fs::write(root.join("var/lib/kubelet/pki/kubelet.crt"), cert.pem()).unwrap();

    let paths = Settings::default().paths(&Root::new(root));
    let scan = kubeadm_certd::plan::scan::scan(&paths);
    let mut counters = Counters::default();
    let renewed = built + Duration::from_secs(60);
    counters.renewal_ok(renewed);
    counters.renewal_failed();
    counters.restart("etcd", true);
    counters.restart("kube-apiserver", false);
    // Leaves (3 days left) have expired at this time; CAs and kubelet.crt have not.
    let at = built + Duration::from_secs(4 * 86_400);
    let text = render(&scan, &counters, at);
    let (types, samples) = parse(&text);

    for (name, kind) in [
        ("x509_cert_not_after", "gauge"),
        ("x509_cert_not_before", "gauge"),
        ("x509_cert_expired", "gauge"),
        ("kubeadm_certd_last_scan_timestamp_seconds", "gauge"),
        ("kubeadm_certd_last_renewal_timestamp_seconds", "gauge"),
        ("kubeadm_certd_renewals_total", "counter"),
        ("kubeadm_certd_restarts_total", "counter"),
    ] {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name}\n{text}"
        );
    }

    // Every certificate on the node, by host path, with its file's values.
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut todo = vec![root.join("etc/kubernetes/pki")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "crt") {
                let host = format!("/{}", p.strip_prefix(root).unwrap().display());
                expected.insert(host, der_of_pem(&std::fs::read(&p).unwrap()));
            }
        }
    }
    for conf in [
        "admin.conf",
        "super-admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    ] {
        expected.insert(
            format!("/etc/kubernetes/{conf}"),
            kubeconfig_cert(&root.join("etc/kubernetes").join(conf)),
        );
    }
    for k in ["kubelet-client-current.pem", "kubelet.crt"] {
        let pem = std::fs::read(root.join("var/lib/kubelet/pki").join(k)).unwrap();
        expected.insert(format!("/var/lib/kubelet/pki/{k}"), der_of_pem(&pem));
    }
    assert_eq!(expected.len(), 16, "{:?}", expected.keys());

    let series = |name: &str| -> BTreeMap<String, &Sample> {
        let v: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
        let m: BTreeMap<String, &Sample> = v
            .iter()
            .map(|s| (s.labels["filepath"].clone(), *s))
            .collect();
        assert_eq!(m.len(), v.len(), "duplicate filepath in {name}");
        m
    };
    let (after, before, expired) = (
        series("x509_cert_not_after"),
        series("x509_cert_not_before"),
        series("x509_cert_expired"),
    );
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (path, der) in &expected {
        let (na, nb, subject, issuer) = facts(der);
        let s = after[path];
        let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["filepath", "issuer_CN", "subject_CN"], "{path}");
        assert_eq!(
            (
                s.labels["subject_CN"].as_str(),
                s.labels["issuer_CN"].as_str()
            ),
            (subject.as_str(), issuer.as_str()),
            "{path}"
        );
        assert_eq!(s.value, na as f64, "{path}");
        assert_eq!(before[path].value, nb as f64, "{path}");
        assert_eq!(before[path].labels, s.labels, "{path}");
        let want = if at.unix_timestamp() > na { 1.0 } else { 0.0 };
        assert_eq!(expired[path].value, want, "{path}");
    }
    assert_eq!(
        after["/etc/kubernetes/pki/apiserver.crt"].labels["subject_CN"],
        "kube-apiserver"
    );
    assert_eq!(
        after["/etc/kubernetes/pki/apiserver.crt"].labels["issuer_CN"],
        "kubernetes"
    );
    assert_eq!(
        after["/etc/kubernetes/admin.conf"].labels["subject_CN"],
        "kubernetes-admin"
    );
    assert_eq!(
        after["/var/lib/kubelet/pki/kubelet-client-current.pem"].labels["subject_CN"],
        "system:node:cp1"
    );
    assert_eq!(
        after["/var/lib/kubelet/pki/kubelet.crt"].labels["subject_CN"],
        weird
    );
    assert!(text.contains(r#"subject_CN="we\"ird\\no\nde""#), "{text}");
    assert_eq!(expired["/etc/kubernetes/pki/apiserver.crt"].value, 1.0);
    assert_eq!(expired["/etc/kubernetes/pki/ca.crt"].value, 0.0);
    assert_eq!(expired["/var/lib/kubelet/pki/kubelet.crt"].value, 0.0);

    let one = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let want: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let hits: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert_eq!(hits.len(), 1, "{name}{labels:?}\n{text}");
        hits[0].value
    };
    assert_eq!(
        one("kubeadm_certd_last_scan_timestamp_seconds", &[]),
        at.unix_timestamp() as f64
    );
    assert_eq!(
        one("kubeadm_certd_last_renewal_timestamp_seconds", &[]),
        renewed.unix_timestamp() as f64
    );
    assert_eq!(
        one("kubeadm_certd_renewals_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        one("kubeadm_certd_renewals_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(
        one(
            "kubeadm_certd_restarts_total",
            &[("component", "etcd"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        one(
            "kubeadm_certd_restarts_total",
            &[("component", "etcd"), ("result", "failed")]
        ),
        0.0
    );
    assert_eq!(
        one(
            "kubeadm_certd_restarts_total",
            &[("component", "kube-apiserver"), ("result", "failed")]
        ),
        1.0
    );

    // Never renewed: the family is declared, without a sample.
    let (types, samples) = parse(&render(&scan, &Counters::default(), at));
    assert!(types.contains_key("kubeadm_certd_last_renewal_timestamp_seconds"));
    assert!(samples
        .iter()
        .all(|s| s.name != "kubeadm_certd_last_renewal_timestamp_seconds"));
    assert!(samples
        .iter()
        .all(|s| s.name != "kubeadm_certd_restarts_total"));
}

#[test]
fn write_is_atomic_and_needs_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("var/lib/node_exporter/textfile_collector");
    let file = dir.join("kubeadm_certd.prom");
    // No collector directory: nothing is created, and the error says which directory.
    let e = write_textfile(&file, "# HELP a b\n# TYPE a gauge\na 1\n").unwrap_err();
    assert!(
        matches!(
            e,
            kubeadm_certd::act::metrics::TextfileError::NoDirectory(_)
        ),
        "{e}"
    );
    assert!(e.to_string().contains("textfile_collector"), "{e}");
    assert!(!d.path().join("var").exists());
    std::fs::create_dir_all(&dir).unwrap();
    write_textfile(&file, "# HELP a b\n# TYPE a gauge\na 1\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# HELP a b\n# TYPE a gauge\na 1\n"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o644
    );
    let first = std::fs::metadata(&file).unwrap().ino();

    write_textfile(&file, "# HELP a b\n# TYPE a gauge\na 2\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# HELP a b\n# TYPE a gauge\na 2\n"
    );
    // Replaced by a rename (a new inode), never rewritten in place where a reader could see half.
    assert_ne!(std::fs::metadata(&file).unwrap().ino(), first);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["kubeadm_certd.prom"], "temp files left behind");

    // The textfile path comes from the settings, under the root; empty means off.
    let root = Root::new(d.path());
    let on = kubeadm_certd::act::metrics::textfile_path(&root, &Settings::default()).unwrap();
    assert_eq!(
        on,
        d.path()
            .join("var/lib/node_exporter/textfile_collector/kubeadm_certd.prom")
    );
    let off = Settings::parse("metrics:\n  textfile: \"\"\n").unwrap();
    assert_eq!(
        kubeadm_certd::act::metrics::textfile_path(&root, &off),
        None
    );
}
