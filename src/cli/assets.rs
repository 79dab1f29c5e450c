//! Man pages and shell completions, generated from the clap definitions in [`crate::cli`]
//! so they can never drift from the real command line. Packaging calls this through the
//! hidden `generate-assets` subcommand.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::fs;
use std::path::Path;

/// The binary name every generated file refers to.
const BIN: &str = "kubeadm-certd";

/// Writes into `dir` (created if missing):
/// - `kubeadm-certd.1` and one page per visible subcommand (`kubeadm-certd-renew.1`, ...);
/// - completions `kubeadm-certd.bash`, `_kubeadm-certd` (zsh) and `kubeadm-certd.fish`.
pub fn generate_assets(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    // clap_mangen names each page after the command's display name, which clap sets to
    // "kubeadm-certd-<sub>" when it builds the tree; hidden subcommands get no page.
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("failed to write man pages into {}", dir.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = without_hidden_subcommands(Cli::command());
        clap_complete::generate_to(shell, &mut cmd, BIN, dir).with_context(|| {
            format!("failed to write {shell} completions into {}", dir.display())
        })?;
    }
    Ok(())
}

/// The same command without hidden subcommands: clap_complete, unlike clap_mangen, offers
/// hidden ones, and `generate-assets` is for packaging only. clap cannot remove a
/// subcommand, so the root is rebuilt from the parts completions use.
fn without_hidden_subcommands(full: clap::Command) -> clap::Command {
    let mut cmd = clap::Command::new(BIN)
        .version(crate::VERSION)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// The file names [`generate_assets`] writes, man pages first.
pub fn asset_names() -> Vec<String> {
    let cmd = Cli::command();
    let mut names = vec![format!("{BIN}.1")];
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        names.push(format!("{BIN}-{}.1", s.get_name()));
        // Nested subcommands (`cluster status`, `kubelet-client revive`) get pages of their own.
        names.extend(
            s.get_subcommands()
                .filter(|n| !n.is_hide_set())
                .map(|n| format!("{BIN}-{}-{}.1", s.get_name(), n.get_name())),
        );
    }
    names.extend([
        format!("{BIN}.bash"),
        format!("_{BIN}"),
        format!("{BIN}.fish"),
    ]);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn writes_every_listed_file_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/assets");
        generate_assets(&dir).unwrap();
        let mut expected = asset_names();
        expected.sort();
        let mut found: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, expected);
        for name in &expected {
            assert!(!read(&dir, name).is_empty(), "{name} is empty");
        }
    }

    #[test]
    fn man_pages_describe_the_real_cli() {
        let tmp = tempfile::tempdir().unwrap();
        generate_assets(tmp.path()).unwrap();
        let main = read(tmp.path(), "kubeadm-certd.1");
        assert!(
            main.starts_with(".ie") || main.contains(".TH"),
            "not roff: {main:.80}"
        );
        assert!(main.contains("check\\-expiration"), "{main}");
        assert!(main.contains(env!("CARGO_PKG_VERSION")));
        // The packaging-only subcommand stays out of the documentation.
        assert!(!main.contains("generate\\-assets"));
        assert!(!tmp.path().join("kubeadm-certd-generate-assets.1").exists());
        let renew = read(tmp.path(), "kubeadm-certd-renew.1");
        assert!(renew.contains("\\-\\-dry\\-run"), "{renew}");
    }

    #[test]
    fn completions_know_the_subcommands() {
        let tmp = tempfile::tempdir().unwrap();
        generate_assets(tmp.path()).unwrap();
        // fish spells long options `-l NAME`, bash and zsh `--NAME`.
        for (name, root) in [
            ("kubeadm-certd.bash", "--root"),
            ("_kubeadm-certd", "--root"),
            ("kubeadm-certd.fish", "-l root"),
        ] {
            let text = read(tmp.path(), name);
            assert!(text.contains("check-expiration"), "{name}");
            assert!(text.contains("kubelet-serving-certs"), "{name}");
            assert!(text.contains("csr-dir"), "{name}");
            assert!(text.contains(root), "{name}");
            assert!(!text.contains("generate-assets"), "{name}");
        }
        assert!(read(tmp.path(), "_kubeadm-certd").starts_with("#compdef kubeadm-certd"));
        assert!(read(tmp.path(), "kubeadm-certd.bash").contains("complete -F"));
    }
}
