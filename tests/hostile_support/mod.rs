//! Shared machinery of the hostile-input corpus: a copied test node per case, a hash of the
//! node tree, the binary run under a hang guard and a memory cap, mounts undone on drop, and
//! the assertions every case makes.
#![allow(dead_code)]

pub mod certs;

use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::{build, NodeSpec};
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The tool's own state directory, left out of the tree comparison.
pub const STATE_DIR: &str = "var/lib/kubeadm-certd";
/// Suffix of the tool's staged files; none may be left anywhere.
pub const STAGED_SUFFIX: &str = ".kubeadm-certd-new";
/// Only detects a hang (a blocked open, an endless read); a normal run takes about a second.
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Address-space cap for the binary, so an endless read aborts instead of exhausting the host.
const MEMORY_CAP_KIB: u64 = 4 * 1024 * 1024;

/// One node built for the whole test binary and copied for each case (building costs keys).
/// It lives in the target's temp dir named after this process; templates of processes that
/// are gone are removed first, since a static is never dropped.
fn template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("hostile-template-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("hostile-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
        spec.key = KeyAlg::EcP256;
        build(&dir, &spec).unwrap();
        dir
    })
}

/// A fresh copy of the template node, plus a scratch directory outside its root.
pub struct Node {
    _dir: tempfile::TempDir,
    /// The node root (`--root`).
    pub root: PathBuf,
    /// Outside the root: config files, CSR directories, scratch files.
    pub outside: PathBuf,
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::Builder::new()
            .prefix("hostile-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        sh(
            "cp",
            &["-a", template().to_str().unwrap(), root.to_str().unwrap()],
        );
        Node {
            _dir: dir,
            root,
            outside,
        }
    }

    /// A path under the root from its host path.
    pub fn p(&self, host: &str) -> PathBuf {
        self.root.join(host.trim_start_matches('/'))
    }

    pub fn read(&self, host: &str) -> Vec<u8> {
        std::fs::read(self.p(host)).unwrap()
    }

    pub fn read_str(&self, host: &str) -> String {
        String::from_utf8(self.read(host)).unwrap()
    }

    /// Replace a node file (keeps nothing of the old one).
    pub fn write(&self, host: &str, bytes: impl AsRef<[u8]>) {
        let p = self.p(host);
        let _ = std::fs::remove_file(&p);
        std::fs::write(p, bytes).unwrap();
    }

    /// Replace a node file with a symlink.
    pub fn symlink(&self, host: &str, target: impl AsRef<Path>) {
        let p = self.p(host);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// A file outside the root.
    pub fn outside_file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.outside.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Run a command (setup only); panics with its stderr on failure.
pub fn sh(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn openssl(args: &[&str]) -> Vec<u8> {
    sh("openssl", args)
}

/// What one file looks like, for the tree comparison.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    kind: &'static str,
    mode: u32,
    len: u64,
    digest: u64,
    link: Option<PathBuf>,
}

/// Every entry under `root` (bytes, mode, symlink target; FIFOs and devices are not opened),
/// except the tool's state directory.
pub fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == STATE_DIR {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let mut e = Entry {
            kind: "other",
            mode: m.mode(),
            len: 0,
            digest: 0,
            link: None,
        };
        if ft.is_symlink() {
            e.kind = "symlink";
            e.link = Some(std::fs::read_link(&p).unwrap());
        } else if ft.is_dir() {
            e.kind = "dir";
        } else if ft.is_file() {
            e.kind = "file";
            let bytes = std::fs::read(&p).unwrap();
            let mut h = std::hash::DefaultHasher::new();
            h.write(&bytes);
            e.len = bytes.len() as u64;
            e.digest = h.finish();
        } else if ft.is_fifo() {
            e.kind = "fifo";
        } else if ft.is_char_device() || ft.is_block_device() {
            e.kind = "device";
            e.len = m.rdev();
        }
        let is_dir = ft.is_dir();
        out.insert(rel, e);
        if is_dir {
            walk(root, &p, out);
        }
    }
}

/// Differences between two trees, one line each.
pub fn tree_diff(a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("removed {k}")),
            Some(w) if w != v => d.push(format!("changed {k}: {v:?} -> {w:?}")),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("added {k}"));
    }
    d
}

