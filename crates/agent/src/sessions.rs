//! What the node endpoint's streaming sessions do on the node: `exec` runs a process in a running container
//! through the OCI runtime (under a pseudo-terminal for `-t`), `attach` relays a container's output as its
//! shim logs it, and port-forward dials a port inside the pod's network namespace.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use gantry_runtime::oci::{ExecProcess, Runtime};
use gantry_runtime::shim;
use gantry_stream::command::{Outcome, Streams, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How often an attached container's log is read again.
const ATTACH_INTERVAL: Duration = Duration::from_millis(100);
/// A terminal's size until the client reports its own.
const DEFAULT_SIZE: TerminalSize = TerminalSize {
    width: 80,
    height: 24,
};

/// The id of the running container `name` of the pod `uid`, from the bundles under `dir/containers` (named
/// `<uid prefix>-<name>-<run>`, the newest run last).
pub fn live_container(dir: &Path, uid: &str, name: &str) -> Option<String> {
    let prefix = format!("{}-{name}-", &uid[..uid.len().min(8)]);
    std::fs::read_dir(dir.join("containers"))
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_string_lossy().into_owned();
            let run: u64 = id.strip_prefix(&prefix)?.parse().ok()?;
            let bundle = entry.path();
            let alive = matches!(shim::read_created(&bundle), Ok(Some(shim::Created::Pid(_))))
                && matches!(shim::read_exit(&bundle), Ok(None));
            alive.then_some((run, id))
        })
        .max()
        .map(|(_, id)| id)
}

/// The network namespace of the pod `uid`.
pub fn pod_netns(dir: &Path, uid: &str) -> PathBuf {
    gantry_runtime::pause::netns_path(&dir.join("pods").join(uid).join("sandbox"))
}

/// Runs `command` in the container `id` with the session's streams.
pub async fn exec(
    runtime: &Runtime,
    id: &str,
    command: Vec<String>,
    tty: bool,
    streams: Streams,
) -> Outcome {
    let process = ExecProcess {
        args: command,
        terminal: tty,
        ..ExecProcess::default()
    };
    let command = runtime.exec_command(id, &process);
    let result = if tty {
        exec_in_terminal(command, streams).await
    } else {
        exec_with_pipes(command, streams).await
    };
    result.unwrap_or_else(|e| Outcome::Failed(format!("cannot exec in container {id}: {e}")))
}

async fn exec_with_pipes(
    command: std::process::Command,
    mut streams: Streams,
) -> std::io::Result<Outcome> {
    let piped = |wanted: bool| {
        if wanted {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut child = tokio::process::Command::from(command)
        .stdin(piped(streams.stdin.is_some()))
        .stdout(piped(streams.stdout.is_some()))
        .stderr(piped(streams.stderr.is_some()))
        .spawn()?;
    if let (Some(mut input), Some(mut stdin)) = (streams.stdin.take(), child.stdin.take()) {
        tokio::spawn(async move {
            while let Some(data) = input.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
        });
    }
    let stdout = relay(child.stdout.take(), streams.stdout.take());
    let stderr = relay(child.stderr.take(), streams.stderr.take());
    let (status, (), ()) = tokio::join!(child.wait(), stdout, stderr);
    Ok(exited(status?))
}

/// Copies what `from` gives to `to` until either ends.
async fn relay(from: Option<impl AsyncRead + Unpin>, to: Option<mpsc::Sender<Bytes>>) {
    let (Some(mut from), Some(to)) = (from, to) else {
        return;
    };
    let mut buffer = vec![0; 32 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        if to.send(Bytes::copy_from_slice(&buffer[..n])).await.is_err() {
            return;
        }
    }
}

fn exited(status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    Outcome::Exited(
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    )
}

/// The runtime relays a terminal of the container to its own controlling terminal, which is a
/// pseudo-terminal of ours: `setsid -c` makes it so without unsafe code in this process.
async fn exec_in_terminal(
    command: std::process::Command,
    mut streams: Streams,
) -> std::io::Result<Outcome> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_string_lossy().as_ref())?;
    resize(&master, DEFAULT_SIZE);
    let mut wrapped = std::process::Command::new("setsid");
    wrapped
        .args(["--wait", "--ctty"])
        .arg(command.get_program())
        .args(command.get_args());
    let mut child = tokio::process::Command::from(wrapped)
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal)
        .spawn()?;
    let master = std::fs::File::from(master);
    if let Some(mut input) = streams.stdin.take() {
        let mut writer = master.try_clone()?;
        tokio::task::spawn_blocking(move || {
            while let Some(data) = input.blocking_recv() {
                if writer.write_all(&data).is_err() {
                    break;
                }
            }
        });
    }
    if let Some(mut sizes) = streams.resize.take() {
        let master = master.try_clone()?;
        tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                resize(&master, size);
            }
        });
    }
    // Reading ends (EIO) once the runtime, the terminal's last holder, has exited.
    let output = streams.stdout.take();
    let mut reader = master;
    let reading = tokio::task::spawn_blocking(move || {
        let mut buffer = vec![0; 32 * 1024];
        while let Ok(n @ 1..) = reader.read(&mut buffer) {
            let Some(output) = &output else { continue };
            if output
                .blocking_send(Bytes::copy_from_slice(&buffer[..n]))
                .is_err()
            {
                break;
            }
        }
    });
    let status = child.wait().await?;
    let _ = reading.await;
    Ok(exited(status))
}

