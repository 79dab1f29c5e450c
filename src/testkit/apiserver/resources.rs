//! The resource handlers: get, list (selectors, limit/continue, resourceVersion rules),
//! create, update and patch with optimistic concurrency, delete, and the start of a watch.
//! The generic registry's rules (k8s.io/apiserver `pkg/registry/generic/registry/store.go`):
//! an update whose `metadata.resourceVersion` is set and is not the stored one is a 409
//! Conflict; without one it applies to the latest (every kind here allows unconditional
//! updates); a write that changes nothing keeps the object and its resourceVersion.

use super::http::Request;
use super::patch;
use super::router::Route;
use super::status::{FieldError, FieldErrorKind, Status};
use super::store::{with_meta, Key, Kind, State};
use super::tls::User;
use super::watch::{self, WatchPlan};
use super::{configmap, csr, list};
use serde_json::{json, Value};

/// A successful answer.
pub(crate) enum Reply {
    Json(u16, Value),
    Text(u16, String),
    Watch(WatchPlan),
}

type Res = Result<Reply, Status>;

pub(crate) fn dispatch(
    st: &mut State,
    user: &User,
    req: &Request,
    route: &Route,
    verb: &str,
) -> Res {
    let Route::Res {
        kind,
        ns,
        name,
        sub,
    } = route
    else {
        return match route {
            Route::Version => Ok(Reply::Json(200, version(&st.git_version))),
            _ => Ok(Reply::Text(200, "ok".into())),
        };
    };
    let kind = *kind;
    let key = |n: &str| (kind, ns.clone().unwrap_or_default(), n.to_string());
    if sub
        .as_deref()
        .is_some_and(|s| kind != Kind::Csr || s != "approval")
    {
        // Other subresources (a CSR's /status, a node's /proxy, ...) are not served.
        return Err(not_found_path());
    }
    match (name.as_deref(), sub.as_deref(), verb) {
        (Some(n), _, "get") => get(st, &key(n)),
        (None, None, "list") => {
            list::list(st, kind, ns.as_deref(), req).map(|v| Reply::Json(200, v))
        }
        (None, None, "watch") => watch::plan(st, kind, ns.as_deref(), req).map(|p| match p {
            Ok(plan) => Reply::Watch(plan),
            Err(gone) => Reply::Json(gone.code, gone.body),
        }),
        (None, None, "create") if ns.is_some() == kind.namespaced() => {
            create(st, kind, ns.as_deref().unwrap_or(""), user, req)
        }
        (Some(n), _, "update") => {
            let body = decode(kind, req)?;
            update(st, &key(n), sub.is_some(), body)
        }
        (Some(n), _, "patch") => patch(st, &key(n), sub.is_some(), req),
        (Some(n), None, "delete") if matches!(kind, Kind::Csr | Kind::ConfigMap | Kind::Node) => {
            delete(st, &key(n))
        }
        _ => Err(Status::method_not_allowed()),
    }
}

