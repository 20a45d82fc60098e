//! Unpacks a layer (a tar, plain or gzip) into its own directory, in the form overlayfs reads as a
//! lower layer: OCI whiteouts become 0/0 character devices, opaque markers the
//! `trusted.overlay.opaque` xattr. Nothing is ever written through a symlink or outside the directory.

use std::collections::HashSet;
use std::fs::{self, File, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, lchown, symlink};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use tar::EntryType;

use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What unpacking a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// SHA-256 of the uncompressed tar: the layer's `diff_id`.
    pub diff_id: Digest,
    /// Bytes of regular file content written.
    pub size: u64,
}

/// How a layer blob is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Opens a layer blob and decompresses it.
pub(crate) fn open_layer(blob: &Path) -> Result<Box<dyn Read>> {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(blob).at(blob)?);
    let magic = reader.fill_buf().at(blob)?;
    Ok(match Compression::detect(magic) {
        Compression::Gzip => Box::new(MultiGzDecoder::new(reader)),
        Compression::None => Box::new(reader),
        Compression::Zstd => {
            return Err(Error::invalid(
                format!("layer {}", blob.display()),
                "zstd-compressed layers are not supported",
            ));
        }
    })
}

/// Unpacks the layer blob at `blob` (a tar, plain or gzip) into the existing, empty directory
/// `dest`. The store calls this for each new layer; it is public for tools and benchmarks.
pub fn unpack_layer(blob: &Path, dest: &Path) -> Result<Unpacked> {
    unpack_tar(open_layer(blob)?, dest)
}

/// Unpacks an uncompressed tar stream into the existing, empty directory `dest`.
pub(crate) fn unpack_tar(reader: impl Read, dest: &Path) -> Result<Unpacked> {
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let mut unpacker = Unpacker {
        dest,
        chown: rustix::process::geteuid().is_root(),
        known_dirs: HashSet::new(),
        dirs: Vec::new(),
        size: 0,
    };
    for entry in archive.entries().at(dest)? {
        unpacker.entry(entry.at(dest)?)?;
    }
    unpacker.finish_dirs()?;
    let (diff_id, _) = archive.into_inner().drain().at(dest)?;
    Ok(Unpacked {
        diff_id,
        size: unpacker.size,
    })
}

/// Metadata of a directory, applied after its contents (adding entries changes its mtime, and a
/// read-only mode would block them).
#[derive(Debug)]
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: i64,
}

