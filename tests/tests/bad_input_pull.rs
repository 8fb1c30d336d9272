//! Bad input, group "filesystem attacks on pull": a pull writes only inside
//! the directory its caller named, never through a link it did not make,
//! and refuses titles that are unsafe alone or against each other before
//! the first byte; the CLI prints hostile text escaped.
//!
//! Real docker-registry, satcheld and satchel processes. Hostile manifests
//! go straight to the registry with an HTTP PUT (docker-registry stores any
//! manifest whose blobs exist), bypassing the daemon's push checks. Every
//! case asserts the exact gRPC code (the CLI's error line ends with it) and
//! that nothing is left behind.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use satchel_tests::{sha256, Daemon, Registry};
use serde_json::{json, Value};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

struct Env {
    registry: Registry,
    daemon: Daemon,
}

impl Env {
    fn start() -> Env {
        Env {
            registry: Registry::start(),
            daemon: Daemon::start(),
        }
    }

    fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.addr)
    }

    /// A fresh directory under the daemon's scratch space.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.daemon.scratch().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn pull(&self, repo_tag: &str, out: &Path) -> Output {
        self.daemon.satchel(&[
            "pull",
            "--plain-http",
            &self.reference(repo_tag),
            "-o",
            out.to_str().unwrap(),
        ])
    }

    /// Puts an artifact whose layers carry `layers` (title, bytes) straight
    /// into the registry as `repo:tag`.
    fn hostile(&self, repo: &str, tag: &str, layers: &[(&str, &[u8])]) {
        let addr = &self.registry.addr;
        let config = upload_blob(addr, repo, b"{}");
        let layers: Vec<Value> = layers
            .iter()
            .map(|(title, data)| {
                json!({
                    "mediaType": LAYER,
                    "digest": upload_blob(addr, repo, data),
                    "size": data.len(),
                    "annotations": {"org.opencontainers.image.title": title},
                })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/x.hostile",
            "config": {"mediaType": EMPTY, "digest": config, "size": 2},
            "layers": layers,
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let (status, _, answer) = http(
            addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    }
}

/// One HTTP/1.1 request on loopback: status, head and body.
fn http(addr: &str, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, buf[split + 4..].to_vec())
}

/// Uploads `data` as a blob of `repo` (POST, then PUT with the digest).
fn upload_blob(addr: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let (status, head, _) = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        "application/octet-stream",
        b"",
    );
    assert_eq!(status, 202, "{head}");
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("a Location");
    let path = match location.find("/v2/") {
        Some(i) => location[i..].to_string(),
        None => location,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, head, _) = http(
        addr,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        "application/octet-stream",
        data,
    );
    assert_eq!(status, 201, "{head}");
    digest
}

/// Every entry under `dir`, links not followed: path → what it is.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = p.symlink_metadata().unwrap();
            let what = if meta.is_symlink() {
                format!("link to {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                walk(base, &p, out);
                "dir".to_string()
            } else {
                format!("file {}", sha256(&std::fs::read(&p).unwrap()))
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts the satchel run failed with `code` on one error line, naming it
/// last, with no raw ESC anywhere in its output.
fn assert_code(out: &Output, code: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should have failed: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err}");
    assert!(
        err.trim_end().ends_with(&format!("({code})")),
        "expected {code}: {err}"
    );
    assert_no_escape(out);
}

fn assert_no_escape(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(&0x1b),
            "a raw ESC reached the terminal: {}",
            String::from_utf8_lossy(stream)
        );
    }
}

fn no_partials(dir: &Path) {
    let left: Vec<String> = snapshot(dir)
        .into_keys()
        .filter(|k| k.contains(".partial") || k.contains(".satchel-"))
        .collect();
    assert!(left.is_empty(), "partial files left behind: {left:?}");
}

/// The last process id the kernel handed out: the old writers named their
/// partial files after the next ones.
fn last_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .map(|s| s.trim().parse().unwrap_or(1))
        .unwrap_or(1)
}

