//! Credentials and access control with real registries: docker-registry
//! with htpasswd (with and without TLS) and with `auth: token` against the
//! test-only token issuer; credential helpers; the daemon's own TLS, token
//! and mTLS guards. Every output and log is grepped for the canary password.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};

use satchel_tests::auth::{htpasswd, token_world, Pki, TokenMode, CANARY_PASSWORD, USER};
use satchel_tests::{bin, free_port, wait_for, Daemon, Registry, RegistrySetup};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails if the canary password shows up in `what`.
fn no_canary(what: &str, haystack: &str) {
    assert!(
        !haystack.contains(CANARY_PASSWORD),
        "the password leaked into {what}: {haystack}"
    );
}

fn login(daemon: &Daemon, registry: &str, password: &str, plain_http: bool) -> Output {
    let mut args = vec!["login", registry, "-u", USER, "--password-stdin"];
    if plain_http {
        args.push("--plain-http");
    }
    daemon.satchel_stdin(&args, &format!("{password}\n"))
}

fn small_file(daemon: &Daemon, name: &str) -> String {
    let path = daemon.scratch().join(name);
    std::fs::write(&path, format!("content of {name}")).unwrap();
    path.display().to_string()
}

#[test]
fn htpasswd_registry_login_push_pull_logout() {
    let daemon = Daemon::start();
    let pw = daemon.scratch().join("htpasswd");
    htpasswd(&pw, USER, CANARY_PASSWORD);
    let registry = Registry::start_with(RegistrySetup {
        htpasswd: Some(pw),
        ..Default::default()
    });
    let reference = format!("{}/demo/basic:v1", registry.addr);
    let file = small_file(&daemon, "a.txt");
    let mut outputs = String::new();

    // Anonymous: refused with UNAUTHENTICATED.
    let err = daemon.fails(&["push", "--plain-http", &reference, &file]);
    assert!(err.contains("UNAUTHENTICATED"), "{err}");

    // A wrong password: one line, UNAUTHENTICATED, nothing stored.
    let out = login(&daemon, &registry.addr, "not-the-password", true);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("UNAUTHENTICATED") && !err.contains("not-the-password"),
        "{err}"
    );
    assert!(!daemon.docker_config().exists());

    let out = login(&daemon, &registry.addr, CANARY_PASSWORD, true);
    assert!(out.status.success(), "{}", text(&out));
    outputs += &text(&out);
    let mode = std::fs::metadata(daemon.docker_config())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    outputs += &daemon.ok(&["push", "--plain-http", &reference, &file]);
    let out_dir = daemon.scratch().join("out");
    outputs += &daemon.pull_plain(&reference, &out_dir);
    assert!(out_dir.join("a.txt").exists());

    let listed = daemon.ok(&["credentials"]);
    assert!(
        listed.contains(&registry.addr) && listed.contains(USER),
        "{listed}"
    );
    outputs += &listed;

    outputs += &daemon.ok(&["logout", &registry.addr]);
    let err = daemon.fails(&["resolve", "--plain-http", &reference]);
    assert!(err.contains("UNAUTHENTICATED"), "{err}");
    outputs += &err;

    no_canary("CLI output", &outputs);
    no_canary("the daemon log", &daemon.log());
}

