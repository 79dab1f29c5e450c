//! Snapshots of a directory tree, to prove that a run changed nothing (or only what it should).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One filesystem entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        bytes: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    Other {
        mode: u32,
    },
}

/// A snapshot of a directory tree: every entry's kind, mode, owner, bytes, symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<String, Entry>);

impl Tree {
    pub fn of(root: &Path, exclude: &[&str]) -> Tree {
        let mut m = BTreeMap::new();
        walk(root, root, exclude, &mut m);
        Tree(m)
    }

    /// Paths that differ between two snapshots.
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut keys: Vec<&String> = self.0.keys().chain(other.0.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| self.0.get(*k) != other.0.get(*k))
            .cloned()
            .collect()
    }

    #[track_caller]
    pub fn assert_same(&self, after: &Tree, what: &str) {
        let d = self.diff(after);
        assert!(d.is_empty(), "{what}: the node tree changed: {d:?}");
    }
}

fn walk(root: &Path, dir: &Path, exclude: &[&str], m: &mut BTreeMap<String, Entry>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if exclude
            .iter()
            .any(|x| rel == *x || rel.starts_with(&format!("{x}/")))
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let e = if ft.is_symlink() {
            Entry::Symlink {
                target: std::fs::read_link(&p).unwrap(),
            }
        } else if ft.is_dir() {
            walk(root, &p, exclude, m);
            Entry::Dir { mode }
        } else if ft.is_file() {
            Entry::File {
                mode,
                uid: meta.uid(),
                gid: meta.gid(),
                bytes: std::fs::read(&p).unwrap(),
            }
        } else {
            Entry::Other { mode }
        };
        m.insert(rel, e);
    }
}

/// File mode bits.
pub fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}
