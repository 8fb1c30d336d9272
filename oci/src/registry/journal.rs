//! The journal: the referrers this daemon wrote to tag-schema indexes and
//! has not yet seen stay there, kept on disk so they survive a crash.
//!
//! One file per entry, `<state>/journal/<hash>.json`, named by a hash of
//! (registry, repository, subject, referrer) so that writing the same
//! entry twice keeps one file. A file is written under a temporary name,
//! synced, renamed and its directory synced before the index write it
//! guards, so an attach that returned is journalled even through a power
//! cut. Entries go when the reconciler retires them or Satchel deletes the
//! referrer. Files that do not parse are set aside, never trusted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Descriptor;

/// The format of an entry file; a file of another version is set aside.
const VERSION: u32 = 1;

/// One referrer written to the tag-schema index of `subject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    version: u32,
    /// `host[:port]`.
    pub registry: String,
    /// The repository's path on the registry.
    pub repository: String,
    /// Whether the registry is spoken to over plain HTTP.
    pub plain_http: bool,
    pub subject: Digest,
    /// The index entry, as written.
    pub referrer: Descriptor,
}

impl Entry {
    pub(crate) fn new(
        registry: &str,
        repository: &str,
        plain_http: bool,
        subject: &Digest,
        referrer: &Descriptor,
    ) -> Entry {
        Entry {
            version: VERSION,
            registry: registry.to_string(),
            repository: repository.to_string(),
            plain_http,
            subject: subject.clone(),
            referrer: referrer.clone(),
        }
    }

    /// The file name: a hash of what identifies the entry.
    fn file_name(&self) -> String {
        let key = format!(
            "{}/{}@{}>{}",
            self.registry, self.repository, self.subject, self.referrer.digest
        );
        format!("{}.json", crate::digest::sha256(key.as_bytes()).digest())
    }
}

/// The journal directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    /// `.lock` in `dir`, held (flock) while the journal is open: two
    /// daemons on one journal would remove each other's entries.
    _lock: std::fs::File,
}

impl Journal {
    /// Opens (making it, 0700) the journal in `dir`; fails when another
    /// process has it open.
    pub(crate) fn open(dir: &Path) -> Result<Journal> {
        crate::content::private::private_dir(dir)?;
        let lock_path = dir.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::content::private::FILE_MODE)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| {
                Error::new(
                    crate::error::ErrorKind::FailedPrecondition,
                    format!(
                        "another satcheld keeps its journal in {}; give each daemon its own --state-dir",
                        dir.display()
                    ),
                )
            },
        )?;
        Ok(Journal {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Writes `entry` durably.
    pub(crate) fn record(&self, entry: &Entry) -> Result<()> {
        // A temporary name of its own, so that two records of one entry at
        // once never write the same file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = entry.file_name();
        let temp = self
            .dir
            .join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let path = self.dir.join(&name);
        let ctx = || {
            format!(
                "cannot journal {} in {}",
                entry.referrer.digest,
                self.dir.display()
            )
        };
        let body = serde_json::to_vec(entry).expect("an entry serialises");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(crate::content::private::FILE_MODE)
            .open(&temp)
            .map_err(|e| Error::io(ctx(), e))?;
        let written = file.write_all(&body).and_then(|()| file.sync_data());
        let renamed = written.and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(&temp);
            return Err(Error::io(ctx(), e));
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(ctx(), e))
    }

    /// Removes `entry`, if it is there.
    pub(crate) fn forget(&self, entry: &Entry) {
        let path = self.dir.join(entry.file_name());
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a journal entry")
            }
        }
    }

    /// Every entry on disk. Temporary files a crash left are removed; a
    /// file that does not parse as an entry, or is not under the name its
    /// content gives, is renamed `*.bad` and logged.
    pub(crate) fn load(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for file in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let path = file.path();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
                .filter(|e| e.version == VERSION && e.file_name() == name);
            match parsed {
                Some(entry) => entries.push(entry),
                None => {
                    tracing::warn!(path = %path.display(), "a journal entry that does not parse was set aside");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Entry {
        let subject = crate::digest::sha256(b"subject");
        let referrer = Descriptor::for_bytes(crate::manifest::MEDIA_TYPE_MANIFEST, &[n]);
        Entry::new("localhost:5000", "a/b", true, &subject, &referrer)
    }

    #[test]
    fn entries_survive_reopening_and_go_when_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.record(&entry(1)).unwrap();
        journal.record(&entry(2)).unwrap();
        journal.record(&entry(2)).unwrap();
        // Held while open: a second daemon is refused, not let in to
        // remove this one's entries.
        let refused = Journal::open(dir.path()).unwrap_err();
        assert!(
            refused.to_string().contains("another satcheld"),
            "{refused}"
        );
        drop(journal);
        let journal = Journal::open(dir.path()).unwrap();
        let mut loaded = journal.load();
        loaded.sort_by_key(|e| e.referrer.digest.to_string());
        let mut want = vec![entry(1), entry(2)];
        want.sort_by_key(|e| e.referrer.digest.to_string());
        assert_eq!(loaded, want);
        journal.forget(&entry(1));
        journal.forget(&entry(1));
        assert_eq!(journal.load(), vec![entry(2)]);
    }

    #[test]
    fn leftovers_and_foreign_files_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let good = entry(1);
        journal.record(&good).unwrap();
        std::fs::write(dir.path().join(".x.json.tmp"), b"{").unwrap();
        std::fs::write(dir.path().join("garbage.json"), b"not json").unwrap();
        // A valid entry under another entry's name: refused, not merged.
        let moved = serde_json::to_vec(&entry(2)).unwrap();
        std::fs::write(dir.path().join("0000.json"), moved).unwrap();
        assert_eq!(journal.load(), vec![good]);
        assert!(!dir.path().join(".x.json.tmp").exists());
        assert!(dir.path().join("garbage.bad").exists());
        assert!(dir.path().join("0000.bad").exists());
    }
}
