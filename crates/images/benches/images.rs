//! Times importing the busybox test image into an empty store, and unpacking a gzip layer of
//! 1,000 small files: medians of RUNS runs. `cargo bench -p gantry-images` (as root: unpacking
//! sets owners).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gantry_images::testimage::{self, TarBuilder};
use gantry_images::{ImageStore, unpack_layer};

const RUNS: usize = 15;

/// Median of `RUNS` timings of `f`, each after a fresh `setup` (not timed).
fn time<S>(name: &str, mut setup: impl FnMut() -> S, mut f: impl FnMut(&S)) {
    f(&setup());
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let s = setup();
            let start = Instant::now();
            f(&s);
            let elapsed = start.elapsed();
            drop(s);
            elapsed
        })
        .collect();
    samples.sort();
    println!(
        "{name:<44} median {:>8.2} ms   min {:>8.2} ms   max {:>8.2} ms",
        samples[RUNS / 2].as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[RUNS - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("busybox");
    testimage::busybox(&layout, "busybox:latest").unwrap();
    time(
        "import busybox OCI layout (empty store)",
        || tempfile::tempdir_in(tmp.path()).unwrap(),
        |root| {
            let store = ImageStore::open(root.path()).unwrap();
            store.import(&layout).unwrap();
        },
    );
    let warm = ImageStore::open(&tmp.path().join("warm")).unwrap();
    warm.import(&layout).unwrap();
    time(
        "import busybox again (all present)",
        || (),
        |_| {
            warm.import(&layout).unwrap();
        },
    );

    let mut tar = TarBuilder::new();
    for d in 0..10 {
        tar.dir(&format!("d{d}"), 0o755);
        for f in 0..100 {
            tar.file(
                &format!("d{d}/file{f}"),
                0o644,
                format!("file {d}/{f}\n").repeat(8).as_bytes(),
            );
        }
    }
    let blob = tmp.path().join("layer.tar.gz");
    std::fs::write(&blob, testimage::gzip(&tar.finish().unwrap()).unwrap()).unwrap();
    time(
        "unpack gzip layer, 1,000 files of ~100 B",
        || {
            let dir = tempfile::tempdir_in(tmp.path()).unwrap();
            std::fs::create_dir(dir.path().join("layer")).unwrap();
            dir
        },
        |dir| {
            unpack_layer(&blob, &dir.path().join("layer")).unwrap();
        },
    );
}