fn resize(terminal: &impl std::os::fd::AsFd, size: TerminalSize) {
    let size = rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    if let Err(e) = rustix::termios::tcsetwinsize(terminal, size) {
        tracing::debug!("cannot resize an exec terminal: {e}");
    }
}

/// Relays what the container writes (as its shim logs it in `log_dir`) to the session's stdout and stderr,
/// from now until `running` says it has stopped.
pub async fn attach(log_dir: PathBuf, mut streams: Streams, running: impl Fn() -> bool) -> Outcome {
    // Attaching does not feed the container's stdin (the shim gives containers none): it is read and dropped.
    if let Some(mut stdin) = streams.stdin.take() {
        tokio::spawn(async move { while stdin.recv().await.is_some() {} });
    }
    let Some(file) = crate::logs::log_file(&log_dir, 0) else {
        return Outcome::Failed("the container has no output yet".into());
    };
    let mut offset = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    loop {
        let alive = running();
        let Ok((lines, next)) = crate::logs::read_from(&file, offset) else {
            break;
        };
        offset = next;
        for line in lines.lines() {
            // `<time> <stream> <F|P> <text>`: F ends a line, P is part of one.
            let mut fields = line.splitn(4, ' ');
            let (_, stream, tag) = (fields.next(), fields.next(), fields.next());
            let mut text = fields.next().unwrap_or_default().to_owned();
            if tag == Some("F") {
                text.push('\n');
            }
            let to = if stream == Some("stderr") && streams.stderr.is_some() {
                &streams.stderr
            } else {
                &streams.stdout
            };
            if let Some(to) = to
                && to.send(Bytes::from(text)).await.is_err()
            {
                return Outcome::Exited(0);
            }
        }
        if !alive {
            break;
        }
        tokio::time::sleep(ATTACH_INTERVAL).await;
    }
    Outcome::Exited(0)
}

/// Connects to `port` on the loopback interface of the network namespace `netns` (where a container's
/// `localhost`-only listeners are reachable too), IPv4 first.
pub async fn dial(netns: PathBuf, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own that enters the namespace and ends: no other task ever runs in that namespace.
    std::thread::spawn(move || {
        let _ = tx.send(connect_in(&netns, port));
    });
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the dialing thread died"))??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

fn connect_in(netns: &Path, port: u16) -> std::io::Result<std::net::TcpStream> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    let namespace = std::fs::File::open(netns)?;
    nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)?;
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&v4, TIMEOUT).or_else(|e| {
        let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
        std::net::TcpStream::connect_timeout(&v6, TIMEOUT).map_err(|_| e)
    })
}
