//! Golden tests on kubeadm-shaped files and property tests for `yamledit`.
//!
//! The property tests generate documents from a model that knows what each scalar means, so the
//! oracle for "only the target changed" is the model, not the parser under test.

use kubeadm_certd::node::yamledit::{
    find_scalar, replace_entry, replace_scalar, set_top_level, Step, YamlEditError,
};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};
use Step::{Key, Named};

const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMvakNDQWVhZ0F3SUJBZ0lCQURBTkJna3Foa2lHOXcwQkFRc0ZBREFWTVJNd0VRWURWUVFERXdwcmRXSmwKY201bGRHVnpNQjRYRFRJME1ERXdNVEF3TURBd01Gb1hEVE0wTURFd01UQXdNREF3TUZvd0ZURVRNQkVHQTFVRQpBeE1LYTNWaVpYSnVaWFJsY3pDQ0FTSXdEUVlKS29aSWh2Y05BUUVCQlFBRGdnRVBBRENDQVFvQ2dnRUJBTUtCCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";
const CERT: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSURJVENDQWdtZ0F3SUJBZ0lJSmxkY0V3PT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
const KEY: &str = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVBMnZ3PT0KLS0tLS1FTkQgUlNBIFBSSVZBVEUgS0VZLS0tLS0K";
const NEW: &str = "TkVXLUNFUlQtREFUQQ==";

fn admin_conf(user: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {CA}\n    \
         server: https://10.0.0.10:6443\n  name: kubernetes\ncontexts:\n- context:\n    \
         cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\n\
         current-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n\
         - name: {user}\n  user:\n    client-certificate-data: {CERT}\n    client-key-data: {KEY}\n"
    )
}

#[test]
fn golden_admin_conf_fields() {
    let t = admin_conf("kubernetes-admin");
    let user = [Key("users"), Named("kubernetes-admin"), Key("user")];
    for (field, old) in [("client-certificate-data", CERT), ("client-key-data", KEY)] {
        let path = [user[0], user[1], user[2], Key(field)];
        let out = replace_scalar(&t, &path, NEW).unwrap();
        assert_eq!(
            out,
            t.replace(&format!("{field}: {old}"), &format!("{field}: {NEW}"))
        );
    }
    let path = [
        Key("clusters"),
        Named("kubernetes"),
        Key("cluster"),
        Key("certificate-authority-data"),
    ];
    let out = replace_scalar(&t, &path, NEW).unwrap();
    assert_eq!(out, t.replace(CA, NEW));
    let r = find_scalar(&t, &path).unwrap().unwrap();
    assert_eq!(&t[r], CA);
    let wrong = [
        Key("users"),
        Named("nobody"),
        Key("user"),
        Key("client-key-data"),
    ];
    assert!(matches!(
        replace_scalar(&t, &wrong, NEW),
        Err(YamlEditError::NotFound(_))
    ));
}

#[test]
fn golden_kubelet_conf_to_files() {
    let t = admin_conf("system:node:node-1");
    let pem = "/var/lib/kubelet/pki/kubelet-client-current.pem";
    let user = |f| {
        [
            Key("users"),
            Named("system:node:node-1"),
            Key("user"),
            Key(f),
        ]
    };
    let t1 = replace_entry(
        &t,
        &user("client-certificate-data"),
        "client-certificate",
        pem,
    )
    .unwrap();
    let out = replace_entry(&t1, &user("client-key-data"), "client-key", pem).unwrap();
    let want = t
        .replace(
            &format!("client-certificate-data: {CERT}"),
            &format!("client-certificate: {pem}"),
        )
        .replace(
            &format!("client-key-data: {KEY}"),
            &format!("client-key: {pem}"),
        );
    assert_eq!(out, want);
    let v: Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(v["users"][0]["user"]["client-key"].as_str(), Some(pem));
}

const KUBELET: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\n    cacheUnauthorizedTTL: 0s\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\ncontainerRuntimeEndpoint: \"\"\ncpuManagerReconcilePeriod: 0s\nevictionPressureTransitionPeriod: 0s\nfileCheckFrequency: 0s\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\n# edited by hand\nhttpCheckFrequency:   0s\nkind: KubeletConfiguration\nlogging:\n  flushFrequency: 0\n  options:\n    json:\n      infoBufferSize: \"0\"\n  verbosity: 0\nmemorySwap: {}\nrotateCertificates:  true   # keep\nstaticPodPath: /etc/kubernetes/manifests\nsyncFrequency: 0s\nvolumeStatsAggPeriod: 0s\n";

