//! The `satchel.v1` gRPC API, generated from `proto/satchel/v1/satchel.proto`.
//!
//! Only the gRPC edges of Satchel (the daemon's API module, the CLI and the
//! tests) depend on this crate.

/// Messages, client and server of `satchel.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("satchel.v1");
}

/// The encoded `FileDescriptorSet` of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/satchel_descriptor.bin"));

/// Every method of the API as its gRPC path (`/satchel.v1.SatchelService/Pull`),
/// read from [`FILE_DESCRIPTOR_SET`].
pub fn method_paths() -> Vec<String> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
        .expect("the API's descriptor set decodes");
    let mut paths = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    paths
}

/// The largest chunk of file bytes one message carries (1 MiB).
pub const MAX_CHUNK: usize = 1 << 20;

/// The largest message either side sends or accepts: a 1 MiB chunk or a
/// 4 MiB manifest plus framing (8 MiB).
pub const MAX_MESSAGE: usize = 8 << 20;

/// The daemon's default socket, the same for `satcheld` and its clients:
/// `$XDG_RUNTIME_DIR/satchel/satcheld.sock`, else
/// `$TMPDIR/satchel-<uid>/satcheld.sock`.
pub fn default_socket_path() -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir)
            .join("satchel")
            .join("satcheld.sock"),
        _ => {
            // /proc/self is owned by the process's user.
            let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
            std::env::temp_dir()
                .join(format!("satchel-{uid}"))
                .join("satcheld.sock")
        }
    }
}

// Push and Attach answer with messages of the same shape under two names, as
// buf's lint asks (one response type per RPC); these convert between them.
impl From<v1::PushResponse> for v1::AttachResponse {
    fn from(r: v1::PushResponse) -> Self {
        use v1::{attach_response::Event as A, push_response::Event as P};
        v1::AttachResponse {
            event: r.event.map(|e| match e {
                P::Progress(p) => A::Progress(p),
                P::Result(r) => A::Result(r),
            }),
        }
    }
}

impl From<v1::AttachResponse> for v1::PushResponse {
    fn from(r: v1::AttachResponse) -> Self {
        use v1::{attach_response::Event as A, push_response::Event as P};
        v1::PushResponse {
            event: r.event.map(|e| match e {
                A::Progress(p) => P::Progress(p),
                A::Result(r) => P::Result(r),
            }),
        }
    }
}
