//! Directories up: [`pack`] turns a directory into the layer the ORAS CLI
//! makes of one, so `oras pull` unpacks the same tree: a tar+gzip file
//! whose entries are named under the layer's title (`dir`, `dir/a.txt`,
//! ...), in the order of a walk that visits each directory's names sorted,
//! with modes and modification times kept, owners cleared, symbolic links
//! stored as links and anything else (sockets, devices, FIFOs) refused. The
//! layer is annotated `io.deis.oras.content.unpack=true`, with the tar's
//! own digest under `io.deis.oras.content.digest`.
//!
//! The archive is written to a temporary file (removed when the last
//! [`crate::LocalFile`] holding it is dropped), not kept in memory.

use std::fs::{File, Metadata};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest as _, Sha256};
use tonic::Code;

use crate::title::shown;
use crate::unpack::{TAR_DIGEST_ANNOTATION, UNPACK_ANNOTATION};
use crate::Error;

/// The layer media type of a packed directory when none is given.
pub const DIRECTORY_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A packed directory: the archive and what its layer says of it.
#[derive(Debug)]
pub struct Packed {
    /// The archive, removed when dropped.
    pub file: tempfile::TempPath,
    /// Its sha256 digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// The layer annotations that mark it for unpacking.
    pub annotations: Vec<(String, String)>,
}

/// Packs the directory `dir` as a layer titled `title`.
pub fn pack(dir: &Path, title: &str) -> Result<Packed, Error> {
    let temp = tempfile::Builder::new()
        .prefix(".satchel-pack-")
        .suffix(".tar.gz")
        .tempfile()
        .map_err(|e| Error::io("cannot create a temporary file for a directory", e))?;
    let (file, path) = temp.into_parts();
    let gz_out = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let gz = flate2::GzBuilder::new()
        .operating_system(255)
        .write(gz_out, flate2::Compression::default());
    let mut builder = tar::Builder::new(Hashing::new(gz));
    builder.follow_symlinks(false);
    let mut walk = Walk {
        builder: &mut builder,
        title,
    };
    walk.add(dir, title)?;
    let failed = |e| Error::io(format!("cannot pack {}", dir.display()), e);
    let tar_out = builder.into_inner().map_err(failed)?;
    let (gz, tar_digest, _) = tar_out.finish();
    let gz_out = gz.finish().map_err(failed)?;
    let (mut buffered, digest, size) = gz_out.finish();
    buffered.flush().map_err(failed)?;
    Ok(Packed {
        file: path,
        digest,
        size,
        annotations: vec![
            (TAR_DIGEST_ANNOTATION.to_string(), tar_digest),
            (UNPACK_ANNOTATION.to_string(), "true".to_string()),
        ],
    })
}

struct Walk<'b, W: Write> {
    builder: &'b mut tar::Builder<W>,
    title: &'b str,
}

impl<W: Write> Walk<'_, W> {
    /// Adds `path` under the entry name `name`, and what it holds.
    fn add(&mut self, path: &Path, name: &str) -> Result<(), Error> {
        let failed = |e| Error::io(format!("cannot pack {}", path.display()), e);
        // The top is followed if it is a link (the caller named it); inside,
        // links are stored as links.
        let meta = if name == self.title {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        }
        .map_err(failed)?;
        let kind = meta.file_type();
        let mut header = header(&meta);
        if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, name, std::io::empty())
                .map_err(failed)?;
            let mut children: Vec<_> = std::fs::read_dir(path)
                .map_err(failed)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(failed)?;
            children.sort();
            for child in children {
                let child_name = child.to_str().ok_or_else(|| {
                    Error::local(
                        Code::InvalidArgument,
                        format!("cannot pack {}: a name in it is not UTF-8", path.display()),
                    )
                })?;
                self.add(&path.join(&child), &format!("{name}/{child_name}"))?;
            }
        } else if kind.is_file() {
            // The file as opened (never through a link, never waiting on a
            // FIFO swapped in) is what goes in, exactly its size then.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let fd = rustix::fs::open(path, flags, Mode::empty())
                .map_err(|e| failed(std::io::Error::from(e)))?;
            let st = rustix::fs::fstat(&fd).map_err(|e| failed(std::io::Error::from(e)))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(changed(path));
            }
            let size = u64::try_from(st.st_size).unwrap_or(0);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            let exact = Exact {
                inner: File::from(fd).take(size),
                left: size,
            };
            self.builder
                .append_data(&mut header, name, exact)
                .map_err(failed)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(failed)?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            self.builder
                .append_link(&mut header, name, target)
                .map_err(failed)?;
        } else {
            let what = if kind.is_socket() {
                "a socket"
            } else if kind.is_fifo() {
                "a FIFO"
            } else {
                "a device"
            };
            return Err(Error::local(
                Code::InvalidArgument,
                format!(
                    "cannot pack {}: {} is {what}, not a file, directory or link",
                    path.display(),
                    shown(name)
                ),
            ));
        }
        Ok(())
    }
}

fn changed(path: &Path) -> Error {
    Error::local(
        Code::Aborted,
        format!("{} changed while it was packed; push again", path.display()),
    )
}

/// A file's first `left` bytes, failing if it ends sooner (it shrank while
/// it was packed: the archive would not match its headers).
struct Exact {
    inner: std::io::Take<File>,
    left: u64,
}

impl std::io::Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::other("the file shrank while it was packed"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A header with `meta`'s mode and modification time and no owner, as the
/// ORAS CLI writes them.
fn header(meta: &Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.size)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::OutDir;

    #[test]
    fn a_packed_directory_unpacks_to_the_same_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("a.txt"), b"a").unwrap();
        std::fs::write(src.join("sub/deeper/b.bin"), vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
        let long = "n".repeat(150);
        std::fs::write(src.join(&long), b"long").unwrap();
        let packed = pack(&src, "out/dir").unwrap();
        assert_eq!(packed.size, std::fs::metadata(&packed.file).unwrap().len());
        let layer = crate::pb::Descriptor {
            annotations: packed.annotations.iter().cloned().collect(),
            ..Default::default()
        };
        let dest = tmp.path().join("dest");
        let out = OutDir::open(&dest).unwrap();
        let file = File::open(&packed.file).unwrap();
        let path =
            crate::unpack::unpack(file, &out, "out/dir", &layer, Default::default()).unwrap();
        assert_eq!(std::fs::read(path.join("a.txt")).unwrap(), b"a");
        assert_eq!(std::fs::read(path.join(&long)).unwrap(), b"long");
        assert_eq!(
            std::fs::read(path.join("sub/deeper/b.bin")).unwrap(),
            vec![7u8; 300_000]
        );
        assert_eq!(
            std::fs::read_link(path.join("link")).unwrap(),
            Path::new("a.txt")
        );
    }

    #[test]
    fn a_fifo_inside_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = pack(tmp.path(), "d").unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.to_string().contains("a FIFO"), "{err}");
    }
}