#[test]
fn golden_kubelet_config_server_tls_bootstrap() {
    let out = set_top_level(KUBELET, "serverTLSBootstrap", "true").unwrap();
    assert_eq!(out, format!("{KUBELET}serverTLSBootstrap: true\n"));
    let back = set_top_level(&out, "serverTLSBootstrap", "false").unwrap();
    assert_eq!(back, format!("{KUBELET}serverTLSBootstrap: false\n"));
    assert_eq!(
        set_top_level(&back, "serverTLSBootstrap", "true").unwrap(),
        out
    );
    assert_eq!(
        set_top_level(&out, "serverTLSBootstrap", "true").unwrap(),
        out
    );
    // Present in the middle, with odd spacing and a comment.
    let mid = KUBELET.replace(
        "syncFrequency",
        "serverTLSBootstrap:    false # x\nsyncFrequency",
    );
    let want = mid.replace("false # x", "true # x");
    assert_eq!(
        set_top_level(&mid, "serverTLSBootstrap", "true").unwrap(),
        want
    );
    // A nested key of the same name is not the top-level one.
    let crlf = KUBELET
        .replace('\n', "\r\n")
        .replace("x509:", "serverTLSBootstrap: false\r\n  x509:");
    let out = set_top_level(&crlf, "serverTLSBootstrap", "true").unwrap();
    assert_eq!(out, format!("{crlf}serverTLSBootstrap: true\r\n"));
}

// ---------- model-based property tests ----------

#[derive(Clone, Debug)]
enum M {
    S {
        text: String,
        block: Vec<String>,
        value: Value,
    },
    Map(Vec<Entry>),
    /// Block sequence of mappings, kubeadm style (`- ` at the parent key's indent).
    Seq(Vec<Vec<Entry>>),
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    val: M,
    comment_before: bool,
    comment_after: bool,
    spaces: usize,
}

fn value_of(m: &M) -> Value {
    match m {
        M::S { value, .. } => value.clone(),
        M::Map(es) => Value::Mapping(map_of(es)),
        M::Seq(items) => {
            Value::Sequence(items.iter().map(|es| Value::Mapping(map_of(es))).collect())
        }
    }
}

fn map_of(es: &[Entry]) -> Mapping {
    es.iter()
        .map(|e| (Value::String(e.key.clone()), value_of(&e.val)))
        .collect()
}

/// Render entries at `ind`; `dash` makes the first line a sequence item (`- `).
fn render(es: &[Entry], ind: usize, dash: bool, eol: &str, out: &mut String) {
    for (i, e) in es.iter().enumerate() {
        let first_of_item = dash && i == 0;
        let pad = " ".repeat(ind);
        if e.comment_before && !first_of_item {
            out.push_str(&format!("{pad}# about {}{eol}", e.key));
        }
        let lead = if first_of_item {
            format!("{}- ", " ".repeat(ind - 2))
        } else {
            pad.clone()
        };
        out.push_str(&format!("{lead}{}:", e.key));
        let tail = if e.comment_after {
            " # trailing: 'x' \"y\""
        } else {
            ""
        };
        let sp = " ".repeat(e.spaces);
        match &e.val {
            M::S { text, block, .. } if !block.is_empty() => {
                out.push_str(&format!("{sp}|{tail}{eol}"));
                for l in block {
                    out.push_str(&format!("{pad}  {l}{eol}"));
                }
            }
            M::S { text, .. } if text.is_empty() => out.push_str(&format!("{tail}{eol}")),
            M::S { text, .. } => out.push_str(&format!("{sp}{text}{tail}{eol}")),
            M::Map(kids) => {
                out.push_str(&format!("{tail}{eol}"));
                render(kids, ind + 2, false, eol, out);
            }
            M::Seq(items) => {
                out.push_str(&format!("{tail}{eol}"));
                for item in items {
                    render(item, ind + 2, true, eol, out);
                }
            }
        }
    }
}

fn scalar() -> impl Strategy<Value = M> {
    let s = |text: String, value: Value| M::S {
        text,
        block: vec![],
        value,
    };
    prop_oneof![
        "v[a-z0-9]{0,8}".prop_map(move |w| s(w.clone(), Value::String(w))),
        (1u32..999_999).prop_map(move |n| s(n.to_string(), Value::Number(n.into()))),
        any::<bool>().prop_map(move |b| s(b.to_string(), Value::Bool(b))),
        prop_oneof![Just(""), Just("null"), Just("~")].prop_map(move |t| s(t.into(), Value::Null)),
        "[a-z' #:]{0,10}"
            .prop_map(move |c| s(format!("'{}'", c.replace('\'', "''")), Value::String(c))),
        "[a-z\"\\\\ #:]{0,10}".prop_map(move |c| {
            let q = c.replace('\\', "\\\\").replace('"', "\\\"");
            s(format!("\"{q}\""), Value::String(c))
        }),
        prop::collection::vec("[a-z][a-z #:]{0,8}[a-z]", 1..4).prop_map(|ls| M::S {
            text: String::new(),
            value: Value::String(ls.iter().map(|l| format!("{l}\n")).collect()),
            block: ls,
        }),
    ]
}

