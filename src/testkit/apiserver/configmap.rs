//! ConfigMap validation (kubernetes `pkg/apis/core/validation/validation.go`
//! ValidateConfigMap, ValidateConfigMapUpdate): keys are config keys, a key is not in both
//! `data` and `binaryData`, data values are strings, and an immutable ConfigMap keeps its
//! data and stays immutable.

use super::status::{FieldError, FieldErrorKind as K};
use serde_json::Value;

/// `validation.IsConfigMapKey`: `[-._a-zA-Z0-9]+`, at most 253 characters, not "." or "..".
fn key_errors(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 253 {
        return Some("must be no more than 253 characters and not empty".into());
    }
    if key == "." || key == ".." {
        return Some(format!("must not be '{key}'"));
    }
    if !key
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Some(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (regex used for validation is '[-._a-zA-Z0-9]+')"
                .into(),
        );
    }
    None
}

pub(crate) fn validate(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let map = |k: &str| {
        obj.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (data, binary) = (map("data"), map("binaryData"));
    for (k, v) in &data {
        if let Some(e) = key_errors(k) {
            errs.push(FieldError::new("data", K::Invalid(e), k));
        }
        if !v.is_string() {
            errs.push(FieldError::new(
                format!("data[{k}]"),
                K::Invalid("must be a string".into()),
                &v.to_string(),
            ));
        }
    }
    for k in binary.keys() {
        if let Some(e) = key_errors(k) {
            errs.push(FieldError::new("binaryData", K::Invalid(e), k));
        }
        if data.contains_key(k) {
            errs.push(FieldError::new("data", K::Duplicate, k));
        }
    }
    let immutable = |v: &Value| v.get("immutable").and_then(Value::as_bool) == Some(true);
    if let Some(old) = old.filter(|o| immutable(o)) {
        if !immutable(obj) {
            errs.push(FieldError::new(
                "immutable",
                K::Forbidden("field is immutable when `immutable` is set".into()),
                "",
            ));
        }
        if old.get("data") != obj.get("data") || old.get("binaryData") != obj.get("binaryData") {
            errs.push(FieldError::new(
                "data",
                K::Forbidden("field is immutable when `immutable` is set".into()),
                "",
            ));
        }
    }
    errs
}
