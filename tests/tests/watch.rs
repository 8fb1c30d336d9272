//! WatchReferrers against docker-registry: many watchers share one poller,
//! a registry restart does not end a watch, and `satchel discover --watch`
//! prints what appears and disappears. (The ORAS CLI attaching while the
//! Python client watches is in clients/python/tests/test_watch.py.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use satchel_client::pb;
use satchel_tests::faulty::FaultyProxy;
use satchel_tests::grpc::plain_target;
use satchel_tests::{bin, Daemon, Registry, RegistryKind};
use serde_json::Value;

const SBOM: &str = "application/vnd.cyclonedx+json";
const POLL: &str = "watch_poll_secs = 0.2\n";

/// Pushes a subject to `repo` through `daemon`; returns `repo@digest`.
fn push_subject(daemon: &Daemon, repo: &str) -> String {
    let digest = daemon.push_plain(&format!("{repo}:v1"), "subject.txt", "a watched subject");
    format!("{repo}@{digest}")
}

/// Attaches a small SBOM named `name` to `subject`; returns its digest.
fn attach(daemon: &Daemon, subject: &str, name: &str) -> String {
    daemon.attach_plain(subject, SBOM, name, &format!("{{\"sbom\":\"{name}\"}}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_watchers_of_one_subject_share_one_poller() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let proxy = FaultyProxy::with_delay(&registry.addr, Duration::ZERO);
    let daemon = Daemon::start_with_config(POLL);
    let subject = push_subject(&daemon, &format!("{}/watch/many", proxy.addr));
    let client = satchel_client::connect(&daemon.addr).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..100 {
        let mut c = client.clone();
        let request = pb::WatchReferrersRequest {
            subject: plain_target(&subject),
            artifact_type: SBOM.into(),
        };
        streams.push(c.watch_referrers(request).await.unwrap().into_inner());
    }
    for s in &mut streams {
        let first = s.message().await.unwrap().unwrap();
        assert!(matches!(
            first.event,
            Some(pb::watch_referrers_response::Event::Current(_))
        ));
    }
    let mark = proxy.mark();
    let watched_for = Duration::from_secs(2);
    let added = {
        let daemon = &daemon;
        let subject = subject.clone();
        tokio::task::block_in_place(move || attach(daemon, &subject, "one.json"))
    };
    for s in &mut streams {
        let next = tokio::time::timeout(Duration::from_secs(10), s.message()).await;
        match next.unwrap().unwrap().unwrap().event {
            Some(pb::watch_referrers_response::Event::Appeared(d)) => assert_eq!(d.digest, added),
            other => panic!("expected the new referrer, got {other:?}"),
        }
    }
    tokio::time::sleep(watched_for).await;
    let log = daemon.log();
    assert_eq!(
        log.matches("started a referrers poller").count(),
        1,
        "{log}"
    );
    // One poller's listings: one a poll interval (and the attach's own
    // requests), not one per watcher.
    let listings = proxy
        .since(mark)
        .lines()
        .iter()
        .filter(|l| l.contains("/manifests/sha256-"))
        .count();
    assert!(listings < 40, "{listings} listings");
    // The last watcher gone, the poller stops.
    drop(streams);
    satchel_tests::wait_for("the poller to stop", Duration::from_secs(5), || {
        daemon.log().contains("stopped a referrers poller")
    });
}

/// Starts `satchel discover --watch --format FORMAT`; its lines arrive on
/// the receiver.
fn watch_lines(
    daemon: &Daemon,
    subject: &str,
    format: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin("satchel"))
        .args(["--addr", &daemon.addr, "discover", "--watch"])
        .args(["--plain-http", "--format", format, subject])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(15))
        .expect("a watch event")
}

fn next(lines: &mpsc::Receiver<String>) -> Value {
    serde_json::from_str(&next_line(lines)).unwrap()
}

