//! Directories down: a layer the ORAS CLI marks `io.deis.oras.content.unpack`
//! is a tar+gzip of a directory named by its title; [`unpack`] turns the
//! verified archive back into that directory.
//!
//! Every entry must lie under the title (`dir` or `dir/...`), and what
//! follows it must be a safe relative path (the title rules of
//! [`crate::title`]). Regular files, directories, symbolic links and hard
//! links are made; anything else (devices, FIFOs) is refused. A symbolic
//! link's target must be relative and may climb (`../`) only at its start
//! and no higher than the tree's top, so it resolves inside the tree
//! whatever the links it passes through; a hard link names an earlier
//! regular file of the tree. Files and links are made through
//! [`crate::write`], which never follows a link, so an entry cannot write
//! through a link an earlier entry made. The archive may not unpack to more
//! than [`Limits`] allow.
//!
//! The tree is built under a temporary name beside the final one and takes
//! it only when every entry is in place and the archive's own digest (the
//! `io.deis.oras.content.digest` annotation: the uncompressed tar's) checks
//! out; on any failure it is removed. Unsafe entries are INVALID_ARGUMENT,
//! a wrong digest or a broken archive DATA_LOSS, an archive past the limits
//! RESOURCE_EXHAUSTED.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256, Sha512};
use tonic::Code;

use crate::title::{check_title, shown};
use crate::write::OutDir;
use crate::{pb, Error};

/// The layer annotation that asks for unpacking (value `true`).
pub const UNPACK_ANNOTATION: &str = "io.deis.oras.content.unpack";
/// The layer annotation holding the uncompressed tar's digest.
pub const TAR_DIGEST_ANNOTATION: &str = "io.deis.oras.content.digest";

/// How much one archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the uncompressed tar stream, headers included.
    pub max_bytes: u64,
    /// Entries.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 64 GiB and a million entries.
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Whether `layer` is a directory to unpack.
pub fn is_directory(layer: &pb::Descriptor) -> bool {
    layer
        .annotations
        .get(UNPACK_ANNOTATION)
        .is_some_and(|v| v == "true")
}

fn unsafe_entry(title: &str, why: String) -> Error {
    Error::local(
        Code::InvalidArgument,
        format!("refusing the directory {}: {why}", shown(title)),
    )
}

fn data_loss(title: &str, why: String) -> Error {
    Error::local(
        Code::DataLoss,
        format!("cannot unpack the directory {}: {why}", shown(title)),
    )
}

/// Unpacks the gzip-compressed tar `archive` (already verified against its
/// layer digest) into the directory `title` inside `out`, as described in
/// the module documentation; returns the directory's path.
pub fn unpack(
    archive: File,
    out: &OutDir,
    title: &str,
    layer: &pb::Descriptor,
    limits: Limits,
) -> Result<PathBuf, Error> {
    let expected = layer
        .annotations
        .get(TAR_DIGEST_ANNOTATION)
        .map(String::as_str);
    let (placement, tree) = out.create_tree(title)?;
    let reader = Counted {
        inner: flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
            1 << 20,
            archive,
        )),
        hasher: TarHasher::for_digest(expected),
        read: 0,
        limit: limits.max_bytes,
    };
    let mut archive = tar::Archive::new(reader);
    let mut entries = 0u64;
    let mut tree = Tree {
        dir: tree,
        title,
        files: HashSet::new(),
        declared: 0,
        limits,
        buf: vec![0; 256 << 10],
    };
    // Raw entries: long names and PAX records are read here, each at most
    // MAX_EXTENSION_BYTES, not whole by the tar reader.
    let iter = archive
        .entries()
        .map_err(|e| broken(title, e, limits))?
        .raw(true);
    let mut names = Names::default();
    for entry in iter {
        let mut entry = entry.map_err(|e| broken(title, e, limits))?;
        if names.take_extension(title, &mut entry, limits)? {
            continue;
        }
        entries += 1;
        if entries > limits.max_entries {
            return Err(Error::local(
                Code::ResourceExhausted,
                format!(
                    "cannot unpack the directory {}: more than {} entries",
                    shown(title),
                    limits.max_entries
                ),
            ));
        }
        let named = std::mem::take(&mut names);
        tree.put(&mut entry, named)
            .map_err(|e| as_content_error(title, e))?;
    }
    // The digest covers the whole stream, the end-of-archive blocks too.
    let mut reader = archive.into_inner();
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| broken(title, e, limits))?;
    if let (Some(expected), Some(hasher)) = (expected, reader.hasher.take()) {
        let got = hasher.finish();
        if got != expected {
            return Err(data_loss(
                title,
                format!("the archive's content digest is {got}, its layer says {expected}"),
            ));
        }
    }
    drop(tree);
    placement.commit()
}

/// The most bytes of one long name or PAX header.
const MAX_EXTENSION_BYTES: u64 = 1 << 20;

