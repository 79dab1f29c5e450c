//! Unit tests of the YAML editor: exact output for every edge case.
#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use Step::{Key, Named};

fn ok(text: &str, path: &[Step], new: &str, want: &str) {
    assert_eq!(
        replace_scalar(text, path, new).unwrap(),
        want,
        "input {text:?}"
    );
}

#[test]
fn replaces_plain_quoted_and_commented_values() {
    ok(
        "a: 1\nb: old # c\nc: 3\n",
        &[Key("b")],
        "new",
        "a: 1\nb: new # c\nc: 3\n",
    );
    ok("b: 'x y'\n", &[Key("b")], "new", "b: new\n");
    ok("b: 'it''s' # c\n", &[Key("b")], "new", "b: new # c\n");
    ok(
        "b: \"x\\\"y\" # \"c\"\n",
        &[Key("b")],
        "new",
        "b: new # \"c\"\n",
    );
    ok("b:    \"x\"\t# c", &[Key("b")], "true", "b:    true\t# c");
    ok("a: abc\n  def\nb: 1\n", &[Key("a")], "x", "a: x\nb: 1\n");
    ok("\"b\" : 1\n", &[Key("b")], "2", "\"b\" : 2\n");
}

#[test]
fn replaces_empty_and_null_values() {
    ok("b:\nc: 1\n", &[Key("b")], "v", "b: v\nc: 1\n");
    ok("b:", &[Key("b")], "v", "b: v");
    ok("b:   # c\nc: 1\n", &[Key("b")], "v", "b: v   # c\nc: 1\n");
    ok(
        "x:\n  b:\n  c: 1\n",
        &[Key("x"), Key("b")],
        "v",
        "x:\n  b: v\n  c: 1\n",
    );
    ok("b: # c\n", &[Key("b")], "v", "b: v # c\n");
    ok("b:\t# c\n", &[Key("b")], "v", "b: v\t# c\n");
    ok("b: null\n", &[Key("b")], "v", "b: v\n");
    ok("b: ~\n", &[Key("b")], "v", "b: v\n");
    ok("b: \"\"\n", &[Key("b")], "v", "b: v\n");
    ok("b: ''\n", &[Key("b")], "null", "b: null\n");
}

#[test]
fn keeps_crlf_bom_document_start_and_non_ascii() {
    ok("a: 1\r\nb: x\r\n", &[Key("b")], "y", "a: 1\r\nb: y\r\n");
    ok("a:\r\nb: 2\r\n", &[Key("a")], "y", "a: y\r\nb: 2\r\n");
    ok("---\na: 1\n", &[Key("a")], "2", "---\na: 2\n");
    ok(
        "%YAML 1.2\n--- # c\na: x\n",
        &[Key("a")],
        "y",
        "%YAML 1.2\n--- # c\na: y\n",
    );
    ok("\u{feff}a: 1\n", &[Key("a")], "2", "\u{feff}a: 2\n");
    let t = "é: ü # ü\nb: \"ü\" # ü\nc: x\n";
    ok(t, &[Key("b")], "v", "é: ü # ü\nb: v # ü\nc: x\n");
    ok(t, &[Key("c")], "v", "é: ü # ü\nb: \"ü\" # ü\nc: v\n");
    ok(t, &[Key("é")], "v", "é: v # ü\nb: \"ü\" # ü\nc: x\n");
}

#[test]
fn block_scalars_are_replaced_whole() {
    let t = "a: |\n  line1\n  line2\n\nb: 1\n";
    ok(t, &[Key("a")], "v", "a: v\n\nb: 1\n");
    let t = "a: >- # c\n  x\n  y\n# after\nb: 1\n";
    ok(t, &[Key("a")], "v", "a: v\n# after\nb: 1\n");
    ok(
        "a: |2+\r\n    x\r\n\r\nb: 1\r\n",
        &[Key("a")],
        "v",
        "a: v\r\n\r\nb: 1\r\n",
    );
    ok(
        "x:\n  a: |\n    q\n",
        &[Key("x"), Key("a")],
        "v",
        "x:\n  a: v\n",
    );
    ok("a: |\nb: 1\n", &[Key("a")], "v", "a: v\nb: 1\n");
}