/// The rows of a table test: each runs even when an earlier one failed,
/// and the test fails naming every failed row.
#[derive(Default)]
struct Rows(Vec<String>);

impl Rows {
    fn check(&mut self, name: &str, row: impl FnOnce()) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(row)).is_err() {
            self.0.push(name.to_string());
        }
    }

    fn all_passed(self) {
        assert!(self.0.is_empty(), "failed rows: {:?}", self.0);
    }
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../clients/conformance/titles.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn planted_link_vectors_from_titles_json_never_write_outside() {
    let env = Env::start();
    let vectors = vectors();
    let cases = vectors["planted_links"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let mut rows = Rows::default();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let title = case["title"].as_str().unwrap();
        let data = format!("layer bytes of case {i}").into_bytes();
        let tag = format!("case{i}");
        env.hostile("planted", &tag, &[(title, &data)]);
        let root = env.dir(&format!("planted{i}"));
        let (out, outside) = (root.join("out"), root.join("outside"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"precious").unwrap();
        for dir in case["dirs"].as_array().into_iter().flatten() {
            std::fs::create_dir_all(out.join(dir.as_str().unwrap())).unwrap();
        }
        for link in case["links"].as_array().unwrap() {
            let to = link["to"].as_str().unwrap();
            let to = match to.strip_prefix("OUTSIDE") {
                Some(rest) => format!("{}{rest}", outside.display()),
                None => to.to_string(),
            };
            symlink(to, out.join(link["path"].as_str().unwrap())).unwrap();
        }
        let outside_before = snapshot(&outside);
        let out_before = snapshot(&out);
        rows.check(name, || {
            let result = env.pull(&format!("planted:{tag}"), &out);
            assert_eq!(
                snapshot(&outside),
                outside_before,
                "{name}: outside changed"
            );
            no_partials(&out);
            match case["expect"].as_str().unwrap() {
                "replaced" => {
                    assert!(
                        result.status.success(),
                        "{name}: {}",
                        String::from_utf8_lossy(&result.stderr)
                    );
                    let meta = out.join(title).symlink_metadata().unwrap();
                    assert!(meta.is_file(), "{name}: the link is still there");
                    assert_eq!(std::fs::read(out.join(title)).unwrap(), data, "{name}");
                }
                "refused" => {
                    assert_code(&result, "FAILED_PRECONDITION");
                    assert_eq!(
                        snapshot(&out),
                        out_before,
                        "{name}: the output directory changed"
                    );
                }
                other => panic!("{name}: unknown expectation {other}"),
            }
        });
    }
    rows.all_passed();
}

#[test]
fn links_planted_at_partial_looking_names_are_untouched() {
    let env = Env::start();
    let src = env.dir("src");
    std::fs::write(src.join("sbom.json"), b"{\"real\":true}").unwrap();
    let file = src.join("sbom.json").display().to_string();
    env.daemon
        .ok(&["push", "--plain-http", &env.reference("app:sbom"), &file]);
    let root = env.dir("partial");
    let (out, outside) = (root.join("out"), root.join("outside"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"precious").unwrap();
    // The names the old writer would have used, for the next few thousand
    // process ids, and a plain file at one.
    let last = last_pid();
    for pid in last + 1..last + 3000 {
        symlink(
            outside.join("victim"),
            out.join(format!(".sbom.json.satchel-{pid}-0.partial")),
        )
        .unwrap();
    }
    std::fs::write(out.join(".sbom.json.satchel-1-0.partial"), b"mine").unwrap();
    let before = snapshot(&out);
    let result = env.pull("app:sbom", &out);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"precious");
    let mut after = snapshot(&out);
    let pulled = after.remove("sbom.json").expect("sbom.json pulled");
    assert_eq!(pulled, format!("file {}", sha256(b"{\"real\":true}")));
    assert_eq!(after, before, "a planted name changed");
}

#[test]
fn a_directory_at_the_final_name_is_refused_and_kept() {
    let env = Env::start();
    env.hostile("app", "dir", &[("sbom.json", b"bytes")]);
    let out = env.dir("out");
    std::fs::create_dir(out.join("sbom.json")).unwrap();
    std::fs::write(out.join("sbom.json/keep"), b"keep").unwrap();
    let before = snapshot(&out);
    assert_code(&env.pull("app:dir", &out), "FAILED_PRECONDITION");
    assert_eq!(snapshot(&out), before);
}

#[test]
fn a_file_where_a_directory_is_needed_is_refused_and_kept() {
    let env = Env::start();
    env.hostile("app", "filedir", &[("sub/sbom.json", b"bytes")]);
    let out = env.dir("out");
    std::fs::write(out.join("sub"), b"a file").unwrap();
    let before = snapshot(&out);
    assert_code(&env.pull("app:filedir", &out), "FAILED_PRECONDITION");
    assert_eq!(snapshot(&out), before);
}

/// Hostile title sets the daemon must refuse at pull, before a byte.
fn hostile_title_sets() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "a file and a directory: x, x/y",
            vec!["x".into(), "x/y".into()],
        ),
        (
            "a directory and a file: x/y, x",
            vec!["x/y".into(), "x".into()],
        ),
        ("deeper: a/b/c, a/b", vec!["a/b/c".into(), "a/b".into()]),
        (
            "two layers, one file",
            vec!["same.txt".into(), "same.txt".into()],
        ),
        ("a component of 256 bytes", vec!["a".repeat(256)]),
        ("4097 bytes in all", vec!["abcdefg/".repeat(512) + "x"]),
        ("an escape sequence", vec!["\u{1b}[31mred".into()]),
        ("a newline", vec!["a\nb".into()]),
        ("DEL", vec!["a\u{7f}b".into()]),
        ("absolute", vec!["/etc/passwd".into()]),
        ("parent", vec!["../x".into()]),
        ("parent inside", vec!["a/../../x".into()]),
        (
            "a good title beside a bad one",
            vec!["ok.txt".into(), "../ok.txt".into()],
        ),
    ]
}

