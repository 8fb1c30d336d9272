//! Writing files into a directory without following a link the writer did
//! not make (Linux `*at` calls through rustix).
//!
//! [`OutDir::open`] opens the directory the caller named (made if missing;
//! a link there is the caller's choice and is followed). From that handle,
//! [`OutDir::create`] walks a relative name part by part with
//! `openat(O_NOFOLLOW|O_DIRECTORY)`, making missing directories with
//! `mkdirat` and refusing a symbolic link with FAILED_PRECONDITION, then
//! creates the temporary file with `O_CREAT|O_EXCL|O_NOFOLLOW` under a name
//! with 128 random bits. [`Placement::commit`] renames it over the final
//! name inside the same directory handle: a link standing there is
//! replaced, never written through. New files and directories get 0666 and
//! 0777 less the umask, as `File::create` and `create_dir` would.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use tonic::Code;

use crate::Error;

/// A directory to write into, held open so later steps resolve names from
/// it and not from a path someone could swap.
#[derive(Debug, Clone)]
pub struct OutDir {
    fd: Arc<OwnedFd>,
    /// For messages.
    path: PathBuf,
}

/// A temporary file inside its final directory, waiting for
/// [`Placement::commit`] or [`Placement::discard`]; dropped any other way
/// (a cancelled pull), it removes the temporary file too.
#[derive(Debug)]
pub struct Placement {
    /// The directory holding both names.
    dir: OwnedFd,
    temp: String,
    name: String,
    /// The final path, for messages and callers.
    path: PathBuf,
    /// Set once the temporary file has its final name.
    committed: bool,
}

fn io(what: String, errno: Errno) -> Error {
    Error::io(what, std::io::Error::from(errno))
}

fn refused(message: String) -> Error {
    Error::local(Code::FailedPrecondition, message)
}

