use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// One raw tar entry: written byte for byte, so the tests can make the
/// hostile ones a tar library would refuse to write.
struct E<'a> {
    name: &'a str,
    kind: u8,
    data: &'a [u8],
    link: &'a str,
    mode: u32,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        name,
        kind: b'0',
        data,
        link: "",
        mode: 0o644,
    }
}

fn dir(name: &str) -> E<'_> {
    E {
        name,
        kind: b'5',
        data: b"",
        link: "",
        mode: 0o755,
    }
}

fn link<'a>(name: &'a str, kind: u8, target: &'a str) -> E<'a> {
    E {
        name,
        kind,
        data: b"",
        link: target,
        mode: 0o777,
    }
}

fn tar_bytes(entries: &[E<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        {
            let old = h.as_old_mut();
            old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            old.linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        }
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn layer(tar: &[u8]) -> pb::Descriptor {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(tar)));
    pb::Descriptor {
        annotations: [
            (UNPACK_ANNOTATION.to_string(), "true".to_string()),
            (TAR_DIGEST_ANNOTATION.to_string(), digest),
        ]
        .into(),
        ..Default::default()
    }
}

/// Unpacks `entries` as the directory `title` into `out`.
fn run(out: &Path, title: &str, entries: &[E<'_>], limits: Limits) -> Result<PathBuf, Error> {
    let tar = tar_bytes(entries);
    run_raw(out, title, &gzip(&tar), &layer(&tar), limits)
}

fn run_raw(
    out: &Path,
    title: &str,
    archive: &[u8],
    layer: &pb::Descriptor,
    limits: Limits,
) -> Result<PathBuf, Error> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(archive).unwrap();
    use std::io::Seek as _;
    f.rewind().unwrap();
    let dir = OutDir::open(out).unwrap();
    unpack(f, &dir, title, layer, limits)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_directory_unpacks_with_its_modes_and_links_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let mut run_sh = file("d/run.sh", b"#!/bin/sh\n");
    run_sh.mode = 0o755;
    let path = run(
        tmp.path(),
        "d",
        &[
            dir("d"),
            run_sh,
            dir("d/sub"),
            file("d/sub/b.txt", b"bee"),
            link("d/top", b'2', "run.sh"),
            link("d/sub/up", b'2', "../run.sh"),
            link("d/copy", b'1', "d/sub/b.txt"),
        ],
        Limits::default(),
    )
    .unwrap();
    assert_eq!(path, tmp.path().join("d"));
    assert_eq!(names(tmp.path()), ["d"]);
    assert_eq!(names(&path), ["copy", "run.sh", "sub", "top"]);
    let mode = std::fs::metadata(path.join("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o100, 0o100, "the executable bit is kept: {mode:o}");
    assert_eq!(std::fs::read(path.join("sub/up")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(
        std::fs::read_link(path.join("top")).unwrap(),
        Path::new("run.sh")
    );
    assert_eq!(std::fs::read(path.join("copy")).unwrap(), b"bee");
    let mtime = std::fs::metadata(path.join("sub/b.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_700_000_000
    );
}

#[test]
fn a_nested_title_unpacks_under_its_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let path = run(
        tmp.path(),
        "a/b",
        &[dir("a/b"), file("a/b/x", b"x")],
        Limits::default(),
    )
    .unwrap();
    assert_eq!(path, tmp.path().join("a/b"));
    assert_eq!(std::fs::read(path.join("x")).unwrap(), b"x");
}

#[test]
fn hostile_entries_are_refused_and_leave_nothing() {
    let cases: Vec<(&str, Vec<E<'_>>)> = vec![
        ("outside the title", vec![dir("d"), file("other/x", b"x")]),
        ("climbing out", vec![dir("d"), file("d/../x", b"x")]),
        ("absolute", vec![dir("d"), file("/tmp/x", b"x")]),
        (
            "a link to an absolute path",
            vec![dir("d"), link("d/l", b'2', "/etc/passwd")],
        ),
        (
            "a link climbing out",
            vec![dir("d"), link("d/l", b'2', "../x")],
        ),
        (
            "a link climbing after a name",
            vec![dir("d"), dir("d/s"), link("d/s/l", b'2', "x/../../..")],
        ),
        (
            "a write through an earlier link",
            vec![
                dir("d"),
                dir("d/real"),
                link("d/l", b'2', "real"),
                file("d/l/x", b"x"),
            ],
        ),
        (
            "a hard link outside",
            vec![dir("d"), link("d/h", b'1', "other/x")],
        ),
        (
            "a hard link to nothing earlier",
            vec![dir("d"), link("d/h", b'1', "d/later")],
        ),
        (
            "a character device",
            vec![dir("d"), link("d/tty", b'3', "")],
        ),
        ("a FIFO", vec![dir("d"), link("d/fifo", b'6', "")]),
        ("a file at the top", vec![file("d", b"x")]),
    ];
    for (what, entries) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let err = run(tmp.path(), "d", &entries, Limits::default()).expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
        assert!(
            err.to_string().contains("refusing the directory \"d\""),
            "{what}: {err}"
        );
        assert!(
            names(tmp.path()).is_empty(),
            "{what}: left {:?}",
            names(tmp.path())
        );
    }
}

#[test]
fn a_wrong_content_digest_or_a_broken_archive_is_data_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = tar_bytes(&[dir("d"), file("d/x", b"x")]);
    let other = tar_bytes(&[dir("d"), file("d/x", b"y")]);
    let err = run_raw(
        tmp.path(),
        "d",
        &gzip(&tar),
        &layer(&other),
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err}");
    assert!(err.to_string().contains("content digest"), "{err}");
    assert!(names(tmp.path()).is_empty());

    let mut cut = gzip(&tar);
    cut.truncate(cut.len() / 2);
    let err = run_raw(tmp.path(), "d", &cut, &layer(&tar), Limits::default()).unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err}");
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn an_archive_past_its_limits_is_resource_exhausted() {
    let tmp = tempfile::tempdir().unwrap();
    let big = vec![0u8; 1 << 20];
    let limits = Limits {
        max_bytes: 512 << 10,
        ..Limits::default()
    };
    let err = run(tmp.path(), "d", &[dir("d"), file("d/zeros", &big)], limits).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(names(tmp.path()).is_empty());

    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    let entries = [dir("d"), file("d/a", b"a"), file("d/b", b"b")];
    let err = run(tmp.path(), "d", &entries, limits).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn a_tree_at_the_final_name_is_replaced_whole() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("d/old")).unwrap();
    std::fs::write(tmp.path().join("d/old/f"), b"old").unwrap();
    run(
        tmp.path(),
        "d",
        &[dir("d"), file("d/new", b"n")],
        Limits::default(),
    )
    .unwrap();
    assert_eq!(names(tmp.path()), ["d"]);
    assert_eq!(names(&tmp.path().join("d")), ["new"]);

    // A link standing at the final name is replaced, its target untouched.
    let victim = tmp.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::remove_dir_all(tmp.path().join("d")).unwrap();
    std::os::unix::fs::symlink(&victim, tmp.path().join("d")).unwrap();
    run(
        tmp.path(),
        "d",
        &[dir("d"), file("d/new", b"n")],
        Limits::default(),
    )
    .unwrap();
    assert!(names(&victim).is_empty());
    assert!(!tmp
        .path()
        .join("d")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
}

#[test]
fn link_targets_may_climb_only_at_their_start_and_within_the_tree() {
    let ok = |rel, target| check_link_target("d", rel, target).is_ok();
    assert!(ok("a", "b"));
    assert!(ok("s/a", "../b"));
    assert!(ok("s/t/a", "../../b/c"));
    assert!(!ok("a", "../b"));
    assert!(!ok("s/a", "../../b"));
    assert!(!ok("s/a", "b/../c"));
    assert!(!ok("s/a", "./b"));
    assert!(!ok("a", "/b"));
    assert!(!ok("a", ""));
}

/// Every case of the shared `clients/conformance/archives.json`.
#[test]
fn the_shared_archive_vectors() {
    use base64::Engine as _;
    let text = include_str!("../../../conformance/archives.json");
    let vectors: serde_json::Value = serde_json::from_str(text).unwrap();
    for case in vectors["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let title = case["title"].as_str().unwrap();
        let archive = base64::engine::general_purpose::STANDARD
            .decode(case["archive"].as_str().unwrap())
            .unwrap();
        let mut layer = pb::Descriptor::default();
        layer
            .annotations
            .insert(UNPACK_ANNOTATION.into(), "true".into());
        if let Some(d) = case["tar_digest"].as_str() {
            layer
                .annotations
                .insert(TAR_DIGEST_ANNOTATION.into(), d.into());
        }
        let mut limits = Limits::default();
        if let Some(n) = case["limits"]["max_bytes"].as_u64() {
            limits.max_bytes = n;
        }
        if let Some(n) = case["limits"]["max_entries"].as_u64() {
            limits.max_entries = n;
        }
        let tmp = tempfile::tempdir().unwrap();
        let result = run_raw(tmp.path(), title, &archive, &layer, limits);
        let expect = &case["expect"];
        let code = match &result {
            Ok(_) => "OK".to_string(),
            Err(e) => crate::code_name(e.code()),
        };
        assert_eq!(code, expect["code"].as_str().unwrap(), "{name}: {result:?}");
        let Ok(root) = result else {
            assert!(
                names(tmp.path()).is_empty(),
                "{name}: left {:?}",
                names(tmp.path())
            );
            continue;
        };
        let mut found = serde_json::Map::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let what = if meta.is_symlink() {
                    serde_json::json!({"link": std::fs::read_link(&path).unwrap().to_str().unwrap()})
                } else if meta.is_dir() {
                    stack.push(path.clone());
                    serde_json::json!({"dir": true})
                } else {
                    serde_json::json!({
                        "file": String::from_utf8(std::fs::read(&path).unwrap()).unwrap(),
                        "exec": meta.permissions().mode() & 0o100 != 0,
                    })
                };
                found.insert(rel, what);
            }
        }
        assert_eq!(serde_json::Value::Object(found), expect["tree"], "{name}");
    }
}

