//! Copies between two OCI layouts: what arrives, in which order, and what a
//! bad source leaves behind.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::*;
use crate::layout::OciLayout;
use crate::locks::KeyedLocks;
use crate::manifest::{ImageIndex, ImageManifest, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST};

fn layout(dir: &std::path::Path) -> Target {
    Target::Layout(OciLayout::new(dir, Arc::new(KeyedLocks::default())))
}

async fn blob(target: &Target, data: &'static [u8]) -> Descriptor {
    target
        .push_bytes("application/octet-stream", Bytes::from_static(data))
        .await
        .unwrap()
}

fn image(config: Descriptor, layers: Vec<Descriptor>, subject: Option<Descriptor>) -> Bytes {
    Bytes::from(
        ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: subject.as_ref().map(|_| "application/example".into()),
            config,
            layers,
            subject,
            annotations: Default::default(),
        }
        .to_bytes(),
    )
}

async fn manifest(target: &Target, media_type: &str, content: Bytes) -> Descriptor {
    let pushed = target
        .push_manifest(None, media_type, content)
        .await
        .unwrap();
    pushed.descriptor
}

/// An index of one image, and a referrer of the image.
struct Graph {
    index: Descriptor,
    image: Descriptor,
    layer: Descriptor,
    referrer: Descriptor,
}

async fn graph(source: &Target) -> Graph {
    let config = blob(source, b"{}").await;
    let layer = blob(source, b"layer bytes").await;
    let image = manifest(
        source,
        MEDIA_TYPE_MANIFEST,
        image(config.clone(), vec![layer.clone()], None),
    )
    .await;
    let index = ImageIndex::new(vec![image.clone()]).to_bytes();
    let index = manifest(source, MEDIA_TYPE_INDEX, Bytes::from(index)).await;
    let note = blob(source, b"an sbom").await;
    let referrer = image_with_subject(config, note, image.clone());
    let referrer = manifest(source, MEDIA_TYPE_MANIFEST, referrer).await;
    Graph {
        index,
        image,
        layer,
        referrer,
    }
}

fn image_with_subject(config: Descriptor, layer: Descriptor, subject: Descriptor) -> Bytes {
    image(config, vec![layer], Some(subject))
}

async fn fetch(target: &Target, desc: &Descriptor) -> Bytes {
    target.fetch_manifest(desc.digest.as_ref()).await.unwrap().1
}

fn drain(mut rx: mpsc::Receiver<Event>) -> Vec<(EventKind, Digest)> {
    let mut all = Vec::new();
    while let Ok(e) = rx.try_recv() {
        all.push((e.kind, e.descriptor.digest));
    }
    all
}

#[tokio::test]
async fn an_index_arrives_whole_children_first_and_a_second_copy_walks_nothing() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, destination) = (layout(a.path()), layout(b.path()));
    let g = graph(&source).await;
    let (tx, rx) = mpsc::channel(64);
    let copier = Copier::new(&source, &destination, 2).with_events(tx);
    let content = fetch(&source, &g.index).await;
    copier
        .copy(&g.index, content.clone(), Some("v1"))
        .await
        .unwrap();
    assert_eq!(
        destination.resolve("v1").await.unwrap().digest,
        g.index.digest
    );
    assert!(destination.blob_exists(&g.layer.digest).await.unwrap());
    assert_eq!(
        fetch(&destination, &g.image).await,
        fetch(&source, &g.image).await
    );
    let events = drain(rx);
    let copied = |d: &Digest| {
        events
            .iter()
            .position(|(k, x)| *k == EventKind::Copied && x == d)
            .unwrap_or_else(|| panic!("{d} not copied: {events:?}"))
    };
    assert!(copied(&g.layer.digest) < copied(&g.image.digest));
    assert!(copied(&g.image.digest) < copied(&g.index.digest));
    // Not asked for: a referrer is copied only when named.
    assert!(destination
        .resolve(g.referrer.digest.as_ref())
        .await
        .is_err());

    let (tx, rx) = mpsc::channel(64);
    let again = Copier::new(&source, &destination, 2).with_events(tx);
    again.copy(&g.index, content, Some("v2")).await.unwrap();
    assert_eq!(drain(rx), vec![(EventKind::Exists, g.index.digest.clone())]);
    assert_eq!(
        destination.resolve("v2").await.unwrap().digest,
        g.index.digest
    );
}

#[tokio::test]
async fn a_referrer_brings_its_subject_and_is_listed_as_its_referrer() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, destination) = (layout(a.path()), layout(b.path()));
    let g = graph(&source).await;
    let copier = Copier::new(&source, &destination, 2);
    let content = fetch(&source, &g.referrer).await;
    copier.copy(&g.referrer, content, None).await.unwrap();
    assert!(destination.resolve(g.image.digest.as_ref()).await.is_ok());
    let listed = destination.referrers(&g.image.digest, None).await.unwrap();
    let digests: Vec<_> = listed.iter().map(|d| &d.digest).collect();
    assert_eq!(digests, vec![&g.referrer.digest]);
}

#[tokio::test]
async fn a_corrupt_source_blob_fails_the_copy_and_leaves_no_manifest() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, destination) = (layout(a.path()), layout(b.path()));
    let g = graph(&source).await;
    let (_, hex) = g.layer.digest.as_ref().split_once(':').unwrap();
    std::fs::write(a.path().join("blobs/sha256").join(hex), b"other bytes").unwrap();
    let copier = Copier::new(&source, &destination, 2);
    let content = fetch(&source, &g.index).await;
    let err = copier
        .copy(&g.index, content, Some("v1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DataLoss, "{err}");
    assert!(!destination.blob_exists(&g.layer.digest).await.unwrap());
    assert!(destination.resolve(g.image.digest.as_ref()).await.is_err());
    assert!(destination.resolve("v1").await.is_err());
}
