//! Byte-preserving edits of one value in a YAML document.
//!
//! saphyr-parser's events locate the value; the edit is a splice of the original text, so comments,
//! order, spacing and quoting elsewhere stay as they were. Every result is re-parsed with
//! serde_yaml and compared (order-sensitively) with the original plus the intended change, and
//! re-located with saphyr; on any mismatch we return `Verify` instead of text.

use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_yaml::{Mapping, Value};

/// One step of a path into a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The value of this key in a mapping.
    Key(&'a str),
    /// The element of a sequence whose mapping has `name: <n>`.
    Named(&'a str),
}

#[derive(Debug, thiserror::Error)]
pub enum YamlEditError {
    #[error("YAML parse error: {0}")]
    Parse(String),
    #[error("not found in YAML: {0}")]
    NotFound(String),
    #[error("YAML value at {0} is not a scalar")]
    NotScalar(String),
    #[error("unsupported YAML edit: {0}")]
    Unsupported(String),
    #[error("YAML edit verification failed: {0}")]
    Verify(String),
    /// A key appears twice in one mapping, or several sequence items have the same name.
    #[error("duplicate YAML entry: {0}")]
    Duplicate(String),
}

type Res<T> = Result<T, YamlEditError>;
use YamlEditError as E;

/// Path as text for messages, e.g. `users[name=admin].user.client-key-data`.
pub fn path_text(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Named(n) => s.push_str(&format!("[name={n}]")),
        }
    }
    s
}

/// Byte range of the scalar value at `path` (including quotes if quoted). None if the path does
/// not exist. An empty value (`key:`) gives an empty range just after the `:`. A block scalar
/// gives the range from its `|`/`>` indicator to the end of its last non-blank line.
pub fn find_scalar(text: &str, path: &[Step]) -> Res<Option<Range<usize>>> {
    let doc = parse_doc(text)?;
    let Some(found) = locate(&doc, path)? else {
        return Ok(None);
    };
    Ok(Some(match value_loc(text, &found, path)? {
        Loc::Span(r) => r,
        Loc::Empty(p) => p..p,
    }))
}

/// Replace the scalar at `path` with `new_value` written as a plain scalar. `new_value` must be
/// plain-safe (ASCII letters, digits and `+/=_.-`, not starting with `.` or `-`).
pub fn replace_scalar(text: &str, path: &[Step], new_value: &str) -> Res<String> {
    edit(text, path, None, new_value)
}

/// Rename the key at `path` (its last step must be `Key`) to `new_key` and set its value to
/// `new_value` (both plain scalars).
pub fn replace_entry(text: &str, path: &[Step], new_key: &str, new_value: &str) -> Res<String> {
    check_plain(new_key)?;
    edit(text, path, Some(new_key), new_value)
}