#[test]
fn a_global_pax_header_names_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let global = E {
        name: "pax_global_header",
        kind: b'g',
        data: b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
        link: "",
        mode: 0o666,
    };
    let path = run(
        tmp.path(),
        "d",
        &[global, dir("d"), file("d/x", b"x")],
        Limits::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(path.join("x")).unwrap(), b"x");
}

#[test]
fn oversized_extension_headers_and_deep_entries_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = vec![b'n'; 2 << 20];
    let long_name = E {
        name: "././@LongLink",
        kind: b'L',
        data: &huge,
        link: "",
        mode: 0o644,
    };
    let err = run(
        tmp.path(),
        "d",
        &[dir("d"), long_name, file("d/x", b"x")],
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("extension header"), "{err}");
    assert!(names(tmp.path()).is_empty());

    let deep = format!("d/{}x", "a/".repeat(MAX_DEPTH));
    let long = E {
        name: "././@LongLink",
        kind: b'L',
        data: deep.as_bytes(),
        link: "",
        mode: 0o644,
    };
    let err = run(
        tmp.path(),
        "d",
        &[dir("d"), long, file("d/short", b"x")],
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.to_string().contains("deep"), "{err}");
    assert!(names(tmp.path()).is_empty());
}

#[test]
fn directories_keep_their_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut private = dir("d/private");
    private.mode = 0o700;
    let path = run(tmp.path(), "d", &[dir("d"), private], Limits::default()).unwrap();
    let mode = std::fs::metadata(path.join("private"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