#[derive(Debug)]
struct Unpacker<'a> {
    dest: &'a Path,
    chown: bool,
    /// Relative paths known to be real directories (not symlinks) in `dest`.
    known_dirs: HashSet<PathBuf>,
    dirs: Vec<DirMeta>,
    size: u64,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry
            .path()
            .map_err(|e| unsafe_entry("<unreadable>", e))?
            .into_owned();
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0);
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        let mtime = header
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0);
        let xattrs = xattrs(&mut entry);
        let Some(rel) = relative(&raw)? else {
            if kind == EntryType::Directory {
                self.dirs.push(DirMeta {
                    path: self.dest.to_path_buf(),
                    mode,
                    mtime,
                });
            }
            return Ok(());
        };
        let name = rel
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        self.ensure_parents(&rel)?;
        let path = self.dest.join(&rel);
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&rel, &name, hidden, uid, gid);
        }
        match kind {
            EntryType::Directory => {
                if !self.replace(&path, true)? {
                    fs::create_dir(&path).at(&path)?;
                }
                self.known_dirs.insert(rel);
                self.owner(&path, uid, gid)?;
                self.dirs.push(DirMeta {
                    path: path.clone(),
                    mode,
                    mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.replace(&path, false)?;
                let mut file = File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .at(&path)?;
                self.size += io::copy(&mut entry, &mut file).at(&path)?;
                drop(file);
                self.owner(&path, uid, gid)?;
                fs::set_permissions(&path, Permissions::from_mode(mode)).at(&path)?;
                set_mtime(&path, mtime)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .at(&path)?
                    .ok_or_else(|| unsafe_entry(&raw, "symlink without target"))?;
                self.replace(&path, false)?;
                symlink(&target, &path).at(&path)?;
                self.owner(&path, uid, gid)?;
                set_mtime(&path, mtime)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .at(&path)?
                    .ok_or_else(|| unsafe_entry(&raw, "hard link without target"))?;
                let target_rel = relative(&target)?
                    .ok_or_else(|| unsafe_entry(&raw, "hard link to the layer root"))?;
                let target_path = self.existing_file(&raw, &target_rel)?;
                self.replace(&path, false)?;
                fs::hard_link(&target_path, &path).at(&path)?;
                return Ok(());
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                self.replace(&path, false)?;
                mknod(&path, file_type, mode, major, minor)?;
                self.owner(&path, uid, gid)?;
                fs::set_permissions(&path, Permissions::from_mode(mode)).at(&path)?;
                set_mtime(&path, mtime)?;
            }
            other => {
                tracing::debug!(entry = %raw.display(), kind = ?other, "skipping tar entry");
                return Ok(());
            }
        }
        for (key, value) in xattrs {
            if let Err(e) = rustix::fs::lsetxattr(&path, key.as_str(), &value, XattrFlags::empty())
            {
                tracing::warn!(path = %path.display(), xattr = %key, error = %e, "cannot set xattr");
            }
        }
        Ok(())
    }

    /// `.wh..wh..opq` marks the directory opaque; `.wh.NAME` hides NAME of the layers below.
    fn whiteout(&mut self, rel: &Path, name: &str, hidden: &str, uid: u32, gid: u32) -> Result<()> {
        let dir = self.dest.join(rel.parent().unwrap_or(Path::new("")));
        if name == OPAQUE_MARKER {
            return rustix::fs::lsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(io::Error::from)
                .at(&dir);
        }
        if hidden.starts_with(WHITEOUT_PREFIX)
            || hidden.is_empty()
            || hidden == "."
            || hidden == ".."
        {
            tracing::debug!(entry = %rel.display(), "skipping special whiteout entry");
            return Ok(());
        }
        let path = dir.join(hidden);
        self.replace(&path, false)?;
        mknod(&path, FileType::CharacterDevice, 0, 0, 0)?;
        self.owner(&path, uid, gid)
    }

    /// Creates the missing parent directories of `rel`; refuses parents that are symlinks or files.
    fn ensure_parents(&mut self, rel: &Path) -> Result<()> {
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        let mut cur = PathBuf::new();
        for c in parent.components() {
            cur.push(c);
            if self.known_dirs.contains(&cur) {
                continue;
            }
            let path = self.dest.join(&cur);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) => {
                    let what = if m.file_type().is_symlink() {
                        "a symlink"
                    } else {
                        "not a directory"
                    };
                    return Err(unsafe_entry(
                        rel,
                        format!("parent {} is {what}", cur.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new().mode(0o755).create(&path).at(&path)?;
                }
                Err(e) => return Err(e).at(&path),
            }
            self.known_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// The path of an existing non-directory reached without symlinks, for a hard link.
    fn existing_file(&self, raw: &Path, rel: &Path) -> Result<PathBuf> {
        let mut cur = self.dest.to_path_buf();
        let count = rel.components().count();
        for (i, c) in rel.components().enumerate() {
            cur.push(c);
            let m = fs::symlink_metadata(&cur)
                .map_err(|e| unsafe_entry(raw, format!("hard link target: {e}")))?;
            let last = i + 1 == count;
            if (!last && !m.is_dir()) || (last && m.is_dir()) {
                return Err(unsafe_entry(
                    raw,
                    "hard link target is not a file inside the layer",
                ));
            }
        }
        Ok(cur)
    }

    /// Clears `path` for a new entry. With `keep_dir`, an existing directory stays: returns whether
    /// one is there.
    fn replace(&mut self, path: &Path, keep_dir: bool) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                if keep_dir {
                    return Ok(true);
                }
                fs::remove_dir_all(path).at(path)?;
                self.known_dirs.clear();
            }
            Ok(_) => fs::remove_file(path).at(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(path),
        }
        Ok(false)
    }

    fn owner(&self, path: &Path, uid: u32, gid: u32) -> Result<()> {
        if self.chown {
            lchown(path, Some(uid), Some(gid)).at(path)
        } else {
            Ok(())
        }
    }

    fn finish_dirs(&mut self) -> Result<()> {
        for dir in self.dirs.drain(..).rev() {
            fs::set_permissions(&dir.path, Permissions::from_mode(dir.mode)).at(&dir.path)?;
            set_mtime(&dir.path, dir.mtime)?;
        }
        Ok(())
    }
}

/// The entry's path relative to the layer root; `None` for the root itself. `..` is refused;
/// absolute paths count from the layer root.
fn relative(raw: &Path) -> Result<Option<PathBuf>> {
    let mut rel = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(unsafe_entry(raw, "path leaves the layer directory"));
            }
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// `SCHILY.xattr.*` PAX records: extended attributes such as `security.capability`.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(String, Vec<u8>)> {
    let Ok(Some(extensions)) = entry.pax_extensions() else {
        return Vec::new();
    };
    extensions
        .filter_map(|ext| {
            let ext = ext.ok()?;
            let name = ext.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_owned();
            Some((name, ext.value_bytes().to_vec()))
        })
        .collect()
}

fn mknod(path: &Path, file_type: FileType, mode: u32, major: u32, minor: u32) -> Result<()> {
    rustix::fs::mknodat(
        CWD,
        path,
        file_type,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .map_err(io::Error::from)
    .at(path)
}

/// Sets both times to `mtime` without following a symlink.
fn set_mtime(path: &Path, mtime: i64) -> Result<()> {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
        .at(path)
}

fn unsafe_entry(entry: impl AsRef<Path>, reason: impl std::fmt::Display) -> Error {
    Error::UnsafeEntry {
        entry: entry.as_ref().display().to_string(),
        reason: reason.to_string(),
    }
}
