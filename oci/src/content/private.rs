//! The content store's files are the daemon's alone: directories 0700 and
//! files 0600, whatever the mode of a directory that existed before.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// The mode of every directory in the store.
pub(crate) const DIR_MODE: u32 = 0o700;
/// The mode of every file in the store.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Makes `dir` (and missing parents) with mode 0700, and narrows an
/// existing `dir` to 0700. A link or a non-directory there is refused.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    let ctx = || format!("cannot create {}", dir.display());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::io(ctx(), e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io(ctx(), e))?;
    if !meta.is_dir() {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("{} is not a directory", dir.display()),
        ));
    }
    if meta.permissions().mode() & 0o7777 != DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| Error::io(format!("cannot restrict {}", dir.display()), e))?;
    }
    Ok(())
}

/// Narrows a file found in the store (written by an older daemon) to 0600.
pub(crate) fn restrict_file(path: &Path, meta: &std::fs::Metadata) {
    if meta.permissions().mode() & 0o077 != 0 {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE));
    }
}

/// Options that create files with mode 0600.
pub(crate) fn file_options() -> tokio::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.mode(FILE_MODE);
    tokio::fs::OpenOptions::from(options)
}
