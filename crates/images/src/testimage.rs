//! Byte-reproducible OCI image layouts built without a registry: a busybox image for tests and the
//! quick start, and the pieces to build others (deterministic tars, a layout writer).

use std::fs;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::platform;

/// Where Debian's busybox-static package puts the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Every entry's modification time: 2000-01-01T00:00:00Z.
pub const MTIME: u64 = 946_684_800;

/// The applets linked in `/bin` of the busybox image.
pub const APPLETS: &[&str] = &[
    "[", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname",
    "du", "echo", "env", "expr", "false", "find", "grep", "head", "hostname", "httpd", "id",
    "ifconfig", "ip", "kill", "ln", "ls", "md5sum", "mkdir", "mv", "nc", "nslookup", "ping",
    "printenv", "printf", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq", "sh", "sleep",
    "sort", "stat", "stty", "tail", "tar", "tee", "test", "timeout", "top", "touch", "tr", "true",
    "tty", "uname", "uniq", "wc", "wget", "which", "whoami", "xargs", "yes",
];

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Writes an OCI image layout at `out` holding one image: a busybox-static root filesystem
/// (`/bin/busybox` and applet symlinks, `/etc/passwd` and `/etc/group` with root and nobody
/// 65534, `/root`, `/tmp` 1777), `Cmd ["sh"]`, tagged `reference` (its `ref.name`). The same
/// busybox binary always gives the same bytes. Returns the manifest digest.
pub fn busybox(out: &Path, reference: &str) -> Result<Digest> {
    let path = Path::new(BUSYBOX);
    let binary = fs::read(path).at(path)?;
    if !is_static_elf(&binary) {
        return Err(Error::invalid(
            BUSYBOX,
            "not a static executable: install the busybox-static package",
        ));
    }
    let mut tar = TarBuilder::new();
    tar.dir("bin", 0o755);
    tar.file("bin/busybox", 0o755, &binary);
    for applet in APPLETS {
        tar.symlink(&format!("bin/{applet}"), "busybox");
    }
    tar.dir("etc", 0o755);
    tar.file("etc/group", 0o644, b"root:x:0:\nnobody:x:65534:\n");
    tar.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    tar.dir("root", 0o700);
    tar.dir("tmp", 0o1777);
    oci_layout(
        out,
        reference,
        &[tar.finish()?],
        &json!({"Env": [PATH_ENV], "Cmd": ["sh"]}),
    )
}

/// Writes an OCI image layout at `out` with one image of `layers` (uncompressed tars, lowest
/// first; stored gzip-compressed) and `config` as the config's `config` object (`Cmd`, `Env`, …).
/// Returns the manifest digest.
pub fn oci_layout(
    out: &Path,
    reference: &str,
    layers: &[Vec<u8>],
    config: &Value,
) -> Result<Digest> {
    let blobs = out.join("blobs/sha256");
    fs::create_dir_all(&blobs).at(&blobs)?;
    let put = |bytes: &[u8]| -> Result<(Digest, usize)> {
        let digest = Digest::of(bytes);
        let path = blobs.join(digest.hex());
        fs::write(&path, bytes).at(&path)?;
        Ok((digest, bytes.len()))
    };
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for tar in layers {
        diff_ids.push(Digest::of(tar).to_string());
        let (digest, size) = put(&gzip(tar)?)?;
        descriptors.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}));
    }
    let history: Vec<Value> = layers
        .iter()
        .map(|_| json!({"created": "2000-01-01T00:00:00Z", "created_by": "gantry testimage"}))
        .collect();
    let image_config = json!({
        "created": "2000-01-01T00:00:00Z",
        "architecture": platform::host_architecture(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let (config_digest, config_size) = put(&to_json(&image_config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put(&to_json(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    let index_path = out.join("index.json");
    fs::write(&index_path, to_json(&index)?).at(&index_path)?;
    let layout_path = out.join("oci-layout");
    fs::write(&layout_path, br#"{"imageLayoutVersion":"1.0.0"}"#).at(&layout_path)?;
    Ok(manifest_digest)
}

/// Builds an uncompressed tar with fixed owners (0/0) and mtimes ([`MTIME`]), entries in the
/// order added. Whiteouts are ordinary empty files named `.wh.NAME` (or `.wh..wh..opq`).
pub struct TarBuilder {
    builder: tar::Builder<Vec<u8>>,
    error: Option<std::io::Error>,
}

impl std::fmt::Debug for TarBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarBuilder")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Default for TarBuilder {
    fn default() -> Self {
        TarBuilder::new()
    }
}

impl TarBuilder {
    pub fn new() -> TarBuilder {
        TarBuilder {
            builder: tar::Builder::new(Vec::new()),
            error: None,
        }
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.append(
            tar::EntryType::Directory,
            &format!("{path}/"),
            mode,
            None,
            b"",
        )
    }

    pub fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> &mut Self {
        self.append(tar::EntryType::Regular, path, mode, None, content)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.append(tar::EntryType::Symlink, path, 0o777, Some(target), b"")
    }

    /// A hard link to `target`, a path in the same tar.
    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.append(tar::EntryType::Link, path, 0o644, Some(target), b"")
    }

    /// An entry with any owner: `(kind, path, mode, uid, gid, link target, content)`.
    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        link: Option<&str>,
        content: &[u8],
    ) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_mtime(MTIME);
        header.set_size(content.len() as u64);
        let result = (|| {
            if let Some(link) = link {
                header.set_link_name(link)?;
            }
            header.set_path(path).or_else(|_| {
                // set_path refuses `..`; write the name bytes as they are (for hostile test tars).
                let name = &mut header.as_old_mut().name;
                name.fill(0);
                name[..path.len().min(100)]
                    .copy_from_slice(&path.as_bytes()[..path.len().min(100)]);
                Ok::<_, std::io::Error>(())
            })?;
            header.set_cksum();
            self.builder.append(&header, content)
        })();
        if let Err(e) = result {
            self.error = Some(e);
        }
        self
    }

    fn append(
        &mut self,
        kind: tar::EntryType,
        path: &str,
        mode: u32,
        link: Option<&str>,
        content: &[u8],
    ) -> &mut Self {
        self.raw(kind, path, mode, 0, 0, link, content)
    }

    /// The tar's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        let io = |e| Error::Io {
            path: "<tar>".into(),
            source: e,
        };
        if let Some(e) = self.error {
            return Err(io(e));
        }
        self.builder.into_inner().map_err(io)
    }
}

/// Gzip with no name and mtime 0 in the header (`gzip -n`), so equal input gives equal bytes.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let io = |e| Error::Io {
        path: "<gzip>".into(),
        source: e,
    };
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).map_err(io)?;
    encoder.finish().map_err(io)
}

fn to_json(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::invalid("json", e))
}

/// An ELF executable without a program interpreter (PT_INTERP) needs no dynamic loader.
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    // 64-bit little-endian ELF only: what busybox-static is on the hosts we run.
    if !bytes.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != 3))
}
