//! Real containers: runc (or crun with `GANTRY_TEST_RUNTIME=crun`) through the shim, on overlay rootfs, in
//! pod sandboxes and pod cgroups. Needs root and `apt-get install -y runc crun busybox-static`; without them
//! these tests fail (they never skip).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Env, HELPER, within};
use gantry_runtime::oci::{ExecProcess, Status};
use gantry_runtime::pause::Sandbox;
use gantry_runtime::shim::{self, ShimError};
use gantry_runtime::spec::{Namespace, Resources};
use nix::sys::signal::Signal;

#[tokio::test]
async fn logs_and_exit_code() {
    let env = Env::new("exit");
    let config = env.config(
        "c",
        &[
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; printf partial; exit 3",
        ],
    );
    let shim = within("create", env.run("c", &config)).await;
    assert!(shim.pid > 0);
    let exit = within("exit", shim.wait()).await.unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (3, None, false)
    );
    let log = env.log("c");
    let stdout: Vec<_> = log.iter().filter(|l| l.starts_with("stdout")).collect();
    assert_eq!(
        stdout,
        ["stdout out1", "stdout out2", "stdout partial"],
        "{log:?}"
    );
    assert!(log.contains(&"stderr err1".to_string()), "{log:?}");
    assert_eq!(shim::read_exit(&env.bundle("c")).unwrap(), Some(exit));
}

#[tokio::test]
async fn sigterm_is_recorded() {
    let env = Env::new("term");
    // In its own PID namespace `sleep` would be init, which ignores SIGTERM without a handler: use the
    // host's PID namespace so the signal kills it.
    let mut config = env.config("c", &["sleep", "1000"]);
    config.namespaces.pid = Namespace::Host;
    let shim = within("create", env.run("c", &config)).await;
    let id = env.id("c");
    let state = env.runtime.state(&id).await.unwrap();
    assert_eq!((state.status, state.pid), (Status::Running, shim.pid));
    env.runtime.kill(&id, Signal::SIGTERM, false).await.unwrap();
    let exit = within("exit", shim.wait()).await.unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (143, Some(15), false)
    );
    assert_eq!(
        env.runtime.state(&id).await.unwrap().status,
        Status::Stopped
    );
    env.runtime.delete(&id, false).await.unwrap();
    assert!(env.runtime.state(&id).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn oom_kill_is_recorded() {
    let env = Env::new("oom");
    let mut config = env.config(
        "c",
        &["sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done"],
    );
    config.resources = Resources {
        memory_limit: Some(8 << 20),
        ..Default::default()
    };
    let shim = within("create", env.run("c", &config)).await;
    let exit = within("exit", shim.wait()).await.unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (137, Some(9), true),
        "{exit:?}"
    );
}

#[tokio::test]
async fn pids_limit() {
    let env = Env::new("pids");
    let mut config = env.config(
        "c",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; echo spawned",
        ],
    );
    config.resources = Resources {
        pids_limit: Some(6),
        ..Default::default()
    };
    let shim = within("create", env.run("c", &config)).await;
    let exit = within("exit", shim.wait()).await.unwrap();
    let log = env.log("c");
    // busybox sh gives up at the first fork refused.
    assert!(
        log.iter()
            .any(|l| l.starts_with("stderr") && l.contains("can't fork")),
        "{log:?}"
    );
    assert!(!log.contains(&"stdout spawned".to_string()), "{log:?}");
    assert_ne!(exit.exit_code, 0);
}

#[tokio::test]
async fn pod_shares_network_and_uts() {
    let env = Env::new("pod");
    env.cgroups
        .create_pod(
            &env.pod_cgroup,
            &Resources {
                memory_limit: Some(256 << 20),
                ..Default::default()
            },
        )
        .unwrap();
    let sandbox = within(
        "sandbox",
        Sandbox::start(
            HELPER.as_ref(),
            "pause",
            "pod",
            "testpod",
            &env.dir.path().join("pod"),
        ),
    )
    .await
    .unwrap();
    *env.sandbox.lock().unwrap() = Some((sandbox.pause_pid, sandbox.netns_path()));

    let mut server = env.config(
        "server",
        &["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"],
    );
    server.namespaces = sandbox.namespaces();
    server.hostname = Some("not-set-when-joining".into());
    let server_shim = within("server", env.run("server", &server)).await;

    let script = "hostname; for i in $(seq 1 100); do timeout 5 wget -q -O - http://127.0.0.1:8080/index.html && exit 0; sleep 0.1; done; exit 1";
    let mut client = env.config("client", &["sh", "-c", script]);
    client.namespaces = sandbox.namespaces();
    let client_exit = within("client", env.run("client", &client))
        .await
        .wait()
        .await
        .unwrap();
    let log = env.log("client");
    assert_eq!(client_exit.exit_code, 0, "{log:?}");
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("stdout"))
            .collect::<Vec<_>>(),
        ["stdout testpod", "stdout hello from the pod"]
    );

    // exec in the server sees the pod's hostname too.
    let exec = ExecProcess {
        args: vec!["hostname".into()],
        ..Default::default()
    };
    let out = env
        .runtime
        .exec_output(&env.id("server"), &exec)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "testpod");

    env.runtime
        .kill(&env.id("server"), Signal::SIGKILL, false)
        .await
        .unwrap();
    assert_eq!(
        within("server exit", server_shim.wait())
            .await
            .unwrap()
            .signal,
        Some(9)
    );
    for name in ["server", "client"] {
        env.runtime.delete(&env.id(name), false).await.unwrap();
    }
    // An agent restart finds the sandbox again from its files.
    let found = Sandbox::load("pod", &sandbox.dir).unwrap();
    assert_eq!(found.pause_pid, sandbox.pause_pid);
    let netns = sandbox.netns_path();
    within("stop", sandbox.stop()).await.unwrap();
    *env.sandbox.lock().unwrap() = None;
    assert!(!netns.exists());
    assert!(Sandbox::load("pod", &env.dir.path().join("pod")).is_err());
}

