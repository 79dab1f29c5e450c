use super::*;
use crate::node::paths::Root;

const F: &str = "kube-scheduler.yaml";

fn node() -> (tempfile::TempDir, NodePaths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = crate::config::Settings::default().paths(&Root::new(dir.path()));
    std::fs::create_dir_all(&paths.manifests).unwrap();
    std::fs::write(paths.manifests.join(F), b"parked one").unwrap();
    (dir, paths)
}

#[test]
fn park_then_unpark_restores_the_manifest() {
    let (_d, paths) = node();
    let to = park(&paths, F).unwrap();
    assert_eq!(to, paths.parking.join(F));
    assert!(!paths.manifests.join(F).exists());
    assert_eq!(parked(&paths), vec![F.to_string()]);
    assert_eq!(
        unpark(&paths, F, time::macros::datetime!(2026-11-29 10:00 UTC)).unwrap(),
        Unparked::Restored
    );
    assert_eq!(
        std::fs::read(paths.manifests.join(F)).unwrap(),
        b"parked one"
    );
    assert!(parked(&paths).is_empty());
}

/// Only a manifest that appeared meanwhile counts as superseded. Any other failure to move it
/// back (here the manifests directory is gone) is an error, and the manifest stays parked so
/// that recovery puts it back once it can.
#[test]
fn unpark_that_fails_keeps_the_manifest_parked_for_recovery() {
    let (_d, paths) = node();
    park(&paths, F).unwrap();
    std::fs::remove_dir(&paths.manifests).unwrap();
    let e = unpark(&paths, F, time::macros::datetime!(2026-11-29 10:00 UTC)).unwrap_err();
    assert!(format!("{e:#}").contains("moving"), "{e:#}");
    assert_eq!(parked(&paths), vec![F.to_string()]);
    assert!(!paths.backups().exists(), "nothing went to the backups");
    std::fs::create_dir(&paths.manifests).unwrap();
    assert_eq!(
        recover_parked(&paths, time::macros::datetime!(2026-11-29 10:00 UTC))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        std::fs::read(paths.manifests.join(F)).unwrap(),
        b"parked one"
    );
}

#[test]
fn unpark_over_a_new_manifest_keeps_the_new_one() {
    let (_d, paths) = node();
    park(&paths, F).unwrap();
    std::fs::write(paths.manifests.join(F), b"new one").unwrap();
    let Unparked::Superseded(kept) =
        unpark(&paths, F, time::macros::datetime!(2026-11-29 10:00 UTC)).unwrap()
    else {
        panic!("not superseded");
    };
    assert_eq!(std::fs::read(paths.manifests.join(F)).unwrap(), b"new one");
    assert_eq!(std::fs::read(&kept).unwrap(), b"parked one");
    assert!(kept.starts_with(paths.backups()));
    assert!(parked(&paths).is_empty());
}
