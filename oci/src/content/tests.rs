//! Tests of the content store: fetch-through, eviction, uploads, pins.

use super::*;
use bytes::Bytes;
use futures::StreamExt;

fn desc(data: &'static [u8]) -> Descriptor {
    Descriptor::for_bytes("application/octet-stream", data)
}

async fn read(stream: ByteStream) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn source(data: &'static [u8]) -> ByteStream {
    futures::stream::iter([Ok(Bytes::from_static(data))]).boxed()
}

/// Fetches `data` through the store, from a source that serves it, and
/// reads the answer whole.
async fn pull(store: &Arc<ContentStore>, data: &'static [u8]) -> Vec<u8> {
    let d = desc(data);
    let stream = store.fetch_through(&d, async { Ok(source(data)) });
    read(stream.await.unwrap()).await.unwrap()
}

#[tokio::test]
async fn stores_evicts_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 10).unwrap());
    let (a, b) = (desc(b"aaaaaa"), desc(b"bbbbbb"));
    let got = pull(&store, b"aaaaaa").await;
    assert_eq!(got, b"aaaaaa");
    // A hit does not call the source.
    let hit = store
        .fetch_through(&a, async { panic!("the source must not be asked") })
        .await
        .unwrap();
    assert_eq!(read(hit).await.unwrap(), b"aaaaaa");
    // b does not fit beside a: a goes.
    pull(&store, b"bbbbbb").await;
    assert_eq!(store.total_bytes(), 6);
    assert!(store.get(&a).await.is_none());
    // A hit is read as stored, without hashing it again; a range too.
    assert_eq!(read(store.get(&b).await.unwrap()).await.unwrap(), b"bbbbbb");
    let range = store.read_range(&b, 2, 3).await.unwrap();
    assert_eq!(read(range).await.unwrap(), b"bbb");
    // A descriptor of another size finds nothing, and drops nothing.
    let mut wrong = b.clone();
    wrong.size = 5;
    assert!(store.get(&wrong).await.is_none());
    assert_eq!(store.total_bytes(), 6);
    // Reopening indexes what is there.
    drop(store);
    let store = Arc::new(ContentStore::open(dir.path(), 10).unwrap());
    assert_eq!(store.total_bytes(), 6);
    // A copy cut short is not served: it is dropped, and fetched again.
    std::fs::write(store.path(&b.digest), b"bbb").unwrap();
    assert!(store.get(&b).await.is_none());
    assert_eq!(store.total_bytes(), 0);
    assert!(!store.path(&b.digest).exists());
    assert_eq!(pull(&store, b"bbbbbb").await, b"bbbbbb");
}

#[tokio::test]
async fn uploads_resume_and_commit_only_when_they_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path(), 1 << 20).unwrap();
    let mut up = store.open_upload("job-1").await.unwrap();
    up.write(0, b"hello ").await.unwrap();
    assert!(up.write(0, b"again").await.is_err(), "wrong offset");
    drop(up);
    assert_eq!(store.upload_offset("job-1").await, Some(6));
    // A restart keeps the upload.
    drop(store);
    let store = ContentStore::open(dir.path(), 1 << 20).unwrap();
    let mut up = store.open_upload("job-1").await.unwrap();
    assert_eq!(up.offset(), 6);
    up.write(6, b"world").await.unwrap();
    let wrong = crate::digest::sha256(b"something else");
    let err = store
        .commit_upload(up, Some(&wrong), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::DataLoss);
    let up = store.open_upload("job-1").await.unwrap();
    let right = crate::digest::sha256(b"hello world");
    let (digest, size) = store
        .commit_upload(up, Some(&right), Some(11))
        .await
        .unwrap();
    assert_eq!((digest, size), (right.clone(), 11));
    assert_eq!(store.upload_offset("job-1").await, None);
    let d = Descriptor::for_bytes("x", b"hello world");
    let part = read(store.read_range(&d, 6, 3).await.unwrap())
        .await
        .unwrap();
    assert_eq!(part, b"wor");
}

/// An uploaded blob outlives pulls that would otherwise evict it, until
/// its pin runs out.
#[tokio::test]
async fn uploads_are_pinned_against_eviction() {
    async fn upload(store: &ContentStore, data: &[u8]) -> Digest {
        let mut up = store.open_upload("u").await.unwrap();
        up.write(0, data).await.unwrap();
        store.commit_upload(up, None, None).await.unwrap().0
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 10).unwrap());
    let uploaded = upload(&store, b"uploaded").await;
    pull(&store, b"pulled-1").await;
    pull(&store, b"pulled-2").await;
    let d = Descriptor::for_bytes("x", b"uploaded");
    assert_eq!(d.digest, uploaded);
    assert!(store.get(&d).await.is_some(), "a pinned upload was evicted");
    // Only unpinned blobs went: the store holds the upload and the newest pull.
    assert_eq!(store.total_bytes(), 16);

    // The pin outlives a restart: reopening the store, and pulling more,
    // evicts pulls and keeps the upload.
    drop(store);
    let store = Arc::new(ContentStore::open(dir.path(), 10).unwrap());
    pull(&store, b"pulled-3").await;
    assert!(store.get(&d).await.is_some(), "a restart lost the pin");
    assert_eq!(store.total_bytes(), 16);

    // With no pin, the same upload is the least recently used, and goes.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        ContentStore::open(dir.path(), 10)
            .unwrap()
            .with_upload_pin(Duration::ZERO),
    );
    upload(&store, b"uploaded").await;
    pull(&store, b"pulled-1").await;
    assert!(store.get(&d).await.is_none());
    assert_eq!(store.total_bytes(), 8);
    // Its pin file went with it.
    assert_eq!(
        std::fs::read_dir(dir.path().join("pins/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// Every directory is 0700 and every file 0600, even in a store whose
/// directory existed with mode 0755.
#[tokio::test]
async fn store_files_are_private_in_a_wide_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 1 << 20).unwrap());
    pull(&store, b"pulled").await;
    let mut up = store.open_upload("u").await.unwrap();
    up.write(0, b"uploaded").await.unwrap();
    store.commit_upload(up, None, None).await.unwrap();
    let mut pending = store.open_upload("pending").await.unwrap();
    pending.write(0, b"half").await.unwrap();
    let mut seen = 0;
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "two blobs, a pin and a pending upload");
}

