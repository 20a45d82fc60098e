//! Imports, names, removal, layer sharing, GC and crash safety of the store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use gantry_images::testimage::{self, TarBuilder};
use gantry_images::{Error, ImageStore, Reference};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn count(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn busybox_test_image_is_reproducible_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let da = testimage::busybox(&a, "busybox:latest").unwrap();
    let db = testimage::busybox(&b, "busybox:latest").unwrap();
    assert_eq!(da, db);
    for rel in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(a.join(rel)).unwrap(),
            fs::read(b.join(rel)).unwrap()
        );
    }
    let blobs = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(blobs(&a), blobs(&b));

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import(&a).unwrap();
    assert_eq!(images.len(), 1);
    let image = &images[0];
    assert_eq!(image.repo_tags, ["docker.io/library/busybox:latest"]);
    assert_eq!(image.config.cmd, ["sh"]);
    assert!(image.config.env[0].starts_with("PATH="));
    assert_eq!(image.config.os, "linux");
    assert!(image.size > 500_000, "size {}", image.size);
    let root = &store.layer_dirs(image)[0];
    for applet in [
        "sh", "echo", "cat", "ls", "sleep", "wget", "nc", "httpd", "env", "id", "true", "false",
        "mkdir", "rm", "touch", "ps", "kill", "grep", "hostname",
    ] {
        assert_eq!(
            fs::read_link(root.join("bin").join(applet)).unwrap(),
            Path::new("busybox"),
            "{applet}"
        );
    }
    assert!(
        fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .contains("nobody:x:65534:65534")
    );
    assert!(
        fs::read_to_string(root.join("etc/group"))
            .unwrap()
            .contains("nobody:x:65534:")
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    // It runs.
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", "echo hello from $(id -u)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from 0\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn imports_an_oci_layout_directory_and_a_tar_of_one() {
    let (tmp, layout) = common::busybox_layout();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let from_dir = store.import(&layout).unwrap();

    // A tar of the layout, into a second store.
    let archive = tmp.path().join("busybox-oci.tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.finish().unwrap();
    drop(builder);
    let store2 = ImageStore::open(&tmp.path().join("store2")).unwrap();
    let from_tar = store2.import(&archive).unwrap();
    assert_eq!(
        from_dir,
        from_tar
            .iter()
            .map(|i| gantry_images::Image {
                last_used: from_dir[0].last_used,
                ..i.clone()
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store2.get(&r("busybox")).unwrap().unwrap().id,
        from_dir[0].id
    );
    assert_eq!(count(&store2.root().join("tmp")), 0);

    // Importing again changes nothing but the use time.
    let again = store.import(&layout).unwrap();
    assert_eq!(again[0].id, from_dir[0].id);
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn imports_a_docker_archive_made_by_skopeo() {
    let (tmp, layout) = common::busybox_layout();
    let archive = tmp.path().join("busybox-docker.tar");
    common::skopeo(&[
        "copy",
        &format!("oci:{}:busybox:latest", layout.display()),
        &format!(
            "docker-archive:{}:example.com/tools/busybox:v2",
            archive.display()
        ),
    ]);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import(&archive).unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].repo_tags, ["example.com/tools/busybox:v2"]);
    assert_eq!(images[0].config.cmd, ["sh"]);

    // Same config and layers as the OCI import: one image, layers shared, both names.
    let root = tmp.path().join("store2");
    let store = ImageStore::open(&root).unwrap();
    let oci = store.import(&layout).unwrap();
    let both = store.import(&archive).unwrap();
    assert_eq!(oci[0].id, images[0].id);
    assert_eq!(both[0].layers, oci[0].layers);
    assert_eq!(
        both[0].repo_tags,
        [
            "docker.io/library/busybox:latest",
            "example.com/tools/busybox:v2"
        ]
    );
    assert_eq!(count(&root.join("layers")), 1);
    // The archive (which has no compressed layer blob) did not orphan the OCI layout's one.
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(
        count(&root.join("blobs/sha256")),
        3,
        "manifest, config, layer"
    );
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn a_bare_tag_imports_an_unnamed_image_and_garbage_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("bare");
    testimage::busybox(&layout, "latest").unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let images = store.import(&layout).unwrap();
    assert!(images[0].repo_tags.is_empty());
    assert_eq!(
        store.image(&images[0].id).unwrap().unwrap().id,
        images[0].id
    );

    let junk = tmp.path().join("junk.tar");
    fs::write(&junk, b"not a tar at all").unwrap();
    assert!(store.import(&junk).is_err());
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let e = store.import(&empty).unwrap_err().to_string();
    assert!(e.contains("neither an OCI image layout"), "{e}");
}

fn layer(name: &str) -> TarBuilder {
    let mut t = TarBuilder::new();
    t.dir(name, 0o755)
        .file(&format!("{name}/file"), 0o644, name.as_bytes());
    t
}

#[test]
fn remove_keeps_shared_layers_until_the_last_image_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let one = store
        .import(&common::layout(
            &tmp.path().join("one"),
            "x.io/app:one",
            vec![layer("base"), layer("one")],
        ))
        .unwrap()
        .remove(0);
    let two = store
        .import(&common::layout(
            &tmp.path().join("two"),
            "x.io/app:two",
            vec![layer("base"), layer("two")],
        ))
        .unwrap()
        .remove(0);
    assert_eq!(store.layer_dirs(&one)[0], store.layer_dirs(&two)[0]);
    assert_eq!(count(&store.root().join("layers")), 3);

    // A second name, then dropping it, leaves the image.
    store
        .import(&common::layout(
            &tmp.path().join("one-b"),
            "x.io/app:one-again",
            vec![layer("base"), layer("one")],
        ))
        .unwrap();
    let removal = store.remove(&r("x.io/app:one-again")).unwrap();
    assert_eq!(
        (removal.untagged, removal.deleted),
        (vec!["x.io/app:one-again".to_owned()], None)
    );
    assert!(store.get(&r("x.io/app:one")).unwrap().is_some());

    let removal = store.remove(&r("x.io/app:one")).unwrap();
    assert_eq!(removal.deleted.as_ref(), Some(&one.id));
    assert!(store.get(&r("x.io/app:one")).unwrap().is_none());
    let dirs = store.layer_dirs(&two);
    assert!(dirs.iter().all(|d| d.is_dir()));
    assert!(!store.layer_dirs(&one)[1].exists());
    assert_eq!(count(&store.root().join("layers")), 2);
    assert_eq!(fs::read(dirs[0].join("base/file")).unwrap(), b"base");

    store.remove(&r("x.io/app:two")).unwrap();
    for dir in ["layers", "blobs/sha256", "images", "tmp"] {
        assert_eq!(count(&store.root().join(dir)), 0, "{dir} not empty");
    }
    assert_eq!(store.usage().unwrap(), 0);
    let err = store.remove(&r("x.io/app:two")).unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { reference, .. } if reference == "x.io/app:two"),
        "{err}"
    );
}

