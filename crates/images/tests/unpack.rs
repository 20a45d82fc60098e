//! Layer unpacking: what overlayfs needs, and nothing outside the layer directory.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use gantry_images::testimage::{TarBuilder, gzip};
use gantry_images::{Digest, Error, ImageStore, Reference, unpack_layer};

fn write_blob(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

fn opaque(path: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 16];
    let n = rustix::fs::lgetxattr(path, "trusted.overlay.opaque", &mut buf).ok()?;
    Some(buf[..n].to_vec())
}

#[test]
fn whiteouts_and_opaque_dirs_in_a_two_layer_image() {
    let tmp = tempfile::tempdir().unwrap();
    let mut base = TarBuilder::new();
    base.dir("etc", 0o755)
        .file("etc/a", 0o644, b"a")
        .file("etc/b", 0o644, b"b")
        .dir("d", 0o755)
        .file("d/x", 0o644, b"x")
        .file("keep", 0o644, b"keep");
    let mut top = TarBuilder::new();
    top.dir("etc", 0o755)
        .file("etc/.wh.a", 0o644, b"")
        .dir("d", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/y", 0o644, b"y");
    let layout = common::layout(
        &tmp.path().join("layout"),
        "test/whiteout:v1",
        vec![base, top],
    );

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import(&layout).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, ["docker.io/test/whiteout:v1"]);
    let dirs = store.layer_dirs(&images[0]);
    assert_eq!(dirs.len(), 2);
    let (lower, upper) = (&dirs[0], &dirs[1]);

    let whiteout = fs::symlink_metadata(upper.join("etc/a")).unwrap();
    assert!(whiteout.file_type().is_char_device());
    assert_eq!(whiteout.rdev(), 0);
    assert!(!upper.join("etc/.wh.a").exists());
    assert_eq!(opaque(&upper.join("d")).as_deref(), Some(&b"y"[..]));
    assert!(!upper.join("d/.wh..wh..opq").exists());
    assert_eq!(opaque(&lower.join("d")), None);
    assert_eq!(fs::read(lower.join("etc/a")).unwrap(), b"a");

    // The kernel agrees: a overlay of the two hides etc/a and d/x.
    let target = tmp.path().join("merged");
    if let Some(mount) = common::Overlay::mount(&[upper.clone(), lower.clone()], &target) {
        let m = &mount.target;
        assert!(!m.join("etc/a").exists());
        assert_eq!(fs::read(m.join("etc/b")).unwrap(), b"b");
        assert!(!m.join("d/x").exists());
        assert_eq!(fs::read(m.join("d/y")).unwrap(), b"y");
        assert_eq!(fs::read(m.join("keep")).unwrap(), b"keep");
    } else {
        eprintln!("overlay mount not permitted here: checked the layer directories only");
    }
}

