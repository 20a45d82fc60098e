//! How the node agent runs containers.
//!
//! - [`spec`]: a container's OCI runtime spec, a pure function of its description ([`seccomp`]: the
//!   RuntimeDefault profile);
//! - [`oci`]: the runc/crun driver (`create`, `start`, `state`, `kill`, `delete`, `exec`);
//! - [`shim`]: the per-container supervisor process and the caller's side of it ([`cri_log`]: its log files);
//! - [`pause`]: the pod sandbox (the pause process holding the pod's namespaces);
//! - [`cgroups`]: v1 (hybrid included) and v2, pod cgroups, OOM counters;
//! - [`rootfs`]: overlayfs root filesystems.
//!
//! A pod start: [`cgroups::Cgroups::create_pod`] → [`pause::Sandbox::start`] (then CNI on its netns file) →
//! per container: [`rootfs::Overlay::mount`], [`spec::generate`] into `<bundle>/config.json`,
//! [`shim::spawn_shim`] (create), [`oci::Runtime::start`]. The `gantry` binary runs [`shim::main`] and
//! [`pause::main`] as hidden subcommands.

pub mod cgroups;
pub mod cri_log;
pub mod oci;
pub mod pause;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
