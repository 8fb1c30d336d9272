//! The service core driven directly, on OCI layouts in temporary
//! directories: no gRPC, no registry.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use satchel_oci::registry::{RegistryClient, RegistryOptions};
use satchel_oci::ErrorKind;
use tokio::sync::mpsc;

use super::blobs::{DownloadSpec, UploadPart};
use super::pull::PullSpec;
use super::push::{ArtifactSpec, FileSpec};
use super::target::TargetSpec;
use super::Service;
use crate::callers::{scope, Caller, LayoutRoots};
use crate::credentials::DockerCredentials;

fn service(store: Option<&Path>) -> Service {
    let credentials = Arc::new(DockerCredentials::new(None));
    let registry = RegistryClient::new(credentials.clone(), RegistryOptions::default());
    let store =
        store.map(|d| Arc::new(satchel_oci::content::ContentStore::open(d, 1 << 30).unwrap()));
    Service::new(Arc::new(registry.unwrap()), credentials, store)
}

fn layout(dir: &Path, reference: &str) -> TargetSpec {
    TargetSpec {
        reference: reference.to_string(),
        oci_layout: dir.join("layout").to_str().unwrap().to_string(),
        ..Default::default()
    }
}

fn file(name: &str) -> FileSpec {
    FileSpec {
        name: name.to_string(),
        media_type: "text/plain".to_string(),
        ..Default::default()
    }
}

/// The caller's bytes: each file's data in order, as one chunk each.
fn chunks(
    files: &[&'static [u8]],
) -> impl Stream<Item = satchel_oci::Result<(u32, Bytes)>> + Send + Unpin {
    let items: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, d)| Ok((i as u32, Bytes::from_static(d))))
        .collect();
    futures::stream::iter(items)
}

/// Runs `f` as the daemon's own user, who may name any layout.
async fn as_owner<F: std::future::Future>(f: F) -> F::Output {
    scope(Caller::Owner, Arc::new(LayoutRoots::default()), f).await
}

async fn pulled(service: &Service, spec: PullSpec) -> Vec<(String, Vec<u8>)> {
    let plan = service.pull(spec, &[]).await.unwrap();
    let mut out = Vec::new();
    for (name, layer) in &plan.files {
        let mut body = plan.body(layer).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(piece) = body.next().await {
            bytes.extend_from_slice(&piece.unwrap());
        }
        out.push((name.clone(), bytes));
    }
    out
}

#[tokio::test]
async fn push_then_pull_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(None);
    as_owner(async {
        let artifact = ArtifactSpec {
            artifact_type: "application/vnd.test".into(),
            files: vec![file("a.txt"), file("dir/b.txt")],
            ..Default::default()
        };
        let job = service.push(layout(dir.path(), "v1"), artifact).unwrap();
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |name: &str, done: u64, _: Option<u64>| {
            seen.lock().unwrap().push((name.to_string(), done))
        };
        let pushed = job
            .run(&service, chunks(&[b"hello", b"world!"]), &progress)
            .await
            .unwrap();
        assert_eq!(pushed.tags, ["v1"]);
        assert_eq!(pushed.layers.len(), 2);
        assert!(seen.lock().unwrap().contains(&("dir/b.txt".to_string(), 6)));

        let files = pulled(&service, PullSpec::Target(layout(dir.path(), "v1"))).await;
        assert_eq!(
            files,
            [
                ("a.txt".to_string(), b"hello".to_vec()),
                ("dir/b.txt".to_string(), b"world!".to_vec())
            ]
        );
        let named = service.resolve(layout(dir.path(), "v1")).await.unwrap();
        assert_eq!(named.descriptor.digest, pushed.manifest.digest);
    })
    .await;
}