/// Set a key in the top-level block mapping: replace the value if present, else append
/// `key: value` as a new last top-level line (after a line break if the text lacks a final one).
pub fn set_top_level(text: &str, key: &str, new_value: &str) -> Res<String> {
    check_plain(key)?;
    check_plain(new_value)?;
    let doc = parse_doc(text)?;
    let path = [Step::Key(key)];
    let indent = match &doc.root {
        None => String::new(),
        Some(root) => match &root.kind {
            Kind::Map(entries) => {
                if locate(&doc, &path)?.is_some() {
                    return replace_scalar(text, &path, new_value);
                }
                if root.flow {
                    return Err(E::Unsupported("top-level flow mapping".into()));
                }
                match entries.first() {
                    Some((k, _)) => line_indent(text, k.start)?,
                    None => String::new(),
                }
            }
            Kind::Scalar {
                value,
                style: ScalarStyle::Plain,
                tagged: false,
            } if value.is_empty() && root.anchor == 0 => String::new(),
            _ => return Err(E::Unsupported("top level is not a block mapping".into())),
        },
    };
    if doc.explicit_end {
        return Err(E::Unsupported("document end marker `...`".into()));
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(text.len() + key.len() + new_value.len() + 8);
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(&format!("{indent}{key}: {new_value}{eol}"));

    let mut expected = match serde_parse(text)? {
        Value::Null => Value::Mapping(Mapping::new()),
        v => v,
    };
    let map = expected
        .as_mapping_mut()
        .ok_or_else(|| E::Verify("top level is not a mapping".into()))?;
    if map.keys().any(|k| key_is(k, key)) {
        return Err(E::Verify(format!(
            "key {key} exists for serde_yaml but not for saphyr"
        )));
    }
    map.insert(scalar_value(key)?, scalar_value(new_value)?);
    check(&out, &expected, &path, new_value)?;
    Ok(out)
}

/// Shared body of `replace_scalar` and `replace_entry`.
fn edit(text: &str, path: &[Step], new_key: Option<&str>, new_value: &str) -> Res<String> {
    check_plain(new_value)?;
    let doc = parse_doc(text)?;
    let found = locate(&doc, path)?.ok_or_else(|| E::NotFound(path_text(path)))?;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    if let Some(nk) = new_key {
        let clash = found
            .entries
            .iter()
            .any(|(k, _)| !std::ptr::eq(k, found.key) && scalar_text(k) == Some(nk));
        if clash {
            return Err(E::Duplicate(format!(
                "{nk} already exists beside {}",
                path_text(path)
            )));
        }
        edits.push((key_range(text, found.key)?, nk.to_string()));
    }
    edits.push(match value_loc(text, &found, path)? {
        Loc::Span(r) => (r, new_value.to_string()),
        // Right after the `:` so that blanks before a trailing comment stay.
        Loc::Empty(p) => (p..p, format!(" {new_value}")),
    });
    let out = splice(text, edits)?;

    let mut expected = serde_parse(text)?;
    set_in_value(&mut expected, path, new_key, scalar_value(new_value)?)?;
    let mut new_path = path.to_vec();
    if let (Some(nk), Some(last)) = (new_key, new_path.last_mut()) {
        *last = Step::Key(nk);
    }
    check(&out, &expected, &new_path, new_value)?;
    Ok(out)
}

/// Only conservative plain scalars: no quoting, escaping or YAML indicator can be involved.
fn check_plain(s: &str) -> Res<()> {
    let first_ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b"/_+=".contains(&b));
    let rest_ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.-".contains(&b));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(E::Unsupported(format!("{s:?} is not a safe plain scalar")))
    }
}

// ---------- event tree ----------

