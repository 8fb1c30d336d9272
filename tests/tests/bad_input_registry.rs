//! Bad input, group "hostile registry responses" and "secrets": a registry
//! that sends credentials' owners somewhere else, quotes credentials back,
//! asks for them over clear text or on a link-local address, or stops
//! answering. The real docker-registry sits behind the test-only
//! [`HostileRegistry`] wherever it can; the hostile server answers alone
//! only where no real registry would.
//!
//! Every case asserts the exact gRPC code and that no canary secret shows
//! up in the CLI's output, the daemon's debug log or its content store.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use satchel_tests::auth::{htpasswd_registry, Pki, TokenIssuer, CANARY_PASSWORD, USER};
use satchel_tests::hostile::{Action, HostileRegistry, Request, Response};
use satchel_tests::leaks::{basic_b64, cli_code as code, kept_secret as no_secret};
use satchel_tests::{Daemon, Registry, RegistrySetup};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn login(daemon: &Daemon, registry: &str) -> Output {
    daemon.satchel_stdin(
        &[
            "login",
            registry,
            "-u",
            USER,
            "--password-stdin",
            "--plain-http",
        ],
        &format!("{CANARY_PASSWORD}\n"),
    )
}

fn small_file(daemon: &Daemon, name: &str) -> String {
    let path = daemon.scratch().join(name);
    std::fs::write(&path, format!("content of {name}")).unwrap();
    path.display().to_string()
}

/// A proxy that forwards everything to `upstream` untouched.
fn forward_all(upstream: &str) -> HostileRegistry {
    let upstream = upstream.to_string();
    HostileRegistry::start(move |_| Action::Forward {
        upstream: upstream.clone(),
        tamper: Box::new(|_| {}),
    })
}

/// `loc` with its origin replaced by `http://{origin}`.
fn moved(loc: &str, origin: &str) -> String {
    let path = match loc.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => loc,
    };
    format!("http://{origin}{path}")
}

fn any_authorization(seen: &[Request]) -> bool {
    seen.iter().any(|r| r.header("authorization").is_some())
}

/// An upload `Location` on another origin: the request goes there without
/// the registry's Basic credentials, and the push fails as the other end
/// (a real registry refusing an anonymous upload) says.
fn upload_elsewhere_gets_no_credentials(other_host: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let elsewhere = forward_all(&registry.addr);
    let port = elsewhere.addr.rsplit_once(':').unwrap().1.to_string();
    let other = format!("{other_host}:{port}");
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |_| {
        let other = other.clone();
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(move |resp: &mut Response| {
                if let Some(loc) = resp.header("location").map(str::to_string) {
                    resp.set_header("Location", &moved(&loc, &other));
                }
            }),
        }
    });
    let daemon = Daemon::start();
    let out = login(&daemon, &front.addr);
    assert!(out.status.success(), "{}", text(&out));
    let file = small_file(&daemon, "a.txt");
    let reference = format!("{}/demo/elsewhere:v1", front.addr);
    let err = daemon.fails(&["push", "--plain-http", &reference, &file]);
    assert_eq!(code(&err), "UNAUTHENTICATED", "{err}");
    assert!(
        any_authorization(&front.seen()),
        "the registry itself saw no credentials"
    );
    let seen = elsewhere.seen();
    assert!(!seen.is_empty(), "nothing went to the other origin");
    assert!(
        !any_authorization(&seen),
        "credentials went to {other_host}:{port}: {:?}",
        seen.iter()
            .map(|r| (&r.method, &r.path, r.header("authorization")))
            .collect::<Vec<_>>()
    );
    no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
}

#[test]
fn an_upload_location_on_another_port_gets_no_credentials() {
    upload_elsewhere_gets_no_credentials("127.0.0.1");
}

#[test]
fn an_upload_location_on_another_host_name_gets_no_credentials() {
    upload_elsewhere_gets_no_credentials("localhost");
}

