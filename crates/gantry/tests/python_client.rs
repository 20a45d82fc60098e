//! End to end: the Python `kubernetes` client from PyPI (installed by scripts/deps into a virtual environment
//! whose python `GANTRY_E2E_PYTHON` names) against a real `gantry server`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::process::Command;

use support::Server;

#[test]
fn the_python_client_creates_lists_watches_patches_and_deletes() {
    let server = Server::start();
    let python = std::env::var("GANTRY_E2E_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(server.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{python} {script} failed (is the kubernetes package installed? scripts/deps installs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client: ok"));
}