/// The most directories an entry may lie under.
const MAX_DEPTH: usize = 128;

/// The long path and link name the extension headers before an entry gave.
#[derive(Default)]
struct Names {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

impl Names {
    /// Takes in `entry` if it is an extension header (GNU long name or
    /// link, PAX record, PAX global header) and says so.
    fn take_extension(
        &mut self,
        title: &str,
        entry: &mut tar::Entry<'_, impl Read>,
        limits: Limits,
    ) -> Result<bool, Error> {
        let kind = entry.header().entry_type();
        let extension = matches!(
            kind,
            tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
                | tar::EntryType::XHeader
                | tar::EntryType::XGlobalHeader
        );
        if !extension {
            return Ok(false);
        }
        if entry.size() > MAX_EXTENSION_BYTES {
            return Err(unsafe_entry(
                title,
                format!("an extension header is larger than {MAX_EXTENSION_BYTES} bytes"),
            ));
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(|e| broken(title, e, limits))?;
        let trimmed = |d: &[u8]| d.strip_suffix(b"\0").unwrap_or(d).to_vec();
        match kind {
            tar::EntryType::GNULongName => self.path = Some(trimmed(&data)),
            tar::EntryType::GNULongLink => self.link = Some(trimmed(&data)),
            tar::EntryType::XHeader => {
                for record in tar::PaxExtensions::new(&data) {
                    let record = record.map_err(|e| broken(title, e, limits))?;
                    match record.key_bytes() {
                        b"path" => self.path = Some(record.value_bytes().to_vec()),
                        b"linkpath" => self.link = Some(record.value_bytes().to_vec()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(true)
    }
}

/// `name` hashed, to remember which entries made regular files (for the
/// hard links that follow) in 32 bytes each, whatever the names' length.
fn key(name: &str) -> [u8; 32] {
    Sha256::digest(name.as_bytes()).into()
}

/// The tree being unpacked.
struct Tree<'t> {
    dir: OutDir,
    title: &'t str,
    /// The entries that made regular files ([`key`]), for the hard links
    /// that follow.
    files: HashSet<[u8; 32]>,
    /// The sizes the entries declared so far.
    declared: u64,
    limits: Limits,
    /// The copy buffer.
    buf: Vec<u8>,
}

impl Tree<'_> {
    /// Makes one entry.
    fn put(&mut self, entry: &mut tar::Entry<'_, impl Read>, names: Names) -> Result<(), Error> {
        let (tree, title, files) = (&self.dir, self.title, &mut self.files);
        let kind = entry.header().entry_type();
        let raw = names
            .path
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        let rel = relative(title, &raw)?;
        if rel.split('/').count() > MAX_DEPTH {
            return Err(unsafe_entry(
                title,
                format!(
                    "{} lies more than {MAX_DEPTH} directories deep",
                    shown(&rel)
                ),
            ));
        }
        let header = entry.header();
        let link = names
            .link
            .or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        if rel.is_empty() && !kind.is_dir() {
            return Err(unsafe_entry(title, "its top is not a directory".into()));
        }
        match kind {
            tar::EntryType::Directory => {
                let mode = header.mode().unwrap_or(0o755) & 0o777;
                tree.make_dirs_mode(&rel, mode)?;
                files.remove(&key(&rel));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.file(entry, &rel)?;
            }
            tar::EntryType::Symlink => {
                let target = link_name(title, link)?;
                check_link_target(title, &rel, &target)?;
                tree.symlink(&rel, &target)?;
                files.remove(&key(&rel));
            }
            tar::EntryType::Link => {
                let target = link_name(title, link)?;
                let existing = relative(title, target.as_bytes())?;
                if !files.contains(&key(&existing)) {
                    return Err(unsafe_entry(
                        title,
                        format!(
                            "the hard link {} names {}, not an earlier file of the archive",
                            shown(&rel),
                            shown(&existing)
                        ),
                    ));
                }
                tree.hard_link(&existing, &rel)?;
                files.insert(key(&rel));
            }
            other => {
                return Err(unsafe_entry(
                    title,
                    format!(
                        "{} is a {other:?} entry, not a file, directory or link",
                        shown(&rel)
                    ),
                ))
            }
        }
        Ok(())
    }

    /// Makes the regular file `rel` of `entry`, with its mode and time.
    fn file(&mut self, entry: &mut tar::Entry<'_, impl Read>, rel: &str) -> Result<(), Error> {
        let (tree, title, files, buf) = (&self.dir, self.title, &mut self.files, &mut self.buf);
        let header = entry.header();
        self.declared = self.declared.saturating_add(entry.size());
        if self.declared > self.limits.max_bytes {
            return Err(over_limit(title, self.limits));
        }
        let mode = header.mode().unwrap_or(0o644) & 0o777;
        let mtime = header.mtime().ok();
        let (placement, mut file) = tree.create_mode(rel, mode)?;
        copy_entry(entry, &mut file, buf).map_err(|e| match e {
            CopyError::Read(e) => broken(title, e, self.limits),
            CopyError::Write(e) => Error::io(format!("cannot unpack {}", shown(rel)), e),
        })?;
        if let Some(secs) = mtime.and_then(|t| i64::try_from(t).ok()) {
            let t = rustix::fs::Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            };
            let _ = rustix::fs::futimens(
                &file,
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
            );
        }
        placement.commit()?;
        files.insert(key(rel));
        Ok(())
    }
}

/// Which side of a copy failed: the archive (broken, or past the limit)
/// or the disk.
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies an entry's bytes into `file`.
fn copy_entry(entry: &mut impl Read, file: &mut File, buf: &mut [u8]) -> Result<(), CopyError> {
    loop {
        let n = match entry.read(buf) {
            Ok(0) => return file.flush().map_err(CopyError::Write),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// The part of entry name `raw` under `title` (empty for the top itself),
/// checked as a title; `./` in front and `/` at the end are dropped.
fn relative(title: &str, raw: &[u8]) -> Result<String, Error> {
    let name = std::str::from_utf8(raw)
        .map_err(|_| unsafe_entry(title, "an entry's name is not UTF-8".into()))?;
    let mut name = name.trim_end_matches('/');
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    let rel = if name == title {
        ""
    } else if let Some(rest) = name.strip_prefix(title).and_then(|r| r.strip_prefix('/')) {
        rest
    } else {
        return Err(unsafe_entry(
            title,
            format!("the entry {} lies outside it", shown(name)),
        ));
    };
    if !rel.is_empty() {
        check_title(rel).map_err(|e| unsafe_entry(title, e.to_string()))?;
    }
    Ok(rel.to_string())
}

fn link_name(title: &str, link: Option<Vec<u8>>) -> Result<String, Error> {
    let raw = link.ok_or_else(|| unsafe_entry(title, "a link entry has no target".into()))?;
    String::from_utf8(raw).map_err(|_| unsafe_entry(title, "a link's target is not UTF-8".into()))
}

/// A symbolic link at `rel` may point only inside the tree: relative, with
/// `..` parts only at its start and no more of them than `rel` has
/// directories above it, and otherwise only plain names.
fn check_link_target(title: &str, rel: &str, target: &str) -> Result<(), Error> {
    let refuse = |why: &str| {
        unsafe_entry(
            title,
            format!("the link {} points {why}: {}", shown(rel), shown(target)),
        )
    };
    if target.is_empty() || target.starts_with('/') {
        return Err(refuse("to an absolute or empty path"));
    }
    let depth = rel.matches('/').count();
    let mut parts = target.trim_end_matches('/').split('/').peekable();
    let mut climbs = 0;
    while parts.peek() == Some(&"..") {
        parts.next();
        climbs += 1;
    }
    if climbs > depth {
        return Err(refuse("outside the directory"));
    }
    for part in parts {
        if part.is_empty() || part == "." || part == ".." || part.contains('\0') {
            return Err(refuse("through `.`, `..` or an empty part after its start"));
        }
    }
    Ok(())
}

/// Maps the refusals of [`crate::write`] inside the tree, which only the
/// archive's own entries can cause, to INVALID_ARGUMENT.
fn as_content_error(title: &str, e: Error) -> Error {
    match e.code() {
        Code::FailedPrecondition => unsafe_entry(title, e.to_string()),
        _ => e,
    }
}

/// An unreadable archive: past the limit, or broken.
fn broken(title: &str, e: std::io::Error, limits: Limits) -> Error {
    if is_over_limit(&e) {
        return over_limit(title, limits);
    }
    data_loss(title, format!("the archive is broken: {e}"))
}

fn is_over_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
}

fn over_limit(title: &str, limits: Limits) -> Error {
    Error::local(
        Code::ResourceExhausted,
        format!(
            "cannot unpack the directory {}: it unpacks to more than {} bytes",
            shown(title),
            limits.max_bytes
        ),
    )
}

#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the archive unpacks past its limit")
    }
}

impl std::error::Error for OverLimit {}

/// The uncompressed stream: counted against the limit and hashed.
struct Counted<R> {
    inner: R,
    hasher: Option<TarHasher>,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(std::io::Error::other(OverLimit));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The hash the tar digest annotation names; none for an algorithm this
/// client does not know, whose digest is then not checked (as the ORAS CLI
/// skips one it cannot parse).
enum TarHasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl TarHasher {
    fn for_digest(digest: Option<&str>) -> Option<TarHasher> {
        match digest?.split_once(':')?.0 {
            "sha256" => Some(TarHasher::Sha256(Sha256::new())),
            "sha512" => Some(TarHasher::Sha512(Sha512::new())),
            _ => None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            TarHasher::Sha256(h) => h.update(data),
            TarHasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            TarHasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            TarHasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests;