#[test]
fn only_the_exact_path_matches() {
    let t = "name: top\nx:\n  name: inner\nl:\n- name: a\n  v: 1\n- name: b\n  v: 1\n";
    ok(t, &[Key("x"), Key("name")], "n", &t.replace("inner", "n"));
    ok(t, &[Key("name")], "n", &t.replace("top", "n"));
    let want = "name: top\nx:\n  name: inner\nl:\n- name: a\n  v: 1\n- name: b\n  v: 2\n";
    ok(t, &[Key("l"), Named("b"), Key("v")], "2", want);
    let r = find_scalar(t, &[Key("l"), Named("c"), Key("v")]).unwrap();
    assert_eq!(r, None);
}

#[test]
fn flow_mappings_only_when_easy() {
    ok(
        "a: {b: x, c: y}\n",
        &[Key("a"), Key("b")],
        "v",
        "a: {b: v, c: y}\n",
    );
    ok("{a: 'x'}\n", &[Key("a")], "v", "{a: v}\n");
    let e = replace_scalar("a: {b: , c: y}\n", &[Key("a"), Key("b")], "v");
    assert!(matches!(e, Err(E::Unsupported(_))), "{e:?}");
    assert!(matches!(
        set_top_level("{a: 1}\n", "k", "v"),
        Err(E::Unsupported(_))
    ));
    assert_eq!(
        set_top_level("{a: 1, k: x}\n", "k", "v").unwrap(),
        "{a: 1, k: v}\n"
    );
}

fn err(text: &str, path: &[Step], new: &str) -> YamlEditError {
    match replace_scalar(text, path, new) {
        Err(e) => e,
        Ok(s) => panic!("{text:?} gave {s:?}"),
    }
}

#[test]
fn refuses_what_it_cannot_edit_exactly() {
    let unsupported = [
        ("a: 1\n---\nb: 2\n", "a"),
        ("a: &x 1\nb: *x\n", "a"),
        ("a: &x 1\nb: *x\n", "b"),
        ("a: &x 1\n", "a"),
        ("a: !!str 5\n", "a"),
        ("? a\n:\n", "a"),
    ];
    for (t, k) in unsupported {
        assert!(matches!(err(t, &[Key(k)], "v"), E::Unsupported(_)), "{t:?}");
    }
    let t = "a: &m\n  k: 1\nb: *m\n";
    assert!(matches!(
        err(t, &[Key("a"), Key("k")], "v"),
        E::Unsupported(_)
    ));
    ok("? a\n: 1\n", &[Key("a")], "v", "? a\n: v\n");
    ok(
        "a: &m\n  k: 1\n",
        &[Key("a"), Key("k")],
        "v",
        "a: &m\n  k: v\n",
    );
    assert!(matches!(
        err("a: 1\na: 2\n", &[Key("a")], "v"),
        E::Duplicate(_)
    ));
    let t = "l:\n- name: u\n  v: 1\n- name: u\n  v: 2\n";
    assert!(matches!(
        err(t, &[Key("l"), Named("u"), Key("v")], "3"),
        E::Duplicate(_)
    ));
    assert!(matches!(
        err("a:\n  b: 1\n", &[Key("a")], "v"),
        E::NotScalar(_)
    ));
    assert!(matches!(
        err("a:\n- 1\n", &[Key("a")], "v"),
        E::NotScalar(_)
    ));
    assert!(matches!(err("a: 1\n", &[Key("z")], "v"), E::NotFound(_)));
    assert!(matches!(
        err("a: 1\n", &[Key("a"), Key("b")], "v"),
        E::NotFound(_)
    ));
    assert!(matches!(err("", &[Key("a")], "v"), E::NotFound(_)));
    assert!(matches!(err("a: [1\n", &[Key("a")], "v"), E::Parse(_)));
    for bad in ["", "x y", "-a", ".a", "a:b", "'", "a#b", "é", "a\nb", "[x]"] {
        assert!(
            matches!(err("a: 1\n", &[Key("a")], bad), E::Unsupported(_)),
            "{bad:?}"
        );
    }
    let e = replace_scalar("l:\n- name: u\n", &[Key("l"), Named("u")], "v");
    assert!(matches!(e, Err(E::Unsupported(_))));
}

