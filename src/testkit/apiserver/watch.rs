//! Watches: a 200 response with chunked transfer, one `{"type":..,"object":..}` JSON line
//! per event (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR), as the watch handler writes them
//! (k8s.io/apiserver `pkg/endpoints/handlers/watch.go`). Where it starts:
//! - `resourceVersion` unset or "0": the current objects as ADDED, then changes;
//! - `resourceVersion=N`: every change after N; N older than the last compaction is
//!   "too old resource version: N (M)", sent as one ERROR event holding a 410 Expired
//!   Status after which the stream ends (the watch cache's way, `cacher/watch_cache.go`),
//!   or as an HTTP 410 when the test asks for that form;
//! - `sendInitialEvents=true`: the current objects, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"` (when bookmarks are allowed), then changes.
//!
//! BOOKMARKs (with `allowWatchBookmarks`) come every `bookmark_every`. The stream ends
//! cleanly at `timeoutSeconds` (default 1800) or on `close_watches`, and the connection
//! stays usable; `set_down` and dropping the server cut it.

use super::http::{self, Request};
use super::server::{Conn, Shared};
use super::status::Status;
use super::store::{Kind, Selector, State};
use serde_json::{json, Value};
use std::io;
use std::time::{Duration, Instant};

/// What a watch request asked for, checked before the stream starts.
#[derive(Debug)]
pub(crate) struct WatchPlan {
    kind: Kind,
    ns: Option<String>,
    sel: Selector,
    /// `None`: start with the current state as ADDED events.
    after: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
    initial_events_end: bool,
    expired: Option<Status>,
}

/// Check a watch request. `Ok(Err(status))` is an HTTP 410 answer instead of a stream.
pub(crate) fn plan(
    st: &State,
    kind: Kind,
    ns: Option<&str>,
    req: &Request,
) -> Result<Result<WatchPlan, Status>, Status> {
    let sel = Selector::parse(kind, req.param("fieldSelector"), req.param("labelSelector"))
        .map_err(Status::bad_request)?;
    let initial = req.flag("sendInitialEvents");
    let after = match req
        .param("resourceVersion")
        .filter(|s| !s.is_empty() && *s != "0")
    {
        _ if initial => None,
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| Status::bad_request(format!("invalid resource version \"{s}\"")))?,
        ),
    };
    let timeout = match req.param("timeoutSeconds").filter(|s| !s.is_empty()) {
        None => Duration::from_secs(1800),
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| Status::bad_request(format!("invalid timeoutSeconds \"{t}\"")))?,
        ),
    };
    let mut expired = None;
    if let Some(n) = after.filter(|n| *n < st.floor) {
        let s = Status::expired(format!("too old resource version: {n} ({})", st.floor - 1));
        if st.gone_as_http {
            return Ok(Err(s));
        }
        expired = Some(s);
    }
    Ok(Ok(WatchPlan {
        kind,
        ns: ns.map(str::to_string),
        sel,
        after,
        timeout,
        bookmarks: req.flag("allowWatchBookmarks"),
        initial_events_end: initial,
        expired,
    }))
}

fn line(kind: &str, object: &Value) -> Vec<u8> {
    let mut b = json!({"type": kind, "object": object})
        .to_string()
        .into_bytes();
    b.push(b'\n');
    b
}

fn bookmark(kind: Kind, rv: u64, end_of_initial: bool) -> Vec<u8> {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if end_of_initial {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": meta}),
    )
}

/// Counts the watch as open while it lives.
struct Open<'a>(&'a Shared);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0
            .mutate(|st| st.open_watches = st.open_watches.saturating_sub(1));
    }
}

enum Step {
    Send(Vec<u8>),
    End,
    Cut,
}

/// Serve the stream. `Ok(true)`: it ended cleanly and the connection can serve more.
pub(crate) fn stream(shared: &Shared, c: &mut Conn, plan: WatchPlan) -> io::Result<bool> {
    http::write_stream_head(c.out())?;
    if let Some(s) = &plan.expired {
        http::write_chunk(c.out(), &line("ERROR", &s.body))?;
        http::end_stream(c.out())?;
        return Ok(true);
    }
    let ns = plan.ns.as_deref();
    let matches = |e: &super::store::Event| {
        e.key.0 == plan.kind
            && ns.is_none_or(|n| e.key.1 == n)
            && plan.sel.matches(plan.kind, &e.object)
    };
    let (gen, mut last, initial, every) = {
        let mut st = shared.lock();
        st.open_watches += 1;
        let initial: Vec<u8> = match plan.after {
            Some(_) => Vec::new(),
            None => st
                .list(plan.kind, ns, &plan.sel)
                .into_iter()
                .flat_map(|(_, o)| line("ADDED", o))
                .collect(),
        };
        (
            st.watch_gen,
            plan.after.unwrap_or(st.rv),
            initial,
            st.bookmark_every,
        )
    };
    shared.wake.notify_all();
    let _open = Open(shared);
    http::write_chunk(c.out(), &initial)?;
    if plan.initial_events_end && plan.bookmarks {
        http::write_chunk(c.out(), &bookmark(plan.kind, last, true))?;
    }
    let deadline = Instant::now() + plan.timeout;
    let mut next_bookmark = Instant::now() + every;
    let mut peer_checked = Instant::now();
    loop {
        let mut st = shared.lock();
        let step = loop {
            if st.stopping || st.down {
                break Step::Cut;
            }
            if st.watch_gen != gen {
                break Step::End;
            }
            let from = st.events.partition_point(|e| e.rv <= last);
            let out: Vec<u8> = st.events[from..]
                .iter()
                .filter(|e| matches(e))
                .flat_map(|e| line(e.kind, &e.object))
                .collect();
            if let Some(e) = st.events.last() {
                last = last.max(e.rv);
            }
            if !out.is_empty() {
                break Step::Send(out);
            }
            let now = Instant::now();
            if now >= deadline {
                break Step::End;
            }
            if plan.bookmarks && now >= next_bookmark {
                next_bookmark = now + every;
                last = last.max(st.rv);
                break Step::Send(bookmark(plan.kind, last, false));
            }
            if now.duration_since(peer_checked) >= Duration::from_secs(1) {
                drop(st);
                peer_checked = now;
                if c.peer_gone() {
                    return Ok(false);
                }
                st = shared.lock();
                continue;
            }
            let mut until = deadline.min(now + Duration::from_secs(1));
            if plan.bookmarks {
                until = until.min(next_bookmark);
            }
            st = shared.wait(st, until.saturating_duration_since(now));
        };
        drop(st);
        match step {
            Step::Send(b) => http::write_chunk(c.out(), &b)?,
            Step::End => {
                http::end_stream(c.out())?;
                return Ok(true);
            }
            Step::Cut => return Ok(false),
        }
    }
}
