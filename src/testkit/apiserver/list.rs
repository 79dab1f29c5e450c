//! Lists: the global resourceVersion, field and label selectors, `limit`/`continue`, and
//! the resourceVersion rules of a list (k8s.io/apiserver storage/cacher and etcd3 store).

use super::http::Request;
use super::status::Status;
use super::store::{Key, Kind, Selector, State};
use base64::Engine;
use serde_json::{json, Value};

fn parse_rv(s: &str) -> Result<u64, Status> {
    s.parse()
        .map_err(|_| Status::bad_request(format!("invalid resource version \"{s}\"")))
}

fn too_large(rv: u64, current: u64) -> Status {
    Status::with_reason(
        504,
        "Timeout",
        format!("Too large resource version: {rv}, current: {current}"),
        json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]}),
    )
}

/// A list. `resourceVersion` unset, "0" or not newer than now gives the current state
/// (NotOlderThan); `resourceVersionMatch=Exact` needs the current version exactly, an older
/// one is answered 410 (the stand-in keeps no snapshots, as after a compaction); a
/// `continue` token from before `compact` is 410 too. `limit` is ignored for
/// resourceVersion "0", which the watch cache serves whole.
pub(crate) fn list(
    st: &State,
    kind: Kind,
    ns: Option<&str>,
    req: &Request,
) -> Result<Value, Status> {
    let sel = Selector::parse(kind, req.param("fieldSelector"), req.param("labelSelector"))
        .map_err(Status::bad_request)?;
    let rv = req.param("resourceVersion").filter(|s| !s.is_empty());
    let cont = req.param("continue").filter(|s| !s.is_empty());
    let mut list_rv = st.rv;
    // The last (namespace, name) of the previous page: keys compare as the store orders them.
    let mut start: Option<(String, String)> = None;
    if let Some(tok) = cont {
        let (trv, s) = decode_continue(tok)?;
        if trv < st.floor {
            return Err(Status::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            ));
        }
        list_rv = trv;
        start = Some(s);
    } else if let Some(rv) = rv {
        let n = parse_rv(rv)?;
        match req.param("resourceVersionMatch").unwrap_or("") {
            "Exact" if n < st.floor || n < st.rv => {
                return Err(Status::expired(format!(
                    "too old resource version: {n} ({})",
                    st.floor.max(st.rv)
                )))
            }
            "Exact" | "NotOlderThan" | "" if n > st.rv => return Err(too_large(n, st.rv)),
            "Exact" | "NotOlderThan" | "" => {}
            other => {
                return Err(Status::bad_request(format!(
                    "unsupported resourceVersionMatch \"{other}\""
                )))
            }
        }
    }
    let limit = match req.param("limit").filter(|s| !s.is_empty()) {
        _ if rv == Some("0") && cont.is_none() => None,
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| Status::bad_request(format!("invalid limit \"{l}\"")))?,
        )
        .filter(|l| *l > 0),
        None => None,
    };
    let all: Vec<(&Key, &Value)> = st
        .list(kind, ns, &sel)
        .into_iter()
        .filter(|(k, _)| {
            start
                .as_ref()
                .is_none_or(|(ns, n)| (k.1.as_str(), k.2.as_str()) > (ns.as_str(), n.as_str()))
        })
        .collect();
    let take = limit.unwrap_or(all.len()).min(all.len());
    let items: Vec<Value> = all[..take]
        .iter()
        .map(|(_, v)| {
            // Items of a typed list carry no apiVersion/kind of their own.
            let mut v = (*v).clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("apiVersion");
                o.remove("kind");
            }
            v
        })
        .collect();
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if take < all.len() {
        meta["continue"] = json!(encode_continue(list_rv, all[take - 1].0));
        meta["remainingItemCount"] = json!(all.len() - take);
    }
    Ok(json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": kind.api_version(),
        "metadata": meta,
        "items": items
    }))
}

fn encode_continue(rv: u64, last: &Key) -> String {
    let t = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": [last.1, last.2]});
    base64::engine::general_purpose::URL_SAFE.encode(t.to_string())
}

fn decode_continue(tok: &str) -> Result<(u64, (String, String)), Status> {
    let bad = || Status::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(tok)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let part = |i: usize| {
        v.pointer(&format!("/start/{i}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (ns, name) = (part(0).ok_or_else(bad)?, part(1).ok_or_else(bad)?);
    Ok((rv, (ns, name)))
}
