//! The kubelet-config single-key edit: on success the result sets serverTLSBootstrap to true
//! and every other top-level entry is what it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_yaml::{Mapping, Value};

const KEY: &str = "serverTLSBootstrap";

/// The top-level mapping and the document's tag, if any (a tagged mapping is still a mapping).
fn mapping(text: &str) -> (Mapping, Option<String>) {
    let v = serde_yaml::from_str::<Value>(text).expect("an accepted document parses");
    let (v, tag) = match v {
        Value::Tagged(t) => (t.value, Some(t.tag.to_string())),
        v => (v, None),
    };
    match v {
        Value::Null => (Mapping::new(), tag),
        Value::Mapping(m) => (m, tag),
        other => panic!("edit accepted a non-mapping document: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(out) = kubeadm_certd::node::yamledit::set_top_level(text, KEY, "true") else {
        return;
    };
    let (mut before, tag_before) = mapping(text);
    let (mut after, tag_after) = mapping(&out);
    assert_eq!(
        tag_before, tag_after,
        "document tag changed:\n{text:?}\n->\n{out:?}"
    );
    assert_eq!(after.get(KEY), Some(&Value::Bool(true)), "{out:?}");
    before.remove(KEY);
    after.remove(KEY);
    assert_eq!(
        before, after,
        "other entries changed:\n{text:?}\n->\n{out:?}"
    );
});