impl OutDir {
    /// Opens `path`, creating it and its parents if missing.
    pub fn open(path: &Path) -> Result<OutDir, Error> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(format!("cannot open {}", path.display()), e))?;
        Ok(OutDir {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        })
    }

    /// Where this directory is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a temporary file for `name`, a `/`-separated relative path
    /// the caller has already checked (no empty, `.` or `..` parts). The
    /// directories on the way are made if missing; a link or a file among
    /// them, or a directory at the final name, is FAILED_PRECONDITION.
    pub fn create(&self, name: &str) -> Result<(Placement, File), Error> {
        self.create_mode(name, 0o666)
    }

    /// [`Self::create`], the new file made with `mode` (less the umask).
    pub fn create_mode(&self, name: &str, mode: u32) -> Result<(Placement, File), Error> {
        self.create_in(name, mode, false)
    }

    /// A temporary file beside `name` that will never take that name: a
    /// directory's archive, read back (it is open for reading and writing)
    /// and removed once the directory is made ([`crate::unpack`]). A
    /// directory at `name` is no obstacle.
    pub fn create_scratch(&self, name: &str) -> Result<(Placement, File), Error> {
        self.create_in(name, 0o600, true)
    }

    fn create_in(&self, name: &str, mode: u32, scratch: bool) -> Result<(Placement, File), Error> {
        let (dir, base, path) = self.parent_of(name)?;
        if !scratch && is_dir_at(&dir, base) {
            return Err(refused(format!(
                "cannot write {}: a directory is in the way",
                path.display()
            )));
        }
        let temp = temp_name(base)?;
        // A scratch file is read back by its writer.
        let access = match scratch {
            true => OFlags::RDWR,
            false => OFlags::WRONLY,
        };
        let fd = rustix::fs::openat(
            &dir,
            temp.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | access | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map_err(|e| io(format!("cannot create a file beside {}", path.display()), e))?;
        Ok((Placement::made(dir, temp, base, path), File::from(fd)))
    }

    /// Opens the directory holding `name` (made if missing, walked without
    /// following a link) and returns it with `name`'s last part and full
    /// path.
    fn parent_of<'n>(&self, name: &'n str) -> Result<(OwnedFd, &'n str, PathBuf), Error> {
        let mut parts: Vec<&str> = name.split('/').collect();
        let base = parts.pop().unwrap_or_default();
        let mut path = self.path.clone();
        let mut dir = rustix::io::dup(&*self.fd)
            .map_err(|e| io(format!("cannot open {}", self.path.display()), e))?;
        for part in parts {
            path.push(part);
            dir = subdir(&dir, part, &path)?;
        }
        path.push(base);
        Ok((dir, base, path))
    }

    /// Makes the directory `name` and those on the way, as [`Self::create`]
    /// walks them; an empty `name` is this directory.
    pub fn make_dirs(&self, name: &str) -> Result<(), Error> {
        self.make_dirs_mode(name, 0o777)
    }

    /// [`Self::make_dirs`], the last directory made with `mode` (less the
    /// umask) if it is new.
    pub fn make_dirs_mode(&self, name: &str, mode: u32) -> Result<(), Error> {
        if name.is_empty() {
            return Ok(());
        }
        let (dir, base, path) = self.parent_of(name)?;
        subdir_mode(&dir, base, &path, mode & 0o777).map(drop)
    }

    /// Makes a symbolic link `name` to `target`, replacing a file or link
    /// there; the caller has checked `target`.
    pub fn symlink(&self, name: &str, target: &str) -> Result<(), Error> {
        let (dir, base, path) = self.parent_of(name)?;
        let temp = temp_name(base)?;
        rustix::fs::symlinkat(target, &dir, temp.as_str())
            .map_err(|e| io(format!("cannot make the link {}", path.display()), e))?;
        Placement::made(dir, temp, base, path).commit().map(drop)
    }

    /// Makes `name` a hard link to the regular file `existing`, both inside
    /// this directory; a link at `existing` is FAILED_PRECONDITION.
    pub fn hard_link(&self, existing: &str, name: &str) -> Result<(), Error> {
        let (from_dir, from_base, from_path) = self.parent_of(existing)?;
        let st = rustix::fs::statat(&from_dir, from_base, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io(format!("cannot link to {}", from_path.display()), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refused(format!(
                "cannot link to {}: not a regular file",
                from_path.display()
            )));
        }
        let (dir, base, path) = self.parent_of(name)?;
        let temp = temp_name(base)?;
        rustix::fs::linkat(&from_dir, from_base, &dir, temp.as_str(), AtFlags::empty())
            .map_err(|e| io(format!("cannot make the link {}", path.display()), e))?;
        Placement::made(dir, temp, base, path).commit().map(drop)
    }

    /// Makes an empty directory under a temporary name beside `name` (see
    /// [`Self::create`]) and opens it: the tree built inside takes the
    /// final name at [`TreePlacement::commit`].
    pub fn create_tree(&self, name: &str) -> Result<(TreePlacement, OutDir), Error> {
        let (dir, base, path) = self.parent_of(name)?;
        let temp = temp_name(base)?;
        rustix::fs::mkdirat(&dir, temp.as_str(), Mode::from_raw_mode(0o777)).map_err(|e| {
            io(
                format!("cannot create a directory beside {}", path.display()),
                e,
            )
        })?;
        let placement = TreePlacement {
            temp_path: path.with_file_name(&temp),
            inner: Placement::made(dir, temp, base, path.clone()),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(
            &placement.inner.dir,
            placement.inner.temp.as_str(),
            flags,
            Mode::empty(),
        )
        .map_err(|e| {
            io(
                format!("cannot open a directory beside {}", path.display()),
                e,
            )
        })?;
        Ok((
            placement,
            OutDir {
                fd: Arc::new(fd),
                path,
            },
        ))
    }
}

