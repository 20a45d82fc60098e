//! The node-side file logic of pod volumes: what the agent materialises under
//! `<data>/pods/<uid>/volumes/<name>/` and bind-mounts into containers. Plain blocking I/O (the agent calls it
//! from `spawn_blocking`); no API access (the agent fetches what [`payload::references`] names).
//!
//! - [`payload`]: the files of `configMap`, `secret`, `downwardAPI` and `projected` volumes, with the kubelet's
//!   modes, optionality and messages; what a volume refers to.
//! - [`downward`]: the downward API's field and resource values, shared with environment variables.
//! - [`atomic`]: the kubelet's atomic writer (`..data` swapped to a new timestamped directory).
//! - [`host_path`]: the `type` check of `hostPath` volumes.
//! - [`subpath`]: `subPathExpr` expansion and the `subPath` directory inside a volume.
//! - [`usage`]: the disk a volume's tree uses.
//! - [`mounts`]: tmpfs mounts, the mounts under a directory, detaching them.
//! - [`quantity`]: Kubernetes quantities as numbers.

pub mod atomic;
pub mod downward;
pub mod host_path;
pub mod mounts;
pub mod payload;
pub mod quantity;
pub mod subpath;
pub mod usage;

pub use payload::{File, Payload, Reference, SourceError, Sources};
