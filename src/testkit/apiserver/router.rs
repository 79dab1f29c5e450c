//! One request, in the order kube-apiserver's handler chain takes it: authentication (401),
//! the test's faults, then routing, authorization (403) and the resource handler. Every
//! request is recorded with the status it got.

use super::http::{self, Request};
use super::resources::{self, Reply};
use super::server::{Conn, Shared};
use super::status::{Forbidden, Status};
use super::store::{Kind, State};
use super::tls::{AuthResult, User};
use super::{watch, Recorded};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    Health,
    Res {
        kind: Kind,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
    Unknown,
}

pub(crate) fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let res = |kind: Kind, ns: Option<&str>, rest: &[&str]| -> Route {
        if rest.len() > 2 || ns.is_some_and(str::is_empty) {
            return Route::Unknown;
        }
        Route::Res {
            kind,
            ns: ns.map(str::to_string),
            name: rest.first().map(|s| s.to_string()),
            sub: rest.get(1).map(|s| s.to_string()),
        }
    };
    let core = |r: &str| match r {
        "nodes" => Some(Kind::Node),
        "configmaps" => Some(Kind::ConfigMap),
        "services" => Some(Kind::Service),
        _ => None,
    };
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["api", "v1", "namespaces", ns, r, rest @ ..] => match core(r) {
            Some(k) if k.namespaced() => res(k, Some(ns), rest),
            _ => Route::Unknown,
        },
        ["api", "v1", r, rest @ ..] => match core(r) {
            Some(Kind::Node) => res(Kind::Node, None, rest),
            // Namespaced kinds across all namespaces: list and watch only.
            Some(k) if rest.is_empty() => res(k, None, rest),
            _ => Route::Unknown,
        },
        ["apis", "certificates.k8s.io", "v1", "certificatesigningrequests", rest @ ..] => {
            res(Kind::Csr, None, rest)
        }
        _ => Route::Unknown,
    }
}

/// The request's verb, as the RBAC authorizer names it.
pub(crate) fn verb(req: &Request, route: &Route) -> &'static str {
    let named = match route {
        Route::Res { name, .. } => name.is_some(),
        // Non-resource paths are always "get" (or the method's verb).
        _ => true,
    };
    match (req.method.as_str(), named) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if req.flag("watch") => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn admin(u: &User) -> bool {
    // cluster-admin is bound to system:masters by the bootstrap policy and to
    // kubeadm:cluster-admins by kubeadm init (kubernetes PR #121305).
    u.in_group("system:masters") || u.in_group("kubeadm:cluster-admins")
}

/// Minimal but real authorization:
/// - cluster-admin (see [`admin`]) may do everything;
/// - a node (`system:node:NAME` in `system:nodes`) gets the rules of the Node authorizer's
///   static set (kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go
///   `NodeRules`) that concern what is served here: create/get/list/watch CSRs, get/list/
///   watch nodes and services. ConfigMaps only through pods bound to the node: none here.
///   Never the approval subresource;
/// - every authenticated user may GET /healthz, /livez, /readyz and /version
///   (system:public-info-viewer).
pub(crate) fn allowed(u: &User, verb: &str, route: &Route) -> bool {
    if admin(u) {
        return true;
    }
    let node = u.in_group("system:nodes")
        && u.name
            .strip_prefix("system:node:")
            .is_some_and(|n| !n.is_empty());
    match route {
        Route::Version | Route::Health => verb == "get",
        Route::Res {
            kind, sub: None, ..
        } if node => match kind {
            Kind::Csr => matches!(verb, "create" | "get" | "list" | "watch"),
            Kind::Node | Kind::Service => matches!(verb, "get" | "list" | "watch"),
            Kind::ConfigMap => false,
        },
        _ => false,
    }
}

fn record(st: &mut State, req: &Request, user: &AuthResult, status: u16) {
    let (name, groups) = match user {
        Ok(u) => (Some(u.name.clone()), u.groups.clone()),
        Err(_) => (None, Vec::new()),
    };
    st.requests.push(Recorded {
        method: req.method.clone(),
        path: req.target.clone(),
        user: name,
        groups,
        status,
        body: String::from_utf8_lossy(&req.body).into_owned(),
    });
}

/// A Status object as the response (with `Retry-After` on a 429).
pub(crate) fn write_status(c: &mut Conn, s: &Status, keep: bool) -> io::Result<()> {
    let mut extra = Vec::new();
    if s.code == 429 {
        extra.push(("Retry-After", "1".to_string()));
    }
    http::write_response(
        c.out(),
        s.code,
        "application/json",
        &extra,
        s.body.to_string().as_bytes(),
        keep,
    )
}

