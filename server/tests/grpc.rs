//! The daemon's gRPC surface, served by `satcheld::run` on an ephemeral
//! loopback port: health, reflection (v1 and v1alpha), and the status codes
//! bad requests get.

use satchel_proto::v1 as pb;
use satchel_proto::v1::satchel_service_client::SatchelServiceClient;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::Code;

struct Server {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start() -> Server {
    start_with(satcheld::Config::default()).await
}

async fn start_with(config: satcheld::Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(satcheld::run(
        satcheld::Listener::Tcp(listener),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

impl Server {
    async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.done.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn health_reports_serving() {
    let server = start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for service in ["", "satchel.v1.SatchelService"] {
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }
    server.shutdown().await;
}

/// `--health-listen`: grpc.health.v1 alone, in plain text and without a
/// token, beside a listener that requires one; the API is not there.
#[tokio::test]
async fn the_health_listener_answers_health_alone() {
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let health_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = start_with(satcheld::Config {
        auth_token: Some(satchel_oci::auth::Secret::new("t0ken")),
        health_listen: Some(health_addr),
        ..Default::default()
    })
    .await;
    // The health listener is bound once the daemon has started.
    let endpoint = Channel::from_shared(format!("http://{health_addr}")).unwrap();
    let mut tries = 0;
    let channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the health listener never listened: {e}"),
        }
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "satchel.v1.SatchelService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let mut with_token = tonic::Request::new(pb::ResolveRequest {
        target: target("localhost:5000/a:b", ""),
    });
    with_token
        .metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    let err = SatchelServiceClient::new(channel)
        .resolve(with_token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_api() {
    let server = start().await;
    let channel = server.channel().await;
    {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let mut client = ServerReflectionClient::new(channel.clone());
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::once(req))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("unexpected reflection answer");
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"satchel.v1.SatchelService".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"grpc.health.v1.Health".to_string()),
            "{names:?}"
        );
    }
    {
        use tonic_reflection::pb::v1alpha::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let mut client = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "satchel.v1.SatchelService".into(),
            )),
        };
        let mut stream = client
            .server_reflection_info(tokio_stream::once(req))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.next().await.unwrap().unwrap();
        assert!(matches!(
            resp.message_response,
            Some(MessageResponse::FileDescriptorResponse(_))
        ));
    }
    server.shutdown().await;
}

/// The chunk "hello" for file 0.
fn right_chunk() -> pb::PushRequest {
    pb::PushRequest {
        payload: Some(pb::push_request::Payload::Chunk(pb::FileChunk {
            file_index: 0,
            data: b"hello".to_vec().into(),
        })),
    }
}

type Client = SatchelServiceClient<Channel>;

/// Runs a Push and returns its result, or the error from the call or from
/// its stream of events.
async fn push(
    client: &mut Client,
    requests: impl tokio_stream::Stream<Item = pb::PushRequest> + Send + 'static,
) -> Result<pb::PushResult, tonic::Status> {
    let events = client.push(requests).await?.into_inner();
    last_result(events).await
}

/// Runs an Attach like [`push`].
async fn attach(
    client: &mut Client,
    requests: impl tokio_stream::Stream<Item = pb::AttachRequest> + Send + 'static,
) -> Result<pb::PushResult, tonic::Status> {
    let events = client.attach(requests).await?.into_inner();
    last_result(events.map(|e| e.map(pb::PushResponse::from))).await
}

async fn last_result(
    mut events: impl tokio_stream::Stream<Item = Result<pb::PushResponse, tonic::Status>> + Unpin,
) -> Result<pb::PushResult, tonic::Status> {
    while let Some(event) = events.next().await {
        if let Some(pb::push_response::Event::Result(r)) = event?.event {
            return Ok(r);
        }
    }
    Err(tonic::Status::internal("no result"))
}

fn target(reference: &str, layout: &str) -> Option<pb::Target> {
    Some(pb::Target {
        reference: reference.into(),
        oci_layout: layout.into(),
        plain_http: true,
        ..Default::default()
    })
}