#[test]
fn a_watch_outlives_a_registry_restart() {
    let mut registry = Registry::start_kind(RegistryKind::Distribution);
    let daemon = Daemon::start_with_config(POLL);
    let subject = push_subject(&daemon, &format!("{}/watch/restart", registry.addr));
    let (mut child, lines) = watch_lines(&daemon, &subject, "json");
    let first = next(&lines);
    assert_eq!(first["event"], "current", "{first}");
    assert_eq!(first["referrers"], Value::Array(vec![]));
    let before = attach(&daemon, &subject, "before.json");
    assert_eq!(next(&lines)["referrer"]["digest"], before.as_str());
    // Down for longer than a request's retries: polls fail, and the watch
    // waits.
    registry.restart_with(|| std::thread::sleep(Duration::from_secs(4)));
    assert!(child.try_wait().unwrap().is_none(), "the watch ended");
    let after = attach(&daemon, &subject, "after.json");
    let appeared = next(&lines);
    assert_eq!(appeared["event"], "appeared", "{appeared}");
    assert_eq!(appeared["referrer"]["digest"], after.as_str());
    assert_eq!(appeared["referrer"]["artifactType"], SBOM);
    let repo = subject.rsplit_once('@').unwrap().0;
    daemon.ok(&[
        "manifest",
        "delete",
        "--plain-http",
        "-f",
        &format!("{repo}@{before}"),
    ]);
    let gone = next(&lines);
    assert_eq!(gone["event"], "disappeared", "{gone}");
    assert_eq!(gone["referrer"]["digest"], before.as_str());
    assert!(
        daemon.log().contains("cannot list the watched referrers"),
        "the restart was not seen"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn discover_watch_prints_a_line_per_change() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let daemon = Daemon::start_with_config(POLL);
    let subject = push_subject(&daemon, &format!("{}/watch/text", registry.addr));
    let (mut child, lines) = watch_lines(&daemon, &subject, "tree");
    let first = next_line(&lines);
    assert_eq!(first, format!("Watching {subject}: 0 referrer(s)"));
    let added = attach(&daemon, &subject, "text.json");
    assert_eq!(next_line(&lines), format!("+ {added}  {SBOM}"));
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_daemon_ends_its_watches_with_unavailable() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let mut daemon = Daemon::start_with_config(POLL);
    let subject = push_subject(&daemon, &format!("{}/watch/stop", registry.addr));
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let request = pb::WatchReferrersRequest {
        subject: plain_target(&subject),
        artifact_type: SBOM.into(),
    };
    let mut stream = client.watch_referrers(request).await.unwrap().into_inner();
    assert!(stream.message().await.unwrap().is_some());
    // Without the watch ending, SIGTERM's graceful stop would wait for it
    // for ever, and this test with it.
    let stopped = tokio::task::spawn_blocking(move || daemon.stop());
    let ended = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the watch ends when the daemon stops");
    let status = ended.expect_err("the watch ends with a status");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    let exit = tokio::time::timeout(Duration::from_secs(30), stopped)
        .await
        .expect("satcheld exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn an_unchanged_index_is_polled_with_its_etag_and_answered_304() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let metrics = format!("127.0.0.1:{}", satchel_tests::free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("satcheld.toml");
    std::fs::write(&config, POLL).unwrap();
    let config = config.to_str().unwrap().to_string();
    let daemon = Daemon::start_in(
        dir,
        &["--config", &config, "--metrics-listen", &metrics],
        &[],
    );
    let subject = push_subject(&daemon, &format!("{}/watch/etag", registry.addr));
    attach(&daemon, &subject, "one.json");
    let (mut child, lines) = watch_lines(&daemon, &subject, "tree");
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the first line");
    let not_modified = || {
        let samples = satchel_tests::scrape::scrape(&metrics);
        satchel_tests::scrape::sum(
            &samples,
            "satchel_registry_requests_total",
            &["status=\"304\""],
        )
    };
    // Polled every 0.2 s: within a few seconds, many polls answered 304.
    satchel_tests::wait_for("polls answered 304", Duration::from_secs(10), || {
        not_modified() >= 5.0
    });
    // A change is still seen.
    let added = attach(&daemon, &subject, "two.json");
    let seen = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok())
        .find(|line| line.starts_with('+'))
        .expect("a line for the attach");
    assert!(seen.contains(&added), "{seen}");
    let _ = child.kill();
    let _ = child.wait();
}
