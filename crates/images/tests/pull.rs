//! Pulls from a real registry (Debian's docker-registry on loopback, pushed to with skopeo).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::Registry;
use gantry_images::{Digest, Error, ImageStore, PullOptions, Reference};

fn plain_http(registry: &Registry) -> PullOptions {
    PullOptions {
        plain_http_registries: vec![registry.addr.clone()],
        credentials: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_once_then_finds_everything_present() {
    let registry = Registry::start().await;
    let (tmp, layout) = common::busybox_layout();
    registry.push(&layout, "busybox:latest", "library/busybox:v1", false);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = Reference::parse(&format!("{}/library/busybox:v1", registry.addr)).unwrap();
    let options = plain_http(&registry);

    let first = store.pull(&reference, &options).await.unwrap();
    assert_eq!(first.downloaded_blobs, 2, "config and one layer");
    assert!(first.downloaded_bytes > 500_000);
    assert_eq!(first.image.repo_tags, [reference.to_string()]);
    assert_eq!(first.image.config.cmd, ["sh"]);
    assert!(
        store.layer_dirs(&first.image)[0]
            .join("bin/busybox")
            .is_file()
    );
    // The same image as importing the layout.
    let imported = ImageStore::open(&tmp.path().join("store2"))
        .unwrap()
        .import(&layout)
        .unwrap();
    assert_eq!(imported[0].id, first.image.id);

    let second = store.pull(&reference, &options).await.unwrap();
    assert_eq!((second.downloaded_blobs, second.downloaded_bytes), (0, 0));
    assert_eq!(second.image.id, first.image.id);

    // By digest: found locally through the repo digest, and pullable.
    let repo_digest = first.image.repo_digests[0].clone();
    let by_digest = Reference::parse(&repo_digest).unwrap();
    assert_eq!(store.get(&by_digest).unwrap().unwrap().id, first.image.id);
    let pulled = store.pull(&by_digest, &options).await.unwrap();
    assert_eq!(
        (pulled.image.id, pulled.downloaded_blobs),
        (first.image.id.clone(), 0)
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_the_host_platform_from_an_index() {
    let registry = Registry::start().await;
    let (tmp, layout) = common::busybox_layout();
    let multi = multi_platform(&layout, &tmp.path().join("multi"));
    registry.push(&multi, "multi", "library/multi:v1", true);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = Reference::parse(&format!("{}/library/multi:v1", registry.addr)).unwrap();
    let pulled = store
        .pull(&reference, &plain_http(&registry))
        .await
        .unwrap();
    assert_eq!(
        pulled.image.config.architecture,
        gantry_images::host_architecture()
    );
    assert_eq!(pulled.downloaded_blobs, 2);
    // The repo digest is the index's, as Kubernetes reports it.
    let index_digest =
        Digest::of(&fs::read(multi.join("blobs/sha256").join(index_hex(&multi))).unwrap());
    assert_eq!(
        pulled.image.repo_digests,
        [format!("{}/library/multi@{index_digest}", registry.addr)]
    );

    // Importing the same layout picks the same image.
    let imported = ImageStore::open(&tmp.path().join("store2"))
        .unwrap()
        .import(&multi)
        .unwrap();
    assert_eq!(imported[0].id, pulled.image.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_is_a_clear_error() {
    let registry = Registry::start().await;
    let (tmp, layout) = common::busybox_layout();
    registry.push(&layout, "busybox:latest", "library/busybox:v1", false);
    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    for missing in ["library/busybox:nope", "nothing/here:v1"] {
        let reference = Reference::parse(&format!("{}/{missing}", registry.addr)).unwrap();
        let err = store
            .pull(&reference, &plain_http(&registry))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { reference: r, .. } if *r == reference.to_string()),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("image {reference} not found")),
            "{err}"
        );
    }
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_that_does_not_match_its_digest_is_refused() {
    let registry = Registry::start().await;
    let (tmp, layout) = common::busybox_layout();
    registry.push(&layout, "busybox:latest", "library/busybox:v1", false);
    // Corrupt the layer in the registry's storage (same length, so only the digest tells).
    let layer_hex = layer_hex(&layout);
    let file = registry.blob_file(&layer_hex);
    let mut bytes = fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&file, &bytes).unwrap();

    let store = ImageStore::open(&tmp.path().join("store")).unwrap();
    let reference = Reference::parse(&format!("{}/library/busybox:v1", registry.addr)).unwrap();
    let err = store
        .pull(&reference, &plain_http(&registry))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { expected, .. } if expected.ends_with(&layer_hex)),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());
    assert!(!store.root().join("blobs/sha256").join(&layer_hex).exists());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_names_the_reference() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(store_dir.path()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reference = Reference::parse(&format!("127.0.0.1:{port}/x:v1")).unwrap();
    let options = PullOptions {
        plain_http_registries: vec![format!("127.0.0.1:{port}")],
        credentials: None,
    };
    let err = store.pull(&reference, &options).await.unwrap_err();
    assert!(err.to_string().contains(&reference.to_string()), "{err}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_the_default_and_a_plain_http_registry_fails_its_handshake() {
    let registry = Registry::start().await;
    let store_dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(store_dir.path()).unwrap();
    let reference = Reference::parse(&format!("{}/library/busybox:v1", registry.addr)).unwrap();
    let err = store
        .pull(&reference, &PullOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Registry { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("https://{}", registry.addr)),
        "{err}"
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn layer_hex(layout: &Path) -> String {
    let manifest = json(&blob(
        layout,
        json(&layout.join("index.json"))["manifests"][0]["digest"]
            .as_str()
            .unwrap(),
    ));
    manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned()
}

fn index_hex(layout: &Path) -> String {
    json(&layout.join("index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned()
}

/// A copy of the busybox layout whose index.json points at a nested index of two images: the
/// host's and one claiming s390x (same layer, different config).
fn multi_platform(layout: &Path, out: &Path) -> std::path::PathBuf {
    common::run(
        "cp",
        &["-r", layout.to_str().unwrap(), out.to_str().unwrap()],
    );
    let put = |bytes: Vec<u8>| {
        let d = Digest::of(&bytes);
        fs::write(blob(out, d.as_str()), &bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let top = json(&out.join("index.json"));
    let host_desc = top["manifests"][0].clone();
    let manifest = json(&blob(out, host_desc["digest"].as_str().unwrap()));
    let mut config = json(&blob(out, manifest["config"]["digest"].as_str().unwrap()));
    config["architecture"] = "s390x".into();
    let (config_digest, config_size) = put(serde_json::to_vec(&config).unwrap());
    let mut other = manifest.clone();
    other["config"]["digest"] = config_digest.into();
    other["config"]["size"] = config_size.into();
    let (other_digest, other_size) = put(serde_json::to_vec(&other).unwrap());
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": mt, "digest": other_digest, "size": other_size, "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": mt, "digest": host_desc["digest"], "size": host_desc["size"],
             "platform": {"os": "linux", "architecture": gantry_images::host_architecture()}},
        ],
    });
    let (nested_digest, nested_size) = put(serde_json::to_vec(&nested).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": nested_digest, "size": nested_size,
                       "annotations": {"org.opencontainers.image.ref.name": "multi"}}],
    });
    fs::write(out.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    out.to_path_buf()
}
