//! Faults a test switches on: failed answers, conflicts, hung requests. Each rule matches a
//! method (`"*"` for any) and a prefix of the request path (without the query).

#[derive(Debug, Clone)]
struct Rule {
    method: String,
    prefix: String,
    status: u16,
    left: usize,
}

impl Rule {
    fn matches(&self, method: &str, path: &str) -> bool {
        (self.method == "*" || self.method.is_empty() || self.method.eq_ignore_ascii_case(method))
            && path.starts_with(&self.prefix)
    }
}

/// The armed faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    fail: Vec<Rule>,
    conflict: Vec<Rule>,
    hang: Vec<String>,
}

fn take(rules: &mut Vec<Rule>, method: &str, path: &str) -> Option<u16> {
    let i = rules
        .iter()
        .position(|r| r.left > 0 && r.matches(method, path))?;
    rules[i].left -= 1;
    let status = rules[i].status;
    rules.retain(|r| r.left > 0);
    Some(status)
}

impl Faults {
    pub fn fail_next(&mut self, method: &str, prefix: &str, status: u16, times: usize) {
        if times > 0 {
            self.fail.push(Rule {
                method: method.into(),
                prefix: prefix.into(),
                status,
                left: times,
            });
        }
    }

    pub fn conflict_next(&mut self, method: &str, prefix: &str, times: usize) {
        if times > 0 {
            self.conflict.push(Rule {
                method: method.into(),
                prefix: prefix.into(),
                status: 409,
                left: times,
            });
        }
    }

    pub fn hang(&mut self, prefix: &str, on: bool) {
        self.hang.retain(|p| p != prefix);
        if on {
            self.hang.push(prefix.into());
        }
    }

    /// The status to fail this request with, if a `fail_next` rule is armed for it.
    pub fn take_fail(&mut self, method: &str, path: &str) -> Option<u16> {
        take(&mut self.fail, method, path)
    }

    /// Whether this write meets a concurrent writer (a `conflict_next` rule).
    pub fn take_conflict(&mut self, method: &str, path: &str) -> bool {
        take(&mut self.conflict, method, path).is_some()
    }

    pub fn hangs(&self, path: &str) -> bool {
        self.hang.iter().any(|p| path.starts_with(p.as_str()))
    }
}
