//! Bad input, group "secrets": the daemon holds passwords and tokens, and
//! registries, helpers and callers try to get them back out. Each case
//! looks for its canary in the gRPC answer itself (message and metadata),
//! the CLI's output where the CLI is involved, the daemon's debug log and
//! every file the daemon keeps (its content store included).

use satchel_client::{pb, Code};
use satchel_tests::auth::{htpasswd_registry, token_world, CANARY_PASSWORD, USER};
use satchel_tests::hostile::{Action, HostileRegistry, Request, Response};
use satchel_tests::leaks::{basic_b64, kept_secret};
use satchel_tests::{Daemon, Registry};

/// A signature in a presigned blob-storage URL.
const CANARY_SIGNATURE: &str = "canary-sig-0d9e8f7a6b";

use satchel_tests::grpc::plain_target as target;

fn forward(upstream: &str) -> Action {
    Action::Forward {
        upstream: upstream.to_string(),
        tamper: Box::new(|_| {}),
    }
}

/// The first error of a pull stream.
async fn pull_error(client: &mut satchel_client::Client, reference: &str) -> tonic::Status {
    let request = pb::PullRequest {
        target: target(reference),
        ..Default::default()
    };
    let what = format!("the pull of {reference}");
    satchel_tests::grpc::pull_error(client, request, &what).await
}

async fn login(client: &mut satchel_client::Client, registry: &str, password: &str) -> String {
    match client
        .login(pb::LoginRequest {
            registry: registry.to_string(),
            username: USER.to_string(),
            password: password.to_string(),
            plain_http: true,
        })
        .await
    {
        Ok(answer) => format!("{:?}", answer.into_inner()),
        Err(status) => format!("{status:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_never_comes_back_in_the_login_answer() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let wrong = "canary-wrong-9c1d2e";
    let answer = login(&mut client, &registry.addr, wrong).await;
    assert!(answer.contains("Unauthenticated"), "{answer}");
    kept_secret(&daemon, &answer, &[wrong]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_listing_and_login_answer_hold_no_secret() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let answer = login(&mut client, &registry.addr, CANARY_PASSWORD).await;
    assert!(answer.contains("stored_in"), "{answer}");
    let listing = client
        .list_credentials(pb::ListCredentialsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        listing
            .credentials
            .iter()
            .any(|c| c.registry == registry.addr),
        "{listing:?}"
    );
    let answers = format!("{answer} {listing:?}");
    kept_secret(&daemon, &answers, &[CANARY_PASSWORD, &basic_b64()]);
}

/// A front that answers GETs of manifests carrying credentials with a 400
/// quoting them, and forwards everything else to `upstream`.
fn echoing_front(upstream: String) -> HostileRegistry {
    HostileRegistry::start(move |req: &Request| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        if req.method == "GET" && req.path.contains("/manifests/") && !auth.is_empty() {
            let body = serde_json::json!({"errors": [{
                "code": "DENIED",
                "message": format!("refused {auth} for {USER}:{CANARY_PASSWORD}"),
            }]});
            return Action::Reply(Response::new(
                400,
                &[("Content-Type", "application/json")],
                body.to_string(),
            ));
        }
        forward(&upstream)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_basic_credential_is_scrubbed_from_the_grpc_status() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = htpasswd_registry(scratch.path());
    let front = echoing_front(registry.addr.clone());
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    login(&mut client, &front.addr, CANARY_PASSWORD).await;
    let reference = format!("{}/demo/echo:v1", front.addr);
    let file = daemon.scratch().join("f.txt");
    std::fs::write(&file, "some bytes").unwrap();
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let status = pull_error(&mut client, &reference).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("[redacted]"), "{status:?}");
    kept_secret(
        &daemon,
        &format!("{status:?}"),
        &[CANARY_PASSWORD, &basic_b64()],
    );
}

/// The bearer tokens `front` saw.
fn tokens_seen(front: &HostileRegistry) -> Vec<String> {
    let mut tokens: Vec<String> = front
        .seen()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .filter_map(|a| a.strip_prefix("Bearer "))
        .map(str::to_string)
        .collect();
    tokens.sort();
    tokens.dedup();
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_bearer_token_is_scrubbed_from_the_grpc_status() {
    let scratch = tempfile::tempdir().unwrap();
    let (_issuer, registry) = token_world(scratch.path());
    let front = echoing_front(registry.addr.clone());
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    login(&mut client, &front.addr, CANARY_PASSWORD).await;
    let reference = format!("{}/demo/token-echo:v1", front.addr);
    let file = daemon.scratch().join("f.txt");
    std::fs::write(&file, "token bytes").unwrap();
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let status = pull_error(&mut client, &reference).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let tokens = tokens_seen(&front);
    assert!(!tokens.is_empty(), "no bearer token went to the registry");
    let b64 = basic_b64();
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.extend([CANARY_PASSWORD, b64.as_str()]);
    kept_secret(&daemon, &format!("{status:?}"), &secrets);
}

#[test]
fn debug_logs_of_token_pushes_and_pulls_hold_no_token_and_no_password() {
    let scratch = tempfile::tempdir().unwrap();
    let (_issuer, registry) = token_world(scratch.path());
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |_| forward(&upstream));
    let daemon = Daemon::start();
    let out = daemon.satchel_stdin(
        &[
            "login",
            &front.addr,
            "-u",
            USER,
            "--password-stdin",
            "--plain-http",
        ],
        &format!("{CANARY_PASSWORD}\n"),
    );
    assert!(out.status.success());
    let reference = format!("{}/demo/quiet:v1", front.addr);
    let file = daemon.scratch().join("q.txt");
    std::fs::write(&file, "quiet bytes").unwrap();
    let pushed = daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    let out_dir = daemon.scratch().join("out");
    let pulled = daemon.ok(&[
        "pull",
        "--plain-http",
        &reference,
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    let tokens = tokens_seen(&front);
    assert!(!tokens.is_empty(), "no bearer token went to the registry");
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let b64 = basic_b64();
    secrets.extend([CANARY_PASSWORD, b64.as_str()]);
    kept_secret(&daemon, &format!("{pushed}{pulled}"), &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presigned_redirect_url_never_reaches_an_answer_or_the_log() {
    let registry = Registry::start();
    let storage = HostileRegistry::start(|_| Action::Hangup);
    let storage_addr = storage.addr.clone();
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        if req.method == "GET" && req.path.contains("/blobs/sha256:") {
            let location =
                format!("http://{storage_addr}/bucket/blob?X-Amz-Signature={CANARY_SIGNATURE}");
            return Action::Reply(Response::new(307, &[("Location", location.as_str())], ""));
        }
        forward(&upstream)
    });
    let daemon = Daemon::start();
    let reference = format!("{}/demo/presigned:v1", front.addr);
    let file = daemon.scratch().join("p.txt");
    std::fs::write(&file, "presigned bytes").unwrap();
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    // A fresh daemon, so the blob is not in its content store.
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let status = pull_error(&mut client, &reference).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        storage
            .seen()
            .iter()
            .any(|r| r.path.contains(CANARY_SIGNATURE)),
        "the redirect was not followed"
    );
    let out_dir = daemon.scratch().join("out");
    let cli = daemon.fails(&[
        "pull",
        "--plain-http",
        &reference,
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    kept_secret(&daemon, &format!("{status:?} {cli}"), &[CANARY_SIGNATURE]);
}