/// Handle one request; `Ok(false)` closes the connection.
pub(crate) fn handle(
    shared: &Arc<Shared>,
    c: &mut Conn,
    auth: &AuthResult,
    req: Request,
) -> io::Result<bool> {
    let keep = req.keep_alive;
    let user = match auth {
        Ok(u) => u,
        Err(_) => {
            shared.mutate(|st| record(st, &req, auth, 401));
            write_status(c, &Status::unauthorized(), keep)?;
            return Ok(keep);
        }
    };
    let route = parse(&req.path);
    let verb = verb(&req, &route);
    let mut st = shared.lock();
    if st.faults.hangs(&req.path) {
        record(&mut st, &req, auth, 0);
        shared.wake.notify_all();
        // Read, never answer: hold the connection, silent, until the fault is lifted or the
        // server goes down; then close it.
        while st.faults.hangs(&req.path) && !st.stopping && !st.down {
            st = shared.wait(st, Duration::from_millis(200));
            drop(st);
            if c.peer_gone() {
                return Ok(false);
            }
            st = shared.lock();
        }
        return Ok(false);
    }
    if let Some(code) = st.faults.take_fail(&req.method, &req.path) {
        record(&mut st, &req, auth, code);
        drop(st);
        shared.wake.notify_all();
        let s = Status::new(
            code,
            format!("injected fault: {code} for {} {}", req.method, req.path),
        );
        write_status(c, &s, keep)?;
        return Ok(keep);
    }
    if matches!(verb, "update" | "patch" | "create" | "delete")
        && st.faults.take_conflict(&req.method, &req.path)
    {
        // Another writer got there first: the object's resourceVersion moves on, so a write
        // that names the version it read now fails with 409, as it would in a real cluster.
        if let Route::Res {
            kind,
            ns,
            name: Some(n),
            ..
        } = &route
        {
            let key = (*kind, ns.clone().unwrap_or_default(), n.clone());
            if let Some(obj) = st.get(&key).cloned() {
                st.update(&key, obj);
            }
        }
    }
    let reply = match &route {
        Route::Unknown if !admin(user) => Err(Status::forbidden(
            &user.name,
            verb,
            &Forbidden::Path(&req.path),
        )),
        Route::Unknown => Err(Status::with_reason(
            404,
            "NotFound",
            "the server could not find the requested resource",
            serde_json::json!({}),
        )),
        r if !allowed(user, verb, r) => Err(match r {
            Route::Res {
                kind,
                ns,
                name,
                sub,
            } => Status::forbidden(
                &user.name,
                verb,
                &Forbidden::Resource {
                    kind: *kind,
                    sub: sub.as_deref(),
                    name: name.as_deref(),
                    ns: ns.as_deref(),
                },
            ),
            _ => Status::forbidden(&user.name, verb, &Forbidden::Path(&req.path)),
        }),
        r => resources::dispatch(&mut st, user, &req, r, verb),
    };
    match reply {
        Err(s) => {
            record(&mut st, &req, auth, s.code);
            drop(st);
            shared.wake.notify_all();
            write_status(c, &s, keep)?;
            Ok(keep)
        }
        Ok(Reply::Json(code, v)) => {
            record(&mut st, &req, auth, code);
            drop(st);
            shared.wake.notify_all();
            let body = if req.method == "HEAD" {
                String::new()
            } else {
                v.to_string()
            };
            http::write_response(
                c.out(),
                code,
                "application/json",
                &[],
                body.as_bytes(),
                keep,
            )?;
            Ok(keep)
        }
        Ok(Reply::Text(code, t)) => {
            record(&mut st, &req, auth, code);
            drop(st);
            http::write_response(
                c.out(),
                code,
                "text/plain; charset=utf-8",
                &[],
                t.as_bytes(),
                keep,
            )?;
            Ok(keep)
        }
        Ok(Reply::Watch(plan)) => {
            record(&mut st, &req, auth, 200);
            drop(st);
            shared.wake.notify_all();
            let clean = watch::stream(shared, c, plan)?;
            Ok(keep && clean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            parse("/apis/certificates.k8s.io/v1/certificatesigningrequests/a/approval"),
            Route::Res {
                kind: Kind::Csr,
                ns: None,
                name: Some("a".into()),
                sub: Some("approval".into())
            }
        );
        assert_eq!(
            parse("/api/v1/namespaces/kube-system/configmaps/kubelet-config"),
            Route::Res {
                kind: Kind::ConfigMap,
                ns: Some("kube-system".into()),
                name: Some("kubelet-config".into()),
                sub: None
            }
        );
        assert_eq!(parse("/api/v1/namespaces/x/nodes"), Route::Unknown);
        assert_eq!(parse("/api/v1/configmaps/x"), Route::Unknown);
        assert_eq!(parse("/apis"), Route::Unknown);
        assert_eq!(parse("/livez/ping"), Route::Health);
    }
}