#[tokio::test]
async fn attach_discover_and_pull_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(None);
    as_owner(async {
        let none = |_: &str, _: u64, _: Option<u64>| {};
        let image = service
            .push(layout(dir.path(), "v1"), ArtifactSpec::default())
            .unwrap();
        let image = image.run(&service, chunks(&[]), &none).await.unwrap();
        let sbom = ArtifactSpec {
            artifact_type: "application/spdx+json".into(),
            files: vec![file("sbom.json")],
            ..Default::default()
        };
        let attach = service.attach(layout(dir.path(), "v1"), sbom).unwrap();
        let attached = attach.run(&service, chunks(&[b"{}"]), &none).await.unwrap();
        assert_eq!(attached.subject.unwrap().digest, image.manifest.digest);
        let found = service
            .discover(layout(dir.path(), "v1"), None, 3, None)
            .await
            .unwrap();
        assert_eq!(found.referrers.len(), 1);
        assert_eq!(found.referrers[0].manifest.digest, attached.manifest.digest);
        let newest = PullSpec::Newest {
            subject: layout(dir.path(), "v1"),
            artifact_type: "application/spdx+json".into(),
        };
        let files = pulled(&service, newest).await;
        assert_eq!(files, [("sbom.json".to_string(), b"{}".to_vec())]);
        let other = service
            .discover(layout(dir.path(), "v1"), Some("text/other"), 1, None)
            .await
            .unwrap();
        assert!(other.referrers.is_empty());
    })
    .await;
}

#[tokio::test]
async fn bad_pushes_store_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(None);
    as_owner(async {
        let none = |_: &str, _: u64, _: Option<u64>| {};
        let climbing = ArtifactSpec {
            files: vec![file("../out.txt")],
            ..Default::default()
        };
        let job = service.push(layout(dir.path(), "v1"), climbing).unwrap();
        let err = job.run(&service, chunks(&[b"x"]), &none).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");

        let mut lying = file("a.txt");
        lying.digest = satchel_oci::digest::sha256(b"hello").to_string();
        lying.size = Some(5);
        let wrong = ArtifactSpec {
            files: vec![lying],
            ..Default::default()
        };
        let job = service.push(layout(dir.path(), "v1"), wrong).unwrap();
        let err = job
            .run(&service, chunks(&[b"HELLO"]), &none)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DataLoss, "{err}");
        let err = service.resolve(layout(dir.path(), "v1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

        let digest = layout(dir.path(), "sha256:abc");
        let err = service.push(digest, ArtifactSpec::default()).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    })
    .await;
}

#[tokio::test]
async fn layouts_outside_the_roots_are_refused_to_other_callers() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(None);
    let err = service.resolve(layout(dir.path(), "v1")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn upload_resume_commit_and_download_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(Some(&dir.path().join("store")));
    let part = |offset, data: &'static [u8], commit| UploadPart {
        r#ref: "job-1".into(),
        offset,
        data: Bytes::from_static(data),
        commit,
        ..Default::default()
    };
    let (tx, mut rx) = mpsc::channel(8);
    let first = futures::stream::iter([Ok(part(0, b"hello ", false))]);
    service.upload(first, &tx).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().unwrap().offset, 6);
    assert_eq!(service.upload_offset("job-1").await.unwrap(), Some(6));

    let rest = futures::stream::iter([Ok(part(6, b"world", true))]);
    service.upload(rest, &tx).await.unwrap();
    let ack = rx.recv().await.unwrap().unwrap();
    let digest = satchel_oci::digest::sha256(b"hello world").to_string();
    assert_eq!(ack.digest.as_deref(), Some(digest.as_str()));

    let range = DownloadSpec {
        digest,
        offset: 6,
        length: 5,
        ..Default::default()
    };
    let mut body = service.download(range).await.unwrap();
    let mut got = Vec::new();
    while let Some(piece) = body.next().await {
        got.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(got, b"world");

    let missing = DownloadSpec {
        digest: satchel_oci::digest::sha256(b"nope").to_string(),
        ..Default::default()
    };
    let err = service.download(missing).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = super::Service::store_needed(&self::service(None)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{err}");
}
