//! Reading node files defensively: bounded size, regular files only, never through a
//! symlink that leaves the root.

use crate::node::paths::Root;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Certificates, keys and kubeconfigs are small; anything larger is refused unread.
pub const MAX_NODE_FILE: u64 = 1 << 20;

/// Why a node file could not be read. Messages name no path; callers prefix it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist.
    #[error("file does not exist")]
    Missing,
    /// A symlink resolves outside `--root`.
    #[error("symlink points outside the node root; refusing to follow it")]
    OutsideRoot,
    /// Not a regular file (a device, a directory, a FIFO).
    #[error("not a regular file")]
    NotRegular,
    /// Too large to be what it claims.
    #[error("file is larger than {} bytes", MAX_NODE_FILE)]
    TooLarge,
    /// Any other I/O error.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
}

/// Read a node file of at most [`MAX_NODE_FILE`] bytes.
pub fn read_node_file(root: &Root, path: &Path) -> Result<Vec<u8>, ReadError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Io(e)),
    };
    // Any component may be a symlink (a linked pki/etcd directory), not only the last one: the
    // real location must stay under the root, or kubeadm-certd would read and write elsewhere.
    let _ = meta;
    if !root.contains_real(path)? {
        return Err(ReadError::OutsideRoot);
    }
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. The
    // type is checked on the opened descriptor, so a swap after the check cannot fool it.
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > MAX_NODE_FILE {
        return Err(ReadError::TooLarge);
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_NODE_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_NODE_FILE {
        return Err(ReadError::TooLarge);
    }
    Ok(buf)
}

/// Read a node file whose symlinks are to be resolved below the root with chroot semantics
/// (the kubelet's `kubelet-client-current.pem` is an absolute link). Returns the file the
/// links led to and its bytes. A dangling link is `Missing`, with the resolved path returned
/// in the error's place by [`resolve_in_root`].
pub fn read_node_file_chroot(
    root: &Root,
    path: &Path,
) -> Result<(std::path::PathBuf, Vec<u8>), ReadError> {
    let real = resolve_in_root(root, path)?;
    read_node_file(root, &real).map(|b| (real, b))
}

/// Where `path` leads under the root, following symlinks with chroot semantics.
pub fn resolve_in_root(root: &Root, path: &Path) -> Result<std::path::PathBuf, ReadError> {
    root.resolve_chroot(path).map_err(ReadError::Io)
}

/// Whether a path exists (without following a final symlink's target).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Read a regular file of at most `max` bytes without following it into a FIFO or device.
/// For files outside the node tree (config files, our own state).
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidData, "not a regular file"));
    }
    if meta.len() > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}
