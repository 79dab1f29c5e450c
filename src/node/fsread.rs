//! Reading node files defensively: bounded size, regular files only, never through a
//! symlink that leaves the root.

use crate::node::paths::Root;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
///
/// Any component may be a symlink (a linked pki/etcd directory), not only the last one: the
/// real location must stay under the root, or kubeadm-certd would read and write elsewhere.
/// The file is pinned with `O_PATH` first, which opens nothing (no FIFO wait, no device side
/// effect such as arming a watchdog); its real path and type are checked on that descriptor,
/// and the same inode is then opened for reading, so a swap between check and read cannot
/// fool it. Without /proc the path is checked component by component instead.
pub fn read_node_file(root: &Root, path: &Path) -> Result<Vec<u8>, ReadError> {
    let pinned = match open_flags(path, nix::libc::O_PATH) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling link that leads outside says so rather than "missing".
            if exists(path) && !root.contains_real(path)? {
                return Err(ReadError::OutsideRoot);
            }
            return Err(ReadError::Missing);
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let fd_path = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    let inside = match std::fs::read_link(&fd_path) {
        Ok(real) => real.starts_with(root.canonical()?),
        Err(_) => root.contains_real(path)?,
    };
    if !inside {
        return Err(ReadError::OutsideRoot);
    }
    let meta = pinned.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > MAX_NODE_FILE {
        return Err(ReadError::TooLarge);
    }
    // Reopening through /proc opens the pinned inode itself; without /proc, open the path
    // and make sure it is still the same file.
    let f = match open_flags(
        Path::new(&fd_path),
        nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY,
    ) {
        Ok(f) => f,
        Err(_) => {
            let f = open_flags(path, nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)?;
            let now = f.metadata()?;
            if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
                return Err(ReadError::Io(std::io::Error::other(
                    "the file was replaced while it was read",
                )));
            }
            f
        }
    };
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_NODE_FILE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_NODE_FILE {
        return Err(ReadError::TooLarge);
    }
    Ok(buf)
}

fn open_flags(path: &Path, flags: i32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | nix::libc::O_CLOEXEC)
        .open(path)
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
