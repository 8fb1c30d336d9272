//! The metrics endpoint (`--metrics-listen`), scraped around a push, an
//! attach, two pulls and a failing call on docker-registry: the counters
//! that should move do.

use satchel_tests::scrape::{scrape, sum};
use satchel_tests::{free_port, http_get, write_random_file, Daemon, Registry};

#[test]
fn the_counters_move_with_a_push_and_a_pull() {
    let registry = Registry::start();
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_with(&["--metrics-listen", &metrics]);
    let before = scrape(&metrics);
    let file = daemon.scratch().join("data.bin");
    write_random_file(&file, 3 << 20, 7);
    let reference = format!("{}/metrics/app:v1", registry.addr);
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let sbom = daemon.scratch().join("sbom.json");
    std::fs::write(&sbom, "{}").unwrap();
    daemon.ok(&[
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/vnd.cyclonedx+json",
        &reference,
        sbom.to_str().unwrap(),
    ]);
    for n in 0..2 {
        let out = daemon.scratch().join(format!("out{n}"));
        daemon.pull_plain(&reference, &out);
    }
    daemon.fails(&[
        "resolve",
        "--plain-http",
        &format!("{}/metrics/app:missing", registry.addr),
    ]);
    let after = scrape(&metrics);
    let moved =
        |name: &str, labels: &[&str]| sum(&after, name, labels) - sum(&before, name, labels);
    let host = format!("host=\"{}\"", registry.addr);
    assert_eq!(
        moved(
            "satchel_rpc_requests_total",
            &["method=\"Push\"", "code=\"OK\""]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "satchel_rpc_requests_total",
            &["method=\"Attach\"", "code=\"OK\""]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "satchel_rpc_requests_total",
            &["method=\"Pull\"", "code=\"OK\""]
        ),
        2.0
    );
    assert_eq!(
        moved(
            "satchel_rpc_requests_total",
            &["method=\"Resolve\"", "code=\"NotFound\""]
        ),
        1.0
    );
    assert_eq!(
        moved("satchel_rpc_duration_seconds_count", &["method=\"Pull\""]),
        2.0
    );
    assert!(
        moved(
            "satchel_registry_requests_total",
            &[&host, "method=\"PUT\"", "status=\"201\""]
        ) >= 2.0
    );
    assert!(moved("satchel_registry_request_duration_seconds_count", &[&host]) >= 5.0);
    // The file went up once and came down once: the second pull is the
    // content store's.
    assert!(moved("satchel_registry_bytes_total", &["direction=\"up\""]) >= (3 << 20) as f64);
    let down = moved("satchel_registry_bytes_total", &["direction=\"down\""]);
    assert!(
        ((3 << 20) as f64..(4 << 20) as f64).contains(&down),
        "{down}"
    );
    assert!(moved("satchel_content_store_hits_total", &[]) >= 1.0);
    assert!(sum(&after, "satchel_content_store_bytes", &[]) >= (3 << 20) as f64);
    // The attach's referrer is journalled until the reconcile window ends.
    assert_eq!(sum(&after, "satchel_journal_backlog", &[]), 1.0);
    let (status, _) = http_get(&metrics, "/").unwrap();
    assert_eq!(status, 404);
}
