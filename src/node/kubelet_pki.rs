//! The kubelet's certificate store layout (k8s.io/client-go `util/certificate.fileStore`):
//! `kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem` files holding certificate then key, and
//! `kubelet-client-current.pem`, an absolute symlink to the one in use. Also the node's
//! name as the kubelet would derive it.

use crate::node::fsread::read_node_file_chroot;
use crate::node::NodePaths;
use time::OffsetDateTime;

/// The symlink to the client pair in use.
pub const CLIENT_CURRENT: &str = "kubelet-client-current.pem";

/// The dated file name the kubelet's store gives a pair written at `at`
/// (`kubelet-client-2026-11-29-09-30-20.pem`).
pub fn dated_client_pem(at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    format!(
        "kubelet-client-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}.pem",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The node's hostname: the root's /etc/hostname, else (on the real host) the kernel's,
/// lower-cased as the kubelet does.
pub fn hostname(paths: &NodePaths) -> Option<String> {
    let from_file = read_node_file_chroot(&paths.root, &paths.root.resolve("/etc/hostname"))
        .ok()
        .and_then(|(_, b)| String::from_utf8(b).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let from_kernel = || {
        (paths.root.dir() == std::path::Path::new("/"))
            .then(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .flatten()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    };
    from_file.or_else(from_kernel).map(|h| h.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dated_names_as_the_kubelet_writes_them() {
        assert_eq!(
            dated_client_pem(datetime!(2026-11-29 09:30:20 UTC)),
            "kubelet-client-2026-11-29-09-30-20.pem"
        );
    }
}
