//! Files beneath a layout directory, reached without following a symbolic
//! link: every component is opened with `openat(…, O_NOFOLLOW)` from the
//! directory above it, so a link planted anywhere in a layout (`index.json`,
//! `blobs`, a blob) is refused rather than read or written through.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};

/// An open directory.
#[derive(Debug)]
pub(crate) struct Dir(OwnedFd);

fn base_flags() -> OFlags {
    OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// A link where a plain file or directory belongs.
fn refused(name: &OsStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is a symbolic link or not a plain file; layouts are read without following links",
            name.to_string_lossy()
        ),
    )
}

fn map(name: &OsStr, e: rustix::io::Errno) -> io::Error {
    // O_NOFOLLOW on a link fails with ELOOP; O_DIRECTORY on a link to a
    // directory, with ENOTDIR.
    if e == rustix::io::Errno::LOOP {
        refused(name)
    } else {
        io::Error::from(e)
    }
}

impl Dir {
    /// Opens the directory at the absolute `path`, walking from `/` and
    /// following no link on the way; with `create`, missing directories
    /// are made (mode `mode`).
    pub(crate) fn open_path(path: &Path, create: Option<u32>) -> io::Result<Dir> {
        let mut dir = Dir(rustix::fs::openat(
            CWD,
            "/",
            base_flags() | OFlags::DIRECTORY | OFlags::RDONLY,
            Mode::empty(),
        )?);
        for component in path.components() {
            match component {
                Component::RootDir => {}
                Component::Normal(name) => dir = dir.sub(name, create)?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} is not a plain absolute path", path.display()),
                    ))
                }
            }
        }
        Ok(dir)
    }

    /// Opens the directory `name` in this one, making it (mode `create`) if
    /// asked and missing. A link is refused.
    pub(crate) fn sub(&self, name: &OsStr, create: Option<u32>) -> io::Result<Dir> {
        let open = || {
            rustix::fs::openat(
                &self.0,
                name,
                base_flags() | OFlags::DIRECTORY | OFlags::RDONLY,
                Mode::empty(),
            )
        };
        let fd = match (open(), create) {
            (Ok(fd), _) => fd,
            (Err(rustix::io::Errno::NOENT), Some(mode)) => {
                match rustix::fs::mkdirat(&self.0, name, Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open().map_err(|e| map(name, e))?
            }
            (Err(rustix::io::Errno::NOTDIR), _) if self.is_link(name) => return Err(refused(name)),
            (Err(e), _) => return Err(map(name, e)),
        };
        Ok(Dir(fd))
    }

    fn is_link(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
            })
            .unwrap_or(false)
    }

    /// Opens the plain file `name` for reading. Links, FIFOs, devices and
    /// directories are refused (a FIFO is opened non-blocking, so it cannot
    /// hold the call).
    pub(crate) fn open_file(&self, name: &OsStr) -> io::Result<std::fs::File> {
        let fd = rustix::fs::openat(
            &self.0,
            name,
            base_flags() | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| map(name, e))?;
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(refused(name));
        }
        // Reads from a regular file never block; clear the flag anyway so
        // the descriptor behaves as an ordinary one.
        rustix::fs::fcntl_setfl(&file, OFlags::empty())?;
        Ok(file)
    }

    /// Whether `name` exists here (a link counts: it is there, if unusable).
    pub(crate) fn exists(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Creates `name` anew (`O_EXCL`, so nothing planted there is written
    /// through) with `mode`.
    pub(crate) fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<std::fs::File> {
        let fd = rustix::fs::openat(
            &self.0,
            name,
            base_flags() | OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| map(name, e))?;
        Ok(std::fs::File::from(fd))
    }

    /// Renames `from` here to `to` in `dest`, replacing what is there (a
    /// link at `to` is replaced, never followed).
    pub(crate) fn rename(&self, from: &OsStr, dest: &Dir, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.0, from, &dest.0, to)?)
    }

    /// Removes the file `name`.
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::empty())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_at_every_level() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("real/blobs")).unwrap();
        std::fs::write(root.join("real/blobs/a"), b"a").unwrap();
        std::fs::write(root.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("real/blobs/link")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        let real = Dir::open_path(&root.join("real"), None).unwrap();
        let blobs = real.sub(OsStr::new("blobs"), None).unwrap();
        assert!(blobs.open_file(OsStr::new("a")).is_ok());
        let err = blobs.open_file(OsStr::new("link")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = Dir::open_path(&root.join("alias"), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = real.open_file(OsStr::new("blobs")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
