//! Teeing a verified download into the store off the caller's path: the
//! caller's stream hands each piece (a shared `Bytes`, not a copy) to a
//! writer on a blocking thread and passes it on at once. The writer
//! appends to `ingest/pull-…`; when the source ends cleanly (its digest
//! checked by the stream itself) the writer moves the file into the store,
//! and only then does the caller's stream end. A stream that fails leaves
//! no file behind by the time it reports the failure; one dropped midway,
//! soon after (before waiters are released). Waiters for the digest are released
//! when the writer is done, either way.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ContentStore, Partial, Release};
use crate::manifest::Descriptor;
use crate::ByteStream;

/// How many pieces may wait for the disk before the caller's stream waits
/// for it too (bounded, so a slow disk costs time, never memory without
/// bound).
const QUEUED_PIECES: usize = 64;

/// What the caller's stream tells the writer.
enum Piece {
    Data(Bytes),
    /// The source ended cleanly: commit.
    End,
}

impl ContentStore {
    /// Passes `source` through while a writer stores it under `ingest/`;
    /// commits it when the stream ends cleanly, and tells waiters either
    /// way.
    pub(super) async fn tee(
        self: &Arc<Self>,
        desc: Descriptor,
        source: ByteStream,
        done: watch::Sender<bool>,
    ) -> ByteStream {
        let release = Release {
            store: self.clone(),
            digest: desc.digest.clone(),
            done,
        };
        let tmp = self.root.join("ingest").join(format!(
            "pull-{}-{}",
            desc.digest.digest(),
            std::process::id()
        ));
        let file = super::private::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .await
            .ok();
        // Without a file the pull goes on uncached (the cache is best
        // effort); waiters are released when it ends.
        let (writer, mut release) = match file {
            Some(f) => {
                let f = f.into_std().await;
                let (tx, finished) = self.spawn_writer(desc, tmp, f, release);
                (Some((tx, finished)), None)
            }
            None => (None, Some(release)),
        };
        async_stream::try_stream! {
            let mut writer = writer;
            let mut source = source;
            while let Some(chunk) = source.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        // The writer discards its file before the caller
                        // hears of the failure.
                        if let Some((tx, finished)) = writer.take() {
                            drop(tx);
                            let _ = finished.await;
                        }
                        Err(e)?
                    }
                };
                if let Some((tx, _)) = &writer {
                    if tx.send(Piece::Data(chunk.clone())).await.is_err() {
                        writer = None; // the writer gave up; pass on uncached
                    }
                }
                yield chunk;
            }
            if let Some((tx, finished)) = writer.take() {
                if tx.send(Piece::End).await.is_ok() {
                    drop(tx);
                    let _ = finished.await;
                }
            }
            release.take();
        }
        .boxed()
    }

    /// Starts the writer of one tee on a blocking thread.
    fn spawn_writer(
        self: &Arc<Self>,
        desc: Descriptor,
        tmp: PathBuf,
        file: std::fs::File,
        release: Release,
    ) -> (mpsc::Sender<Piece>, oneshot::Receiver<()>) {
        let (tx, mut rx) = mpsc::channel::<Piece>(QUEUED_PIECES);
        let (finished_tx, finished) = oneshot::channel();
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _release = release;
            let mut partial = Partial {
                path: tmp.clone(),
                bytes: store.ingest_bytes.clone(),
                written: 0,
                kept: false,
            };
            let mut file = file;
            while let Some(piece) = rx.blocking_recv() {
                match piece {
                    Piece::Data(chunk) => {
                        if file.write_all(&chunk).is_err() {
                            break; // dropping `rx` tells the stream
                        }
                        partial.grow(chunk.len() as u64);
                    }
                    Piece::End => {
                        if file.flush().is_ok() {
                            drop(file);
                            partial.hand_over();
                            store.commit_now(&tmp, &desc, None);
                        }
                        break;
                    }
                }
            }
            // `partial` removes an uncommitted file; `_release` wakes
            // waiters once the blob is in place (or will not be).
            drop(partial);
            let _ = finished_tx.send(());
        });
        (tx, finished)
    }
}
