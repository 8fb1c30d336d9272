//! The daemon's spool: where the registry client keeps upload chunks for
//! resuming. Each daemon spools in a directory of its own,
//! `spool/<pid>-<random>/`, holding an exclusive `flock` on its `lock`
//! file for as long as it runs; the directory goes when the daemon stops.
//! A daemon that starts removes every other spool directory whose lock it
//! can take: their daemons are gone (killed, crashed), since the kernel
//! drops a lock with its last descriptor.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::FlockOperation;

/// A daemon's own spool directory; removed when dropped.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Holds the flock that tells other daemons this one is alive.
    _lock: std::fs::File,
}

impl Spool {
    /// The directory to hand the registry client.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes this daemon's spool under `parent` (0700, owned by the daemon's
    /// user) after removing the spools of daemons that are gone.
    pub fn create(parent: &Path) -> anyhow::Result<Spool> {
        private_dir(parent)?;
        remove_dead(parent);
        let name = format!("{}-{:016x}", std::process::id(), random());
        // Made under a dot-name and renamed once locked, so no other daemon
        // ever sees it unlocked.
        let staging = parent.join(format!(".{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staging.join("lock"))
            .with_context(|| format!("cannot create the spool lock in {}", staging.display()))?;
        rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .context("cannot lock the spool")?;
        let dir = parent.join(&name);
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Spool { dir, _lock: lock })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the spool lives: `<cache>/spool`, else `satcheld-<uid>/spool` in
/// the system's temporary directory.
pub fn parent_dir(cache: Option<&Path>) -> PathBuf {
    match cache {
        Some(cache) => cache.join("spool"),
        None => std::env::temp_dir()
            .join(format!("satcheld-{}", rustix::process::geteuid().as_raw()))
            .join("spool"),
    }
}

/// Makes `dir` (0700) and checks that it and its parent are directories
/// of the daemon's user, narrowing both to 0700: a directory another user
/// made in a shared /tmp is refused, not used.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let me = rustix::process::geteuid().as_raw();
    for d in [dir.parent(), Some(dir)].into_iter().flatten() {
        let meta = std::fs::symlink_metadata(d)
            .with_context(|| format!("cannot inspect {}", d.display()))?;
        if !meta.is_dir() || meta.uid() != me {
            bail!(
                "{} is not a directory of satcheld's user; refusing to spool there",
                d.display()
            );
        }
        if meta.permissions().mode() & 0o7777 != 0o700 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", d.display()))?;
        }
    }
    Ok(())
}

/// Removes the spool directories under `parent` whose daemons are gone, and
/// loose files an older daemon spooled directly in `parent`.
fn remove_dead(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() {
            if entry.file_name().to_string_lossy().starts_with("spool-") {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        // A directory with no lock file is one being made (a dot-name, not
        // yet locked) or not ours: left alone.
        let Ok(lock) = std::fs::File::open(path.join("lock")) else {
            continue;
        };
        if rustix::fs::flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() {
            tracing::info!(spool = %path.display(), "removing the spool of a daemon that is gone");
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A random number for the spool's name, from the standard library's
/// randomly keyed hasher.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_is_removed_when_its_daemon_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("spool");
        let live = Spool::create(&parent).unwrap();
        // A dead daemon's spool: its lock file exists, nobody holds it.
        let dead = parent.join("1-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("lock"), b"").unwrap();
        std::fs::write(dead.join("chunk"), b"bytes").unwrap();
        let second = Spool::create(&parent).unwrap();
        assert!(!dead.exists(), "a dead spool stayed");
        assert!(live.dir().exists(), "a live spool was removed");
        let second_dir = second.dir().to_path_buf();
        drop(second);
        assert!(!second_dir.exists(), "a stopped daemon's spool stayed");
        assert!(live.dir().exists());
    }
}
