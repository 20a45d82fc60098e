//! Container start through the shim, with runc and crun (crun after `prepare_for_crun` where the cgroups
//! need it): median and 90th percentile of 20 runs each, after a warm-up run.
//! - `start`: spawn the shim (`create`) + `<runtime> start`, until the container runs and its pid is known;
//! - `of which create`: the shim's part (it runs `<runtime> create`);
//! - `direct create+start`: the runtime alone, no shim (the shim's overhead is the difference);
//! - `run true`: the same plus waiting until the shim has recorded the exit code;
//! - `overlay mount` / `overlay unmount`: the container's rootfs.
//!
//! `cargo bench -p gantry-runtime --bench start` (root; runc, crun and busybox-static installed).
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Env;
use gantry_runtime::oci::{Kind, Runtime};
use gantry_runtime::rootfs::Overlay;
use nix::sys::signal::Signal;

const RUNS: usize = 20;

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<32} median {:>7.2} ms   p90 {:>7.2} ms",
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() * 9 / 10])
    );
}

async fn bench(kind: Kind) {
    let env = Env::with_runtime("bench", kind);
    let (mut start, mut run, mut mount, mut unmount) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut create, mut direct) = (Vec::new(), Vec::new());
    for i in 0..=RUNS {
        // A long-running container: time until it runs.
        let name = format!("s{i}");
        let config = env.config(&name, &["sleep", "1000"]);
        let spec = gantry_runtime::spec::generate(&config).unwrap();
        std::fs::write(
            env.bundle(&name).join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let t = Instant::now();
        let shim = gantry_runtime::shim::spawn_shim(
            common::HELPER.as_ref(),
            "shim",
            &env.shim_args(&name),
        )
        .await
        .unwrap();
        let created = t.elapsed();
        env.runtime.start(&env.id(&name)).await.unwrap();
        let elapsed = t.elapsed();
        assert!(shim.pid > 0);
        env.runtime
            .kill(&env.id(&name), Signal::SIGKILL, false)
            .await
            .unwrap();
        shim.wait().await.unwrap();
        env.runtime.delete(&env.id(&name), false).await.unwrap();

        // The runtime alone.
        let name = format!("d{i}");
        let config = env.config(&name, &["sleep", "1000"]);
        let spec = gantry_runtime::spec::generate(&config).unwrap();
        let bundle = env.bundle(&name);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let t = Instant::now();
        let stdio = gantry_runtime::oci::Stdio3::null();
        env.runtime
            .create(&env.id(&name), &bundle, &bundle.join("init.pid"), stdio)
            .await
            .unwrap();
        env.runtime.start(&env.id(&name)).await.unwrap();
        let direct_elapsed = t.elapsed();
        env.runtime.delete(&env.id(&name), true).await.unwrap();

        // `true`: time until its exit code is recorded.
        let name = format!("t{i}");
        let config = env.config(&name, &["true"]);
        let spec = gantry_runtime::spec::generate(&config).unwrap();
        std::fs::write(
            env.bundle(&name).join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let t = Instant::now();
        let shim = gantry_runtime::shim::spawn_shim(
            common::HELPER.as_ref(),
            "shim",
            &env.shim_args(&name),
        )
        .await
        .unwrap();
        env.runtime.start(&env.id(&name)).await.unwrap();
        let exit = shim.wait().await.unwrap();
        let full = t.elapsed();
        assert_eq!(exit.exit_code, 0);
        env.runtime.delete(&env.id(&name), false).await.unwrap();

        let overlay = Overlay {
            layers: vec![env.layer.clone()],
            dir: env.dir.path().join(format!("o{i}")),
        };
        let t = Instant::now();
        overlay.mount().unwrap();
        let mounted = t.elapsed();
        let t = Instant::now();
        overlay.unmount().unwrap();
        let unmounted = t.elapsed();
        overlay.remove().unwrap();

        if i > 0 {
            start.push(elapsed);
            create.push(created);
            direct.push(direct_elapsed);
            run.push(full);
            mount.push(mounted);
            unmount.push(unmounted);
        }
    }
    report(&format!("{kind}: start (running, pid)"), start);
    report(&format!("{kind}:   of which create"), create);
    report(&format!("{kind}: direct create+start"), direct);
    report(&format!("{kind}: run true (exit recorded)"), run);
    report("overlay mount", mount);
    report("overlay unmount", unmount);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for kind in [Kind::Runc, Kind::Crun] {
        if Runtime::find(kind, std::path::Path::new("/tmp")).is_err() {
            println!("{kind}: not installed, skipped");
            continue;
        }
        rt.block_on(bench(kind));
    }
}
