//! The metric and label names a PromQL expression uses, by a small tokenizer: enough for the
//! expressions in monitoring/ (promtool checks the syntax; this only collects names).

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct Used {
    pub metrics: BTreeSet<String>,
    pub labels: BTreeSet<String>,
}

const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end",
];
/// Aggregation operators: not metrics even when `by (...)` follows instead of `(`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

pub fn used(expr: &str) -> Used {
    let mut u = Used::default();
    let c: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // Skip a quoted string starting at c[i]; returns the index after it.
    let skip_string = |mut i: usize| -> usize {
        let q = c[i];
        i += 1;
        while i < c.len() && c[i] != q {
            i += if c[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(i);
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
        } else if ch == '{' {
            // Matchers: name op "value", ...
            i += 1;
            while i < c.len() && c[i] != '}' {
                if c[i] == '"' || c[i] == '\'' || c[i] == '`' {
                    i = skip_string(i);
                } else if ident_char(c[i]) {
                    let s = i;
                    while i < c.len() && ident_char(c[i]) {
                        i += 1;
                    }
                    let name: String = c[s..i].iter().collect();
                    if name != "__name__" {
                        u.labels.insert(name);
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < c.len() && (ident_char(c[i]) || c[i] == '.') {
                i += 1;
            }
        } else if ident_char(ch) {
            let s = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[s..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let call = j < c.len() && c[j] == '(';
            if LABEL_LISTS.contains(&word.as_str()) {
                if call {
                    let close = c[j..].iter().position(|&x| x == ')').unwrap() + j;
                    let list: String = c[j + 1..close].iter().collect();
                    u.labels.extend(
                        list.split(',')
                            .map(|l| l.trim().to_string())
                            .filter(|l| !l.is_empty()),
                    );
                    i = close + 1;
                }
            } else if !call
                && !KEYWORDS.contains(&word.to_lowercase().as_str())
                && !AGGREGATIONS.contains(&word.as_str())
            {
                u.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    u
}

/// The label names an annotation or label template reads (`$labels.NAME`).
pub fn template_labels(text: &str) -> BTreeSet<String> {
    text.split("$labels.")
        .skip(1)
        .map(|r| {
            r.chars()
                .take_while(|&c| ident_char(c) && c != ':')
                .collect()
        })
        .collect()
}

#[test]
fn tokenizer() {
    let u = used(
        r#"sum by (instance, job) (increase(a_total{result="fa}il",x=~"y"}[5m])) > on(z) group_left() b:c offset 3h unless vector(1) and d"#,
    );
    let m: Vec<&str> = u.metrics.iter().map(String::as_str).collect();
    assert_eq!(m, ["a_total", "b:c", "d"]);
    let l: Vec<&str> = u.labels.iter().map(String::as_str).collect();
    assert_eq!(l, ["instance", "job", "result", "x", "z"]);
    let t: Vec<String> = template_labels("{{ $labels.a }} {{$labels.b_c}}")
        .into_iter()
        .collect();
    assert_eq!(t, ["a", "b_c"]);
}
