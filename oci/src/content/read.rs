//! Reading stored blobs: a file's bytes as a stream of pieces of up to
//! [`READ_PIECE`], each read on a blocking thread straight into its own
//! buffer (no copy on the way out, no hash: a stored file was verified
//! when it was written, and only the daemon can write the store's files).

use std::io::{Read, Seek};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::ByteStream;

/// How many bytes one read takes: one message's worth of the gRPC framing.
pub(super) const READ_PIECE: usize = 1 << 20;

/// Opens a stored blob that must be `size` bytes long. A file of another
/// size (damaged, or cut short) is `Err`, for the caller to drop.
pub(super) fn open_sized(path: &Path, size: u64) -> std::io::Result<std::fs::File> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} holds {len} bytes, not {size}", path.display()),
        ));
    }
    Ok(file)
}

/// `length` bytes of `file` from `offset`, `what` naming it in errors.
pub(super) fn file_stream(
    file: std::fs::File,
    offset: u64,
    length: u64,
    what: &'static str,
) -> ByteStream {
    let state = (Some(file), offset, length);
    futures::stream::unfold(state, move |(file, offset, left)| async move {
        let mut file = file?;
        if left == 0 {
            return None;
        }
        let want = left.min(READ_PIECE as u64);
        let read = tokio::task::spawn_blocking(move || -> Result<(std::fs::File, Vec<u8>)> {
            let io = |e| Error::io(what, e);
            file.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
            let mut buf = Vec::with_capacity(want as usize);
            (&mut file).take(want).read_to_end(&mut buf).map_err(io)?;
            Ok((file, buf))
        })
        .await
        .map_err(|e| Error::io(what, std::io::Error::other(e)))
        .and_then(|r| r);
        match read {
            Ok((_, buf)) if buf.is_empty() => None,
            Ok((file, buf)) => {
                let n = buf.len() as u64;
                Some((Ok(Bytes::from(buf)), (Some(file), offset + n, left - n)))
            }
            Err(e) => Some((Err(e), (None, offset, 0))),
        }
    })
    .boxed()
}
