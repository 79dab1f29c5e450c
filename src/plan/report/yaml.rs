//! `-o yaml`: the JSON document, printed as kubeadm's YAML printer prints it.
//!
//! kubeadm's `-o yaml` is cli-runtime's `printers.YAMLPrinter`
//! (`staging/src/k8s.io/cli-runtime/pkg/printers/yaml.go`): `sigs.k8s.io/yaml.Marshal(obj)`,
//! which encodes the object to JSON, decodes that into generic maps (`JSONToYAML`) and encodes
//! them with go-yaml v2. So the YAML carries exactly the JSON's fields, and go-yaml decides the
//! layout:
//! - map keys sorted (for ASCII keys of letters, byte order);
//! - two-space indentation, with a sequence's `- ` at its parent key's indentation;
//! - a string that would read back as something else (a bool, null, number or timestamp) is
//!   double-quoted: `"2026-12-07T10:00:00Z"`, as `kubectl get -o yaml` shows
//!   `creationTimestamp`; one that cannot be plain (leading indicator, `: `, ` #`, edge
//!   spaces) is single-quoted; the rest is plain (go-yaml v2 `encode.go` `stringv` and
//!   libyaml's `yaml_emitter_analyze_scalar`, in kubernetes-sigs/yaml's `goyaml.v2`);
//! - `null`, `true`/`false`, numbers as in JSON; `[]` and `{}` for empty collections.
//!
//! Not reproduced: go-yaml folds plain strings longer than 80 columns at spaces; the fields
//! kubeadm prints never are, only our kubelet `note` could be (it stays on one line).

use serde_json::{Map, Value};

/// The YAML form of a JSON document; `None` when `json` does not parse (a bug upstream).
pub fn json_to_yaml(json: &str) -> Option<String> {
    serde_json::from_str(json).ok().map(|v| to_yaml(&v))
}

/// The YAML form of a JSON value.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => seq(a, 0, false, &mut out),
        _ => {
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
    out
}