/// A registry that answers manifest requests with `echo(authorization)`
/// as the body, under `status`: the error reaches the CLI without the
/// credential in any form.
fn echoed_credentials_are_scrubbed(status: u16, echo: fn(&str) -> String, expect: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        // The manifest exists (HEAD finds it); fetching it fails.
        if req.method == "GET" && req.path.contains("/manifests/") && !auth.is_empty() {
            let body = echo(&auth);
            return Action::Reply(Response::new(
                status,
                &[("Content-Type", "application/json")],
                body,
            ));
        }
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        }
    });
    let daemon = Daemon::start();
    let out = login(&daemon, &front.addr);
    assert!(out.status.success(), "{}", text(&out));
    let out_dir = scratch.path().join("out");
    let reference = format!("{}/demo/echo:v1", front.addr);
    let file = small_file(&daemon, "e.txt");
    daemon.ok(&["push", "--plain-http", &reference, &file]);
    let err = daemon.fails(&[
        "pull",
        "--plain-http",
        &reference,
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&err), expect, "{err}");
    no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
    assert!(
        std::fs::read_dir(&out_dir).map_or(true, |mut d| d.next().is_none()),
        "the failed pull left files"
    );
}

fn json_error(message: &str) -> String {
    serde_json::json!({"errors": [{"code": "DENIED", "message": message}]}).to_string()
}

#[test]
fn an_error_quoting_the_whole_authorization_header_is_scrubbed() {
    echoed_credentials_are_scrubbed(
        400,
        |auth| json_error(&format!("bad header Authorization: {auth}")),
        "INVALID_ARGUMENT",
    );
}

#[test]
fn an_error_quoting_the_base64_credential_is_scrubbed() {
    echoed_credentials_are_scrubbed(
        403,
        |auth| json_error(&format!("token {} is not allowed", &auth[6..])),
        "PERMISSION_DENIED",
    );
}

#[test]
fn an_error_quoting_the_decoded_user_and_password_is_scrubbed() {
    echoed_credentials_are_scrubbed(
        400,
        |_| json_error(&format!("user {USER}:{CANARY_PASSWORD} is unknown")),
        "INVALID_ARGUMENT",
    );
}

#[test]
fn an_error_quoting_the_password_alone_is_scrubbed() {
    echoed_credentials_are_scrubbed(
        404,
        |_| json_error(&format!("password {CANARY_PASSWORD} expired")),
        "NOT_FOUND",
    );
}

#[test]
fn a_plain_text_error_quoting_the_credential_is_scrubbed() {
    echoed_credentials_are_scrubbed(400, |auth| format!("you sent {auth}\n"), "INVALID_ARGUMENT");
}

#[test]
fn a_server_error_quoting_the_credential_is_scrubbed_after_the_retries() {
    echoed_credentials_are_scrubbed(
        503,
        |auth| json_error(&format!("upstream rejected {auth}")),
        "UNAVAILABLE",
    );
}

/// A token registry answering 401 with a Bearer challenge naming `realm`.
fn challenging(realm: String) -> HostileRegistry {
    HostileRegistry::start(move |_| {
        let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile\"");
        Action::Reply(Response::new(
            401,
            &[("WWW-Authenticate", challenge.as_str())],
            json_error("authentication required"),
        ))
    })
}

#[test]
fn link_local_token_realms_are_refused_before_any_request() {
    for realm in [
        "http://169.254.169.254/latest/meta-data/token",
        "http://[fe80::1]:8080/token",
        "http://[::ffff:169.254.169.254]/token",
    ] {
        let registry = challenging(realm.to_string());
        let daemon = Daemon::start();
        let out = login(&daemon, &registry.addr);
        assert!(!out.status.success(), "login to {realm} succeeded");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(code(&err), "FAILED_PRECONDITION", "{realm}: {err}");
        assert!(err.contains("link-local"), "{err}");
        let err = daemon.fails(&[
            "resolve",
            "--plain-http",
            &format!("{}/a/b:v1", registry.addr),
        ]);
        assert_eq!(code(&err), "FAILED_PRECONDITION", "{realm}: {err}");
        no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
    }
}

