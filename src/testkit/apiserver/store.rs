//! The object store: one global resourceVersion counter (etcd's revision), the objects, and
//! the event history that watches replay. `compact` moves the floor below which history is
//! gone (410 Expired), as etcd compaction does.

use super::faults::Faults;
use super::Recorded;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// The resources the stand-in serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Node,
    ConfigMap,
    Service,
    Csr,
}

impl Kind {
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::ConfigMap => "configmaps",
            Kind::Service => "services",
            Kind::Csr => "certificatesigningrequests",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Kind::Csr => "certificates.k8s.io",
            _ => "",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::Csr => "CertificateSigningRequest",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Csr => "certificates.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(self, Kind::ConfigMap | Kind::Service)
    }

    /// schema.GroupResource.String(): "resource.group", or "resource" in the core group.
    pub fn qualified(self) -> String {
        match self.group() {
            "" => self.resource().to_string(),
            g => format!("{}.{g}", self.resource()),
        }
    }

    /// schema.GroupKind.String(): "Kind.group", or "Kind" in the core group.
    pub fn group_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_string(),
            g => format!("{}.{g}", self.kind()),
        }
    }

    /// The field labels the registry's `GetAttrs`/`SelectableFields` offers: ObjectMeta's
    /// (`generic.ObjectMetaFieldsSet`) plus the resource's own
    /// (kubernetes pkg/registry/{certificates/certificates,core/node}/strategy.go).
    fn field(self, obj: &Value, label: &str) -> Option<String> {
        let s = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match (self, label) {
            (_, "metadata.name") => Some(s("/metadata/name")),
            (k, "metadata.namespace") if k.namespaced() => Some(s("/metadata/namespace")),
            (Kind::Csr, "spec.signerName") => Some(s("/spec/signerName")),
            (Kind::Node, "spec.unschedulable") => Some(
                obj.pointer("/spec/unschedulable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
            ),
            (Kind::Service, "spec.clusterIP") => Some(s("/spec/clusterIP")),
            (Kind::Service, "spec.type") => Some(s("/spec/type")),
            _ => None,
        }
    }
}

/// (kind, namespace or "", name)
pub(crate) type Key = (Kind, String, String);

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
}

/// Everything the server holds, behind one mutex (tests are small; simplicity wins).
#[derive(Debug)]
pub(crate) struct State {
    pub rv: u64,
    /// History below this resourceVersion is compacted: asking for it gives 410.
    pub floor: u64,
    pub objects: BTreeMap<Key, Value>,
    pub events: Vec<Event>,
    /// Bumped by `close_watches`: every watch started under an older value ends.
    pub watch_gen: u64,
    pub open_watches: usize,
    pub faults: Faults,
    pub requests: Vec<Recorded>,
    pub git_version: String,
    pub stopping: bool,
    pub down: bool,
    /// Answer a watch from a compacted resourceVersion with an HTTP 410 instead of a 200
    /// stream holding one ERROR event.
    pub gone_as_http: bool,
    pub bookmark_every: Duration,
}