#[test]
fn hostile_title_sets_are_refused_at_pull_before_a_byte() {
    let env = Env::start();
    let mut rows = Rows::default();
    for (i, (name, titles)) in hostile_title_sets().into_iter().enumerate() {
        let layers: Vec<(&str, &[u8])> = titles
            .iter()
            .map(|t| (t.as_str(), b"data".as_slice()))
            .collect();
        let tag = format!("set{i}");
        env.hostile("hostile", &tag, &layers);
        let root = env.dir(&format!("set{i}"));
        let out = root.join("out");
        rows.check(name, || {
            let result = env.pull(&format!("hostile:{tag}"), &out);
            assert_code(&result, "INVALID_ARGUMENT");
            assert!(snapshot(&root).is_empty(), "written: {:?}", snapshot(&root));
        });
    }
    rows.all_passed();
}

/// Runs a push through the client crate with `names` as titles for files
/// of their own; returns the code it failed with, `None` if it succeeded.
fn push_with_names(env: &Env, repo_tag: &str, names: &[String]) -> Option<satchel_client::Code> {
    let src = env.dir("push-src");
    let reference = env.reference(repo_tag);
    let addr = env.daemon.addr.clone();
    let names = names.to_vec();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut client = satchel_client::connect(&addr).await.unwrap();
            let mut files = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let path = src.join(format!("f{i}"));
                std::fs::write(&path, format!("push bytes {i}")).unwrap();
                let mut f = satchel_client::LocalFile::new(&path, "", false)
                    .await
                    .unwrap();
                f.spec.name = name.clone();
                files.push(f);
            }
            let target = satchel_client::pb::Target {
                reference,
                plain_http: true,
                ..Default::default()
            };
            satchel_client::push(&mut client, target, Default::default(), files, |_| {})
                .await
                .err()
                .map(|e| e.code())
        })
}

