//! A registry that speaks plain HTTP, asked over TLS because nothing said
//! `plain_http`: push, resolve and login must say what to set, not quote rustls's
//! "received corrupt message of type InvalidContentType". Against a real
//! docker-registry on plain HTTP.

use satchel_tests::leaks::cli_code as code;
use satchel_tests::{Daemon, Registry};

/// The hint names every way to say plain HTTP: the CLI flag, the daemon
/// config's `[registries."<host>"] plain_http = true`, and the target field.
fn assert_hint(err: &str, host: &str) {
    assert_eq!(code(err), "UNAVAILABLE", "{err}");
    for needle in [
        "--plain-http",
        &format!("[registries.\"{host}\"] plain_http = true"),
        "plain_http",
        "speaks plain HTTP",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(!err.contains("InvalidContentType"), "{err}");
}

#[test]
fn tls_to_a_plain_http_registry_says_what_to_set() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let file = daemon.scratch().join("note.txt");
    std::fs::write(&file, "hello").expect("write the file");
    let reference = format!("{}/hint/note:v1", registry.addr);

    let err = daemon.fails(&["push", &reference, &file.display().to_string()]);
    assert_hint(&err, &registry.addr);
    let err = daemon.fails(&["resolve", &reference]);
    assert_hint(&err, &registry.addr);
    let out = daemon.satchel_stdin(
        &["login", &registry.addr, "-u", "someone", "--password-stdin"],
        "a password\n",
    );
    assert!(!out.status.success(), "login over TLS should have failed");
    assert_hint(&String::from_utf8_lossy(&out.stderr), &registry.addr);

    // With the flag, the same registry works: the hint told the truth.
    daemon.ok(&[
        "push",
        "--plain-http",
        &reference,
        &file.display().to_string(),
    ]);
    daemon.ok(&["resolve", "--plain-http", &reference]);
}