#[tokio::test]
async fn bad_requests_get_the_right_codes() {
    let dir = tempfile::tempdir().unwrap();
    // A TCP caller may name layouts only under a layout root.
    let server = start_with(satcheld::Config {
        layout_roots: vec![dir.path().to_path_buf()],
        ..Default::default()
    })
    .await;
    let mut client = SatchelServiceClient::new(server.channel().await);
    let layout = dir.path().join("layout");

    let resolve = |t| pb::ResolveRequest { target: t };
    let err = client
        .resolve(resolve(target("Not A Reference", "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let err = client.resolve(resolve(None)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let err = client
        .resolve(resolve(target("v1", "relative/path")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let err = client
        .resolve(resolve(target("v1", layout.to_str().unwrap())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // Nothing listens on port 1.
    let err = client
        .resolve(resolve(target("127.0.0.1:1/app:v1", "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // A push whose first message is not a header.
    let chunk = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Chunk(pb::FileChunk {
            file_index: 0,
            data: b"x".to_vec().into(),
        })),
    };
    let err = push(&mut client, tokio_stream::once(chunk))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // A file whose bytes do not match its declared digest: DATA_LOSS, and
    // the layout gets no blob and no manifest.
    let header = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(pb::PushHeader {
            target: target("v1", layout.to_str().unwrap()),
            artifact: Some(pb::ArtifactSpec {
                files: vec![pb::FileSpec {
                    name: "a.txt".into(),
                    size: Some(5),
                    digest:
                        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
                            .into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })),
    };
    let wrong = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Chunk(pb::FileChunk {
            file_index: 0,
            data: b"HELLO".to_vec().into(),
        })),
    };
    let err = push(&mut client, tokio_stream::iter([header.clone(), wrong]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err}");
    let blobs = layout.join("blobs/sha256");
    let stored: Vec<_> = std::fs::read_dir(&blobs)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(stored.is_empty(), "{stored:?}");

    // More bytes than the declared size: DATA_LOSS.
    let mut short = header.clone();
    if let Some(pb::push_request::Payload::Header(h)) = &mut short.payload {
        let f = &mut h.artifact.as_mut().unwrap().files[0];
        f.size = Some(2);
        f.digest = "sha256:b2c7e1d5e9a7b8e4b8f3bbd6e0c1e6f3dbba1d7d2d7f1c5f6ff5c4c6dd4f1e3b".into();
    }
    let err = push(&mut client, tokio_stream::iter([short, right_chunk()]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err}");

    // A title that escapes: refused before anything is stored.
    let mut evil = header.clone();
    if let Some(pb::push_request::Payload::Header(h)) = &mut evil.payload {
        h.artifact.as_mut().unwrap().files[0].name = "../x".into();
    }
    let err = push(&mut client, tokio_stream::once(evil))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // The right bytes go through.
    let resp = push(&mut client, tokio_stream::iter([header, right_chunk()]))
        .await
        .unwrap();
    assert_eq!(resp.tags, vec!["v1".to_string()]);

    // Attach needs an artifact type.
    let request = pb::AttachRequest {
        payload: Some(pb::attach_request::Payload::Header(pb::AttachHeader {
            subject: target("v1", layout.to_str().unwrap()),
            artifact: Some(pb::ArtifactSpec::default()),
        })),
    };
    let err = attach(&mut client, tokio_stream::once(request))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    server.shutdown().await;
}

#[tokio::test]
async fn a_required_token_guards_everything_but_health() {
    let server = start_with(satcheld::Config {
        auth_token: Some(satchel_oci::auth::Secret::new("t0ken")),
        ..Default::default()
    })
    .await;
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no token");

    let request = || pb::ResolveRequest {
        target: target("Not A Reference", ""),
    };
    let mut client = SatchelServiceClient::new(channel.clone());
    let err = client.resolve(request()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    let mut with_token = tonic::Request::new(request());
    with_token
        .metadata_mut()
        .insert("authorization", "Bearer t0ken".parse().unwrap());
    let err = client.resolve(with_token).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let err = match reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
    {
        Err(e) => e,
        Ok(resp) => resp.into_inner().next().await.unwrap().unwrap_err(),
    };
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn push_names_a_blob_uploaded_before() {
    let dir = tempfile::tempdir().unwrap();
    // A TCP caller may name layouts only under a layout root.
    let server = start_with(satcheld::Config {
        cache: Some((dir.path().join("store"), 1 << 30)),
        layout_roots: vec![dir.path().to_path_buf()],
        ..Default::default()
    })
    .await;
    let mut client = SatchelServiceClient::new(server.channel().await);
    let data = b"provenance, uploaded once".to_vec();
    let digest = format!("sha256:{}", sha256_hex(&data));
    let upload = pb::UploadBlobRequest {
        r#ref: "build-42".into(),
        offset: 0,
        data: data.clone().into(),
        commit: true,
        expected_digest: digest.clone(),
        expected_size: Some(data.len() as u64),
    };
    let mut acks = client
        .upload_blob(tokio_stream::once(upload))
        .await
        .unwrap()
        .into_inner();
    let resp = acks.next().await.unwrap().unwrap();
    assert!(resp.committed);
    assert_eq!(resp.digest, digest);

    let layout = dir.path().join("layout");
    let header = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(pb::PushHeader {
            target: target("v1", layout.to_str().unwrap()),
            artifact: Some(pb::ArtifactSpec {
                files: vec![pb::FileSpec {
                    name: "prov.json".into(),
                    size: Some(data.len() as u64),
                    digest: digest.clone(),
                    from_content_store: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })),
    };
    let pushed = push(&mut client, tokio_stream::once(header.clone()))
        .await
        .unwrap();
    assert_eq!(pushed.layers[0].digest, digest);
    let stored = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(stored).unwrap(), data);

    // A blob the store lacks: NOT_FOUND.
    let mut missing = header;
    if let Some(pb::push_request::Payload::Header(h)) = &mut missing.payload {
        h.target = target("v2", dir.path().join("other").to_str().unwrap());
        let f = &mut h.artifact.as_mut().unwrap().files[0];
        f.digest = format!("sha256:{}", sha256_hex(b"never uploaded"));
    }
    let err = push(&mut client, tokio_stream::once(missing))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    server.shutdown().await;
}

fn sha256_hex(data: &[u8]) -> String {
    satchel_oci::digest::sha256(data).digest().to_string()
}