enum Kind {
    Scalar {
        value: String,
        style: ScalarStyle,
        tagged: bool,
    },
    Alias,
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A parsed node with byte offsets of the parser's span (not reliable for quoted/block ends).
struct Node {
    kind: Kind,
    anchor: usize,
    flow: bool,
    start: usize,
    end: usize,
}

struct Doc {
    root: Option<Node>,
    explicit_end: bool,
    has_alias: bool,
}

/// Deeper documents are refused: serde_yaml stops at 128 anyway, and this bounds recursion.
const MAX_DEPTH: usize = 256;

/// saphyr-parser 0.3.4 counts `Marker::index` in characters; map those to byte offsets.
struct CharIdx(Option<Vec<usize>>, usize);

impl CharIdx {
    fn new(text: &str) -> Self {
        let offs = (!text.is_ascii()).then(|| {
            let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            v.push(text.len());
            v
        });
        CharIdx(offs, text.len())
    }
    fn byte(&self, ci: usize) -> Res<usize> {
        match &self.0 {
            None if ci <= self.1 => Ok(ci),
            None => Err(E::Parse(format!("position {ci} out of range"))),
            Some(v) => v
                .get(ci)
                .copied()
                .ok_or_else(|| E::Parse(format!("position {ci} out of range"))),
        }
    }
}

fn parse_doc(text: &str) -> Res<Doc> {
    let idx = CharIdx::new(text);
    let mut doc = Doc {
        root: None,
        explicit_end: false,
        has_alias: false,
    };
    let mut docs = 0;
    // Open collections: (node shell, children). Mapping children alternate key, value.
    let mut open: Vec<(Node, Vec<Node>)> = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(item) = parser.next_event() {
        let (ev, span) = item.map_err(|e| E::Parse(e.to_string()))?;
        let (start, end) = (idx.byte(span.start.index())?, idx.byte(span.end.index())?);
        let shell = |kind, anchor| {
            let flow = matches!(text.as_bytes().get(start), Some(b'{' | b'[')) && end > start;
            Node {
                kind,
                anchor,
                flow,
                start,
                end,
            }
        };
        let done = match ev {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err(E::Unsupported("multiple documents".into()));
                }
                None
            }
            Event::DocumentEnd => {
                doc.explicit_end |= end > start;
                None
            }
            Event::Alias(_) => {
                doc.has_alias = true;
                Some(shell(Kind::Alias, 0))
            }
            Event::Scalar(v, style, anchor, tag) => {
                let kind = Kind::Scalar {
                    value: v.into_owned(),
                    style,
                    tagged: tag.is_some(),
                };
                Some(shell(kind, anchor))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(E::Unsupported("nesting too deep".into()));
                }
                let kind = match ev {
                    Event::MappingStart(..) => Kind::Map(Vec::new()),
                    _ => Kind::Seq(Vec::new()),
                };
                open.push((shell(kind, anchor), Vec::new()));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (mut node, children) = open
                    .pop()
                    .ok_or_else(|| E::Parse("unbalanced events".into()))?;
                node.end = end.max(node.start);
                node.kind = match node.kind {
                    Kind::Map(_) => {
                        let mut pairs = Vec::with_capacity(children.len() / 2);
                        let mut it = children.into_iter();
                        while let Some(k) = it.next() {
                            let v = it.next().ok_or_else(|| E::Parse("odd mapping".into()))?;
                            pairs.push((k, v));
                        }
                        Kind::Map(pairs)
                    }
                    _ => Kind::Seq(children),
                };
                Some(node)
            }
            _ => None,
        };
        if let Some(node) = done {
            match open.last_mut() {
                Some((_, children)) => children.push(node),
                None if doc.root.is_none() => doc.root = Some(node),
                None => return Err(E::Parse("two root nodes".into())),
            }
        }
    }
    Ok(doc)
}

fn scalar_text(n: &Node) -> Option<&str> {
    match &n.kind {
        Kind::Scalar {
            value,
            tagged: false,
            ..
        } => Some(value),
        _ => None,
    }
}

struct Found<'d> {
    key: &'d Node,
    value: &'d Node,
    /// All entries of the mapping holding `key`.
    entries: &'d [(Node, Node)],
    flow: bool,
}

