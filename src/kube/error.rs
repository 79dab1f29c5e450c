//! The client's errors by kind, so that callers branch on them: an API that does not answer
//! is a standing condition to wait out quietly, a 409 means "re-read and retry", a 410 on a
//! watch means "list again", a 403 is a missing right that no retry will cure.

use std::time::Duration;

/// What went wrong with one call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeError {
    /// No connection (refused, reset, TLS failure, DNS): the API is unreachable.
    #[error("the API server at {url} is unreachable: {why}")]
    Unreachable {
        /// The server URL from the kubeconfig.
        url: String,
        /// The cause, one line.
        why: String,
    },
    /// No answer within the bound.
    #[error("the API server at {url} did not answer within {}", crate::logging::human_duration(*after))]
    TimedOut {
        /// The server URL.
        url: String,
        /// The bound that passed.
        after: Duration,
    },
    /// A stop request (SIGTERM) cut the call short.
    #[error("interrupted by a stop request")]
    Cancelled,
    /// The server answered with an HTTP error status.
    #[error("{what}: HTTP {code}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Status {
        /// What was asked (e.g. "approving CSR csr-abc").
        what: String,
        /// The HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("{what}: cannot decode the answer: {why}")]
    Decode {
        /// What was asked.
        what: String,
        /// Why.
        why: String,
    },
    /// The kubeconfig is unusable (a file problem, not an API problem).
    #[error("{path}: {why}")]
    Config {
        /// Host path of the kubeconfig.
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl KubeError {
    /// The HTTP status, for errors that carry one.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the API server could not be reached at all (or did not answer in time).
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            KubeError::Unreachable { .. } | KubeError::TimedOut { .. }
        )
    }

    /// Whether trying again later may succeed (no connection, a timeout, 429, 5xx).
    pub fn transient(&self) -> bool {
        self.unreachable() || matches!(self.code(), Some(429 | 500..=599))
    }

    /// 409 Conflict: the object changed since it was read.
    pub fn conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// 410 Gone: the resourceVersion is too old; list again.
    pub fn gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// 404 Not Found.
    pub fn not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// Classify a kube-rs error from the call described by `what` to `url`.
    pub fn from_kube(e: kube::Error, what: &str, url: &str) -> KubeError {
        match e {
            kube::Error::Api(s) => KubeError::Status {
                what: what.to_string(),
                code: s.code,
                message: one_line(&s.message),
            },
            kube::Error::SerdeError(e) => KubeError::Decode {
                what: what.to_string(),
                why: e.to_string(),
            },
            kube::Error::FromUtf8(e) => KubeError::Decode {
                what: what.to_string(),
                why: e.to_string(),
            },
            other => KubeError::Unreachable {
                url: url.to_string(),
                why: without_wrappers(&one_line(&chain(&other))),
            },
        }
    }
}

/// An error and its sources, `a: b: c`, as people read it (no Debug formatting).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The cause without the layers' own names: kube-client's `ServiceError: ` and
/// hyper-util's `client error (Connect): ` say nothing an operator can use, the
/// `tcp connect error: Connection refused (os error 111)` after them does.
fn without_wrappers(s: &str) -> String {
    let s = s.strip_prefix("ServiceError: ").unwrap_or(s);
    s.replacen("client error (Connect): ", "", 1)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> KubeError {
        KubeError::Status {
            what: "x".into(),
            code,
            message: String::new(),
        }
    }

    #[test]
    fn kinds() {
        assert!(status(503).transient() && !status(503).unreachable());
        assert!(status(429).transient());
        assert!(!status(403).transient() && !status(404).transient());
        assert!(status(409).conflict() && status(410).gone() && status(404).not_found());
        let t = KubeError::TimedOut {
            url: "https://127.0.0.1:6443".into(),
            after: Duration::from_secs(10),
        };
        assert!(t.unreachable() && t.transient());
        assert_eq!(
            t.to_string(),
            "the API server at https://127.0.0.1:6443 did not answer within 10s"
        );
        assert_eq!(
            KubeError::Status {
                what: "approving CSR a".into(),
                code: 403,
                message: "forbidden:\n  no".into()
            }
            .to_string(),
            "approving CSR a: HTTP 403 (forbidden:\n  no)"
        );
    }

    #[test]
    fn api_errors_keep_their_code_and_a_one_line_message() {
        let s = kube::core::Status::failure("too\nold", "Expired").with_code(410);
        let e = KubeError::from_kube(kube::Error::Api(s.boxed()), "watching", "u");
        assert!(e.gone());
        assert_eq!(e.to_string(), "watching: HTTP 410 (too old)");
    }
}
