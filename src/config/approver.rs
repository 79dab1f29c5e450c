//! The `approver:` config section: whether this node approves kubelet serving CSRs, with which
//! credentials, and the operator's extra limits on the names and addresses it approves.

use super::fragment::BoolOrWord;
use anyhow::{anyhow, bail, Result};
use ipnet::IpNet;
use serde::Deserialize;

/// The section as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApproverFragment {
    mode: Option<BoolOrWord>,
    kubeconfig: Option<String>,
    deny: Option<bool>,
    ip_prefixes: Option<Vec<String>>,
    dns_pattern: Option<String>,
}

/// `approver.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverMode {
    /// On, on a control-plane node that holds `approver.kubeconfig` (admin.conf).
    Auto,
    /// Always on (a missing kubeconfig is an error, reported as a standing condition).
    On,
    /// Never: `kubeadm-certd csr approve NAME` is the manual path.
    Off,
}

/// `approver.dnsPattern`, compiled. It must match the **whole** DNS name (it is anchored as
/// `\A(?:PATTERN)\z`), case-insensitively, and is applied to the name as the rules compare
/// it: lower-cased, without a trailing dot. `node\d+\.example\.com` therefore refuses
/// `node1.example.com.evil.org`, which an unanchored search would let through.
#[derive(Debug, Clone)]
pub struct DnsPattern {
    source: String,
    regex: regex::Regex,
}

