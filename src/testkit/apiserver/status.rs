//! `Status` objects, the body of every error the API answers, shaped as apimachinery's
//! `pkg/api/errors/errors.go` builds them (NewNotFound, NewConflict, NewForbidden,
//! NewInvalid, NewResourceExpired, ...): `{"kind":"Status","apiVersion":"v1","metadata":{},
//! "status":"Failure","message":..,"reason":..,"details":{..},"code":..}`.

use super::store::Kind;
use serde_json::{json, Value};

/// An error answer: the HTTP code and its Status body.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub code: u16,
    pub body: Value,
}

/// apimachinery's `metav1.StatusReason` for an HTTP code (errors.go `NewGenericServerResponse`).
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

impl Status {
    /// A Status with `reason` derived from `code`.
    pub fn new(code: u16, message: impl Into<String>) -> Status {
        Status::with_reason(code, reason_for(code), message, json!({}))
    }

    pub fn with_reason(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Value,
    ) -> Status {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
            "code": code,
        });
        if details.as_object().is_some_and(|d| !d.is_empty()) {
            body["details"] = details;
        }
        Status { code, body }
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::new(400, message)
    }

    pub fn not_found(kind: Kind, name: &str) -> Status {
        Status::with_reason(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
            details(kind, name),
        )
    }

    /// errors.NewConflict with registry's OptimisticLockErrorMsg.
    pub fn conflict(kind: Kind, name: &str) -> Status {
        Status::with_reason(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.qualified()
            ),
            details(kind, name),
        )
    }

    pub fn already_exists(kind: Kind, name: &str) -> Status {
        Status::with_reason(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", kind.qualified()),
            details(kind, name),
        )
    }

    /// errors.NewResourceExpired: 410 with reason Expired (the watch cache's
    /// "too old resource version: %d (%d)").
    pub fn expired(message: impl Into<String>) -> Status {
        Status::with_reason(410, "Expired", message, json!({}))
    }

    pub fn method_not_allowed() -> Status {
        Status::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unauthorized() -> Status {
        Status::new(401, "Unauthorized")
    }

    /// The RBAC authorizer's denial text, as `errors.NewForbidden` wraps it.
    pub fn forbidden(user: &str, verb: &str, what: &Forbidden<'_>) -> Status {
        match what {
            Forbidden::Resource {
                kind,
                sub,
                name,
                ns,
            } => {
                let res = match sub {
                    Some(s) => format!("{}/{s}", kind.resource()),
                    None => kind.resource().to_string(),
                };
                let scope = match ns {
                    Some(ns) => format!("in the namespace \"{ns}\""),
                    None => "at the cluster scope".to_string(),
                };
                let subject = match name {
                    Some(n) => format!("{} \"{n}\"", kind.qualified()),
                    None => kind.qualified(),
                };
                Status::with_reason(
                    403,
                    "Forbidden",
                    format!(
                        "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{res}\" \
                         in API group \"{}\" {scope}",
                        kind.group()
                    ),
                    json!({"name": name.unwrap_or(""), "group": kind.group(), "kind": kind.resource()}),
                )
            }
            Forbidden::Path(path) => Status::with_reason(
                403,
                "Forbidden",
                format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\""),
                json!({}),
            ),
        }
    }

    /// errors.NewInvalid: 422 with one cause per field error.
    pub fn invalid(kind: Kind, name: &str, errs: &[FieldError]) -> Status {
        let msgs: Vec<String> = errs.iter().map(FieldError::to_string).collect();
        let agg = if msgs.len() == 1 {
            msgs[0].clone()
        } else {
            format!("[{}]", msgs.join(", "))
        };
        let causes: Vec<Value> = errs
            .iter()
            .map(|e| json!({"reason": e.kind.cause(), "message": e.body(), "field": e.field}))
            .collect();
        let mut d = details(kind, name);
        d["kind"] = json!(kind.kind());
        d["causes"] = json!(causes);
        Status::with_reason(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {agg}", kind.group_kind()),
            d,
        )
    }
}

fn details(kind: Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group(), "kind": kind.resource()})
}

/// What a forbidden request asked for.
pub(crate) enum Forbidden<'a> {
    Resource {
        kind: Kind,
        sub: Option<&'a str>,
        name: Option<&'a str>,
        ns: Option<&'a str>,
    },
    Path(&'a str),
}

/// The field.Error types the validation code uses (apimachinery `util/validation/field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldErrorKind {
    Required,
    NotSupported(Vec<String>),
    Duplicate,
    Invalid(String),
    Forbidden(String),
}

impl FieldErrorKind {
    fn cause(&self) -> &'static str {
        match self {
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::NotSupported(_) => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid(_) => "FieldValueInvalid",
            FieldErrorKind::Forbidden(_) => "FieldValueForbidden",
        }
    }
}

/// One field error: path, kind and the offending value (as JSON text, like `%q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub field: String,
    pub kind: FieldErrorKind,
    pub value: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, kind: FieldErrorKind, value: &str) -> FieldError {
        FieldError {
            field: field.into(),
            kind,
            value: Value::String(value.to_string()).to_string(),
        }
    }

    /// `ErrorBody()`: the message without the field path.
    fn body(&self) -> String {
        match &self.kind {
            FieldErrorKind::Required => "Required value".into(),
            FieldErrorKind::NotSupported(ok) => {
                let ok: Vec<String> = ok.iter().map(|s| format!("\"{s}\"")).collect();
                format!(
                    "Unsupported value: {}: supported values: {}",
                    self.value,
                    ok.join(", ")
                )
            }
            FieldErrorKind::Duplicate => format!("Duplicate value: {}", self.value),
            FieldErrorKind::Invalid(d) => format!("Invalid value: {}: {d}", self.value),
            FieldErrorKind::Forbidden(d) => format!("Forbidden: {d}"),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}