impl State {
    pub fn new() -> State {
        State {
            rv: 1,
            floor: 0,
            objects: BTreeMap::new(),
            events: Vec::new(),
            watch_gen: 0,
            open_watches: 0,
            faults: Faults::default(),
            requests: Vec::new(),
            git_version: "v1.34.0".into(),
            stopping: false,
            down: false,
            gone_as_http: false,
            bookmark_every: Duration::from_secs(60),
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    fn emit(&mut self, kind: &'static str, key: Key, object: Value) {
        self.events.push(Event {
            rv: self.rv,
            kind,
            key,
            object,
        });
    }

    /// Store a new object: uid, resourceVersion and creationTimestamp are the server's.
    pub fn create(&mut self, key: Key, mut obj: Value) -> Value {
        self.rv += 1;
        let (kind, ns, name) = &key;
        let rv = self.rv.to_string();
        with_meta(&mut obj, |meta| {
            meta.insert("name".into(), json!(name));
            if kind.namespaced() {
                meta.insert("namespace".into(), json!(ns));
            }
            meta.insert("uid".into(), json!(new_uid()));
            meta.insert("resourceVersion".into(), json!(rv));
            meta.insert("creationTimestamp".into(), json!(rfc3339(now())));
            for k in [
                "generation",
                "deletionTimestamp",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(k);
            }
        });
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind());
        self.objects.insert(key.clone(), obj.clone());
        self.emit("ADDED", key, obj.clone());
        obj
    }

    /// Replace an existing object (the caller has applied the strategy); a new
    /// resourceVersion, system metadata kept from the stored object.
    pub fn update(&mut self, key: &Key, mut obj: Value) -> Value {
        let old_meta = self
            .objects
            .get(key)
            .and_then(|o| o.get("metadata"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        self.rv += 1;
        let rv = self.rv.to_string();
        with_meta(&mut obj, |meta| {
            for k in ["name", "namespace", "uid", "creationTimestamp"] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.insert("resourceVersion".into(), json!(rv));
        });
        obj["apiVersion"] = json!(key.0.api_version());
        obj["kind"] = json!(key.0.kind());
        self.objects.insert(key.clone(), obj.clone());
        self.emit("MODIFIED", key.clone(), obj.clone());
        obj
    }

    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        let rv = self.rv.to_string();
        with_meta(&mut obj, |m| m.insert("resourceVersion".into(), json!(rv)));
        self.emit("DELETED", key.clone(), obj.clone());
        Some(obj)
    }

    /// Objects of `kind` (in `ns` if given) that the selector matches, by key order.
    pub fn list(&self, kind: Kind, ns: Option<&str>, sel: &Selector) -> Vec<(&Key, &Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.0 == kind && ns.is_none_or(|n| k.1 == n))
            .filter(|(k, v)| sel.matches(k.0, v))
            .collect()
    }

    /// etcd compaction: everything so far is history that can no longer be replayed. The
    /// revision moves on (as other writes in etcd would), so a fresh list gives a version
    /// that can be watched from.
    pub fn compact(&mut self) {
        self.rv += 1;
        self.floor = self.rv;
        let floor = self.floor;
        self.events.retain(|e| e.rv >= floor);
    }
}

/// Run `f` on the object's metadata map, made an (empty) object first if need be.
pub(crate) fn with_meta<T>(
    obj: &mut Value,
    f: impl FnOnce(&mut serde_json::Map<String, Value>) -> T,
) -> T {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let mut scratch = serde_json::Map::new();
    match obj["metadata"].as_object_mut() {
        Some(m) => f(m),
        None => f(&mut scratch),
    }
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// metav1.Time marshals as RFC 3339 with whole seconds, in UTC.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    // RFC 4122 version 4 layout, as k8s.io/apimachinery/pkg/util/uuid gives.
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][usize::from(b[8] & 3)],
        &h[17..20],
        &h[20..32]
    )
}

/// A field selector (`a=b,c!=d`) and an equality/existence label selector.
#[derive(Debug, Default, Clone)]
pub(crate) struct Selector {
    fields: Vec<(String, bool, String)>,
    labels: Vec<(String, LabelOp)>,
}

#[derive(Debug, Clone)]
enum LabelOp {
    Eq(String),
    Ne(String),
    Exists,
    Absent,
}

impl Selector {
    /// Parse `fieldSelector`/`labelSelector`; an unknown field label is refused as the real
    /// registry refuses it ("field label not supported: X").
    pub fn parse(
        kind: Kind,
        fields: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Selector, String> {
        let mut sel = Selector::default();
        for term in fields.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            let (k, eq, v) =
                split_term(term).ok_or_else(|| format!("invalid selector: '{term}'"))?;
            if kind.field(&json!({}), &k).is_none() {
                return Err(format!("field label not supported: {k}"));
            }
            sel.fields.push((k, eq, v));
        }
        for term in labels.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
            let term = term.trim();
            let op = match split_term(term) {
                Some((k, true, v)) => (k, LabelOp::Eq(v)),
                Some((k, false, v)) => (k, LabelOp::Ne(v)),
                None if term.contains(' ') || term.contains('(') => {
                    return Err(format!(
                        "set-based label selectors are not implemented by the stand-in: '{term}'"
                    ))
                }
                None => match term.strip_prefix('!') {
                    Some(k) => (k.to_string(), LabelOp::Absent),
                    None => (term.to_string(), LabelOp::Exists),
                },
            };
            sel.labels.push(op);
        }
        Ok(sel)
    }

    pub fn matches(&self, kind: Kind, obj: &Value) -> bool {
        let fields_ok = self
            .fields
            .iter()
            .all(|(k, eq, v)| (kind.field(obj, k).as_deref() == Some(v.as_str())) == *eq);
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        let labels_ok = self.labels.iter().all(|(k, op)| match op {
            LabelOp::Eq(v) => label(k) == Some(v.as_str()),
            LabelOp::Ne(v) => label(k) != Some(v.as_str()),
            LabelOp::Exists => label(k).is_some(),
            LabelOp::Absent => label(k).is_none(),
        });
        fields_ok && labels_ok
    }
}

/// `k=v`, `k==v` (equal) or `k!=v` (not equal).
fn split_term(term: &str) -> Option<(String, bool, String)> {
    if let Some((k, v)) = term.split_once("!=") {
        return Some((k.trim().into(), false, v.trim().into()));
    }
    let (k, v) = term.split_once('=')?;
    let v = v.strip_prefix('=').unwrap_or(v);
    Some((k.trim().into(), true, v.trim().into()))
}