impl DnsPattern {
    /// Compile `pattern`; the error names the key and the pattern.
    pub fn new(pattern: &str) -> Result<DnsPattern> {
        let regex = regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
            .case_insensitive(true)
            .build()
            .map_err(|e| {
                // regex's message spans lines (a caret diagram); keep the last line.
                let why = e.to_string();
                let why = why.lines().last().unwrap_or("invalid").trim().to_string();
                anyhow!("approver.dnsPattern: invalid regular expression \"{pattern}\": {why}")
            })?;
        Ok(DnsPattern {
            source: pattern.to_string(),
            regex,
        })
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// Validated `approver:` settings.
#[derive(Debug, Clone)]
pub struct ApproverSettings {
    /// auto | on | off
    pub mode: ApproverMode,
    /// Host path of the kubeconfig the approver uses (kubeadm's admin.conf).
    pub kubeconfig: String,
    /// Deny (rather than leave pending) a CSR that fails a rule.
    pub deny: bool,
    /// When not empty, every IP SAN must lie within one of these.
    pub ip_prefixes: Vec<IpNet>,
    /// When set, every DNS SAN must match it (whole name).
    pub dns_pattern: Option<DnsPattern>,
}

impl Default for ApproverSettings {
    fn default() -> Self {
        ApproverSettings {
            mode: ApproverMode::Auto,
            kubeconfig: "/etc/kubernetes/admin.conf".into(),
            deny: false,
            ip_prefixes: Vec::new(),
            dns_pattern: None,
        }
    }
}

/// One CIDR of `approver.ipPrefixes`. Host bits must be zero: `10.0.0.1/8` is most likely a
/// typo for an address or for `10.0.0.0/8`, and a limit on addresses should say what it means.
fn prefix(v: &str) -> Result<IpNet> {
    let net: IpNet = v.trim().parse().map_err(|_| {
        anyhow!("approver.ipPrefixes: {v:?} is not a CIDR (address/length, e.g. 10.0.0.0/8 or fd00::/8)")
    })?;
    if net.trunc() != net {
        bail!(
            "approver.ipPrefixes: {v:?} has bits set after its /{} prefix; did you mean {}?",
            net.prefix_len(),
            net.trunc()
        );
    }
    Ok(net)
}

impl ApproverSettings {
    /// Apply a fragment over the defaults and validate it.
    pub fn from_fragment(f: ApproverFragment) -> Result<ApproverSettings> {
        let mut s = ApproverSettings::default();
        if let Some(m) = f.mode {
            // YAML 1.1 readers (and people) write on/off as booleans; take both spellings.
            s.mode = match m {
                BoolOrWord::Bool(true) => ApproverMode::On,
                BoolOrWord::Bool(false) => ApproverMode::Off,
                BoolOrWord::Word(w) => match w.as_str() {
                    "auto" => ApproverMode::Auto,
                    "on" => ApproverMode::On,
                    "off" => ApproverMode::Off,
                    _ => bail!("approver.mode: must be auto, on or off, got {w:?}"),
                },
            };
        }
        if let Some(k) = f.kubeconfig {
            s.kubeconfig = super::fragment::abs_path("approver.kubeconfig", k)?;
        }
        if let Some(d) = f.deny {
            s.deny = d;
        }
        if let Some(p) = f.ip_prefixes {
            s.ip_prefixes = p.iter().map(|v| prefix(v)).collect::<Result<_>>()?;
        }
        if let Some(p) = f.dns_pattern {
            // "" means no pattern, as in config.example.yaml.
            if !p.is_empty() {
                s.dns_pattern = Some(DnsPattern::new(&p)?);
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{ApproverMode, Settings};

    fn err(text: &str) -> String {
        format!("{:#}", Settings::parse(text).unwrap_err())
    }

    #[test]
    fn defaults() {
        let a = Settings::parse("# nothing\n").unwrap().approver;
        assert_eq!(a.mode, ApproverMode::Auto);
        assert_eq!(a.kubeconfig, "/etc/kubernetes/admin.conf");
        assert!(!a.deny);
        assert!(a.ip_prefixes.is_empty());
        assert!(a.dns_pattern.is_none());
        let a = Settings::parse("approver: {}\n").unwrap().approver;
        assert_eq!(a.mode, ApproverMode::Auto);
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let text = include_str!("../../config.example.yaml");
        assert!(
            text.contains("\napprover:\n"),
            "config.example.yaml has approver:"
        );
        let a = Settings::parse(text).unwrap().approver;
        let d = crate::config::ApproverSettings::default();
        assert_eq!(
            (a.mode, &a.kubeconfig, a.deny, &a.ip_prefixes),
            (d.mode, &d.kubeconfig, d.deny, &d.ip_prefixes)
        );
        assert!(a.dns_pattern.is_none());
    }

    #[test]
    fn modes() {
        for (text, want) in [
            ("auto", ApproverMode::Auto),
            ("on", ApproverMode::On),
            ("off", ApproverMode::Off),
            ("\"on\"", ApproverMode::On),
            ("true", ApproverMode::On),
            ("false", ApproverMode::Off),
        ] {
            let s = Settings::parse(&format!("approver:\n  mode: {text}\n")).unwrap();
            assert_eq!(s.approver.mode, want, "{text}");
        }
        let e = err("approver:\n  mode: always\n");
        assert!(e.contains("approver.mode") && e.contains("always"), "{e}");
    }

    #[test]
    fn kubeconfig_must_be_absolute() {
        let s =
            Settings::parse("approver:\n  kubeconfig: /etc/kubernetes/super-admin.conf\n").unwrap();
        assert_eq!(s.approver.kubeconfig, "/etc/kubernetes/super-admin.conf");
        let e = err("approver:\n  kubeconfig: admin.conf\n");
        assert!(
            e.contains("approver.kubeconfig") && e.contains("admin.conf"),
            "{e}"
        );
    }

    #[test]
    fn deny_and_unknown_keys() {
        let s = Settings::parse("approver:\n  deny: true\n").unwrap();
        assert!(s.approver.deny);
        let e = err("approver:\n  denny: true\n");
        assert!(e.contains("denny"), "{e}");
    }

    #[test]
    fn ip_prefixes_are_validated_cidrs() {
        let s =
            Settings::parse("approver:\n  ipPrefixes: [10.0.0.0/8, \"fd00::/8\", 127.0.0.0/8]\n")
                .unwrap();
        let got: Vec<String> = s
            .approver
            .ip_prefixes
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.0/8", "fd00::/8", "127.0.0.0/8"]);
        for (bad, says) in [
            ("10.0.0.0", "not a CIDR"),
            ("10.0.0.0/33", "not a CIDR"),
            ("example.com/8", "not a CIDR"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("fd00::1/8", "did you mean fd00::/8"),
        ] {
            let e = err(&format!("approver:\n  ipPrefixes: [\"{bad}\"]\n"));
            assert!(
                e.contains("approver.ipPrefixes") && e.contains(bad) && e.contains(says),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn dns_pattern_is_validated_and_anchored() {
        let s = Settings::parse("approver:\n  dnsPattern: 'node\\d+\\.example\\.com'\n").unwrap();
        let p = s.approver.dns_pattern.unwrap();
        assert_eq!(p.as_str(), r"node\d+\.example\.com");
        assert!(p.is_match("node1.example.com"));
        assert!(
            p.is_match("NODE1.Example.COM"),
            "DNS names are case-insensitive"
        );
        assert!(
            !p.is_match("node1.example.com.evil.org"),
            "must match the whole name"
        );
        assert!(
            !p.is_match("evil-node1.example.com"),
            "must match the whole name"
        );
        assert!(!p.is_match("node1.example.com\nx"), "no multi-line escape");
        // An alternation stays inside the anchors.
        let p = crate::config::DnsPattern::new("a|b").unwrap();
        assert!(p.is_match("a") && p.is_match("b") && !p.is_match("ab") && !p.is_match("xa"));
        let s = Settings::parse("approver:\n  dnsPattern: \"\"\n").unwrap();
        assert!(s.approver.dns_pattern.is_none());
        let e = err("approver:\n  dnsPattern: 'node(\\d+'\n");
        assert!(
            e.contains("approver.dnsPattern") && e.contains("node(\\d+") && !e.contains('\n'),
            "{e}"
        );
    }
}