#[test]
fn links_owners_modes_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarBuilder::new();
    t.dir("bin", 0o755)
        .raw(
            tar::EntryType::Regular,
            "bin/su",
            0o4755,
            1000,
            2000,
            None,
            b"binary",
        )
        .hardlink("bin/su2", "bin/su")
        .symlink("bin/sh", "busybox")
        .symlink("abs", "/etc/passwd")
        .raw(
            tar::EntryType::Directory,
            "private/",
            0o700,
            33,
            33,
            None,
            b"",
        )
        .raw(tar::EntryType::Fifo, "fifo", 0o600, 0, 0, None, b"")
        .file("dup", 0o644, b"first")
        .file("dup", 0o600, b"second")
        .file("deep/missing/parents/f", 0o644, b"f");
    let tar = t.finish().unwrap();
    let blob = write_blob(tmp.path(), "layer.tgz", &gzip(&tar).unwrap());
    let dest = tmp.path().join("layer");
    fs::create_dir(&dest).unwrap();
    let unpacked = unpack_layer(&blob, &dest).unwrap();
    assert_eq!(unpacked.diff_id, Digest::of(&tar));

    let su = fs::metadata(dest.join("bin/su")).unwrap();
    assert_eq!(
        (su.uid(), su.gid(), su.permissions().mode() & 0o7777),
        (1000, 2000, 0o4755)
    );
    assert_eq!(su.ino(), fs::metadata(dest.join("bin/su2")).unwrap().ino());
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(dest.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let private = fs::metadata(dest.join("private")).unwrap();
    assert_eq!(
        (private.uid(), private.permissions().mode() & 0o7777),
        (33, 0o700)
    );
    assert!(
        fs::symlink_metadata(dest.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(fs::read(dest.join("dup")).unwrap(), b"second");
    assert_eq!(
        fs::metadata(dest.join("deep/missing/parents/f"))
            .unwrap()
            .mtime(),
        946_684_800
    );

    // Plain (uncompressed) layers too.
    let plain = write_blob(tmp.path(), "layer.tar", &tar);
    let dest2 = tmp.path().join("layer2");
    fs::create_dir(&dest2).unwrap();
    assert_eq!(
        unpack_layer(&plain, &dest2).unwrap().diff_id,
        unpacked.diff_id
    );
}

#[test]
fn entries_escaping_the_layer_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let cases: Vec<(&str, TarBuilder)> = vec![
        ("dot-dot path", {
            let mut t = TarBuilder::new();
            t.file("../outside/escaped", 0o644, b"x");
            t
        }),
        ("write through a symlinked dir", {
            let mut t = TarBuilder::new();
            t.symlink("link", outside.to_str().unwrap())
                .file("link/escaped", 0o644, b"x");
            t
        }),
        ("write through a relative symlink", {
            let mut t = TarBuilder::new();
            t.symlink("up", "../outside")
                .file("up/escaped", 0o644, b"x");
            t
        }),
        ("hard link to outside", {
            let mut t = TarBuilder::new();
            t.hardlink("h", "../outside/target");
            t
        }),
        ("hard link through a symlink", {
            let mut t = TarBuilder::new();
            t.symlink("link", outside.to_str().unwrap())
                .hardlink("h", "link/target");
            t
        }),
        ("whiteout through a symlink", {
            let mut t = TarBuilder::new();
            t.symlink("link", outside.to_str().unwrap())
                .file("link/.wh.target", 0o644, b"");
            t
        }),
    ];
    fs::write(outside.join("target"), b"precious").unwrap();
    for (i, (name, tar)) in cases.into_iter().enumerate() {
        let blob = write_blob(tmp.path(), &format!("{i}.tar"), &tar.finish().unwrap());
        let dest = tmp.path().join(format!("layer{i}"));
        fs::create_dir(&dest).unwrap();
        let err = unpack_layer(&blob, &dest).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{name}: {err}");
        assert!(!outside.join("escaped").exists(), "{name} wrote outside");
        assert_eq!(
            fs::read(outside.join("target")).unwrap(),
            b"precious",
            "{name}"
        );
    }
    // An absolute path counts from the layer root.
    let mut t = TarBuilder::new();
    t.file("/etc/absolute", 0o644, b"x");
    let blob = write_blob(tmp.path(), "abs.tar", &t.finish().unwrap());
    let dest = tmp.path().join("abs");
    fs::create_dir(&dest).unwrap();
    unpack_layer(&blob, &dest).unwrap();
    assert!(dest.join("etc/absolute").is_file());
}

#[test]
fn a_layer_whose_content_does_not_match_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarBuilder::new();
    t.file("f", 0o644, b"x");
    let layout = common::layout(&tmp.path().join("layout"), "test/bad:v1", vec![t]);
    // Point the config's diff_id elsewhere (and fix up the digests that name the config).
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&manifest_digest)).unwrap()).unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_owned();
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(&config_digest)).unwrap()).unwrap();
    let wrong = Digest::of(b"something else");
    config["rootfs"]["diff_ids"][0] = wrong.to_string().into();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let new_config = Digest::of(&config_bytes);
    fs::write(blob(new_config.as_str()), &config_bytes).unwrap();
    manifest["config"]["digest"] = new_config.to_string().into();
    manifest["config"]["size"] = config_bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let new_manifest = Digest::of(&manifest_bytes);
    fs::write(blob(new_manifest.as_str()), &manifest_bytes).unwrap();
    let mut index = index;
    index["manifests"][0]["digest"] = new_manifest.to_string().into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let err = store.import(&layout).unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if expected == wrong.as_str()),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(
        store
            .get(&Reference::parse("test/bad:v1").unwrap())
            .unwrap()
            .is_none()
    );
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0,
        "the stage was not cleaned up"
    );
}
