//! The Rust client against a real satcheld (and docker-registry) on the
//! points `clients/conformance/` fixes for every client: ServerInfo and the
//! limits, the hash-first policy it drives, addresses, a missing local
//! file, and the README example run as written.

use std::path::Path;
use std::process::{Command, Stdio};

use satchel_client::{pb, LocalFile};
use satchel_tests::{bin, sha256_file, write_random_file, Daemon, Registry};

// The README's example, compiled here from the file the README is checked
// against (clients/rust/tests/readme.rs); only its function is used.
#[allow(dead_code)]
#[path = "../../clients/rust/examples/readme.rs"]
mod readme;

fn limits() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../clients/conformance/limits.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plain(reference: String) -> pb::Target {
    pb::Target {
        reference,
        plain_http: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn server_info_of_a_default_daemon_is_the_shared_defaults() {
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let info = client.server_info().await.unwrap();
    let limits = limits();
    let defaults = &limits["server_info_defaults"];
    assert_eq!(defaults["max_chunk_bytes"], info.max_chunk_bytes);
    assert_eq!(defaults["max_message_bytes"], info.max_message_bytes);
    assert_eq!(defaults["hash_first_below"], info.hash_first_below);
    assert!(!info.version.is_empty());
    let receive = limits["client_receive_limit_bytes"].as_u64().unwrap();
    assert_eq!(receive, satchel_client::RECEIVE_LIMIT as u64);
    assert!(receive >= u64::from(info.max_message_bytes));
    // Asked once: a clone shares the answer.
    assert_eq!(client.clone().server_info().await.unwrap(), info);
}

/// Pushes `file` to `reference` twice and returns the second push's
/// `blobs_skipped`: a hashed layer is skipped the second time, one
/// streamed unhashed is uploaded again.
async fn second_push_skips(
    client: &mut satchel_client::Client,
    reference: &str,
    file: &Path,
    hash_first: bool,
) -> u32 {
    let mut skipped = 0;
    for _ in 0..2 {
        let files = vec![LocalFile::new(file, "", hash_first).await.unwrap()];
        let result = satchel_client::push(
            client,
            plain(reference.to_string()),
            pb::ArtifactSpec::default(),
            files,
            |_| {},
        )
        .await
        .unwrap();
        skipped = result.blobs_skipped;
    }
    skipped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_hash_first_size_decides_what_a_push_hashes() {
    let registry = Registry::start();
    let daemon = Daemon::start_with_config("upload_monolithic_max = 1048576\n");
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    assert_eq!(
        client.server_info().await.unwrap().hash_first_below,
        1 << 20
    );
    let file = daemon.scratch().join("two-mib.bin");
    write_random_file(&file, 2 << 20, 5);
    let repo = format!("{}/policy/app", registry.addr);

    // Under the default 256 MiB it would be hashed and skipped; over this
    // daemon's 1 MiB it streams unhashed and goes up again.
    let unhashed = second_push_skips(&mut client, &format!("{repo}:auto"), &file, false).await;
    let hashed = second_push_skips(&mut client, &format!("{repo}:hashed"), &file, true).await;
    assert_eq!(hashed, unhashed + 1, "hashed {hashed}, unhashed {unhashed}");

    let small = daemon.scratch().join("small.txt");
    std::fs::write(&small, b"under the threshold").unwrap();
    let skipped = second_push_skips(&mut client, &format!("{repo}:small"), &small, false).await;
    assert_eq!(
        skipped, hashed,
        "a small file is hashed first without asking"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_runs() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    let subject = dir.join("readme.txt");
    std::fs::write(&subject, b"the subject\n").unwrap();
    let image = format!("{}/readme/app:v1", registry.addr);
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let files = vec![LocalFile::new(&subject, "", false).await.unwrap()];
    satchel_client::push(
        &mut client,
        plain(image.clone()),
        Default::default(),
        files,
        |_| {},
    )
    .await
    .unwrap();

    let sbom = dir.join("sbom.cdx.json");
    std::fs::write(&sbom, br#"{"bomFormat":"CycloneDX"}"#).unwrap();
    let out = dir.join("out");
    readme::sbom_round_trip(&daemon.addr, &image, &sbom, &out)
        .await
        .unwrap();
    for pulled in ["by-digest", "newest"] {
        let got = out.join(pulled).join("sbom.cdx.json");
        assert_eq!(sha256_file(&got), sha256_file(&sbom), "{pulled}");
    }
}

#[tokio::test]
async fn a_bare_socket_path_and_an_empty_address_reach_the_daemon() {
    let daemon = Daemon::start();
    let socket = daemon.addr.strip_prefix("unix://").unwrap();
    let mut client = satchel_client::connect(socket).await.unwrap();
    client.server_info().await.unwrap();

    // The CLI passes its --addr through: "" is $SATCHEL_ADDR.
    for addr in ["", socket] {
        let out = Command::new(bin("satchel"))
            .args(["--addr", addr, "credentials"])
            .env("SATCHEL_ADDR", &daemon.addr)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "--addr {addr:?}: {err}");
    }
}

#[test]
fn a_missing_file_is_invalid_argument_naming_it_in_the_cli() {
    let daemon = Daemon::start();
    let missing = daemon.scratch().join("no-such-file.txt");
    let missing = missing.to_str().unwrap();
    let err = daemon.fails(&["push", "--plain-http", "localhost:1/x/y:v1", missing]);
    assert!(err.contains("(INVALID_ARGUMENT)"), "{err}");
    assert!(err.contains(missing), "{err}");
}
