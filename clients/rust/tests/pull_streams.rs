//! `clients/conformance/pull_streams.json` fed to this client's pull state
//! machine ([`satchel_client::pull_stream`]). The replayed streams are a
//! test-only fake of the daemon's Pull answer: a real daemon cannot be made
//! to send a broken one. Each case's messages (protobuf JSON mapping,
//! parsed here by hand: prost has no JSON) and ending status go into an
//! output directory that does not exist yet, and the case's `expect` is
//! checked exactly: the code, every regular file and its content, and
//! whether the directory exists.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use satchel_client::{pb, Code, Status};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/pull_streams.json"
    );
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("pull_streams.json"))
            .expect("pull_streams.json is JSON");
    all["streams"].as_array().expect("streams").clone()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// A uint64 field: protobuf's JSON mapping writes it as a string.
fn uint(v: &Value, key: &str) -> u64 {
    match &v[key] {
        Value::String(s) => s.parse().expect("a uint64 string"),
        Value::Number(n) => n.as_u64().expect("a uint64"),
        _ => 0,
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    let text = v.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 bytes")
}

fn descriptor(v: &Value) -> Option<pb::Descriptor> {
    if v.is_null() {
        return None;
    }
    let annotations = v["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Some(pb::Descriptor {
        media_type: text(v, "mediaType").into(),
        digest: text(v, "digest").into(),
        size: uint(v, "size"),
        artifact_type: text(v, "artifactType").into(),
        annotations,
    })
}

/// One `satchel.v1.PullResponse` from its JSON mapping.
fn message(m: &Value) -> pb::PullResponse {
    use pb::pull_response::Payload;
    let (key, v) = m
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a message with one field");
    let payload = match key.as_str() {
        "manifest" => Payload::Manifest(pb::PulledManifest {
            manifest: descriptor(&v["manifest"]),
            content: bytes(&v["content"]).into(),
            reference: text(v, "reference").into(),
            ..Default::default()
        }),
        "file" => Payload::File(pb::FileHeader {
            name: text(v, "name").into(),
            layer: descriptor(&v["layer"]),
        }),
        "chunk" => Payload::Chunk(bytes(v).into()),
        "done" => Payload::Done(pb::FileDone {
            digest: text(v, "digest").into(),
        }),
        "progress" => Payload::Progress(pb::Progress {
            name: text(v, "name").into(),
            done: uint(v, "done"),
            total: uint(v, "total"),
        }),
        other => panic!("unknown PullResponse field {other}"),
    };
    pb::PullResponse {
        payload: Some(payload),
    }
}

/// A gRPC code from its name, `NOT_FOUND` and the like.
fn code(name: &str) -> Code {
    (0..=16)
        .map(Code::from_i32)
        .find(|c| satchel_client::code_name(*c) == name)
        .unwrap_or_else(|| panic!("unknown code {name}"))
}

/// Every regular file under `dir`, by `/`-separated relative path.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy();
                let content = std::fs::read(&path).unwrap();
                found.insert(
                    name.replace('\\', "/"),
                    String::from_utf8_lossy(&content).into(),
                );
            }
        }
    }
    found
}

/// What one case came to: the code, the files, whether the directory is
/// there.
async fn run(case: &Value, out: &Path) -> (Code, BTreeMap<String, String>, bool) {
    let mut stream: Vec<Result<pb::PullResponse, Status>> = case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| Ok(message(m)))
        .collect();
    let end = &case["end"];
    let end_code = code(text(end, "code"));
    if end_code != Code::Ok {
        stream.push(Err(Status::new(end_code, text(end, "message"))));
    }
    let result = satchel_client::pull_stream(futures::stream::iter(stream), out, |_| {}).await;
    let got = match result {
        Ok(_) => Code::Ok,
        Err(e) => e.code(),
    };
    (got, files(out), out.exists())
}

#[tokio::test]
async fn every_pull_stream_case_ends_as_expected() {
    let cases = cases();
    assert_eq!(cases.len(), 18, "the cases pull_streams.json holds");
    let mut failures = Vec::new();
    for case in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let (got, files, exists) = run(case, &out).await;
        let expect = &case["expect"];
        let want_files: BTreeMap<String, String> = expect["files"]
            .as_object()
            .expect("files")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let want = (
            code(text(expect, "code")),
            want_files,
            expect["dir_exists"].as_bool().expect("dir_exists"),
        );
        if (got, &files, exists) != (want.0, &want.1, want.2) {
            failures.push(format!(
                "{}: got {got:?}, files {files:?}, dir {exists}; want {:?}, files {:?}, dir {}",
                text(case, "name"),
                want.0,
                want.1,
                want.2
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
}

/// A daemon that offers the local file handoff to a stream that did not
/// ask for it breaks the protocol: nothing is written.
#[tokio::test]
async fn a_handoff_nobody_asked_for_is_a_broken_stream() {
    let out = tempfile::tempdir().unwrap();
    let manifest = pb::PullResponse {
        payload: Some(pb::pull_response::Payload::Manifest(pb::PulledManifest {
            content: br#"{"schemaVersion":2,"layers":[]}"#.to_vec().into(),
            local_ticket: vec![1u8; 16].into(),
            ..Default::default()
        })),
    };
    let stream = futures::stream::iter([Ok(manifest)]);
    let err = satchel_client::pull_stream(stream, &out.path().join("o"), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(!out.path().join("o").exists());
}
