//! The Rust client crate (`satchel-client`, clients/rust) used as a library
//! against a real satcheld: files up and down, and the error codes a caller
//! sees.

use std::collections::HashMap;
use std::path::Path;

use satchel_client::{pb, Code, LocalFile, PullEvent};
use satchel_tests::{list_files, sha256_file, write_random_file, Daemon, Registry};

const SBOM: &str = "application/vnd.example.sbom.v1";

fn registry_target(reference: String) -> pb::Target {
    pb::Target {
        reference,
        plain_http: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_discover_and_pull_50_mib_through_the_library() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let dir = daemon.scratch().to_path_buf();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let image = format!("{}/rust/app:v1", registry.addr);

    let readme = dir.join("readme.txt");
    std::fs::write(&readme, b"the subject\n").unwrap();
    let files = vec![LocalFile::new(&readme, "", false).await.unwrap()];
    let subject = satchel_client::push(
        &mut client,
        registry_target(image.clone()),
        pb::ArtifactSpec::default(),
        files,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(subject.tags, vec!["v1".to_string()]);

    let big = dir.join("sbom.bin");
    write_random_file(&big, 50 << 20, 11);
    let spec = pb::ArtifactSpec {
        artifact_type: SBOM.into(),
        annotations: HashMap::from([("com.example.build".to_string(), "42".to_string())]),
        ..Default::default()
    };
    let files = vec![LocalFile::new(&big, "application/octet-stream", false)
        .await
        .unwrap()];
    let mut last = 0;
    let attached = satchel_client::attach(
        &mut client,
        registry_target(image.clone()),
        spec,
        files,
        |p| last = p.done,
    )
    .await
    .unwrap();
    assert_eq!(last, 50 << 20);
    assert_eq!(attached.layers[0].digest, sha256_file(&big));
    assert_eq!(
        attached.subject.as_ref().unwrap().digest,
        subject.manifest.as_ref().unwrap().digest
    );

    let found = client
        .discover(pb::DiscoverRequest {
            subject: Some(registry_target(image.clone())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let referrers: Vec<_> = found
        .referrers
        .iter()
        .map(|r| r.manifest.clone().unwrap())
        .collect();
    assert_eq!(referrers.len(), 1);
    assert_eq!(
        referrers[0].digest,
        attached.manifest.as_ref().unwrap().digest
    );
    assert_eq!(referrers[0].artifact_type, SBOM);
    assert_eq!(referrers[0].annotations["com.example.build"], "42");

    let out = dir.join("out");
    let mut seen = Vec::new();
    let pulled = satchel_client::pull(
        &mut client,
        pb::PullRequest {
            target: Some(registry_target(attached.reference.clone())),
            ..Default::default()
        },
        &out,
        |event| {
            if let PullEvent::File(f) = event {
                seen.push(f.name.clone());
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(seen, vec!["sbom.bin".to_string()]);
    assert_eq!(pulled.files[0].path, out.join("sbom.bin"));
    assert_eq!(sha256_file(&out.join("sbom.bin")), sha256_file(&big));
    assert_eq!(list_files(&out), vec!["sbom.bin".to_string()]);

    // Errors carry their gRPC codes: the daemon's, and the client's own.
    let missing = client
        .resolve(pb::ResolveRequest {
            target: Some(registry_target(format!("{}/rust/app:nope", registry.addr))),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let err = LocalFile::new(dir.join("no-such-file"), "", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = satchel_client::push(
        &mut client,
        registry_target("Not A Reference!".into()),
        pb::ArtifactSpec::default(),
        vec![],
        |_| {},
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
}

/// A layer whose stored bytes no longer match its digest: the daemon sends
/// them, then fails the call with DATA_LOSS; the half-written file goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_layer_fails_mid_file_and_leaves_nothing() {
    let daemon = Daemon::start();
    let dir = daemon.scratch().to_path_buf();
    let layout = dir.join("layout");
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let in_layout = |reference: &str| pb::Target {
        reference: reference.into(),
        oci_layout: layout.display().to_string(),
        ..Default::default()
    };
    let file = dir.join("layer.bin");
    write_random_file(&file, 24 << 20, 5);
    let files = vec![LocalFile::new(&file, "", false).await.unwrap()];
    let pushed = satchel_client::push(
        &mut client,
        in_layout("v1"),
        pb::ArtifactSpec::default(),
        files,
        |_| {},
    )
    .await
    .unwrap();
    flip_last_byte(&layout, &pushed.layers[0].digest);

    let out = dir.join("out");
    let mut progress = 0;
    let err = satchel_client::pull(
        &mut client,
        pb::PullRequest {
            target: Some(in_layout("v1")),
            ..Default::default()
        },
        &out,
        |event| {
            if let PullEvent::Progress(p) = event {
                progress = progress.max(p.done);
            }
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err}");
    assert!(progress > 0, "the failure came before any bytes");
    assert!(list_files(&out).is_empty(), "{:?}", list_files(&out));
}

fn flip_last_byte(layout: &Path, digest: &str) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    f.seek(SeekFrom::End(-1)).unwrap();
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::End(-1)).unwrap();
    f.write_all(&[byte[0] ^ 0xff]).unwrap();
}
