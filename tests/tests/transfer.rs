//! Blob transfer shapes against real registries: chunked uploads (PATCH
//! with Content-Range, then PUT) on docker-registry and ferro-oci-server.

use satchel_tests::faulty::FaultyProxy;
use satchel_tests::{sha256_file, write_random_file, Daemon, Registry, RegistryKind};

fn chunked_upload(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("satcheld.toml");
    // Small thresholds so a 10 MiB file goes in three chunks: 4 + 4 + 2 MiB.
    std::fs::write(
        &config,
        "upload_monolithic_max = 1048576\nupload_chunk_size = 4194304\n",
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_string();
    let daemon = Daemon::start_in(dir, &["--config", &config_arg], &[]);
    let proxy = FaultyProxy::start(&registry.addr);
    let file = daemon.scratch().join("ten.bin");
    write_random_file(&file, 10 << 20, 99);
    let reference = format!("{}/demo/chunked:v1", proxy.addr);
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);

    let patches: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.line.starts_with("PATCH "))
        .collect();
    assert_eq!(patches.len(), 3, "{patches:?}");

    let out = daemon.scratch().join("out");
    daemon.ok(&[
        "pull",
        "--plain-http",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(sha256_file(&out.join("ten.bin")), sha256_file(&file));
}

#[test]
fn chunked_uploads_on_docker_registry() {
    chunked_upload(RegistryKind::Distribution);
}

#[test]
fn chunked_uploads_on_ferro() {
    chunked_upload(RegistryKind::Ferro);
}