#[test]
fn htpasswd_registry_over_tls_with_a_private_ca() {
    let scratch = tempfile::tempdir().unwrap();
    let pki = Pki::new(&scratch.path().join("pki"));
    let (cert, key) = pki.server();
    let pw = scratch.path().join("htpasswd");
    htpasswd(&pw, USER, CANARY_PASSWORD);
    let registry = Registry::start_with(RegistrySetup {
        htpasswd: Some(pw),
        tls: Some((cert, key)),
        ..Default::default()
    });
    let reference = format!("{}/demo/tls:v1", registry.addr);

    // Without the CA, the certificate is not trusted; localhost and
    // 127.0.0.1 get no special treatment.
    let untrusting = Daemon::start();
    let out = login(&untrusting, &registry.addr, CANARY_PASSWORD, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("UNAVAILABLE") && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    let config = scratch.path().join("satcheld.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{}\"]\nca_file = \"{}\"\n",
            registry.addr,
            pki.ca().display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start_with(&["--config", config.to_str().unwrap()]);
    let out = login(&daemon, &registry.addr, CANARY_PASSWORD, false);
    assert!(out.status.success(), "{}", text(&out));
    let file = small_file(&daemon, "b.txt");
    daemon.ok(&["push", &reference, &file]);
    let digest = daemon.ok(&["resolve", &reference]);
    assert!(digest.starts_with("sha256:"));
    no_canary("the daemon log", &daemon.log());
    no_canary("the other daemon's log", &untrusting.log());
}

#[test]
fn token_registry_fetches_one_token_per_scope_for_500_operations() {
    let scratch = tempfile::tempdir().unwrap();
    let (issuer, registry) = token_world(scratch.path());
    let daemon = Daemon::start();
    let out = login(&daemon, &registry.addr, CANARY_PASSWORD, true);
    assert!(out.status.success(), "{}", text(&out));
    let mut outputs = text(&out);

    let repo = format!("{}/demo/tokens", registry.addr);
    let file = small_file(&daemon, "t.txt");
    // 100 pushes, then 400 pulls of what they pushed, eight at a time,
    // through one daemon.
    let ops: Vec<Vec<String>> = (0..500)
        .map(|i| {
            if i < 100 {
                vec![
                    "push".into(),
                    "--plain-http".into(),
                    format!("{repo}:v{i}"),
                    file.clone(),
                ]
            } else {
                let out = daemon.scratch().join(format!("out{i}"));
                vec![
                    "pull".into(),
                    "--plain-http".into(),
                    format!("{repo}:v{}", i % 100),
                    "-o".into(),
                    out.display().to_string(),
                ]
            }
        })
        .collect();
    for batch in ops.chunks(8) {
        let children: Vec<_> = batch
            .iter()
            .map(|args| {
                Command::new(bin("satchel"))
                    .arg("--addr")
                    .arg(&daemon.addr)
                    .args(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            outputs += &text(&out);
        }
    }
    let issued = issuer.issued();
    let push_scope = "repository:demo/tokens:pull,push";
    let pull_scope = "repository:demo/tokens:pull";
    assert_eq!(issued.get(push_scope), Some(&1), "{issued:?}");
    assert_eq!(issued.get(pull_scope), Some(&1), "{issued:?}");
    // The only other token is login's check, which asks for no scope.
    assert_eq!(issued.values().sum::<u64>(), 3, "{issued:?}");
    eprintln!("token fetches for 500 operations: {issued:?}");
    no_canary("CLI output", &outputs);
    no_canary("the daemon log", &daemon.log());
}

#[test]
fn expired_tokens_are_replaced_without_the_caller_noticing() {
    let scratch = tempfile::tempdir().unwrap();
    let (issuer, registry) = token_world(scratch.path());
    // Every resolve asks the registry (no tag cache), so each needs a token.
    let daemon = Daemon::start_with_config("registry_tag_cache_secs = 0\n");
    assert!(login(&daemon, &registry.addr, CANARY_PASSWORD, true)
        .status
        .success());
    let reference = format!("{}/demo/expiry:v1", registry.addr);
    // Short-lived tokens from here on.
    issuer.set_mode(TokenMode::Valid { expires_in: 2 });
    daemon.ok(&[
        "push",
        "--plain-http",
        &reference,
        &small_file(&daemon, "e.txt"),
    ]);
    let pull_scope = "repository:demo/expiry:pull".to_string();
    let count = || issuer.issued().get(&pull_scope).copied().unwrap_or(0);

    // They are refreshed before they run out.
    daemon.ok(&["resolve", "--plain-http", &reference]);
    let before = count();
    assert!(before >= 1);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    daemon.ok(&["resolve", "--plain-http", &reference]);
    assert_eq!(count(), before + 1);

    // A token the registry refuses (expired by its clock, not ours) is
    // evicted and fetched again, once, inside the same call.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    issuer.set_mode(TokenMode::StaleOnce);
    daemon.ok(&["resolve", "--plain-http", &reference]);
    assert_eq!(count(), before + 3, "{:?}", issuer.issued());
    no_canary("the daemon log", &daemon.log());
}

#[test]
fn a_mount_asks_for_the_source_repository_in_its_token() {
    let scratch = tempfile::tempdir().unwrap();
    let (issuer, registry) = token_world(scratch.path());
    let daemon = Daemon::start();
    assert!(login(&daemon, &registry.addr, CANARY_PASSWORD, true)
        .status
        .success());
    let file = small_file(&daemon, "m.txt");
    for repo in ["m1", "m2"] {
        daemon.ok(&[
            "push",
            "--plain-http",
            &format!("{}/demo/{repo}:v1", registry.addr),
            &file,
        ]);
    }
    let issued = issuer.issued();
    assert!(
        issued.contains_key("repository:demo/m2:pull,push repository:demo/m1:pull"),
        "{issued:?}"
    );
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&format!("{}/demo/m2:v1", registry.addr), &out);
    assert!(out.join("m.txt").exists());
    no_canary("the daemon log", &daemon.log());
}

#[test]
fn credential_helpers_store_and_serve_secrets_without_leaking_them() {
    let dir = tempfile::tempdir().unwrap();
    let helpers = dir.path().join("helpers");
    std::fs::create_dir_all(&helpers).unwrap();
    // A real helper, speaking docker's protocol over a file store.
    let store = dir.path().join("helper-store.json");
    let script = format!(
        r#"#!/bin/sh
store="{store}"
case "$1" in
  store) cat > "$store" ;;
  get)
    read -r url
    if [ -s "$store" ] && grep -q "\"ServerURL\":\"$url\"" "$store"; then cat "$store"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) rm -f "$store" ;;
  list) if [ -s "$store" ]; then python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({{d["ServerURL"]: d["Username"]}}))' "$store"; else echo '{{}}'; fi ;;