fn pad(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A map's entries at `indent`; `inline`: the first entry follows a `- ` already written.
fn map(m: &Map<String, Value>, indent: usize, inline: bool, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for (i, k) in keys.into_iter().enumerate() {
        if !(inline && i == 0) {
            pad(indent, out);
        }
        out.push_str(&string(k));
        out.push(':');
        match &m[k] {
            Value::Object(c) if !c.is_empty() => {
                out.push('\n');
                map(c, indent + 2, false, out);
            }
            Value::Array(a) if !a.is_empty() => {
                out.push('\n');
                seq(a, indent, false, out);
            }
            v => {
                out.push(' ');
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

/// A sequence's items, each `- ` at `indent`.
fn seq(a: &[Value], indent: usize, inline: bool, out: &mut String) {
    for (i, v) in a.iter().enumerate() {
        if !(inline && i == 0) {
            pad(indent, out);
        }
        out.push_str("- ");
        match v {
            Value::Object(c) if !c.is_empty() => map(c, indent + 2, true, out),
            Value::Array(s) if !s.is_empty() => seq(s, indent + 2, true, out),
            v => {
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// go-yaml v2's choice (encode.go `stringv`, then libyaml's `yaml_emitter_select_scalar_style`):
/// a string that would read back as another type is double-quoted; one that is a string
/// either way is plain unless the emitter's analysis forbids it, then single-quoted, or
/// double-quoted when single quotes cannot hold it (tabs, control characters, breaks).
fn string(s: &str) -> String {
    if s.is_empty() || resolves_to_non_string(s) || is_base60_float(s) {
        return double_quoted(s);
    }
    if s.chars().any(char::is_control) {
        return double_quoted(s);
    }
    if plain_allowed(s) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// libyaml's `yaml_emitter_analyze_scalar` for a one-line string in block context: no
/// leading or trailing space, no document marker, no indicator where it would mean one.
fn plain_allowed(s: &str) -> bool {
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return false;
    }
    let b: Vec<char> = s.chars().collect();
    let blank_after = |i: usize| b.get(i + 1).is_none_or(|c| c.is_whitespace());
    !b.iter().enumerate().any(|(i, &c)| {
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => blank_after(i),
                _ => false,
            }
        } else {
            match c {
                ':' => blank_after(i),
                '#' => b[i - 1].is_whitespace(),
                _ => false,
            }
        }
    })
}

/// go-yaml v2 double-quotes sexagesimal numbers (`1:20`) for YAML 1.1 readers:
/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = body.split_once('.').unwrap_or((body, ""));
    if !frac.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return false;
    }
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.starts_with(|c: char| c.is_ascii_digit())
        && head.chars().all(|c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    head_ok
        && !rest.is_empty()
        && rest.iter().all(|p| {
            let d: Vec<char> = p.chars().collect();
            match d.as_slice() {
                [x] => x.is_ascii_digit(),
                [x, y] => ('0'..='5').contains(x) && y.is_ascii_digit(),
                _ => false,
            }
        })
}

/// go-yaml v2's `resolve` for a plain scalar: the words and forms it reads as bool, null,
/// number or timestamp.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let body = s.trim_start_matches(['+', '-']);
    let numeric = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "._xXoObB+-".contains(c))
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if numeric && (s.parse::<f64>().is_ok() || body.replace('_', "").parse::<u64>().is_ok()) {
        return true;
    }
    if numeric && (body.starts_with("0x") || body.starts_with("0b") || body.starts_with("0o")) {
        return true;
    }
    // Timestamps: YYYY-M-D, optionally followed by a time.
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_style_layout() {
        let json = r#"{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3",
            "certificates":[{"name":"admin.conf","expirationDate":"2027-12-07T10:00:00Z",
            "residualTime":31536000,"externallyManaged":false,"caName":"ca","missing":false}],
            "certificateAuthorities":null,"kubeletCertificates":[],"nested":{"a":{"b":[[1,2]]}}}"#;
        let want = "\
apiVersion: output.kubeadm.k8s.io/v1alpha3
certificateAuthorities: null
certificates:
- caName: ca
  expirationDate: \"2027-12-07T10:00:00Z\"
  externallyManaged: false
  missing: false
  name: admin.conf
  residualTime: 31536000
kind: CertificateExpirationInfo
kubeletCertificates: []
nested:
  a:
    b:
    - - 1
      - 2
";
        assert_eq!(json_to_yaml(json).unwrap(), want);
    }

    #[test]
    fn strings_are_quoted_as_go_yaml_quotes_them() {
        // Would read back as another type: double quotes.
        for s in [
            "",
            "true",
            "no",
            "ON",
            "null",
            "~",
            "42",
            "-1",
            "3.5",
            "1e3",
            "0x1F",
            ".inf",
            "2026-12-07",
            "2026-12-07T10:00:00Z",
            "1:20",
            "<<",
        ] {
            assert_eq!(string(s), format!("\"{s}\""), "{s:?}");
        }
        // A string either way, but not plain: single quotes.
        for (s, want) in [
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            ("- x", "'- x'"),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("x:", "'x:'"),
            ("{a}", "'{a}'"),
            ("*ref", "'*ref'"),
            ("'q'", "'''q'''"),
            ("a #b", "'a #b'"),
            ("---x", "'---x'"),
        ] {
            assert_eq!(string(s), want, "{s:?}");
        }
        // Plain.
        for s in [
            "ca",
            "etcd-ca",
            "admin.conf",
            "/etc/kubernetes/pki/ca.crt",
            "renew-due",
            "a-b:c",
            "v1.31",
            "kubelet-client-current.pem",
            "1.2.3",
            "-x",
            "a#b",
            "<current>&.pem",
            "it's",
        ] {
            assert_eq!(string(s), s);
        }
        // Control characters: double quotes, escaped.
        assert_eq!(string("say \"hi\"\\\n"), "\"say \\\"hi\\\"\\\\\\n\"");
    }
}