#[test]
fn an_https_registry_with_an_http_token_realm_gets_no_password() {
    let scratch = tempfile::tempdir().unwrap();
    let issuer = TokenIssuer::start(&scratch.path().join("issuer"), USER, CANARY_PASSWORD);
    assert!(issuer.realm.starts_with("http://"), "{}", issuer.realm);
    let pki = Pki::new(&scratch.path().join("pki"));
    let registry = Registry::start_with(RegistrySetup {
        tls: Some(pki.server()),
        token: Some((
            issuer.realm.clone(),
            issuer.service.clone(),
            issuer.issuer.clone(),
            issuer.cert.clone(),
        )),
        ..Default::default()
    });
    let config = format!(
        "[registries.\"{}\"]\nca_file = \"{}\"\n",
        registry.addr,
        pki.ca().display()
    );
    let daemon = Daemon::start_with_config(&config);
    let out = daemon.satchel_stdin(
        &["login", &registry.addr, "-u", USER, "--password-stdin"],
        &format!("{CANARY_PASSWORD}\n"),
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(code(&err), "FAILED_PRECONDITION", "{err}");
    assert!(
        err.contains(&issuer.realm),
        "the error names the realm: {err}"
    );
    assert!(issuer.issued().is_empty(), "{:?}", issuer.issued());
    assert_eq!(issuer.refused(), 0, "the realm was asked");
    no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
}

/// A daemon that gives a registry one second of no progress.
fn impatient_daemon() -> Daemon {
    Daemon::start_with_config("registry_idle_timeout_secs = 1\n")
}

/// Runs `satchel` under a generous outer limit, so a hang fails the test
/// instead of holding it forever.
fn bounded(daemon: &Daemon, args: &[&str]) -> String {
    let mut child = std::process::Command::new(satchel_tests::bin("satchel"))
        .arg("--addr")
        .arg(&daemon.addr)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run satchel");
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "satchel {args:?} succeeded");
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return err;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("satchel {args:?} still waits after 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_registry_that_never_answers_fails_unavailable() {
    let silent = HostileRegistry::start(|_| Action::Silence);
    let daemon = impatient_daemon();
    let err = bounded(
        &daemon,
        &[
            "resolve",
            "--plain-http",
            &format!("{}/a/b:v1", silent.addr),
        ],
    );
    assert_eq!(code(&err), "UNAVAILABLE", "{err}");
    assert!(err.contains("no progress"), "{err}");
}

/// A real registry holding one small artifact, and a hostile front that
/// forwards everything but what `spoil` answers.
fn spoiled_pull(spoil: impl Fn(&Request) -> Option<Action> + Send + Sync + 'static) -> String {
    let registry = Registry::start();
    let daemon = impatient_daemon();
    let file = small_file(&daemon, "f.txt");
    daemon.ok(&[
        "push",
        "--plain-http",
        &format!("{}/demo/spoil:v1", registry.addr),
        &file,
    ]);
    let upstream = registry.addr.clone();
    let spoil = Arc::new(spoil);
    let front = HostileRegistry::start(move |req| {
        spoil(req).unwrap_or_else(|| Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        })
    });
    // A fresh daemon: nothing cached.
    let daemon = impatient_daemon();
    let out = daemon.scratch().join("out");
    let err = bounded(
        &daemon,
        &[
            "pull",
            "--plain-http",
            &format!("{}/demo/spoil:v1", front.addr),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()),
        "the failed pull left files"
    );
    err
}

#[test]
fn a_manifest_that_stops_after_its_headers_fails_unavailable() {
    let err = spoiled_pull(|req| {
        (req.method == "GET" && req.path.contains("/manifests/")).then(|| {
            let mut resp = Response::new(
                200,
                &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
                Vec::new(),
            );
            resp.length = Some(500);
            Action::HeadersThenSilence(resp)
        })
    });
    assert_eq!(code(&err), "UNAVAILABLE", "{err}");
}