fn locate<'d>(doc: &'d Doc, path: &[Step]) -> Res<Option<Found<'d>>> {
    if !matches!(path.last(), Some(Step::Key(_))) {
        return Err(E::Unsupported("path must end with a key".into()));
    }
    let Some(mut cur) = doc.root.as_ref() else {
        return Ok(None);
    };
    for (i, step) in path.iter().enumerate() {
        // An anchored container could be aliased elsewhere; editing it would edit both.
        if matches!(cur.kind, Kind::Alias) || (cur.anchor != 0 && doc.has_alias) {
            return Err(E::Unsupported(format!(
                "anchor or alias on {}",
                path_text(&path[..i])
            )));
        }
        let here = || path_text(&path[..=i]);
        match (step, &cur.kind) {
            (Step::Key(k), Kind::Map(entries)) => {
                let mut hits = entries
                    .iter()
                    .filter(|(key, _)| scalar_text(key) == Some(k));
                let Some((key, value)) = hits.next() else {
                    return Ok(None);
                };
                if hits.next().is_some() {
                    return Err(E::Duplicate(here()));
                }
                if i + 1 == path.len() {
                    return Ok(Some(Found {
                        key,
                        value,
                        entries,
                        flow: cur.flow,
                    }));
                }
                cur = value;
            }
            (Step::Named(n), Kind::Seq(items)) => {
                let mut hits = items.iter().filter(|it| match &it.kind {
                    Kind::Map(es) => es
                        .iter()
                        .any(|(k, v)| scalar_text(k) == Some("name") && scalar_text(v) == Some(n)),
                    _ => false,
                });
                let Some(item) = hits.next() else {
                    return Ok(None);
                };
                if hits.next().is_some() {
                    return Err(E::Duplicate(here()));
                }
                cur = item;
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

enum Loc {
    Span(Range<usize>),
    /// Empty value; the byte offset just after the key's `:`.
    Empty(usize),
}

fn sub(text: &str, r: Range<usize>) -> Res<&str> {
    text.get(r.clone())
        .ok_or_else(|| E::Parse(format!("bad range {r:?}")))
}

/// Exact byte range of a key scalar (the parser's span of a quoted key may run on).
fn key_range(text: &str, key: &Node) -> Res<Range<usize>> {
    let Kind::Scalar {
        value,
        style,
        tagged: false,
    } = &key.kind
    else {
        return Err(E::Unsupported("key is not a plain or quoted scalar".into()));
    };
    if key.anchor != 0 {
        return Err(E::Unsupported("anchored key".into()));
    }
    match style {
        ScalarStyle::Plain if !value.is_empty() && sub(text, key.start..key.end)? == value => {
            Ok(key.start..key.end)
        }
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            Ok(key.start..quoted_end(text, key.start)?)
        }
        _ => Err(E::Unsupported("unusual key".into())),
    }
}

/// Offset of the `:` after a key (only blanks may sit between them).
fn colon_after(text: &str, key: &Node) -> Res<usize> {
    let b = text.as_bytes();
    let mut i = key_range(text, key)?.end;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match b.get(i) {
        Some(b':') => Ok(i),
        _ => Err(E::Unsupported("key not directly followed by ':'".into())),
    }
}

/// End (exclusive) of a quoted scalar that starts at `start` with its quote character.
fn quoted_end(text: &str, start: usize) -> Res<usize> {
    let b = text.as_bytes();
    let q = *b
        .get(start)
        .ok_or_else(|| E::Parse("quote out of range".into()))?;
    if q != b'\'' && q != b'"' {
        return Err(E::Unsupported(
            "quoted scalar does not start with a quote".into(),
        ));
    }
    let mut i = start + 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' if q == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\\' if q == b'"' => i += 2,
            c if c == q => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(E::Parse("unterminated quoted scalar".into()))
}

fn value_loc(text: &str, f: &Found, path: &[Step]) -> Res<Loc> {
    let v = f.value;
    let (value, style) = match &v.kind {
        Kind::Alias => return Err(E::Unsupported("alias as target".into())),
        Kind::Seq(_) | Kind::Map(_) => return Err(E::NotScalar(path_text(path))),
        Kind::Scalar { tagged: true, .. } => return Err(E::Unsupported("tagged target".into())),
        Kind::Scalar { value, style, .. } => (value, *style),
    };
    if v.anchor != 0 {
        return Err(E::Unsupported("anchor on target".into()));
    }
    match style {
        ScalarStyle::Plain if v.start == v.end => {
            if f.flow {
                return Err(E::Unsupported("empty value in a flow mapping".into()));
            }
            Ok(Loc::Empty(colon_after(text, f.key)? + 1))
        }
        ScalarStyle::Plain => {
            let s = sub(text, v.start..v.end)?;
            if s.is_empty() || (!s.contains(['\n', '\r']) && s != value) {
                return Err(E::Unsupported("plain scalar position mismatch".into()));
            }
            Ok(Loc::Span(v.start..v.end))
        }
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            Ok(Loc::Span(v.start..quoted_end(text, v.start)?))
        }
        ScalarStyle::Literal | ScalarStyle::Folded => {
            let b = text.as_bytes();
            let mut i = colon_after(text, f.key)? + 1;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'|' | b'>')) {
                return Err(E::Unsupported("block scalar indicator not found".into()));
            }
            // Keep trailing blank lines and comments after the block: they are not its text.
            let mut end = v.end.max(i + 1);
            while end > i + 1 && matches!(b.get(end - 1), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                end -= 1;
            }
            Ok(Loc::Span(i..end))
        }
    }
}

