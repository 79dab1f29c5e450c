//! `demo`: the main job on a throwaway node.

use anyhow::Result;
use std::path::Path;

/// Build a node, show check-expiration, renew what is due, show it again.
pub fn run(keep: Option<&Path>) -> Result<()> {
    let tmp;
    let root = match keep {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    let now = time::OffsetDateTime::now_utc();
    crate::nodebuilder::build(&root, &crate::nodebuilder::NodeSpec::new(now))?;
    println!("A kubeadm-shaped node was built in {}", root.display());
    let exe = std::env::current_exe()?;
    let r = root.display().to_string();
    for args in [
        vec!["check-expiration"],
        vec!["renew", "due", "--no-restart"],
        vec!["check-expiration"],
    ] {
        println!("\n$ kubeadm-certd --root {r} {}", args.join(" "));
        let st = std::process::Command::new(&exe)
            .arg("--root")
            .arg(&root)
            .args(&args)
            .status()?;
        if !st.success() {
            anyhow::bail!("demo step `{}` failed", args.join(" "));
        }
    }
    if keep.is_none() {
        std::fs::remove_dir_all(&root)?;
    }
    Ok(())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("kubeadm-certd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