esac
"#,
        store = store.display()
    );
    let helper = helpers.join("docker-credential-satcheltest");
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A broken helper that prints the secret and fails.
    let broken = helpers.join("docker-credential-broken");
    std::fs::write(
        &broken,
        format!("#!/bin/sh\necho '{{\"Secret\":\"{CANARY_PASSWORD}\"}}'\nexit 3\n"),
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();

    let pw = dir.path().join("htpasswd");
    htpasswd(&pw, USER, CANARY_PASSWORD);
    let registry = Registry::start_with(RegistrySetup {
        htpasswd: Some(pw.clone()),
        ..Default::default()
    });
    // A second registry whose credentials come from the broken helper.
    let other = Registry::start_with(RegistrySetup {
        htpasswd: Some(pw),
        ..Default::default()
    });
    std::fs::create_dir_all(dir.path().join("docker")).unwrap();
    std::fs::write(
        dir.path().join("docker/config.json"),
        format!(
            r#"{{"credsStore":"satcheltest","credHelpers":{{"{}":"broken"}}}}"#,
            other.addr
        ),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helpers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Daemon::start_in(dir, &[], &[("PATH", &path)]);

    let out = login(&daemon, &registry.addr, CANARY_PASSWORD, true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("docker-credential-satcheltest"),
        "{}",
        text(&out)
    );
    // The secret went to the helper, not into config.json.
    let config = std::fs::read_to_string(daemon.docker_config()).unwrap();
    no_canary("config.json", &config);
    assert!(std::fs::read_to_string(&store)
        .unwrap()
        .contains(CANARY_PASSWORD));

    let reference = format!("{}/demo/helper:v1", registry.addr);
    let mut outputs = daemon.ok(&[
        "push",
        "--plain-http",
        &reference,
        &small_file(&daemon, "h.txt"),
    ]);
    let listed = daemon.ok(&["credentials"]);
    assert!(
        listed.contains(USER) && listed.contains("docker-credential-satcheltest"),
        "{listed}"
    );
    outputs += &listed;

    let err = daemon.fails(&["resolve", "--plain-http", &format!("{}/x:y", other.addr)]);
    assert!(
        err.contains("docker-credential-broken") && err.contains("UNAUTHENTICATED"),
        "{err}"
    );
    outputs += &err;

    outputs += &daemon.ok(&["logout", &registry.addr]);
    assert!(!store.exists());
    no_canary("CLI output", &outputs);
    no_canary("the daemon log", &daemon.log());
}

/// Starts satcheld on a TCP port with extra flags; returns it and its address.
fn tcp_daemon(args: &[&str]) -> (std::process::Child, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(bin("satcheld"))
        .args(["--listen", &listen])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "satcheld on TCP",
        std::time::Duration::from_secs(30),
        || std::net::TcpStream::connect(&listen).is_ok(),
    );
    (child, format!("https://127.0.0.1:{port}"))
}

