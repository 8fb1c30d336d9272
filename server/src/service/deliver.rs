//! Filling a file the caller handed over ([`crate::handoff`]): from the
//! content store's copy, kernel to kernel, or from a verified stream. The
//! bytes go in at explicit offsets (`pwrite`, `copy_file_range`), so the
//! file offset the caller shares with the daemon does not matter.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use futures::StreamExt;
use satchel_oci::{ByteStream, Error, Result};
use tokio::sync::{mpsc, watch};

/// How much one copy step moves, and how often progress is told.
const STEP: usize = 16 << 20;

/// How many received pieces may wait for the disk before the stream waits.
const QUEUED: usize = 32;

fn io(e: std::io::Error) -> Error {
    Error::io("cannot write the file passed for the local handoff", e)
}

/// Copies all `size` bytes of `from` into the empty `to`, telling
/// `progress` the bytes done. `copy_file_range` keeps the bytes in the
/// kernel (a reflink where the file system can); where it cannot be used
/// (another file system on an old kernel), reads and writes do.
pub async fn copy_file(
    from: File,
    to: File,
    size: u64,
    progress: watch::Sender<u64>,
) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let mut done = 0u64;
        let mut kernel = true;
        let mut buf = Vec::new();
        while done < size {
            let want = STEP.min((size - done) as usize);
            let n = if kernel {
                let (mut off_in, mut off_out) = (done, done);
                match rustix::fs::copy_file_range(
                    &from,
                    Some(&mut off_in),
                    &to,
                    Some(&mut off_out),
                    want,
                ) {
                    Ok(n) => n,
                    Err(_) => {
                        kernel = false;
                        continue;
                    }
                }
            } else {
                buf.resize(want, 0);
                let n = from.read_at(&mut buf, done).map_err(io)?;
                to.write_all_at(&buf[..n], done).map_err(io)?;
                n
            };
            if n == 0 {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the stored copy ended early",
                )));
            }
            done += n as u64;
            progress.send_replace(done);
            if progress.is_closed() {
                // The pull was dropped (its caller went away): stop.
                return Err(io(std::io::Error::other("the pull ended")));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
}

/// Writes `body` into the empty `to` as it arrives, on a blocking thread,
/// telling `progress` the bytes written. Fails as `body` fails (a digest
/// that does not match fails it at its end).
pub async fn write_stream(
    mut body: ByteStream,
    to: File,
    progress: watch::Sender<u64>,
) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut done = 0u64;
        while let Some(piece) = rx.blocking_recv() {
            to.write_all_at(&piece, done)?;
            done += piece.len() as u64;
            progress.send_replace(done);
        }
        Ok(())
    });
    let mut failed = None;
    while let Some(piece) = body.next().await {
        match piece {
            Ok(piece) => {
                if tx.send(piece).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(|e| io(std::io::Error::other(e)))?;
    match failed {
        Some(e) => Err(e),
        None => written.map_err(io),
    }
}
