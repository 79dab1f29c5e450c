//! What the node's tests fake at its boundary, shared by the suites that restart the kubelet:
//! `systemctl` (tests/fakes/systemctl, put first on PATH; systemd is not PID 1 here) and the
//! kubelet's healthz endpoint on a free loopback port. Included with `mod support;` or, by a
//! suite without it, `#[path = "support/fakes.rs"] mod fakes;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copy tests/fakes/systemctl into `bin` (made if missing), executable.
pub fn install_systemctl(bin: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/systemctl");
    std::fs::copy(fake, bin.join("systemctl")).unwrap();
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// A healthz endpoint on a free loopback port that answers 200 "ok" to every request (read
/// to its blank line first, so that closing never resets the connection); its port.
pub fn healthz_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let Ok(c) = s.try_clone() else { continue };
            let mut r = BufReader::new(c);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    port
}

/// `text`, a kubelet config as the node builder writes it (`healthzPort: 10248`), naming a
/// new [`healthz_server`] instead.
pub fn with_live_healthz(text: &str) -> String {
    assert!(text.contains("healthzPort: 10248"), "{text}");
    text.replace(
        "healthzPort: 10248",
        &format!("healthzPort: {}", healthz_server()),
    )
}