fn is_dir_at(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// Opens (making it if missing) the directory `part` inside `dir`, never
/// through a link.
fn subdir(dir: &OwnedFd, part: &str, path: &Path) -> Result<OwnedFd, Error> {
    subdir_mode(dir, part, path, 0o777)
}

/// [`subdir`], a new directory made with `mode` (less the umask).
fn subdir_mode(dir: &OwnedFd, part: &str, path: &Path, mode: u32) -> Result<OwnedFd, Error> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rustix::fs::openat(dir, part, flags, Mode::empty());
    match open() {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let link = rustix::fs::statat(dir, part, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            let what = if link {
                "is a symbolic link"
            } else {
                "is not a directory"
            };
            return Err(refused(format!(
                "refusing to write under {}: it {what}",
                path.display()
            )));
        }
        Err(e) => return Err(io(format!("cannot open {}", path.display()), e)),
    }
    match rustix::fs::mkdirat(dir, part, Mode::from_raw_mode(mode)) {
        // Someone made it meanwhile: open it as it is, links refused.
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io(format!("cannot create {}", path.display()), e)),
    }
    open().map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => refused(format!(
            "refusing to write under {}: it is not a directory",
            path.display()
        )),
        e => io(format!("cannot open {}", path.display()), e),
    })
}

/// `.BASE.satchel-<32 hex>.partial`, with BASE cut so the name stays
/// within 255 bytes.
fn temp_name(base: &str) -> Result<String, Error> {
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| io("cannot get random bytes".into(), e))?;
    let mut cut = base.len().min(160);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut hex = String::with_capacity(32);
    for b in random {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok(format!(".{}.satchel-{hex}.partial", &base[..cut]))
}

impl Placement {
    /// The placement of `temp`, just made in `dir`, for the name `base`.
    fn made(dir: OwnedFd, temp: String, base: &str, path: PathBuf) -> Placement {
        Placement {
            dir,
            temp,
            name: base.to_string(),
            path,
            committed: false,
        }
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the temporary file to its final name, replacing a file or a
    /// link there. On failure the temporary file is removed.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        match rustix::fs::renameat(&self.dir, self.temp.as_str(), &self.dir, self.name.as_str()) {
            Ok(()) => {
                self.committed = true;
                Ok(std::mem::take(&mut self.path))
            }
            // Dropping `self` removes the temporary file.
            Err(e) => Err(match e {
                Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST => refused(format!(
                    "cannot write {}: a directory is in the way",
                    self.path.display()
                )),
                e => io(format!("cannot move {} into place", self.path.display()), e),
            }),
        }
    }

    /// Removes the temporary file.
    pub fn discard(self) {}
}

/// A directory tree built under a temporary name inside its final
/// directory ([`OutDir::create_tree`]), waiting for [`Self::commit`];
/// dropped uncommitted, the tree is removed.
#[derive(Debug)]
pub struct TreePlacement {
    inner: Placement,
    /// The temporary name's full path, for the removal.
    temp_path: PathBuf,
}

impl TreePlacement {
    /// Gives the tree its final name. Whatever stood there (a file, a link
    /// or an older tree) is swapped out in the same step and then removed,
    /// so the name never shows a partial tree.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        let p = &self.inner;
        let rename = |flags| {
            rustix::fs::renameat_with(&p.dir, p.temp.as_str(), &p.dir, p.name.as_str(), flags)
        };
        let swapped = match rename(RenameFlags::NOREPLACE) {
            Ok(()) => false,
            Err(Errno::EXIST) => match rename(RenameFlags::EXCHANGE) {
                Ok(()) => true,
                Err(Errno::INVAL | Errno::NOSYS) => self.set_aside_and_rename()?,
                Err(e) => return Err(self.move_failed(e)),
            },
            // File systems without renameat2's flags (NFS, CIFS, many FUSE).
            Err(Errno::INVAL | Errno::NOSYS) => self.set_aside_and_rename()?,
            Err(e) => return Err(self.move_failed(e)),
        };
        let path = std::mem::take(&mut self.inner.path);
        if !swapped {
            self.inner.committed = true;
        }
        // Dropping `self` removes what now has the temporary name: nothing,
        // or what the tree replaced.
        Ok(path)
    }

    /// Where renameat2 cannot swap: what stands at the final name is moved
    /// to a name of its own first, then the tree is renamed in, then the
    /// old one removed. The final name is missing for a moment, but never
    /// shows a partial tree. Returns whether something was set aside (it
    /// is removed as the swapped-out tree is).
    fn set_aside_and_rename(&mut self) -> Result<bool, Error> {
        let p = &self.inner;
        let aside = temp_name(&p.name)?;
        let had = match rustix::fs::renameat(&p.dir, p.name.as_str(), &p.dir, aside.as_str()) {
            Ok(()) => true,
            Err(Errno::NOENT) => false,
            Err(e) => return Err(self.move_failed(e)),
        };
        if let Err(e) = rustix::fs::renameat(&p.dir, p.temp.as_str(), &p.dir, p.name.as_str()) {
            if had {
                let _ = rustix::fs::renameat(&p.dir, aside.as_str(), &p.dir, p.name.as_str());
            }
            return Err(self.move_failed(e));
        }
        if had {
            // The old tree now has the name the drop removes.
            let _ = rustix::fs::renameat(&p.dir, aside.as_str(), &p.dir, p.temp.as_str());
            remove_any(&self.temp_path.with_file_name(&aside));
        }
        Ok(had)
    }

    fn move_failed(&self, e: Errno) -> Error {
        io(
            format!("cannot move {} into place", self.inner.path.display()),
            e,
        )
    }
}

