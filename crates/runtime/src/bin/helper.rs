//! `gantry shim` and `gantry pause` as a standalone binary, for this crate's tests and benchmark (the
//! `gantry` binary runs the same functions as hidden subcommands). `spawn` starts a shim and exits at once,
//! leaving it orphaned, as an agent killed with `kill -9` would.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gantry_runtime::{pause, shim};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Shim(shim::ShimArgs),
    Pause(pause::PauseArgs),
    /// Starts a shim (`<this binary> shim ...`), prints the container's pid, exits.
    Spawn(shim::ShimArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Shim(args) => shim::main(args),
        Command::Pause(args) => pause::main(args),
        Command::Spawn(args) => {
            let spawned = std::env::current_exe()
                .map_err(|e| e.to_string())
                .and_then(|exe| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    runtime
                        .block_on(shim::spawn_shim(&exe, "shim", &args))
                        .map_err(|e| e.to_string())
                });
            match spawned {
                Ok(shim) => {
                    println!("{}", shim.pid);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