#[test]
fn find_scalar_ranges() {
    let t = "a: 'q'\nb: x # c\nc:\nd: \"z\" \n";
    let f = |k| find_scalar(t, &[Key(k)]).unwrap();
    assert_eq!(f("a"), Some(3..6));
    assert_eq!(f("b"), Some(10..11));
    assert_eq!(f("c"), Some(18..18));
    assert_eq!(f("d"), Some(22..25));
    assert_eq!(f("zz"), None);
    let t = "é: 'ü'\n";
    assert_eq!(
        find_scalar(t, &[Key("é")]).unwrap().map(|r| &t[r]),
        Some("'ü'")
    );
}

#[test]
fn set_top_level_appends_or_replaces() {
    let s = |t: &str| set_top_level(t, "k", "true").unwrap();
    assert_eq!(s("a: 1\n"), "a: 1\nk: true\n");
    assert_eq!(s("a: 1"), "a: 1\nk: true\n");
    assert_eq!(s("a: 1\r\nb: 2"), "a: 1\r\nb: 2\r\nk: true\r\n");
    assert_eq!(s("a: 1\n# end"), "a: 1\n# end\nk: true\n");
    assert_eq!(s("a:\n  k: 1\n"), "a:\n  k: 1\nk: true\n");
    assert_eq!(s("  a: 1\n"), "  a: 1\n  k: true\n");
    assert_eq!(s(""), "k: true\n");
    assert_eq!(s("# only\n"), "# only\nk: true\n");
    assert_eq!(s("---\n"), "---\nk: true\n");
    assert_eq!(s("a: 1\nk: false # x\n"), "a: 1\nk: true # x\n");
    assert_eq!(s("k:\na: 1\n"), "k: true\na: 1\n");
    assert_eq!(s("a: |+\n  x\n\n"), "a: |+\n  x\n\nk: true\n");
    for bad in ["a: 1\n...\n", "- 1\n", "x\n", "a: 1\n---\nb: 1\n"] {
        assert!(set_top_level(bad, "k", "true").is_err(), "{bad:?}");
    }
    assert!(matches!(
        set_top_level("k: 1\nk: 2\n", "k", "v"),
        Err(E::Duplicate(_))
    ));
    assert!(matches!(
        set_top_level("a: 1\n", "k x", "v"),
        Err(E::Unsupported(_))
    ));
}

#[test]
fn replace_entry_renames_key_and_value() {
    let t = "u:\n  client-certificate-data: QUJD # c\n  client-key-data: 'REVG'\n";
    let p = [Key("u"), Key("client-key-data")];
    let want = "u:\n  client-certificate-data: QUJD # c\n  client-key: /k.pem\n";
    assert_eq!(replace_entry(t, &p, "client-key", "/k.pem").unwrap(), want);
    assert_eq!(
        replace_entry("a:\nb: 1\n", &[Key("a")], "c", "v").unwrap(),
        "c: v\nb: 1\n"
    );
    assert_eq!(
        replace_entry("'a': 1\n", &[Key("a")], "a", "2").unwrap(),
        "a: 2\n"
    );
    let e = replace_entry("a: 1\nc: 2\n", &[Key("a")], "c", "v");
    assert!(matches!(e, Err(E::Duplicate(_))), "{e:?}");
    let e = replace_entry("a: 1\n", &[Key("a")], "c d", "v");
    assert!(matches!(e, Err(E::Unsupported(_))), "{e:?}");
}