#[test]
fn a_blob_that_trickles_a_byte_at_a_time_fails_unavailable() {
    let err = spoiled_pull(|req| {
        (req.method == "GET" && req.path.contains("/blobs/sha256:")).then(|| {
            Action::Trickle(
                Response::new(200, &[], vec![b'x'; 4096]),
                Duration::from_millis(100),
            )
        })
    });
    assert_eq!(code(&err), "UNAVAILABLE", "{err}");
}

#[test]
fn a_token_realm_that_never_answers_fails_unavailable() {
    let silent = HostileRegistry::start(|_| Action::Silence);
    let registry = challenging(format!("http://{}/token", silent.addr));
    let daemon = impatient_daemon();
    let err = bounded(
        &daemon,
        &[
            "resolve",
            "--plain-http",
            &format!("{}/a/b:v1", registry.addr),
        ],
    );
    assert_eq!(code(&err), "UNAVAILABLE", "{err}");
    assert!(!silent.seen().is_empty(), "the realm was never asked");
}

#[test]
fn an_upload_that_is_never_answered_fails_unavailable() {
    let registry = Registry::start();
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        if req.method == "PUT" && req.path.contains("/blobs/uploads/") {
            return Action::Silence;
        }
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        }
    });
    let daemon = impatient_daemon();
    let file = small_file(&daemon, "up.txt");
    let err = bounded(
        &daemon,
        &[
            "push",
            "--plain-http",
            &format!("{}/demo/up:v1", front.addr),
            &file,
        ],
    );
    assert_eq!(code(&err), "UNAVAILABLE", "{err}");
}

#[test]
fn satchel_timeout_gives_up_with_deadline_exceeded() {
    let silent = HostileRegistry::start(|_| Action::Silence);
    // The daemon's own patience is long; the caller's is short.
    let daemon = Daemon::start();
    let err = bounded(
        &daemon,
        &[
            "--timeout",
            "1s",
            "resolve",
            "--plain-http",
            &format!("{}/a/b:v1", silent.addr),
        ],
    );
    assert_eq!(code(&err), "DEADLINE_EXCEEDED", "{err}");
}

/// Established connections from any local port to `port`, by
/// /proc/net/tcp (IPv4, state 01).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|r| r.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && cols.get(3) == Some(&"01")
        })
        .count()
}

#[test]
fn idle_connections_per_registry_are_capped() {
    let registry = Registry::start();
    let port: u16 = registry.addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let daemon = Daemon::start_with_config("registry_max_idle_connections = 2\n");
    let file = small_file(&daemon, "c.txt");
    let reference = format!("{}/demo/conns:v1", registry.addr);
    daemon.ok(&["push", "--plain-http", &reference, &file]);
    // 24 discovers at once open many connections; once they are done, at
    // most two may stay.
    let children: Vec<_> = (0..24)
        .map(|_| daemon.spawn_satchel(&["discover", "--plain-http", &reference]))
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    satchel_tests::wait_for(
        "idle connections to drop to the cap",
        Duration::from_secs(20),
        || connections_to(port) <= 2,
    );
}

/// A registry that challenges for a Bearer token at `realm`.
fn bearer_challenge(realm: &str) -> Response {
    let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile\"");
    Response::new(
        401,
        &[("WWW-Authenticate", challenge.as_str())],
        json_error("authentication required"),
    )
}

#[test]
fn a_challenge_from_a_redirect_target_cannot_steer_the_password() {
    // The registry redirects a blob download to storage that answers 401
    // with a token realm of its own choosing: the daemon must not take that
    // challenge for the registry's and send the registry's password there.
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let thief = HostileRegistry::start(|_| Action::Reply(Response::new(500, &[], "")));
    let realm = format!("http://{}/token", thief.addr);
    let storage = HostileRegistry::start(move |_| Action::Reply(bearer_challenge(&realm)));
    let storage_addr = storage.addr.clone();
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        if req.method == "GET" && req.path.contains("/blobs/sha256:") {
            let location = format!("http://{storage_addr}/bucket/blob");
            return Action::Reply(Response::new(307, &[("Location", location.as_str())], ""));
        }
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        }
    });
    let daemon = Daemon::start();
    assert!(login(&daemon, &front.addr).status.success());
    let reference = format!("{}/demo/steer:v1", front.addr);
    let file = small_file(&daemon, "s.txt");
    daemon.ok(&["push", "--plain-http", &reference, &file]);
    let fresh = Daemon::start();
    assert!(login(&fresh, &front.addr).status.success());
    let out = fresh.scratch().join("out");
    let err = fresh.fails(&[
        "pull",
        "--plain-http",
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&err), "UNAUTHENTICATED", "{err}");
    assert!(!storage.seen().is_empty(), "the redirect was not followed");
    assert!(
        thief.seen().is_empty(),
        "the storage's realm was asked for a token: {:?}",
        thief
            .seen()
            .iter()
            .map(|r| r.header("authorization"))
            .collect::<Vec<_>>()
    );
    no_secret(&fresh, &err, &[CANARY_PASSWORD, &basic_b64()]);
}

