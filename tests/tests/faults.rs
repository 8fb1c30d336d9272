//! Faults between satcheld and a real docker-registry, injected by the
//! test-only proxy in `satchel_tests::faulty`: dropped connections during a
//! download, 429 and 503 storms with `Retry-After`, and a daemon killed
//! during a pull. Bytes are always verified and nothing partial is left
//! under a final name.

use satchel_tests::faulty::{Fault, FaultyProxy, Rule};
use satchel_tests::{
    list_files, sha256_file, write_random_file, Daemon, Registry, RegistryKind, SMALL_CHUNKS,
};

/// Pushes an 8 MiB file straight to the registry; returns its path.
fn seed(daemon: &Daemon, registry: &Registry, reference: &str) -> std::path::PathBuf {
    let file = daemon.scratch().join("payload.bin");
    write_random_file(&file, 8 << 20, 42);
    daemon.ok(&[
        "push",
        "--plain-http",
        &format!("{}/{reference}", registry.addr),
        file.to_str().unwrap(),
    ]);
    file
}

#[test]
fn downloads_resume_after_dropped_connections() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let file = seed(&daemon, &registry, "demo/resume:v1");
    let proxy = FaultyProxy::start(&registry.addr);
    // The first two blob downloads die after 1 MiB and 3 MiB.
    for cut in [1 << 20, 3 << 20] {
        proxy.add(Rule {
            method: "GET",
            path_contains: "/blobs/",
            fault: Fault::DropAfter(cut),
            times: 1,
        });
    }
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&format!("{}/demo/resume:v1", proxy.addr), &out);
    assert_eq!(sha256_file(&out.join("payload.bin")), sha256_file(&file));
    let ranges: Vec<_> = proxy.seen().into_iter().filter_map(|s| s.range).collect();
    assert_eq!(ranges.len(), 2, "{:?}", proxy.seen());
    assert!(ranges.iter().all(|r| r.starts_with("bytes=")), "{ranges:?}");
}

#[test]
fn rate_limits_and_outages_are_retried_then_reported() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    seed(&daemon, &registry, "demo/storm:v1");
    let proxy = FaultyProxy::start(&registry.addr);
    let reference = format!("{}/demo/storm:v1", proxy.addr);

    // Two 429s and a 503, each with Retry-After: the call still succeeds.
    for code in [429, 429, 503] {
        proxy.add(Rule {
            method: "HEAD",
            path_contains: "/manifests/",
            fault: Fault::Status {
                code,
                retry_after: 1,
            },
            times: 1,
        });
    }
    let digest = daemon.ok(&["resolve", "--plain-http", &reference]);
    assert!(digest.starts_with("sha256:"));
    let faulted = proxy.seen().iter().filter(|s| s.fault.is_some()).count();
    assert_eq!(faulted, 3);

    // An outage that outlasts the retries: UNAVAILABLE, one clear line.
    proxy.add(Rule {
        method: "HEAD",
        path_contains: "/manifests/",
        fault: Fault::Status {
            code: 503,
            retry_after: 0,
        },
        times: 50,
    });
    let err = daemon.fails(&["resolve", "--plain-http", &reference]);
    assert!(err.contains("UNAVAILABLE") && err.contains("503"), "{err}");
}

#[test]
fn a_daemon_killed_during_a_pull_leaves_no_file_behind() {
    let registry = Registry::start();
    let mut daemon = Daemon::start();
    let big = daemon.scratch().join("big.bin");
    write_random_file(&big, 64 << 20, 7);
    let reference = format!("{}/demo/killed:v1", registry.addr);
    daemon.ok(&["push", "--plain-http", &reference, big.to_str().unwrap()]);
    // Slow the download to about 4 MiB/s so the kill lands mid-transfer.
    let proxy = FaultyProxy::start(&registry.addr);
    proxy.add(Rule {
        method: "GET",
        path_contains: "/blobs/",
        fault: Fault::Throttle(4 << 20),
        times: 1,
    });
    let out = daemon.scratch().join("out");
    let mut pull = daemon.spawn_satchel(&[
        "pull",
        "--plain-http",
        &format!("{}/demo/killed:v1", proxy.addr),
        "-o",
        out.to_str().unwrap(),
    ]);
    // The CLI opens its temporary file when the first file header arrives.
    satchel_tests::wait_for(
        "the download to start",
        std::time::Duration::from_secs(30),
        || !list_files(&out).is_empty(),
    );
    assert!(list_files(&out).iter().all(|f| f.ends_with(".partial")));
    daemon.kill();
    let status = pull.wait().unwrap();
    assert!(
        !status.success(),
        "the pull cannot succeed without its daemon"
    );
    assert!(
        list_files(&out).is_empty(),
        "nothing may stay behind: {:?}",
        list_files(&out)
    );
}

/// Pushes 10 MiB in 4 MiB chunks through the proxy, whose second PATCH
/// dies after 1 MiB; returns the daemon, the push's output, the proxy's
/// request lines and the reference.
fn interrupted_chunk_upload(
    kind: RegistryKind,
) -> (
    Registry,
    Daemon,
    std::process::Output,
    Vec<String>,
    String,
    std::path::PathBuf,
) {
    let registry = Registry::start_kind(kind);
    // Small thresholds so a 10 MiB file goes in three chunks: 4 + 4 + 2 MiB.
    let daemon = Daemon::start_with_config(SMALL_CHUNKS);
    let proxy = FaultyProxy::start(&registry.addr);
    proxy.add(Rule {
        method: "PATCH",
        path_contains: "/blobs/uploads/",
        fault: Fault::DropAfter(usize::MAX),
        times: 1,
    });
    proxy.add(Rule {
        method: "PATCH",
        path_contains: "/blobs/uploads/",
        fault: Fault::CutRequestAfter(1 << 20),
        times: 1,
    });
    let file = daemon.scratch().join("ten.bin");
    write_random_file(&file, 10 << 20, 4242);
    let reference = format!("{}/demo/resumed:v1", proxy.addr);
    let out = daemon.satchel(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let seen = proxy.seen().into_iter().map(|s| s.line).collect();
    (registry, daemon, out, seen, reference, file)
}

#[test]
fn an_interrupted_chunk_upload_resumes_from_the_registry_offset() {
    // ferro-oci-server reports how far the upload got: the chunk resumes.
    let (_registry, daemon, out, seen, reference, file) =
        interrupted_chunk_upload(RegistryKind::Ferro);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patches = seen.iter().filter(|l| l.starts_with("PATCH ")).count();
    let status_checks = seen
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains("/blobs/uploads/"))
        .count();
    assert_eq!(status_checks, 1, "{seen:#?}");
    assert_eq!(
        patches, 4,
        "three chunks and one resumed remainder: {seen:#?}"
    );
    assert!(daemon.log().contains("resuming"), "{}", daemon.log());
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&reference, &out);
    assert_eq!(sha256_file(&out.join("ten.bin")), sha256_file(&file));
}

#[test]
fn an_interrupted_chunk_upload_fails_cleanly_where_it_cannot_resume() {
    // distribution 2.8 invalidates an upload whose PATCH broke (its state
    // token records the old offset): the push fails, clearly, and no
    // manifest names the half-uploaded blob.
    let (registry, daemon, out, _seen, _reference, _file) =
        interrupted_chunk_upload(RegistryKind::Distribution);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().last().unwrap_or("").contains("UNAVAILABLE"),
        "{err}"
    );
    let direct = format!("{}/demo/resumed:v1", registry.addr);
    let err = daemon.fails(&["resolve", "--plain-http", &direct]);
    assert!(err.contains("NOT_FOUND"), "{err}");
}