#[test]
fn hostile_title_sets_are_refused_at_push_before_an_upload() {
    let env = Env::start();
    let mut rows = Rows::default();
    for (i, (name, titles)) in hostile_title_sets().into_iter().enumerate() {
        rows.check(name, || {
            let code = push_with_names(&env, &format!("pushed:set{i}"), &titles);
            assert_eq!(code, Some(satchel_client::Code::InvalidArgument));
        });
    }
    rows.all_passed();
    // Nothing reached the registry: no tag, no blob of any file.
    let (status, body) =
        satchel_tests::http_get(&env.registry.addr, "/v2/pushed/tags/list").unwrap();
    assert_ne!(status, 200, "{}", String::from_utf8_lossy(&body));
    for i in 0..2 {
        let digest = sha256(format!("push bytes {i}").as_bytes());
        let (status, _) =
            satchel_tests::http_get(&env.registry.addr, &format!("/v2/pushed/blobs/{digest}"))
                .unwrap();
        assert_eq!(status, 404, "a blob was uploaded");
    }
}

#[test]
fn push_of_two_files_with_one_name_is_refused_by_the_cli() {
    let env = Env::start();
    let (a, b) = (env.dir("a"), env.dir("b"));
    std::fs::write(a.join("same.txt"), b"one").unwrap();
    std::fs::write(b.join("same.txt"), b"two").unwrap();
    let result = env.daemon.satchel(&[
        "push",
        "--plain-http",
        &env.reference("dup:v1"),
        a.join("same.txt").to_str().unwrap(),
        b.join("same.txt").to_str().unwrap(),
    ]);
    assert_code(&result, "INVALID_ARGUMENT");
    let (status, _) = satchel_tests::http_get(&env.registry.addr, "/v2/dup/tags/list").unwrap();
    assert_ne!(status, 200);
}

#[test]
fn push_of_a_file_named_with_an_escape_is_refused_and_printed_escaped() {
    let env = Env::start();
    let src = env.dir("src");
    let path = src.join("a\u{1b}[2Jb");
    std::fs::write(&path, b"x").unwrap();
    let result = env.daemon.satchel(&[
        "push",
        "--plain-http",
        &env.reference("esc:v1"),
        path.to_str().unwrap(),
    ]);
    assert_code(&result, "INVALID_ARGUMENT");
    let (status, _) = satchel_tests::http_get(&env.registry.addr, "/v2/esc/tags/list").unwrap();
    assert_ne!(status, 200);
}