/// Apply non-overlapping edits, last first so earlier offsets stay valid.
fn splice(text: &str, mut edits: Vec<(Range<usize>, String)>) -> Res<String> {
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = text.to_string();
    let mut limit = text.len();
    for (r, new) in edits {
        if r.end > limit || r.start > r.end || !out.is_char_boundary(r.start) {
            return Err(E::Verify("overlapping or invalid edit ranges".into()));
        }
        sub(text, r.clone())?;
        out.replace_range(r.clone(), &new);
        limit = r.start;
    }
    Ok(out)
}

/// Leading spaces of the line holding `pos` (a BOM before them is ignored).
fn line_indent(text: &str, pos: usize) -> Res<String> {
    let before = sub(text, 0..pos)?;
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    if line.bytes().all(|b| b == b' ') {
        Ok(line.to_string())
    } else {
        Err(E::Unsupported(
            "first top-level key does not start its line".into(),
        ))
    }
}

// ---------- verification ----------

fn serde_parse(text: &str) -> Res<Value> {
    serde_yaml::from_str(text).map_err(|e| E::Parse(e.to_string()))
}

/// The value a plain scalar means (e.g. `true` is a bool).
fn scalar_value(s: &str) -> Res<Value> {
    serde_yaml::from_str(s).map_err(|e| E::Verify(format!("{s:?}: {e}")))
}

fn key_is(v: &Value, k: &str) -> bool {
    match v {
        Value::String(s) => s == k,
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            serde_yaml::from_str::<Value>(k).is_ok_and(|p| &p == v)
        }
        _ => false,
    }
}

/// Apply the intended change to the serde view of the original document.
fn set_in_value(root: &mut Value, path: &[Step], new_key: Option<&str>, new: Value) -> Res<()> {
    let lost = || E::Verify(format!("serde_yaml does not see {}", path_text(path)));
    let mut cur = root;
    for (i, step) in path.iter().enumerate() {
        match step {
            Step::Key(k) => {
                let map = cur.as_mapping_mut().ok_or_else(lost)?;
                if i + 1 < path.len() {
                    cur = map
                        .iter_mut()
                        .find(|(key, _)| key_is(key, k))
                        .ok_or_else(lost)?
                        .1;
                    continue;
                }
                if !map.keys().any(|key| key_is(key, k)) {
                    return Err(lost());
                }
                let Some(nk) = new_key else {
                    let slot = map
                        .iter_mut()
                        .find(|(key, _)| key_is(key, k))
                        .ok_or_else(lost)?;
                    *slot.1 = new;
                    return Ok(());
                };
                // Rebuild to keep the renamed entry in its place.
                let old = std::mem::take(map);
                let (nk, mut new) = (scalar_value(nk)?, Some(new));
                for (key, v) in old {
                    match new.take_if(|_| key_is(&key, k)) {
                        Some(nv) => map.insert(nk.clone(), nv),
                        None => map.insert(key, v),
                    };
                }
                return Ok(());
            }
            Step::Named(n) => {
                let seq = cur.as_sequence_mut().ok_or_else(lost)?;
                cur = seq
                    .iter_mut()
                    .find(|it| it.get("name").is_some_and(|v| key_is(v, n)))
                    .ok_or_else(lost)?;
            }
        }
    }
    Err(lost())
}

/// Prove `out` means `expected` (order-sensitive) and holds `new_value` verbatim at `path`.
fn check(out: &str, expected: &Value, path: &[Step], new_value: &str) -> Res<()> {
    let actual = serde_yaml::from_str::<Value>(out)
        .map_err(|e| E::Verify(format!("result does not parse: {e}")))?;
    let show = |v: &Value| serde_yaml::to_string(v).map_err(|e| E::Verify(e.to_string()));
    if show(&actual)? != show(expected)? {
        return Err(E::Verify("result differs from the intended change".into()));
    }
    let doc = parse_doc(out).map_err(|e| E::Verify(e.to_string()))?;
    let found = locate(&doc, path)
        .map_err(|e| E::Verify(e.to_string()))?
        .ok_or_else(|| E::Verify("edited path vanished".into()))?;
    match value_loc(out, &found, path) {
        Ok(Loc::Span(r)) if out.get(r.clone()) == Some(new_value) => Ok(()),
        _ => Err(E::Verify("new value is not where it was written".into())),
    }
}

#[cfg(test)]
mod tests;