/// Staged files left anywhere under `root` (the state directory included).
pub fn staged_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().ends_with(STAGED_SUFFIX) {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub hung: bool,
    pub stdout: String,
    pub stderr: String,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = r.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// Run `kubeadm-certd --root <root> [--config <config>] <args>`, killed if it hangs.
pub fn run(root: &Path, config: Option<&Path>, args: &[&str]) -> Run {
    let mut all: Vec<String> = vec!["--root".into(), root.display().to_string()];
    if let Some(c) = config {
        all.push("--config".into());
        all.push(c.display().to_string());
    }
    all.extend(args.iter().map(|s| s.to_string()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_CAP_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kubeadm-certd"))
        .args(&all)
        .env_remove("JOURNAL_STREAM")
        .env_remove("KUBEADM_CERTD_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let start = Instant::now();
    let mut hung = false;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG_GUARD {
            hung = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let code = status.code();
    let stderr = err.join().unwrap();
    let stderr = match (code, std::os::unix::process::ExitStatusExt::signal(&status)) {
        (None, Some(sig)) if !hung => format!("{stderr}\n<killed by signal {sig}>"),
        _ => stderr,
    };
    Run {
        args: all,
        code,
        hung,
        stdout: out.join().unwrap(),
        stderr,
    }
}

/// Alternatives: an error line matches a group if it contains any one of them.
pub type Needles<'a> = &'a [&'a [&'a str]];

/// Problems with a run that was supposed to fail cleanly: hung, crashed, exit 0, panicked,
/// or no single `error:` line containing every needle group.
pub fn failure_problems(r: &Run, needles: Needles) -> Vec<String> {
    let mut p = Vec::new();
    let cmd = r.args[2..].join(" ");
    if r.hung {
        p.push(format!("`{cmd}` hung (killed after {HANG_GUARD:?})"));
        return p;
    }
    match r.code {
        None => p.push(format!("`{cmd}` was killed by a signal")),
        Some(0) => p.push(format!("`{cmd}` exited 0")),
        Some(1) | Some(2) => {}
        Some(c) => p.push(format!("`{cmd}` exited {c}")),
    }
    if r.stderr.contains("panicked") {
        p.push(format!("`{cmd}` panicked"));
    }
    let found = r.stderr.lines().find(|l| {
        l.starts_with("error:") && needles.iter().all(|g| g.iter().any(|n| l.contains(n)))
    });
    // Shown with --nocapture, to read the messages the corpus accepts.
    if let Some(l) = found {
        eprintln!("`{cmd}` -> {l}");
    }
    if found.is_none() {
        p.push(format!("`{cmd}`: no `error:` line containing {needles:?}"));
    }
    if !p.is_empty() {
        p.push(format!(
            "stderr of `{cmd}`:\n{}\nstdout:\n{}",
            r.stderr.trim_end(),
            r.stdout.trim_end()
        ));
    }
    p
}

/// Run `args` expecting a clean failure, then check the tree and staged files; panics listing
/// every problem.
pub fn expect_failure(node: &Node, config: Option<&Path>, args: &[&str], needles: Needles) {
    let problems = failure_and_tree(node, config, args, needles);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Like [`expect_failure`] but returns the problems, for cases with several commands.
pub fn failure_and_tree(
    node: &Node,
    config: Option<&Path>,
    args: &[&str],
    needles: Needles,
) -> Vec<String> {
    let before = tree(&node.root);
    let r = run(&node.root, config, args);
    let mut p = failure_problems(&r, needles);
    let diff = tree_diff(&before, &tree(&node.root));
    if !diff.is_empty() {
        p.push(format!(
            "`{}` changed the node tree:\n  {}",
            args.join(" "),
            diff.join("\n  ")
        ));
    }
    let staged = staged_files(&node.root);
    if !staged.is_empty() {
        p.push(format!(
            "`{}` left staged files: {staged:?}",
            args.join(" ")
        ));
    }
    p
}

/// Run several commands on the same node, each expected to fail cleanly; report all problems.
pub fn expect_failures(node: &Node, config: Option<&Path>, runs: &[(&[&str], Needles)]) {
    let mut all = Vec::new();
    for (args, needles) in runs {
        all.extend(failure_and_tree(node, config, args, needles));
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

/// A mount under the node, undone when dropped.
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Whether this process may mount (root). Outside CI, cases that need it say so and return;
/// under CI=true a missing privilege fails the test instead of passing it unseen.
pub fn can_mount() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "mounting needs root, and CI=true: this case must run, not skip"
    );
    eprintln!("SKIPPED: mounting needs root");
    false
}

/// Mount a tmpfs of `size` (e.g. "1m") at `at`.
pub fn mount_tmpfs(at: &Path, size: &str) -> Mount {
    use nix::mount::{mount, MsFlags};
    std::fs::create_dir_all(at).unwrap();
    let opts = format!("size={size},mode=0755");
    mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap_or_else(|e| panic!("mounting a tmpfs at {}: {e}", at.display()));
    Mount(at.to_path_buf())
}

/// Bind-mount `dir` onto itself read-only.
pub fn mount_read_only(dir: &Path) -> Mount {
    use nix::mount::{mount, MsFlags};
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .unwrap_or_else(|e| panic!("bind-mounting {}: {e}", dir.display()));
    let m = Mount(dir.to_path_buf());
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap_or_else(|e| panic!("remounting {} read-only: {e}", dir.display()));
    m
}