#[test]
fn gc_frees_least_recently_used_images_not_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let image = store
            .import(&common::layout(
                &tmp.path().join(name),
                &format!("x.io/{name}:v1"),
                vec![layer(name)],
            ))
            .unwrap()
            .remove(0);
        ids.push(image.id);
    }
    // Use order: b, a, c (c most recent). a is in use.
    for id in [&ids[1], &ids[0], &ids[2]] {
        #[allow(clippy::disallowed_methods)] // a sync test: nothing else to block
        std::thread::sleep(std::time::Duration::from_millis(3));
        store.touch(id).unwrap();
    }
    let before = store.usage().unwrap();
    let in_use: HashSet<_> = [ids[0].clone()].into();
    let report = store.gc(1, &in_use).unwrap();
    assert_eq!(report.deleted, [ids[1].clone()]);
    assert!(report.freed > 0);
    assert_eq!(store.usage().unwrap(), before - report.freed);
    let report = store.gc(u64::MAX, &in_use).unwrap();
    assert_eq!(report.deleted, [ids[2].clone()]);
    let left: Vec<_> = store.list().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(left, [ids[0].clone()]);
}

#[test]
fn leftovers_of_a_crash_are_cleaned_at_open() {
    let (tmp, layout) = common::busybox_layout();
    let root = tmp.path().join("store");
    let image = ImageStore::open(&root)
        .unwrap()
        .import(&layout)
        .unwrap()
        .remove(0);

    // A stage a crashed pull left: a half-written blob and half-unpacked layer, its lock free.
    let dead = root.join("tmp/stage-dead");
    fs::create_dir_all(dead.join("layer-1/usr")).unwrap();
    fs::write(dead.join("blob-1"), b"half a blob").unwrap();
    fs::write(dead.join(".lock"), b"").unwrap();
    // A stage of a pull still running elsewhere: its lock is held.
    let live = root.join("tmp/stage-live");
    fs::create_dir_all(&live).unwrap();
    let lock = fs::File::create(live.join(".lock")).unwrap();
    lock.lock().unwrap();
    // A half-written record or refs file (written to tmp/ and renamed only when complete).
    fs::write(root.join("tmp/.tmpAbC123"), b"{\"id\": \"sha25").unwrap();
    // Content moved into place whose record was never written.
    let orphan_hex = "ab".repeat(32);
    fs::write(root.join("blobs/sha256").join(&orphan_hex), b"orphan").unwrap();
    fs::create_dir_all(root.join("layers").join(&orphan_hex).join("etc")).unwrap();
    // A reference to an image whose record is gone.
    let refs_path = root.join("refs.json");
    let mut refs: serde_json::Value =
        serde_json::from_slice(&fs::read(&refs_path).unwrap()).unwrap();
    refs["docker.io/library/ghost:latest"] = format!("sha256:{}", "cd".repeat(32)).into();
    fs::write(&refs_path, serde_json::to_vec(&refs).unwrap()).unwrap();

    let store = ImageStore::open(&root).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(!root.join("tmp/.tmpAbC123").exists());
    assert!(!root.join("blobs/sha256").join(&orphan_hex).exists());
    assert!(!root.join("layers").join(&orphan_hex).exists());
    assert!(store.get(&r("ghost")).unwrap().is_none());
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, image.id);
    assert!(
        store.layer_dirs(&listed[0])[0]
            .join("bin/busybox")
            .is_file()
    );

    drop(lock);
    ImageStore::open(&root).unwrap();
    assert!(!live.exists());
}