#[test]
fn blob_download_replaces_a_link_at_the_output_and_spares_its_target() {
    let env = Env::start();
    let src = env.dir("src");
    std::fs::write(src.join("blob"), b"blob bytes").unwrap();
    let digest = sha256(b"blob bytes");
    env.daemon
        .ok(&["blob", "upload", src.join("blob").to_str().unwrap()]);
    let root = env.dir("dl");
    std::fs::write(root.join("victim"), b"precious").unwrap();
    let out = root.join("out");
    std::fs::create_dir(&out).unwrap();
    symlink(root.join("victim"), out.join("blob")).unwrap();
    // The names the old writer would have used for its partial file.
    let last = last_pid();
    for pid in last + 1..last + 3000 {
        symlink(
            root.join("victim"),
            out.join(format!(".blob.satchel-{pid}.partial")),
        )
        .unwrap();
    }
    let planted = snapshot(&out).len();
    let result = env.daemon.satchel(&[
        "blob",
        "download",
        &digest,
        "-o",
        out.join("blob").to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(std::fs::read(root.join("victim")).unwrap(), b"precious");
    assert!(out.join("blob").symlink_metadata().unwrap().is_file());
    assert_eq!(std::fs::read(out.join("blob")).unwrap(), b"blob bytes");
    let after = snapshot(&out);
    assert_eq!(
        after.len(),
        planted,
        "a partial file was left or a planted one removed"
    );
    assert!(after
        .iter()
        .all(|(k, v)| k == "blob" || v.starts_with("link to")));
}

#[test]
fn blob_download_onto_a_directory_is_refused_and_leaves_nothing() {
    let env = Env::start();
    let src = env.dir("src");
    std::fs::write(src.join("blob"), b"blob bytes").unwrap();
    let digest = sha256(b"blob bytes");
    env.daemon
        .ok(&["blob", "upload", src.join("blob").to_str().unwrap()]);
    let out = env.dir("dl");
    std::fs::create_dir(out.join("blob")).unwrap();
    let before = snapshot(&out);
    let result = env.daemon.satchel(&[
        "blob",
        "download",
        &digest,
        "-o",
        out.join("blob").to_str().unwrap(),
    ]);
    assert_code(&result, "FAILED_PRECONDITION");
    assert_eq!(snapshot(&out), before);
}

#[test]
fn discover_prints_an_escape_laden_annotation_escaped() {
    let env = Env::start();
    let src = env.dir("src");
    std::fs::write(src.join("subject.txt"), b"subject").unwrap();
    std::fs::write(src.join("sbom.json"), b"{}").unwrap();
    let subject = env.reference("disc:v1");
    env.daemon.ok(&[
        "push",
        "--plain-http",
        &subject,
        src.join("subject.txt").to_str().unwrap(),
    ]);
    env.daemon.ok(&[
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/x.evil\u{1b}[2J",
        "-a",
        "note=\u{1b}]0;owned\u{7}\u{1b}[31mred\u{202e}",
        &subject,
        src.join("sbom.json").to_str().unwrap(),
    ]);
    for format in ["tree", "table"] {
        let result = env.daemon.satchel(&[
            "discover",
            "--plain-http",
            "-v",
            "--format",
            format,
            &subject,
        ]);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_no_escape(&result);
        let text = String::from_utf8(result.stdout).unwrap();
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert!(
            text.contains("application/x.evil\\x1b[2J"),
            "{format}: {text}"
        );
        if format == "tree" {
            assert!(
                text.contains(r#"note: "\u001b]0;owned\u0007\u001b[31mred\u{202e}""#),
                "{text}"
            );
        }
    }
    // JSON keeps the exact text, escaped by JSON itself.
    let json = env
        .daemon
        .satchel(&["discover", "--plain-http", "--format", "json", &subject]);
    assert_no_escape(&json);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        v["referrers"][0]["annotations"]["note"],
        "\u{1b}]0;owned\u{7}\u{1b}[31mred\u{202e}"
    );
}

#[test]
fn pull_prints_titles_with_bidi_and_c1_characters_escaped() {
    let env = Env::start();
    let title = "evil\u{202e}nosj.exe\u{9b}31m";
    env.hostile("bidi", "v1", &[(title, b"bidi bytes")]);
    let out = env.dir("out");
    let result = env.pull("bidi:v1", &out);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let text = String::from_utf8(result.stdout.clone()).unwrap();
    assert!(
        !text.contains('\u{202e}') && !text.contains('\u{9b}'),
        "{text}"
    );
    assert!(text.contains("evil\\u{202e}nosj.exe\\u{9b}31m"), "{text}");
    assert_eq!(std::fs::read(out.join(title)).unwrap(), b"bidi bytes");
    no_partials(&out);
}

#[test]
fn error_lines_never_carry_a_raw_escape() {
    let env = Env::start();
    let src = env.dir("src");
    std::fs::write(src.join("subject.txt"), b"subject").unwrap();
    let subject = env.reference("err:v1");
    env.daemon.ok(&[
        "push",
        "--plain-http",
        &subject,
        src.join("subject.txt").to_str().unwrap(),
    ]);
    let out = env.dir("out");
    // The daemon's NOT_FOUND quotes the artifact type as given.
    let result = env.daemon.satchel(&[
        "pull",
        "--plain-http",
        "--subject",
        &subject,
        "--artifact-type",
        "application/x\u{1b}[2J\u{1b}]0;owned\u{7}",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_code(&result, "NOT_FOUND");
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("application/x\\x1b[2J\\x1b]0;owned\\x07"),
        "{err}"
    );
    assert!(snapshot(&out).is_empty());
}