fn satchel_at(addr: &str, extra: &[&str], args: &[&str]) -> Output {
    Command::new(bin("satchel"))
        .args(["--addr", addr])
        .args(extra)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn tcp_listener_needs_tls_and_a_token_or_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let (cert, key) = pki.server();
    let (client_cert, client_key) = pki.client();
    let token = dir.path().join("token");
    std::fs::write(&token, "daemon-token-0123456789\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "daemon-token-9876543210\n").unwrap();
    let layout = dir.path().join("layout");
    satchel_tests::subject_layout(&layout, "latest");
    let subject = format!("{}:latest", layout.display());
    // TCP callers are remote: they may name only layouts under a root.
    let config = dir.path().join("satcheld.toml");
    std::fs::write(&config, format!("layout_roots = [{:?}]\n", dir.path())).unwrap();
    let cfg = config.to_str().unwrap();
    let (c, k, ca, t) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        pki.ca(),
        token.to_str().unwrap(),
    );
    let ca = ca.to_str().unwrap();

    // TLS and a bearer token.
    let (mut daemon, addr) = tcp_daemon(&[
        "--tls-cert",
        c,
        "--tls-key",
        k,
        "--auth-token-file",
        t,
        "--config",
        cfg,
    ]);
    let ok = satchel_at(
        &addr,
        &["--tls-ca", ca, "--token-file", t],
        &["resolve", "--oci-layout", &subject],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    for extra in [
        vec!["--tls-ca", ca],
        vec!["--tls-ca", ca, "--token-file", wrong.to_str().unwrap()],
    ] {
        let out = satchel_at(&addr, &extra, &["resolve", "--oci-layout", &subject]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("UNAUTHENTICATED"), "{err}");
        assert!(!err.contains("daemon-token"), "{err}");
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    // mTLS: a client certificate from the CA, or no connection.
    let (mut daemon, addr) = tcp_daemon(&[
        "--tls-cert",
        c,
        "--tls-key",
        k,
        "--tls-client-ca",
        ca,
        "--config",
        cfg,
    ]);
    let ok = satchel_at(
        &addr,
        &[
            "--tls-ca",
            ca,
            "--tls-cert",
            client_cert.to_str().unwrap(),
            "--tls-key",
            client_key.to_str().unwrap(),
        ],
        &["resolve", "--oci-layout", &subject],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let out = satchel_at(
        &addr,
        &["--tls-ca", ca],
        &["resolve", "--oci-layout", &subject],
    );
    assert!(!out.status.success());
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    // A plain TCP listener on a non-loopback address is refused.
    let out = Command::new(bin("satcheld"))
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-listen"));
}

#[test]
fn unix_socket_is_private_unless_opened_to_a_group() {
    let daemon = Daemon::start();
    let socket = daemon.addr.trim_start_matches("unix://").to_string();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("g.sock");
    let mut child = Command::new(bin("satcheld"))
        .args([
            "--listen",
            &format!("unix://{}", socket.display()),
            "--socket-group",
            "0",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the group socket",
        std::time::Duration::from_secs(30),
        || socket.exists(),
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mode & 0o777, 0o660);
}
