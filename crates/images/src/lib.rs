//! The node agent's image store.
//!
//! Images arrive by [`ImageStore::pull`] from an OCI or Docker registry, or by
//! [`ImageStore::import`] of an OCI image layout or a `docker save` archive. Blobs are kept by
//! digest and verified; each layer is unpacked once into its own directory, ready to be an
//! overlayfs lower layer ([`ImageStore::layer_dirs`]) and shared by every image that has it.
//! Images are named by normalized [`Reference`]s. See `store.rs` for the layout on disk and why a
//! crash never leaves a half image visible. Unpacking needs root (device nodes for whiteouts,
//! `trusted.*` xattrs, ownership).

mod cleanup;
mod commit;
mod digest;
mod error;
mod fsutil;
mod image;
mod import;
mod platform;
mod pull;
mod reference;
mod stage;
mod store;
pub mod testimage;
mod unpack;

pub use cleanup::{GcReport, Removal};
pub use digest::Digest;
pub use error::{Error, Result};
pub use image::{Image, ImageConfig};
pub use platform::host_architecture;
pub use pull::{Credentials, PullOptions, Pulled};
pub use reference::{DEFAULT_REGISTRY, Reference};
pub use store::ImageStore;
pub use unpack::{Unpacked, unpack_layer};
