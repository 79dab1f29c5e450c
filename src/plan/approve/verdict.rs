//! A verdict: what each rule says about one CSR, as lines for people and as JSON.

use crate::pki::csr_request::CsrRequest;
use serde::ser::SerializeStruct;
use serde::Serialize;

/// The rules, (a) to (h), in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// (a) signer `kubernetes.io/kubelet-serving`, not yet decided, no certificate.
    Signer,
    /// (b) requested by a node, for itself: username, groups, CN, O, self-signature.
    Requestor,
    /// (c) usages that kube-controller-manager's kubelet-serving signer accepts.
    Usages,
    /// (d) at least one DNS or IP SAN; no email, URI or other SAN.
    Sans,
    /// (e) the Node exists.
    NodeExists,
    /// (f) every IP SAN is the Node's own and nobody else's.
    IpSans,
    /// (g) every DNS SAN is the Node's own and nobody else's.
    DnsSans,
    /// (h) the node's own CSR, checked against the host itself.
    Attested,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 8] = [
        Rule::Signer,
        Rule::Requestor,
        Rule::Usages,
        Rule::Sans,
        Rule::NodeExists,
        Rule::IpSans,
        Rule::DnsSans,
        Rule::Attested,
    ];

    /// The stable kebab-case label (metrics' `rule` label, JSON).
    pub fn label(self) -> &'static str {
        match self {
            Rule::Signer => "signer",
            Rule::Requestor => "requestor",
            Rule::Usages => "usages",
            Rule::Sans => "sans",
            Rule::NodeExists => "node-exists",
            Rule::IpSans => "ip-sans",
            Rule::DnsSans => "dns-sans",
            Rule::Attested => "attested",
        }
    }

    /// The rule's letter in the README and the issue: `a` to `h`.
    pub fn letter(self) -> char {
        match self {
            Rule::Signer => 'a',
            Rule::Requestor => 'b',
            Rule::Usages => 'c',
            Rule::Sans => 'd',
            Rule::NodeExists => 'e',
            Rule::IpSans => 'f',
            Rule::DnsSans => 'g',
            Rule::Attested => 'h',
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// What one rule says, with the reason (a failure names the offending value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rule holds.
    Pass(String),
    /// The rule is broken: the CSR must not be approved.
    Fail(String),
    /// The rule does not apply (rule h for another node), or cannot be judged because an
    /// earlier rule failed.
    NotApplicable(String),
}

impl Outcome {
    /// `pass`, `fail` or `not-applicable` (JSON).
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::NotApplicable(_) => "not-applicable",
        }
    }

    /// The reason.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Pass(m) | Outcome::Fail(m) | Outcome::NotApplicable(m) => m,
        }
    }

    /// Whether it is a failure.
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
}

/// What every rule says about one CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// One entry per rule, in [`Rule::ALL`] order.
    pub checks: Vec<(Rule, Outcome)>,
    /// The node the CSR is for (`system:node:NAME`), when the username says.
    pub node: Option<String>,
    /// The decoded request, when it decodes (for `csr list`: the SANs).
    pub request: Option<CsrRequest>,
}

impl Verdict {
    /// Approve only when rules (a) to (g) pass and (h) passes or does not apply.
    pub fn approvable(&self) -> bool {
        Rule::ALL.iter().all(|r| match self.outcome(*r) {
            Some(Outcome::Pass(_)) => true,
            Some(Outcome::NotApplicable(_)) => *r == Rule::Attested,
            _ => false,
        })
    }

    /// What `rule` says.
    pub fn outcome(&self, rule: Rule) -> Option<&Outcome> {
        self.checks.iter().find(|(r, _)| *r == rule).map(|(_, o)| o)
    }

    /// The first failed rule and its reason.
    pub fn first_failure(&self) -> Option<(Rule, &str)> {
        self.checks
            .iter()
            .find(|(_, o)| o.is_fail())
            .map(|(r, o)| (*r, o.message()))
    }

    /// One line per rule, for `csr list` and logs:
    /// `(f) ip-sans: FAIL: IP SAN 127.0.0.12 belongs to node cp2`.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|(r, o)| {
                let word = match o {
                    Outcome::Pass(_) => "pass",
                    Outcome::Fail(_) => "FAIL",
                    Outcome::NotApplicable(_) => "n/a",
                };
                format!("({}) {r}: {word}: {}", r.letter(), o.message())
            })
            .collect()
    }

    /// One line for a log or a `csr list` column: `approvable`, or the first failure.
    pub fn summary(&self) -> String {
        match self.first_failure() {
            Some((r, m)) => format!("rule ({}) {r} fails: {m}", r.letter()),
            None if self.approvable() => "approvable: every rule passes".into(),
            None => "not approvable: a rule could not be judged".into(),
        }
    }

    /// The message of the Approved condition: the checks that were made.
    pub fn approval_message(&self) -> String {
        let passed: Vec<String> = self
            .checks
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Pass(_)))
            .map(|(r, _)| format!("({}) {r}", r.letter()))
            .collect();
        let mut m = format!("kubeadm-certd: passed {}", passed.join(", "));
        if let Some(Outcome::NotApplicable(why)) = self.outcome(Rule::Attested) {
            m.push_str(&format!("; (h) attested not applicable: {why}"));
        }
        m
    }

    /// The message of a Denied condition: the first failed rule and the offending value.
    pub fn denial_message(&self) -> Option<String> {
        self.first_failure()
            .map(|(r, m)| format!("kubeadm-certd: rule ({}) {r}: {m}", r.letter()))
    }
}

/// One check in JSON.
#[derive(Serialize)]
struct CheckJson<'a> {
    rule: Rule,
    letter: String,
    result: &'static str,
    message: &'a str,
}

/// `{"approvable": .., "node": .., "checks": [{"rule","letter","result","message"}], "request": ..}`
impl Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let checks: Vec<CheckJson<'_>> = self
            .checks
            .iter()
            .map(|(r, o)| CheckJson {
                rule: *r,
                letter: r.letter().to_string(),
                result: o.result(),
                message: o.message(),
            })
            .collect();
        let mut st = s.serialize_struct("Verdict", 4)?;
        st.serialize_field("approvable", &self.approvable())?;
        st.serialize_field("node", &self.node)?;
        st.serialize_field("checks", &checks)?;
        st.serialize_field("request", &self.request)?;
        st.end()
    }
}