fn not_found_path() -> Status {
    Status::with_reason(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

/// `GET /version`: version.Info.
fn version(git: &str) -> Value {
    let core = git.trim_start_matches('v');
    let mut parts = core.split(['.', '-', '+']);
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major, "minor": minor, "gitVersion": git,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn get(st: &State, key: &Key) -> Res {
    st.get(key)
        .map(|o| Reply::Json(200, o.clone()))
        .ok_or_else(|| Status::not_found(key.0, &key.2))
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Decode a JSON body of `kind`; YAML and protobuf are not served by the stand-in.
fn decode(kind: Kind, req: &Request) -> Result<Value, Status> {
    let ct = req.content_type();
    if !matches!(ct.as_str(), "" | "application/json" | "*/*") {
        return Err(Status::new(
            415,
            format!("the body of the request was in an unknown format - accepted media types include: application/json (the stand-in takes no {ct})"),
        ));
    }
    parse_body(kind, &req.body)
}

fn parse_body(kind: Kind, body: &[u8]) -> Result<Value, Status> {
    let cannot = |m: String| {
        Status::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {m}",
            kind.kind(),
            kind.api_version().rsplit('/').next().unwrap_or("v1"),
            kind.kind()
        ))
    };
    let v: Value = serde_json::from_slice(body).map_err(|e| cannot(e.to_string()))?;
    if !v.is_object() {
        return Err(cannot("the body is not a JSON object".into()));
    }
    if let Some(k) = v
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| *k != kind.kind())
    {
        return Err(cannot(format!("kind {k:?} is not {:?}", kind.kind())));
    }
    if let Some(a) = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|a| *a != kind.api_version())
    {
        return Err(cannot(format!(
            "apiVersion {a:?} is not {:?}",
            kind.api_version()
        )));
    }
    Ok(v)
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn create(st: &mut State, kind: Kind, ns: &str, user: &User, req: &Request) -> Res {
    let mut obj = decode(kind, req)?;
    let mut name = name_of(&obj).to_string();
    if name.is_empty() {
        let prefix = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if prefix.is_empty() {
            let e = FieldError::new("metadata.name", FieldErrorKind::Required, "");
            return Err(Status::invalid(kind, "", &[e]));
        }
        // names.SimpleNameGenerator: five characters from a consonant-digit alphabet.
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let tail: String = (0..5)
            .map(|_| char::from(ALPHA[rand::random_range(0..ALPHA.len())]))
            .collect();
        name = format!("{prefix}{tail}");
    }
    if kind.namespaced() {
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !body_ns.is_empty() && body_ns != ns {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let errs = match kind {
        Kind::Csr => {
            csr::prepare_for_create(&mut obj, user);
            csr::validate_create(&obj)
        }
        Kind::ConfigMap => configmap::validate(&obj, None),
        _ => return Err(Status::method_not_allowed()),
    };
    if !errs.is_empty() {
        return Err(Status::invalid(kind, &name, &errs));
    }
    let key = (kind, ns.to_string(), name.clone());
    if st.get(&key).is_some() {
        return Err(Status::already_exists(kind, &name));
    }
    Ok(Reply::Json(201, st.create(key, obj)))
}

/// PUT (and the end of PATCH): name check, precondition, strategy, validation, store.
fn update(st: &mut State, key: &Key, approval: bool, body: Value) -> Res {
    let (kind, _, name) = key;
    if name_of(&body) != name {
        return Err(Status::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&body)
        )));
    }
    let old = st
        .get(key)
        .cloned()
        .ok_or_else(|| Status::not_found(*kind, name))?;
    let want = rv_of(&body);
    if !want.is_empty() && want != rv_of(&old) {
        return Err(Status::conflict(*kind, name));
    }
    let new = match kind {
        Kind::Csr if approval => csr::approval_update(&old, &body)?,
        Kind::Csr => csr::main_update(&old, &body),
        Kind::ConfigMap => {
            let errs = configmap::validate(&body, Some(&old));
            if !errs.is_empty() {
                return Err(Status::invalid(*kind, name, &errs));
            }
            body
        }
        _ => return Err(Status::method_not_allowed()),
    };
    if same(&old, &new) {
        return Ok(Reply::Json(200, old));
    }
    Ok(Reply::Json(200, st.update(key, new)))
}

/// Equal but for what the server owns anyway: then nothing is written (etcd3 store's
/// GuaranteedUpdate skips an unchanged object).
fn same(old: &Value, new: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        with_meta(&mut v, |m| {
            for k in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
            ] {
                m.remove(k);
            }
            if m.get("labels")
                .is_some_and(|l| l.as_object().is_some_and(|o| o.is_empty()))
            {
                m.remove("labels");
            }
        });
        if let Some(o) = v.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        v
    };
    norm(old) == norm(new)
}

fn patch(st: &mut State, key: &Key, approval: bool, req: &Request) -> Res {
    let (kind, _, name) = key;
    let old = st
        .get(key)
        .cloned()
        .ok_or_else(|| Status::not_found(*kind, name))?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")))?;
    let mut doc = old.clone();
    match req.content_type().as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            if !body.is_object() {
                return Err(Status::bad_request("a merge patch must be a JSON object"));
            }
            patch::merge(&mut doc, &body);
        }
        "application/json-patch+json" => {
            patch::json_patch(&mut doc, &body).map_err(|e| Status::new(422, e))?;
        }
        ct => {
            return Err(Status::new(
                415,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: \
                     application/json-patch+json, application/merge-patch+json, \
                     application/strategic-merge-patch+json (not {ct:?}; server-side apply is not implemented)"
                ),
            ))
        }
    }
    let doc = parse_body(*kind, doc.to_string().as_bytes())?;
    update(st, key, approval, doc)
}

fn delete(st: &mut State, key: &Key) -> Res {
    let (kind, _, name) = key;
    let gone = st
        .delete(key)
        .ok_or_else(|| Status::not_found(*kind, name))?;
    let uid = gone
        .pointer("/metadata/uid")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Reply::Json(
        200,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
               "details": {"name": name, "group": kind.group(), "kind": kind.resource(), "uid": uid}}),
    ))
}
