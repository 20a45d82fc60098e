//! Links `gantry` as a position-dependent executable on Linux. Every pod runs two long-lived processes of this
//! binary (its pause process and a shim per container); as a position-independent executable each would
//! relocate, and so privately dirty, about 0.9 MiB of the binary's read-only data (vtables, string tables) at
//! start. At a fixed address those pages stay clean and are shared by all of them (docs/benchmarks.md has
//! the figures). The price is that the binary's own code is not randomized by ASLR (its heap, stack and
//! libraries still are), as with Go binaries such as k3s.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-link-arg-bin=gantry=-no-pie");
    }
}
