//! The local file handoff end to end, on a real Unix socket served by
//! `satcheld::run`: a pull that asks for it gets a ticket, passes each file
//! over the files socket and receives no chunk; the daemon refuses a file
//! it may not fill; a TCP caller that asks streams as usual.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use satchel_proto::v1 as pb;
use satchel_proto::v1::satchel_service_client::SatchelServiceClient;
use tokio::net::UnixStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;

type Client = SatchelServiceClient<Channel>;

struct Served {
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn serve(listen: &str, config: satcheld::Config) -> Served {
    let listener = satcheld::listener::bind(listen, Default::default())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(satcheld::run(listener, config, async {
        let _ = stopped.await;
    }));
    let socket = PathBuf::from(listen.strip_prefix("unix://").unwrap_or_default());
    Served {
        socket,
        stop: Some(stop),
        done,
    }
}

impl Served {
    async fn unix_client(&self) -> Client {
        let path = self.socket.clone();
        let channel =
            Endpoint::try_from("http://satcheld.local")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .unwrap();
        SatchelServiceClient::new(channel)
    }

    async fn shutdown(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.done.await.unwrap().unwrap();
    }
}

fn layout_target(layout: &Path) -> Option<pb::Target> {
    Some(pb::Target {
        reference: "v1".into(),
        oci_layout: layout.display().to_string(),
        ..Default::default()
    })
}

/// Pushes `data` as the one file `big.bin` of a layout artifact.
async fn push(client: &mut Client, layout: &Path, data: &[u8]) {
    let digest = satchel_oci::digest::sha256(data).to_string();
    let header = pb::PushRequest {
        payload: Some(pb::push_request::Payload::Header(pb::PushHeader {
            target: layout_target(layout),
            artifact: Some(pb::ArtifactSpec {
                files: vec![pb::FileSpec {
                    name: "big.bin".into(),
                    size: Some(data.len() as u64),
                    digest,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })),
    };
    let mut requests = vec![header];
    for piece in data.chunks(1 << 20) {
        requests.push(pb::PushRequest {
            payload: Some(pb::push_request::Payload::Chunk(pb::FileChunk {
                file_index: 0,
                data: piece.to_vec().into(),
            })),
        });
    }
    let mut events = client
        .push(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    while let Some(event) = events.next().await {
        event.unwrap();
    }
}

/// What a pull's stream carried.
#[derive(Debug, Default)]
struct Seen {
    ticket: Vec<u8>,
    chunks: usize,
    done: Vec<String>,
    progress: u64,
}

/// Pulls the layout's artifact asking for the handoff if `local`; each
/// file header gets `file(out)` passed (when there is a ticket).
async fn pull(
    client: &mut Client,
    served: &Served,
    layout: &Path,
    local: bool,
    file: impl Fn() -> std::fs::File,
) -> (Seen, Result<(), tonic::Status>) {
    let request = pb::PullRequest {
        target: layout_target(layout),
        local_files: local,
        ..Default::default()
    };
    let mut stream = client.pull(request).await.unwrap().into_inner();
    let mut seen = Seen::default();
    let mut files = None;
    let mut index = 0;
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => return (seen, Err(e)),
        };
        use pb::pull_response::Payload;
        match message.payload.unwrap() {
            Payload::Manifest(m) => seen.ticket = m.local_ticket.to_vec(),
            Payload::File(_) if !seen.ticket.is_empty() => {
                let conn = match &mut files {
                    Some(c) => c,
                    None => {
                        let path = satcheld::listener::files_socket_path(&served.socket);
                        files.insert(UnixStream::connect(path).await.unwrap())
                    }
                };
                let f = file();
                let reply =
                    satcheld::handoff::send_file(conn, &seen.ticket, index, Some(f.as_fd()))
                        .await
                        .unwrap();
                assert_eq!(reply, 0);
                index += 1;
            }
            Payload::File(_) => {}
            Payload::Chunk(_) => seen.chunks += 1,
            Payload::Progress(p) => seen.progress = p.done,
            Payload::Done(d) => seen.done.push(d.digest),
        }
    }
    (seen, Ok(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_pull_passes_its_file_and_receives_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        &format!("unix://{}/s.sock", dir.path().display()),
        Default::default(),
    )
    .await;
    let mut client = served.unix_client().await;
    let layout = dir.path().join("layout");
    let data: Vec<u8> = (0..(5u32 << 20))
        .map(|i| (i * 7 + i / 4099) as u8)
        .collect();
    push(&mut client, &layout, &data).await;
    let digest = satchel_oci::digest::sha256(&data).to_string();

    let out = dir.path().join("handed");
    let make = || std::fs::File::create_new(&out).unwrap();
    let (seen, result) = pull(&mut client, &served, &layout, true, make).await;
    result.unwrap();
    assert_eq!(seen.ticket.len(), 16, "{seen:?}");
    assert_eq!(seen.chunks, 0, "{seen:?}");
    assert_eq!(seen.done, std::slice::from_ref(&digest));
    assert!(std::fs::read(&out).unwrap() == data, "the file differs");

    // Not asked: the bytes stream, with no ticket.
    let (seen, result) = pull(&mut client, &served, &layout, false, || unreachable!()).await;
    result.unwrap();
    assert!(seen.ticket.is_empty() && seen.chunks >= 5, "{seen:?}");
    assert_eq!(seen.done, [digest]);
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_daemon_may_not_fill_fails_the_pull() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        &format!("unix://{}/s.sock", dir.path().display()),
        Default::default(),
    )
    .await;
    let mut client = served.unix_client().await;
    let layout = dir.path().join("layout");
    push(&mut client, &layout, b"a small file").await;
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"keep me").unwrap();
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&taken)
            .unwrap()
    };
    let (seen, result) = pull(&mut client, &served, &layout, true, open).await;
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    assert!(err.message().contains("not empty"), "{err}");
    assert!(seen.done.is_empty(), "{seen:?}");
    assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
    served.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_caller_that_asks_for_the_handoff_gets_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = satcheld::Config {
        layout_roots: vec![dir.path().to_path_buf()],
        ..Default::default()
    };
    let served = serve(&format!("127.0.0.1:{port}"), config).await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = SatchelServiceClient::new(channel);
    let layout = dir.path().join("layout");
    push(&mut client, &layout, b"a small file").await;
    let (seen, result) = pull(&mut client, &served, &layout, true, || unreachable!()).await;
    result.unwrap();
    assert!(seen.ticket.is_empty(), "{seen:?}");
    assert_eq!((seen.chunks, seen.done.len()), (1, 1), "{seen:?}");
    served.shutdown().await;
}
