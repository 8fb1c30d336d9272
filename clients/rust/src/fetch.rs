//! Blobs fetched from a repository or layout (FetchBlob), as `oras blob
//! fetch` and `oras manifest fetch-config` write them: to a file that
//! appears under its name only once every byte has arrived and the daemon
//! has checked the digest, or to standard output.

use std::io::Write;
use std::path::Path;

use tonic::Code;

use crate::{pb, Client, Error};

/// Where fetched bytes go.
#[derive(Debug, Clone, Copy)]
pub enum Sink<'a> {
    /// Nowhere: only the descriptor is wanted.
    Nowhere,
    /// Standard output, as they arrive.
    Stdout,
    /// A file, created or replaced once complete.
    File(&'a Path),
}

/// Fetches the blob `target` names by digest into `sink`; returns its
/// descriptor.
pub async fn fetch_blob(
    client: &mut Client,
    target: pb::Target,
    sink: Sink<'_>,
) -> Result<pb::Descriptor, Error> {
    use pb::fetch_blob_response::Part;
    let request = pb::FetchBlobRequest {
        target: Some(target),
    };
    let mut answer = client.fetch_blob(request).await?.into_inner();
    let descriptor = match answer.message().await?.and_then(|m| m.part) {
        Some(Part::Blob(d)) => d,
        _ => {
            return Err(Error::local(
                Code::Internal,
                "satcheld's answer did not start with the blob's descriptor",
            ))
        }
    };
    let mut out: Box<dyn Write> = match sink {
        Sink::Nowhere => return Ok(descriptor),
        Sink::Stdout => Box::new(std::io::stdout().lock()),
        Sink::File(path) => return to_file(answer, path, descriptor).await,
    };
    while let Some(message) = answer.message().await? {
        if let Some(Part::Data(data)) = message.part {
            out.write_all(&data)
                .map_err(|e| Error::io("cannot write to standard output", e))?;
        }
    }
    out.flush()
        .map_err(|e| Error::io("cannot write to standard output", e))?;
    Ok(descriptor)
}

async fn to_file(
    mut answer: tonic::Streaming<pb::FetchBlobResponse>,
    path: &Path,
    descriptor: pb::Descriptor,
) -> Result<pb::Descriptor, Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| Error::io(format!("cannot write {}", path.display()), e);
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".satchel-fetch-")
        .tempfile_in(parent)
        .map_err(io)?;
    let mut written = 0u64;
    while let Some(message) = answer.message().await? {
        if let Some(pb::fetch_blob_response::Part::Data(data)) = message.part {
            written += data.len() as u64;
            temp.write_all(&data).map_err(io)?;
        }
    }
    if written != descriptor.size {
        return Err(Error::local(
            Code::DataLoss,
            format!(
                "{} ended after {written} of {} bytes",
                descriptor.digest, descriptor.size
            ),
        ));
    }
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    Ok(descriptor)
}
