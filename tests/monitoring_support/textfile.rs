//! A reader for the node_exporter textfile the binary writes (the classic text format without
//! timestamps; tests/metrics.rs checks the format itself line by line).

use std::collections::BTreeMap;

/// Label name -> value.
pub type Labels = BTreeMap<String, String>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// A parsed textfile: every family's HELP text (families without samples included) and the
/// samples in file order.
#[derive(Debug, Clone, Default)]
pub struct Textfile {
    pub help: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Textfile {
    pub fn parse(text: &str) -> Textfile {
        let mut t = Textfile::default();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix("# HELP ") {
                let (name, help) = h.split_once(' ').expect("HELP line");
                t.help.insert(name.to_string(), help.to_string());
            } else if line.starts_with("# TYPE ") {
            } else {
                t.samples
                    .push(parse_sample(line).unwrap_or_else(|| panic!("bad line {line:?}")));
            }
        }
        t
    }

    /// The families whose value is a Unix timestamp, as their HELP text says.
    pub fn is_timestamp(&self, name: &str) -> bool {
        self.help
            .get(name)
            .is_some_and(|h| h.contains("as a Unix timestamp"))
    }

    /// The only sample of `name` whose labels include `with`.
    pub fn one(&self, name: &str, with: &[(&str, &str)]) -> &Sample {
        let hits = self.matching(name, with);
        assert_eq!(hits.len(), 1, "{name} {with:?}: {hits:?}");
        hits[0]
    }

    /// Every sample of `name` whose labels include `with`.
    pub fn matching(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && with
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// When the scan that wrote this file ran.
    pub fn scan_time(&self) -> i64 {
        self.one("kubeadm_certd_last_scan_timestamp_seconds", &[])
            .value as i64
    }

    /// Every family name the file declares and every label name its samples carry.
    pub fn names(&self) -> (Vec<String>, Vec<String>) {
        let mut labels: Vec<String> = self
            .samples
            .iter()
            .flat_map(|s| s.labels.keys().cloned())
            .collect();
        labels.sort();
        labels.dedup();
        (self.help.keys().cloned().collect(), labels)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let end = line.find(['{', ' '])?;
    let name = line[..end].to_string();
    let mut rest = &line[end..];
    let mut labels = Labels::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        while let Some(eq) = rest.find('=') {
            let lname = rest[..eq].to_string();
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
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.insert(lname, value);
            match rest.strip_prefix(',') {
                Some(r) => rest = r,
                None => break,
            }
        }
        rest = rest.strip_prefix('}')?;
    }
    Some(Sample {
        name,
        labels,
        value: rest.strip_prefix(' ')?.parse().ok()?,
    })
}
