//! Bad input, group "gRPC requests": malformed, oversized and
//! contradictory calls straight to a real satcheld, each answered with the
//! exact code, a message short enough for any gRPC client's header limit,
//! and nothing pushed to the registry behind it.

use std::collections::HashMap;

use satchel_client::{pb, Code};
use satchel_tests::{http_get, Daemon, Registry};

/// The longest message satcheld sends (server/src/grpc/status.rs).
const MAX_MESSAGE: usize = 1024;

use satchel_tests::grpc::{plain_target as target, pull_error};

fn check(what: &str, status: tonic::Status, expected: Code) {
    assert_eq!(status.code(), expected, "{what}: {status:?}");
    assert!(
        status.message().len() <= MAX_MESSAGE,
        "{what}: a {}-byte message",
        status.message().len()
    );
    assert!(
        !status.message().contains('\u{1b}'),
        "{what}: a raw escape in {:?}",
        status.message()
    );
}

/// The repository has no tags: nothing was pushed.
fn nothing_pushed(registry: &Registry, repo: &str) {
    let (status, body) = http_get(&registry.addr, &format!("/v2/{repo}/tags/list")).unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        status == 404 || !body.contains("\"tags\":[\""),
        "{repo} has tags: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unary_requests_are_refused_with_short_messages() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let long = format!("{}/{}:v1", registry.addr, "a".repeat(10_000));
    let escape = format!("{}/demo/\u{1b}[31mred:v1", registry.addr);
    let cases: Vec<(&str, pb::ResolveRequest, Code)> = vec![
        (
            "a 10 KB reference",
            pb::ResolveRequest {
                target: target(&long),
            },
            Code::InvalidArgument,
        ),
        (
            "a reference with a terminal escape",
            pb::ResolveRequest {
                target: target(&escape),
            },
            Code::InvalidArgument,
        ),
        (
            "no target",
            pb::ResolveRequest { target: None },
            Code::InvalidArgument,
        ),
        (
            "an empty reference",
            pb::ResolveRequest { target: target("") },
            Code::InvalidArgument,
        ),
        (
            "a reference and a layout at once",
            pb::ResolveRequest {
                target: Some(pb::Target {
                    reference: format!("{}/demo/x:v1", registry.addr),
                    oci_layout: "/tmp".into(),
                    ..Default::default()
                }),
            },
            Code::InvalidArgument,
        ),
        (
            "an unknown referrers mode",
            pb::ResolveRequest {
                target: Some(pb::Target {
                    reference: format!("{}/demo/x:v1", registry.addr),
                    plain_http: true,
                    referrers_mode: 99,
                    ..Default::default()
                }),
            },
            Code::InvalidArgument,
        ),
        (
            "a digest that is not one",
            pb::ResolveRequest {
                target: target(&format!("{}/demo/x@sha256:zz", registry.addr)),
            },
            Code::InvalidArgument,
        ),
    ];
    for (what, request, code) in cases {
        let status = client.resolve(request).await.unwrap_err();
        check(what, status, code);
    }

    // The client's own limit would stop it first: lift it, as a client in
    // another language might.
    let status = client
        .clone()
        .max_encoding_message_size(64 << 20)
        .discover(pb::DiscoverRequest {
            subject: target(&format!("{}/demo/x:v1", registry.addr)),
            artifact_type: "t".repeat(9 << 20),
            depth: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    check("a 9 MiB discover request", status, Code::ResourceExhausted);

    for (what, request) in [
        ("a pull of nothing", pb::PullRequest::default()),
        (
            "a subject pull without an artifact type",
            pb::PullRequest {
                subject: target(&format!("{}/demo/x:v1", registry.addr)),
                ..Default::default()
            },
        ),
    ] {
        let status = pull_error(&mut client, request, what).await;
        check(what, status, Code::InvalidArgument);
    }

    for (what, request, code) in [
        (
            "a malformed digest",
            pb::DownloadBlobRequest {
                digest: "sha256:nothex".into(),
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            "an unknown blob without a source",
            pb::DownloadBlobRequest {
                digest: format!("sha256:{}", "0".repeat(64)),
                ..Default::default()
            },
            Code::NotFound,
        ),
    ] {
        let status = match client.download_blob(request).await {
            Err(status) => status,
            Ok(stream) => stream.into_inner().message().await.unwrap_err(),
        };
        check(what, status, code);
    }

    for (what, registry_name) in [
        ("an empty registry", String::new()),
        (
            "a registry with an escape",
            "bad\u{1b}[2Jhost:5000".to_string(),
        ),
        ("a 10 KB registry", "r".repeat(10_000)),
    ] {
        let status = client
            .login(pb::LoginRequest {
                registry: registry_name,
                username: "u".into(),
                password: "p".into(),
                plain_http: true,
            })
            .await
            .unwrap_err();
        check(what, status, Code::InvalidArgument);
    }
}

/// A push request stream: the header (if any), then `chunks`.
fn push_stream(
    header: Option<pb::PushHeader>,
    chunks: Vec<pb::FileChunk>,
) -> tokio_stream::Iter<std::vec::IntoIter<pb::PushRequest>> {
    let header = header.map(|h| pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(h)),
    });
    let chunks = chunks.into_iter().map(|c| pb::PushRequest {
        payload: Some(pb::push_request::Payload::Chunk(c)),
    });
    tokio_stream::iter(header.into_iter().chain(chunks).collect::<Vec<_>>())
}

fn header(reference: &str, files: Vec<pb::FileSpec>) -> pb::PushHeader {
    pb::PushHeader {
        target: target(reference),
        artifact: Some(pb::ArtifactSpec {
            files,
            ..Default::default()
        }),
    }
}

fn file(name: &str, size: u64, digest: &str) -> pb::FileSpec {
    pb::FileSpec {
        name: name.into(),
        media_type: "text/plain".into(),
        size: Some(size),
        digest: digest.into(),
        annotations: HashMap::new(),
        from_content_store: false,
    }
}

fn chunk(index: u32, data: &[u8]) -> pb::FileChunk {
    pb::FileChunk {
        file_index: index,
        data: data.to_vec().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pushes_are_refused_and_push_nothing() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let client = satchel_client::connect(&daemon.addr).await.unwrap();
    let data = b"hello, bad input";
    let good = satchel_tests::sha256(data);
    let other = satchel_tests::sha256(b"something else");
    let big = vec![0u8; 9 << 20];
    let cases: Vec<(&str, Option<pb::PushHeader>, Vec<pb::FileChunk>, Code)> = vec![
        (
            "no header first",
            None,
            vec![chunk(0, data)],
            Code::InvalidArgument,
        ),
        (
            "a chunk for a file that is not declared",
            Some(header("r1", vec![file("a.txt", 16, "")])),
            vec![chunk(3, data)],
            Code::InvalidArgument,
        ),
        (
            "more bytes than the declared size",
            Some(header("r2", vec![file("a.txt", 4, "")])),
            vec![chunk(0, data)],
            Code::DataLoss,
        ),
        (
            "fewer bytes than the declared size",
            Some(header("r3", vec![file("a.txt", 1000, "")])),
            vec![chunk(0, data)],
            Code::DataLoss,
        ),
        (
            "bytes that do not match the declared digest",
            Some(header("r4", vec![file("a.txt", 16, &other)])),
            vec![chunk(0, data)],
            Code::DataLoss,
        ),
        (
            "a malformed digest",
            Some(header("r5", vec![file("a.txt", 16, "sha256:xyz")])),
            vec![chunk(0, data)],
            Code::InvalidArgument,
        ),
        (
            "a title that climbs out",
            Some(header("r6", vec![file("../a.txt", 16, &good)])),
            vec![chunk(0, data)],
            Code::InvalidArgument,
        ),
        (
            "a 9 MiB chunk",
            Some(header("r7", vec![file("a.txt", 9 << 20, "")])),
            vec![chunk(0, &big)],
            Code::ResourceExhausted,
        ),
    ];
    for (what, header, chunks, code) in cases {
        let repo = header
            .as_ref()
            .and_then(|h| h.target.as_ref())
            .map(|t| t.reference.clone())
            .unwrap_or_else(|| "r0".into());
        let reference = format!("{}/bad/{repo}:v1", registry.addr);
        let header = header.map(|mut h| {
            h.target = target(&reference);
            h
        });
        let mut unlimited = client.clone().max_encoding_message_size(64 << 20);
        let status = match unlimited.push(push_stream(header, chunks)).await {
            Err(status) => status,
            Ok(events) => {
                let mut events = events.into_inner();
                loop {
                    match events.message().await {
                        Err(status) => break status,
                        Ok(Some(pb::PushResponse {
                            event: Some(pb::push_response::Event::Result(r)),
                        })) => panic!("{what} pushed {r:?}"),
                        Ok(Some(_)) => continue,
                        Ok(None) => panic!("{what}: the push ended without an answer"),
                    }
                }
            }
        };
        check(what, status, code);
        nothing_pushed(&registry, &format!("bad/{repo}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_ends_a_stream_that_already_started() {
    // tonic's client enforces a deadline itself only until the answer's
    // headers; what ends this stream is the daemon's DEADLINE_EXCEEDED
    // (tonic's server alone would let it run).
    use satchel_tests::hostile::{Action, HostileRegistry, Response};
    let registry = Registry::start();
    let daemon = Daemon::start();
    let file = daemon.scratch().join("slow.bin");
    std::fs::write(&file, vec![7u8; 64 << 10]).unwrap();
    let reference = format!("{}/demo/slow:v1", registry.addr);
    daemon.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
    // The blob comes at 2 KiB a second: steady enough for the daemon's
    // patience, far too slow for the caller's.
    let upstream = registry.addr.clone();
    let front = HostileRegistry::start(move |req| {
        if req.method == "GET" && req.path.contains("/blobs/sha256:") {
            return Action::Trickle(
                Response::new(200, &[], vec![7u8; 64 << 10]),
                std::time::Duration::from_micros(500),
            );
        }
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        }
    });
    let daemon = Daemon::start_with(&["--no-cache"]);
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let mut request = tonic::Request::new(pb::PullRequest {
        target: target(&format!("{}/demo/slow:v1", front.addr)),
        ..Default::default()
    });
    request.set_timeout(std::time::Duration::from_secs(2));
    let mut stream = client
        .pull(request)
        .await
        .expect("the pull starts")
        .into_inner();
    let mut messages = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => messages += 1,
            Ok(None) => panic!("the slow pull finished within its deadline"),
            Err(status) => break status,
        }
    };
    assert!(messages > 0, "the stream never started");
    check("a stream past its deadline", status, Code::DeadlineExceeded);
}