#[tokio::test]
async fn shim_survives_its_caller() {
    let env = Env::new("orphan");
    let config = env.config("c", &["sleep", "1000"]);
    let spec = gantry_runtime::spec::generate(&config).unwrap();
    std::fs::write(
        env.bundle("c").join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    // A helper process starts the shim and exits at once, like an agent killed right after.
    let out = tokio::process::Command::new(HELPER)
        .arg("spawn")
        .args(env.shim_args("c").to_args())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let id = env.id("c");
    env.runtime.start(&id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = env.runtime.state(&id).await.unwrap();
    assert_eq!((state.status, state.pid), (Status::Running, pid));
    assert_eq!(
        shim::read_created(&env.bundle("c")).unwrap(),
        Some(shim::Created::Pid(pid))
    );
    assert_eq!(shim::read_exit(&env.bundle("c")).unwrap(), None);

    env.runtime.kill(&id, Signal::SIGKILL, false).await.unwrap();
    let exit = within(
        "exit",
        shim::wait_exit(&env.bundle("c"), Duration::from_millis(20)),
    )
    .await
    .unwrap();
    assert_eq!((exit.pid, exit.exit_code, exit.signal), (pid, 137, Some(9)));
}

#[tokio::test]
async fn pod_cgroup_is_removed_in_every_hierarchy() {
    let env = Env::new("cgroup");
    let limits = Resources {
        cpu_shares: Some(256),
        memory_limit: Some(128 << 20),
        pids_limit: Some(50),
        ..Default::default()
    };
    env.cgroups.create_pod(&env.pod_cgroup, &limits).unwrap();
    let config = env.config("c", &["true"]);
    let exit = within("run", async { env.run("c", &config).await.wait().await })
        .await
        .unwrap();
    assert_eq!(exit.exit_code, 0);
    let dirs = env.cgroups.dirs(&env.pod_cgroup);
    assert!(dirs.len() > 1 || env.cgroups.is_v2());
    for dir in &dirs {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    // The runtime removes only the container's leaf.
    env.runtime.delete(&env.id("c"), false).await.unwrap();
    assert!(env.cgroups.exists(&env.pod_cgroup));
    within("remove", env.cgroups.remove(&env.pod_cgroup))
        .await
        .unwrap();
    for dir in &dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[tokio::test]
async fn log_rotation_by_size() {
    let env = Env::new("rotate");
    let config = env.config(
        "c",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 500 ]; do echo line $i; i=$((i+1)); done",
        ],
    );
    let mut args = env.shim_args("c");
    args.log_max_size = 4096;
    args.log_max_files = 3;
    let shim = within("create", env.create("c", &config, &args))
        .await
        .unwrap();
    env.runtime.start(&env.id("c")).await.unwrap();
    assert_eq!(within("exit", shim.wait()).await.unwrap().exit_code, 0);
    let dir = env.log_path("c").parent().unwrap().to_path_buf();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["0.log", "0.log.1", "0.log.2"]);
    for name in &names {
        assert!(std::fs::metadata(dir.join(name)).unwrap().len() <= 4096);
    }
    assert_eq!(env.log("c").last().unwrap(), "stdout line 499");
}

#[tokio::test]
async fn create_errors_reach_the_caller() {
    let env = Env::new("bad");
    let config = env.config("c", &["/no/such/binary"]);
    let err = within("create", env.create("c", &config, &env.shim_args("c")))
        .await
        .unwrap_err();
    let ShimError::Create { message, .. } = &err else {
        panic!("{err}")
    };
    assert!(message.contains("/no/such/binary"), "{message}");
}
