//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902: add, remove, replace,
//! test, copy, move), and strategic merge patch taken as a merge patch. That last shortcut
//! is exact for what the stand-in serves: ConfigMap `data` is a map, and a CSR's
//! `status.conditions` carries no `patchStrategy` tag (k8s.io/api certificates/v1
//! types.go), so strategic merge replaces the list as a merge patch does.

use serde_json::Value;

/// RFC 7386 MergePatch.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(t) = target else {
        return;
    };
    for (k, v) in p {
        if k.starts_with("$") {
            // Strategic-merge directives ($patch, $retainKeys, ...) are not modelled.
            continue;
        }
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(String, String), String> {
    if path.is_empty() {
        return Err("the root cannot be patched here".into());
    }
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((parent.to_string(), unescape(last)))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| format!("index {last:?} out of range at {path:?}"))?
            };
            a.insert(i, v);
            Ok(())
        }
        _ => Err(format!("missing parent for {path:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let gone = || format!("nothing at {path:?}");
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m.remove(&last).ok_or_else(gone),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(gone()),
        },
        _ => Err(gone()),
    }
}

/// RFC 6902; an error names the failing operation (the API answers 422 with it).
pub(crate) fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is an array of operations")?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("{name} needs a value"))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("{name} needs from"))
        };
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "copy" => {
                let v = doc
                    .pointer(&from()?)
                    .cloned()
                    .ok_or("copy from a missing path")?;
                add(doc, path, v)?;
            }
            "move" => {
                let v = remove(doc, &from()?)?;
                add(doc, path, v)?;
            }
            other => return Err(format!("unexpected kind: {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"status": {"conditions": []}, "x": 1});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/status/conditions/-", "value": {"type": "Approved"}},
                {"op": "test", "path": "/x", "value": 1},
                {"op": "replace", "path": "/x", "value": 2},
                {"op": "move", "from": "/x", "path": "/y"}
            ]),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"status": {"conditions": [{"type": "Approved"}]}, "y": 2})
        );
        assert!(json_patch(&mut d, &json!([{"op": "test", "path": "/y", "value": 3}])).is_err());
    }
}