#[test]
fn a_token_realm_that_redirects_gets_no_second_chance_at_the_password() {
    let elsewhere = HostileRegistry::start(|_| Action::Reply(Response::new(500, &[], "")));
    let target = format!("http://{}/token", elsewhere.addr);
    let realm_server = HostileRegistry::start(move |_| {
        Action::Reply(Response::new(307, &[("Location", target.as_str())], ""))
    });
    let realm = format!("http://{}/token", realm_server.addr);
    let registry = HostileRegistry::start(move |_| Action::Reply(bearer_challenge(&realm)));
    let daemon = Daemon::start();
    let out = login(&daemon, &registry.addr);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(code(&err), "UNAUTHENTICATED", "{err}");
    assert!(!realm_server.seen().is_empty(), "the realm was never asked");
    assert!(
        elsewhere.seen().is_empty(),
        "the token request followed a redirect"
    );
    no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
}

#[test]
fn a_push_whose_caller_gave_up_is_not_finished_behind_its_back() {
    let registry = Registry::start();
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        let forward = Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        };
        if req.method == "POST" && req.path.contains("/blobs/uploads/") {
            return Action::Later(Duration::from_secs(3), Box::new(forward));
        }
        forward
    });
    let daemon = Daemon::start();
    let file = small_file(&daemon, "late.txt");
    let err = bounded(
        &daemon,
        &[
            "--timeout",
            "1s",
            "push",
            "--plain-http",
            &format!("{}/demo/late:v1", front.addr),
            &file,
        ],
    );
    assert_eq!(code(&err), "DEADLINE_EXCEEDED", "{err}");
    // Long enough for every delayed upload to go through, and for a push
    // still running to tag its manifest.
    std::thread::sleep(Duration::from_secs(6));
    let (status, body) =
        satchel_tests::http_get(&registry.addr, "/v2/demo/late/tags/list").unwrap();
    let body = String::from_utf8_lossy(&body).to_string();
    assert!(
        status == 404 || !body.contains("v1"),
        "the push went on after its caller gave up: {status} {body}"
    );
    assert!(
        !front
            .seen()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/manifests/")),
        "a manifest was pushed after the deadline"
    );
}

#[test]
fn a_login_probe_redirected_elsewhere_sends_the_password_nowhere() {
    let thief = HostileRegistry::start(|_| Action::Reply(Response::new(500, &[], "")));
    let realm = format!("http://{}/token", thief.addr);
    let elsewhere = HostileRegistry::start(move |_| Action::Reply(bearer_challenge(&realm)));
    let target = format!("http://{}/v2/", elsewhere.addr);
    let registry = HostileRegistry::start(move |_| {
        Action::Reply(Response::new(307, &[("Location", target.as_str())], ""))
    });
    let daemon = Daemon::start();
    let out = login(&daemon, &registry.addr);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(code(&err), "FAILED_PRECONDITION", "{err}");
    assert!(
        !elsewhere.seen().is_empty(),
        "the redirect was not followed"
    );
    assert!(
        thief.seen().is_empty(),
        "the redirect target's realm was asked"
    );
    no_secret(&daemon, &err, &[CANARY_PASSWORD, &basic_b64()]);
}
