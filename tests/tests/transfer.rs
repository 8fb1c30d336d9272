//! Blob transfer shapes against real registries: chunked uploads (PATCH
//! with Content-Range, then PUT) on docker-registry and ferro-oci-server.

use satchel_tests::faulty::FaultyProxy;
use satchel_tests::{sha256_file, write_random_file, Daemon, Registry, RegistryKind, SMALL_CHUNKS};

fn chunked_upload(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    // Small thresholds so a 10 MiB file goes in three chunks: 4 + 4 + 2 MiB.
    let daemon = Daemon::start_with_config(SMALL_CHUNKS);
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
    daemon.pull_plain(&reference, &out);
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

/// Files of 256 MiB and more are not hashed before they are sent: the CLI
/// sends a size without a digest, the daemon uploads in chunks and hashes on
/// the way, and the closing PUT names the digest it computed. With
/// `--hash-first` the CLI hashes first, so a blob the registry has is
/// skipped.
#[test]
fn a_large_file_streams_at_once_and_the_daemon_hashes_it() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let proxy = FaultyProxy::start(&registry.addr);
    let file = daemon.scratch().join("big.bin");
    write_random_file(&file, 300 << 20, 7);
    let digest = sha256_file(&file);
    let reference = format!("{}/demo/big:v1", proxy.addr);
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let seen: Vec<String> = proxy.seen().into_iter().map(|s| s.line).collect();
    // No HEAD for a digest the daemon did not know; two chunks (256 + 44 MiB),
    // closed with the computed digest.
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("HEAD ") && l.contains(&digest)),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("PATCH ")).count(),
        2,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("PUT ")
            && l.contains(&format!("digest={}", digest.replace(':', "%3A")))),
        "{seen:?}"
    );
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&reference, &out);
    assert_eq!(sha256_file(&out.join("big.bin")), digest);

    // Hashed first, the same bytes are found on the registry and skipped.
    let before = proxy.seen().len();
    let again = format!("{}/demo/big:v2", proxy.addr);
    daemon.ok(&[
        "push",
        "--plain-http",
        "--hash-first",
        &again,
        file.to_str().unwrap(),
    ]);
    let seen: Vec<String> = proxy
        .seen()
        .into_iter()
        .skip(before)
        .map(|s| s.line)
        .collect();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("HEAD ") && l.contains(&digest)),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("PATCH ")), "{seen:?}");
}

fn blob_gets(proxy: &FaultyProxy, digest: &str) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.line.starts_with("GET ") && s.line.contains(&format!("/blobs/{digest}")))
        .count()
}

/// Pushes a random file of `mib` MiB as `repo:tag`; returns its digest.
fn seed(daemon: &Daemon, registry: &Registry, tag: &str, mib: u64, seed: u64) -> String {
    let file = daemon.scratch().join(format!("{tag}.bin"));
    write_random_file(&file, mib << 20, seed);
    daemon.ok(&[
        "push",
        "--plain-http",
        &format!("{}/demo/cache:{tag}", registry.addr),
        file.to_str().unwrap(),
    ]);
    sha256_file(&file)
}

fn pull(daemon: &Daemon, proxy: &FaultyProxy, tag: &str, out: &str) {
    let out = daemon.scratch().join(out);
    daemon.pull_plain(&format!("{}/demo/cache:{tag}", proxy.addr), &out);
}

#[test]
fn repeated_pulls_are_served_from_the_cache() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let digest = seed(&daemon, &registry, "a", 6, 1);
    let proxy = FaultyProxy::start(&registry.addr);
    pull(&daemon, &proxy, "a", "one");
    pull(&daemon, &proxy, "a", "two");
    assert_eq!(blob_gets(&proxy, &digest), 1, "{:?}", proxy.seen());
    assert_eq!(sha256_file(&daemon.scratch().join("two/a.bin")), digest);
}

#[test]
fn concurrent_pulls_share_one_download() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let digest = seed(&daemon, &registry, "b", 6, 2);
    let proxy = FaultyProxy::start(&registry.addr);
    // A slow first download, so the other pulls arrive while it runs.
    proxy.add(satchel_tests::faulty::Rule {
        method: "GET",
        path_contains: "/blobs/",
        fault: satchel_tests::faulty::Fault::Throttle(8 << 20),
        times: 1,
    });
    std::thread::scope(|s| {
        for i in 0..4 {
            let (daemon, proxy) = (&daemon, &proxy);
            s.spawn(move || pull(daemon, proxy, "b", &format!("out{i}")));
        }
    });
    assert_eq!(blob_gets(&proxy, &digest), 1, "{:?}", proxy.seen());
    for i in 0..4 {
        let file = daemon.scratch().join(format!("out{i}/b.bin"));
        assert_eq!(sha256_file(&file), digest);
    }
}