fn entries(
    val: impl Strategy<Value = M>,
    n: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Entry>> {
    let entry = ("k[a-d]{0,2}", val, any::<bool>(), any::<bool>(), 1usize..4).prop_map(
        |(key, val, comment_before, comment_after, spaces)| Entry {
            key,
            val,
            comment_before,
            comment_after,
            spaces,
        },
    );
    prop::collection::vec(entry, n).prop_map(|mut es| {
        let mut seen = std::collections::HashSet::new();
        es.retain(|e| seen.insert(e.key.clone()));
        es
    })
}

fn tree() -> impl Strategy<Value = Vec<Entry>> {
    let node = scalar().prop_recursive(3, 24, 4, |inner| entries(inner, 1..4).prop_map(M::Map));
    entries(node, 1..7)
}

fn b64() -> impl Strategy<Value = String> {
    "LS[A-Za-z0-9+/]{2,60}={0,2}"
}

/// `out` equals `orig` outside `r`, and what replaced `r` is `new` (plus one space if inserted).
fn assert_only_range_changed(orig: &str, out: &str, r: std::ops::Range<usize>, new: &str) {
    assert!(out.starts_with(&orig[..r.start]), "prefix changed");
    assert!(out.ends_with(&orig[r.end..]), "suffix changed");
    let mid = &out[r.start..out.len() - (orig.len() - r.end)];
    let mid = if r.is_empty() {
        mid.strip_prefix(' ').unwrap()
    } else {
        mid
    };
    assert_eq!(mid, new);
}

fn same(a: &Value, b: &Value) {
    assert_eq!(a, b);
    // Mapping equality ignores order; the serialized form does not.
    assert_eq!(
        serde_yaml::to_string(a).unwrap(),
        serde_yaml::to_string(b).unwrap()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn set_top_level_changes_only_that_key(
        es in tree(),
        pick in any::<prop::sample::Index>(),
        fresh in any::<bool>(),
        crlf in any::<bool>(),
        doc_start in any::<bool>(),
        final_eol in any::<bool>(),
        new in prop_oneof![Just("true".to_string()), Just("false".to_string()), b64()],
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut orig = if doc_start { format!("---{eol}") } else { String::new() };
        render(&es, 0, false, eol, &mut orig);
        let model = Value::Mapping(map_of(&es));
        // Without a final line break a trailing block scalar would lose its last newline.
        let final_eol = final_eol || !matches!(es.last().map(|e| &e.val), Some(M::S { block, .. }) if block.is_empty());
        if !final_eol {
            orig.truncate(orig.len() - eol.len());
        }
        same(&serde_yaml::from_str::<Value>(&orig).unwrap(), &model);

        let key = if fresh { "zznew".to_string() } else { pick.get(&es).key.clone() };
        let existing = es.iter().find(|e| e.key == key);
        let res = set_top_level(&orig, &key, &new);
        if let Some(Entry { val: M::Map(_) | M::Seq(_), .. }) = existing {
            prop_assert!(matches!(res, Err(YamlEditError::NotScalar(_))));
            return Ok(());
        }
        let out = res.unwrap();
        let mut want = map_of(&es);
        want.insert(Value::String(key.clone()), serde_yaml::from_str(&new).unwrap());
        same(&serde_yaml::from_str::<Value>(&out).unwrap(), &Value::Mapping(want));
        if let Some(e) = existing {
            let r = find_scalar(&orig, &[Key(&key)]).unwrap().unwrap();
            if let M::S { block, .. } = &e.val {
                // A replaced block scalar's range runs from `|` to its last content line.
                prop_assert!(block.is_empty() || orig[r.clone()].starts_with('|'));
            }
            assert_only_range_changed(&orig, &out, r, &new);
        } else {
            // A one-line file without a line break gets `\n`: nothing says CRLF.
            let eol = if orig.contains("\r\n") { "\r\n" } else { "\n" };
            let sep = if final_eol { "" } else { eol };
            prop_assert_eq!(out, format!("{orig}{sep}{key}: {new}{eol}"));
        }
    }
}

fn kube_item(
    name_key: &str,
    name: &str,
    body_key: &str,
    body: Vec<Entry>,
    order: bool,
) -> Vec<Entry> {
    let e = |key: &str, val: M, spaces| Entry {
        key: key.into(),
        val,
        comment_before: false,
        comment_after: false,
        spaces,
    };
    let name_e = e(
        name_key,
        M::S {
            text: name.into(),
            block: vec![],
            value: Value::String(name.into()),
        },
        1,
    );
    let body_e = e(body_key, M::Map(body), 1);
    if order {
        vec![name_e, body_e]
    } else {
        vec![body_e, name_e]
    }
}

fn quoted(style: u8, v: &str) -> M {
    let text = match style % 3 {
        0 => v.to_string(),
        1 => format!("'{v}'"),
        _ => format!("\"{v}\""),
    };
    M::S {
        text,
        block: vec![],
        value: Value::String(v.into()),
    }
}

/// A kubeconfig with 1..4 clusters and users whose data fields use random quoting and comments.
fn kubeconfig() -> impl Strategy<Value = (Vec<Entry>, Vec<String>)> {
    let names = prop::collection::btree_set("u[a-z]{0,5}", 1..4)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>());
    (
        names,
        prop::collection::vec((b64(), b64(), any::<u8>(), any::<bool>(), any::<bool>()), 4),
    )
        .prop_map(|(names, data)| {
            let field = |k: &str, v: &str, st: u8, c: bool| Entry {
                key: k.into(),
                val: quoted(st, v),
                comment_before: c,
                comment_after: !c,
                spaces: 1 + (st as usize % 2),
            };
            let mut clusters = vec![];
            let mut users = vec![];
            for (i, n) in names.iter().enumerate() {
                let (a, b, st, c, order) = data[i].clone();
                let server = field("server", "https://10.0.0.1:6443", 0, false);
                clusters.push(kube_item(
                    "name",
                    n,
                    "cluster",
                    vec![field("certificate-authority-data", &a, st, c), server],
                    order,
                ));
                let mut u = vec![
                    field("client-certificate-data", &a, st / 3, c),
                    field("client-key-data", &b, st / 9, !c),
                ];
                if order {
                    u.reverse();
                }
                users.push(kube_item("name", n, "user", u, !order));
            }
            let top = |k: &str, val: M| Entry {
                key: k.into(),
                val,
                comment_before: false,
                comment_after: false,
                spaces: 1,
            };
            let es = vec![
                top("apiVersion", quoted(0, "v1")),
                top("clusters", M::Seq(clusters)),
                top("kind", quoted(0, "Config")),
                top("users", M::Seq(users)),
            ];
            (es, names)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn replace_scalar_changes_only_the_target_field(
        (es, names) in kubeconfig(),
        pick in any::<prop::sample::Index>(),
        field in 0usize..3,
        rename in any::<bool>(),
        new in b64(),
    ) {
        let mut orig = String::new();
        render(&es, 0, false, "\n", &mut orig);
        let model = Value::Mapping(map_of(&es));
        same(&serde_yaml::from_str::<Value>(&orig).unwrap(), &model);
        let name = pick.get(&names).as_str();
        let (list, body, f) = [
            ("clusters", "cluster", "certificate-authority-data"),
            ("users", "user", "client-certificate-data"),
            ("users", "user", "client-key-data"),
        ][field];
        let path = [Key(list), Named(name), Key(body), Key(f)];
        let r = find_scalar(&orig, &path).unwrap().unwrap();

        let mut want = model.clone();
        let items = want[list].as_sequence_mut().unwrap();
        let item = items.iter_mut().find(|it| it["name"].as_str() == Some(name)).unwrap();
        let inner = item[body].as_mapping_mut().unwrap();
        if rename {
            let new_key = f.trim_end_matches("-data");
            let out = replace_entry(&orig, &path, new_key, &new).unwrap();
            let old = std::mem::take(inner);
            for (k, v) in old {
                if k.as_str() == Some(f) { inner.insert(new_key.into(), new.clone().into()); } else { inner.insert(k, v); }
            }
            same(&serde_yaml::from_str::<Value>(&out).unwrap(), &want);
            let kstart = orig[..r.start].rfind(f).unwrap();
            let between = &orig[kstart + f.len()..r.start];
            assert_only_range_changed(&orig, &out, kstart..r.end, &format!("{new_key}{between}{new}"));
        } else {
            let out = replace_scalar(&orig, &path, &new).unwrap();
            inner.insert(f.into(), new.clone().into());
            same(&serde_yaml::from_str::<Value>(&out).unwrap(), &want);
            assert_only_range_changed(&orig, &out, r, &new);
        }
    }
}