/// Abandoned ingest files count against the bound, and a sweep removes
/// those idle longer than the expiry.
#[tokio::test]
async fn abandoned_uploads_count_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 10).unwrap());
    let a = desc(b"aaaa");
    pull(&store, b"aaaa").await;
    let mut up = store.open_upload("abandoned").await.unwrap();
    up.write(0, b"123456789").await.unwrap();
    drop(up);
    assert_eq!(store.ingest_bytes(), 9);
    // The upload's 9 bytes leave no room for the pulled blob.
    store.sweep();
    assert!(
        store.get(&a).await.is_none(),
        "ingest bytes were not counted"
    );
    // Idle for longer than the expiry: gone.
    let path = store.upload_path("abandoned");
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .append(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(store.sweep(), 0);
    assert!(!path.exists());
    assert_eq!(store.upload_offset("abandoned").await, None);
}

fn ingest_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The tee passes every piece on as it comes (the caller never waits for
/// the disk to see bytes), and the blob is in place when the stream ends.
#[tokio::test]
async fn a_tee_passes_pieces_on_and_commits_by_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 1 << 20).unwrap());
    let d = desc(b"abcdef");
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
    let mut stream = store
        .fetch_through(&d, async { Ok(rx.boxed()) })
        .await
        .unwrap();
    tx.unbounded_send(Ok(Bytes::from_static(b"abc"))).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), &b"abc"[..]);
    tx.unbounded_send(Ok(Bytes::from_static(b"def"))).unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), &b"def"[..]);
    drop(tx);
    assert!(stream.next().await.is_none());
    assert_eq!(store.size_of(&d.digest), Some(6));
    assert_eq!(std::fs::read(store.path(&d.digest)).unwrap(), b"abcdef");
    assert!(ingest_names(dir.path()).is_empty());
    assert_eq!(store.ingest_bytes(), 0);
}

/// A tee whose source fails, or whose caller goes away, stores nothing and
/// leaves no file; a caller waiting for it then fetches for itself.
#[tokio::test]
async fn a_failed_or_dropped_tee_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ContentStore::open(dir.path(), 1 << 20).unwrap());
    let d = desc(b"abcdef");
    let failing = futures::stream::iter([
        Ok(Bytes::from_static(b"abc")),
        Err(crate::Error::new(crate::ErrorKind::DataLoss, "bad bytes")),
    ]);
    let stream = store.fetch_through(&d, async { Ok(failing.boxed()) });
    assert!(read(stream.await.unwrap()).await.is_err());
    assert_eq!(store.size_of(&d.digest), None);
    assert!(ingest_names(dir.path()).is_empty());

    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes>>();
    let mut stream = store
        .fetch_through(&d, async { Ok(rx.boxed()) })
        .await
        .unwrap();
    tx.unbounded_send(Ok(Bytes::from_static(b"abc"))).unwrap();
    stream.next().await.unwrap().unwrap();
    assert_eq!(ingest_names(dir.path()).len(), 1);
    // A second caller waits for the first; when that one goes away, the
    // second leads its own fetch, and by then the partial file is gone.
    let waiter = {
        let (store, d) = (store.clone(), d.clone());
        tokio::spawn(async move {
            let names = std::sync::Mutex::new(None);
            let fetch = async {
                *names.lock().unwrap() = Some(ingest_names(store.root.as_path()));
                Ok(futures::stream::iter([Ok(Bytes::from_static(b"abcdef"))]).boxed())
            };
            let got = read(store.fetch_through(&d, fetch).await.unwrap()).await;
            (
                got.unwrap(),
                names.into_inner().unwrap().expect("it led a fetch"),
            )
        })
    };
    tokio::task::yield_now().await;
    drop(stream);
    let (got, names_before) = waiter.await.unwrap();
    assert_eq!(got, b"abcdef");
    assert!(names_before.is_empty(), "left behind: {names_before:?}");
    assert_eq!(store.size_of(&d.digest), Some(6));
    assert_eq!(store.ingest_bytes(), 0);
}