#[test]
fn the_cache_stays_within_its_bound_evicting_the_least_recently_used() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("bounded-cache");
    let cache_arg = cache.to_str().unwrap().to_string();
    let daemon = Daemon::start_in(
        dir,
        &["--cache-dir", &cache_arg, "--cache-max-bytes", "12582912"],
        &[],
    );
    let digests: Vec<String> = ["c1", "c2", "c3"]
        .iter()
        .enumerate()
        .map(|(i, tag)| seed(&daemon, &registry, tag, 5, 10 + i as u64))
        .collect();
    let proxy = FaultyProxy::start(&registry.addr);
    for tag in ["c1", "c2", "c3"] {
        pull(&daemon, &proxy, tag, &format!("first-{tag}"));
    }
    let stored: u64 = satchel_tests::list_files(&cache.join("blobs"))
        .iter()
        .map(|f| {
            std::fs::metadata(cache.join("blobs").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert!(stored <= 12 << 20, "the cache holds {stored} bytes");
    // c1 was evicted (least recently used); c3 was not.
    pull(&daemon, &proxy, "c1", "again-c1");
    pull(&daemon, &proxy, "c3", "again-c3");
    assert_eq!(
        blob_gets(&proxy, &digests[0]),
        2,
        "{digests:?} {:?} {:?}",
        satchel_tests::list_files(&cache),
        proxy.seen()
    );
    assert_eq!(blob_gets(&proxy, &digests[2]), 1);
}

#[test]
fn an_upload_killed_midway_resumes_where_it_stopped() {
    let daemon = Daemon::start();
    let file = daemon.scratch().join("big.bin");
    write_random_file(&file, 32 << 20, 77);
    let digest = sha256_file(&file);
    let ingest = daemon.scratch().join("cache/ingest");
    let uploaded = || -> u64 {
        std::fs::read_dir(&ingest)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("upload-"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    };
    // A slow upload (8 MiB/s), killed once a few MiB are in.
    let mut slow = daemon.spawn_satchel(&[
        "blob",
        "upload",
        "--limit-rate",
        "8388608",
        file.to_str().unwrap(),
    ]);
    satchel_tests::wait_for(
        "part of the upload",
        std::time::Duration::from_secs(30),
        || uploaded() >= 2 << 20,
    );
    slow.kill().unwrap();
    slow.wait().unwrap();
    let before = uploaded();
    assert!(before > 0 && before < 32 << 20, "{before}");

    let out = daemon.satchel(&["blob", "upload", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let resumed_at: u64 = stderr
        .lines()
        .find(|l| l.starts_with("Resuming "))
        .and_then(|l| l.split("at byte ").nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no resume in {stderr:?}"));
    assert!(resumed_at > 0, "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&digest), "{stdout}");
    assert_eq!(uploaded(), 0, "the committed upload left ingest/");

    let whole = daemon.scratch().join("whole.bin");
    daemon.ok(&["blob", "download", &digest, "-o", whole.to_str().unwrap()]);
    assert_eq!(sha256_file(&whole), digest);
    let part = daemon.scratch().join("part.bin");
    daemon.ok(&[
        "blob",
        "download",
        &digest,
        "-o",
        part.to_str().unwrap(),
        "--offset",
        "1000",
        "--length",
        "10",
    ]);
    let original = std::fs::read(&file).unwrap();
    assert_eq!(std::fs::read(&part).unwrap(), &original[1000..1010]);
}

/// Pulls a three-file artifact through a slow proxy with a daemon started
/// with `flags`; returns how many blob downloads began while another was
/// still early on.
fn blobs_at_once(flags: &[&str]) -> usize {
    let registry = Registry::start();
    let daemon = Daemon::start_with(flags);
    let files: Vec<String> = (0..3)
        .map(|i| {
            let f = daemon.scratch().join(format!("part{i}.bin"));
            write_random_file(&f, 2 << 20, 300 + i);
            f.display().to_string()
        })
        .collect();
    let reference = format!("{}/demo/layers:v1", registry.addr);
    let mut args = vec!["push", "--plain-http", reference.as_str()];
    args.extend(files.iter().map(String::as_str));
    daemon.ok(&args);
    let proxy = FaultyProxy::start(&registry.addr);
    proxy.add(satchel_tests::faulty::Rule {
        method: "GET",
        path_contains: "/blobs/",
        fault: satchel_tests::faulty::Fault::Throttle(4 << 20),
        times: 3,
    });
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&format!("{}/demo/layers:v1", proxy.addr), &out);
    for (i, f) in files.iter().enumerate() {
        let pulled = out.join(format!("part{i}.bin"));
        assert_eq!(sha256_file(&pulled), sha256_file(std::path::Path::new(f)));
    }
    proxy.overlapping_blob_starts()
}

#[test]
fn several_layers_download_at_once() {
    assert!(
        blobs_at_once(&[]) >= 1,
        "the default moves several blobs at once"
    );
    assert_eq!(blobs_at_once(&["--concurrency", "1"]), 0);
}

#[test]
fn a_blob_seen_in_one_repository_is_mounted_into_another() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let proxy = FaultyProxy::start(&registry.addr);
    let file = daemon.scratch().join("shared.bin");
    write_random_file(&file, 4 << 20, 500);
    for repo in ["a", "b"] {
        daemon.ok(&[
            "push",
            "--plain-http",
            &format!("{}/demo/{repo}:v1", proxy.addr),
            file.to_str().unwrap(),
        ]);
    }
    let into_b: Vec<String> = proxy
        .seen()
        .into_iter()
        .map(|s| s.line)
        .filter(|l| l.contains("/v2/demo/b/blobs/uploads/"))
        .collect();
    assert!(
        into_b
            .iter()
            .any(|l| l.starts_with("POST ") && l.contains("mount=") && l.contains("from=demo%2Fa")),
        "{into_b:?}"
    );
    assert!(
        !into_b
            .iter()
            .any(|l| l.starts_with("PUT ") || l.starts_with("PATCH ")),
        "nothing is uploaded into b: {into_b:?}"
    );
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&format!("{}/demo/b:v1", registry.addr), &out);
    assert_eq!(sha256_file(&out.join("shared.bin")), sha256_file(&file));
}

#[test]
fn a_slow_big_pull_does_not_hold_up_other_clients() {
    let registry = Registry::start();
    let daemon = Daemon::start_with(&["--no-cache"]);
    seed(&daemon, &registry, "big", 16, 900);
    let small = daemon.scratch().join("small.txt");
    std::fs::write(&small, "small").unwrap();
    let proxy = FaultyProxy::start(&registry.addr);
    // The big download trickles at 2 MiB/s: about eight seconds.
    proxy.add(satchel_tests::faulty::Rule {
        method: "GET",
        path_contains: "/blobs/",
        fault: satchel_tests::faulty::Fault::Throttle(2 << 20),
        times: 1,
    });
    let out = daemon.scratch().join("big-out");
    let mut big = daemon.spawn_satchel(&[
        "-q",
        "pull",
        "--plain-http",
        &format!("{}/demo/cache:big", proxy.addr),
        "-o",
        out.to_str().unwrap(),
    ]);
    satchel_tests::wait_for(
        "the big pull to start",
        std::time::Duration::from_secs(30),
        || !satchel_tests::list_files(&out).is_empty(),
    );
    // Twenty other calls, four at a time, all finish while it still runs.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (daemon, registry, small) = (&daemon, &registry, &small);
            s.spawn(move || {
                for i in 0..5 {
                    let reference = format!("{}/demo/other{t}:v{i}", registry.addr);
                    daemon.ok(&[
                        "push",
                        "-q",
                        "--plain-http",
                        &reference,
                        small.to_str().unwrap(),
                    ]);
                }
            });
        }
    });
    assert!(
        big.try_wait().unwrap().is_none(),
        "the big pull should still be running; the small calls did not wait for it"
    );
    assert!(big.wait().unwrap().success());
}

/// On the daemon's Unix socket `satchel pull` hands its files to the daemon
/// to fill: cold, as the registry's bytes arrive; warm, copied from the
/// content store; with `--stream`, not at all. Every copy is the same.
#[test]
fn local_pulls_are_filled_by_the_daemon_unless_asked_to_stream() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let digest = seed(&daemon, &registry, "h", 9, 7);
    let reference = format!("{}/demo/cache:h", registry.addr);
    let handoffs = |what: &str| daemon.log().matches(what).count();
    let streamed = "local handoff: writing the blob as it streams";
    let copied = "local handoff: copying the stored blob";
    let pull = |out: &str, extra: &[&str]| {
        let out = daemon.scratch().join(out);
        let mut args = vec!["pull", "--plain-http", &reference, "-o"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(extra);
        daemon.ok(&args);
        assert_eq!(sha256_file(&out.join("h.bin")), digest);
        (handoffs(streamed), handoffs(copied))
    };
    assert_eq!(pull("cold", &[]), (1, 0));
    assert_eq!(pull("warm", &[]), (1, 1));
    assert_eq!(pull("streamed", &["--stream"]), (1, 1));
}
