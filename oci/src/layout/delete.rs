//! Deletes in an OCI layout: a manifest from `index.json`, a blob's file.

use std::ffi::OsStr;

use super::{fs_error, OciLayout};
use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

impl OciLayout {
    /// Removes a manifest from index.json (its blob stays, as with
    /// `oras manifest delete --oci-layout`).
    pub async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let _guard = self.locks.lock(&self.root.to_string_lossy()).await;
        let mut index = self.read_index().await?;
        let before = index.manifests.len();
        index.manifests.retain(|d| &d.digest != digest);
        if index.manifests.len() == before {
            return Err(Error::not_found(format!(
                "manifest {digest} not found in {}",
                self.root.display()
            )));
        }
        self.write_index(&index).await
    }

    /// Deletes a blob's file; a missing one is NOT_FOUND. A manifest that
    /// `index.json` lists is refused (FAILED_PRECONDITION): deleting its
    /// file would leave the index naming nothing.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<()> {
        let _guard = self.locks.lock(&self.root.to_string_lossy()).await;
        if self
            .read_index()
            .await?
            .manifests
            .iter()
            .any(|d| &d.digest == digest)
        {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("{digest} is a manifest index.json lists; delete it as a manifest"),
            ));
        }
        let dir = self.blob_dir(digest, false)?;
        dir.remove(OsStr::new(digest.digest()))
            .map_err(|e| fs_error(format!("blob {digest} in {}", self.root.display()), e))
    }
}