impl Drop for TreePlacement {
    fn drop(&mut self) {
        if !self.inner.committed {
            self.inner.committed = true;
            remove_any(&self.temp_path);
        }
    }
}

/// Removes what is at `path`, never following a link: a directory with
/// all it holds, anything else alone.
fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, self.temp.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn write(out: &OutDir, name: &str, data: &[u8]) -> Result<PathBuf, Error> {
        let (placement, mut file) = out.create(name)?;
        file.write_all(data).unwrap();
        placement.commit()
    }

    #[test]
    fn writes_nested_files_and_makes_the_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::open(&tmp.path().join("new/out")).unwrap();
        let path = write(&out, "a/b/c.txt", b"hi").unwrap();
        assert_eq!(path, tmp.path().join("new/out/a/b/c.txt"));
        assert_eq!(std::fs::read(&path).unwrap(), b"hi");
        assert_eq!(names(&tmp.path().join("new/out/a/b")), ["c.txt"]);
    }

    #[test]
    fn a_link_at_the_final_name_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dir = tmp.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        symlink(&victim, dir.join("f")).unwrap();
        let out = OutDir::open(&dir).unwrap();
        write(&out, "f", b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!dir.join("f").symlink_metadata().unwrap().is_symlink());
        assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"new");
    }

    #[test]
    fn a_link_among_the_directories_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let dir = tmp.path().join("out");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(dir.join("a")).unwrap();
        symlink(&outside, dir.join("a/b")).unwrap();
        let out = OutDir::open(&dir).unwrap();
        let err = out.create("a/b/c").unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert!(names(&outside).is_empty());
        assert_eq!(names(&dir.join("a")), ["b"]);
    }

    #[test]
    fn a_file_among_the_directories_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x"), b"file").unwrap();
        let out = OutDir::open(tmp.path()).unwrap();
        let err = out.create("x/y").unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert_eq!(std::fs::read(tmp.path().join("x")).unwrap(), b"file");
    }

    #[test]
    fn a_directory_at_the_final_name_is_refused_before_a_file_is_made() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        let out = OutDir::open(tmp.path()).unwrap();
        let err = out.create("d").unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        assert_eq!(names(tmp.path()), ["d"]);
    }

    #[test]
    fn temporary_names_are_unpredictable_and_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::open(tmp.path()).unwrap();
        let (first, _f1) = out.create("f").unwrap();
        let (second, _f2) = out.create("f").unwrap();
        assert_ne!(first.temp, second.temp);
        assert!(first.temp.starts_with(".f.satchel-") && first.temp.ends_with(".partial"));
        assert_eq!(names(tmp.path()).len(), 2);
        first.discard();
        second.discard();
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn long_names_keep_their_temporary_name_short() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::open(tmp.path()).unwrap();
        let long = "é".repeat(127) + "x";
        write(&out, &long, b"x").unwrap();
        assert_eq!(names(tmp.path()), [long]);
    }

    #[test]
    fn the_output_directory_itself_may_be_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        symlink(tmp.path().join("real"), tmp.path().join("alias")).unwrap();
        let out = OutDir::open(&tmp.path().join("alias")).unwrap();
        write(&out, "f", b"x").unwrap();
        assert_eq!(names(&tmp.path().join("real")), ["f"]);
    }
}
