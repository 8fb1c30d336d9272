//! ORAS parity, against the real ORAS CLI (built from its Go module by
//! `bench/peers.sh`) on both real registries: what one tool pushes, the
//! other pulls to the same files, in both directions.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use satchel_tests::leaks::cli_code;
use satchel_tests::peers::multi_arch_index;
use satchel_tests::peers::oras_ok;
use satchel_tests::{sha256, Daemon, Registry, RegistryKind};

/// What a tree holds, by relative path: each file's digest and whether it
/// is executable, each link's target, each directory.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                "dir".to_string()
            } else {
                let exec = meta.permissions().mode() & 0o100 != 0;
                format!(
                    "file {} exec={exec}",
                    sha256(&std::fs::read(&path).unwrap())
                )
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A source tree: a directory with a nested one, an executable and a link,
/// and a file in another directory, pushed as `dir` and `other/f.txt`.
fn source(scratch: &Path) -> std::path::PathBuf {
    let src = scratch.join("src");
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    std::fs::create_dir_all(src.join("other")).unwrap();
    std::fs::write(src.join("dir/run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(src.join("dir/run.sh"), PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(src.join("dir/sub/deep.txt"), vec![b'x'; 200_000]).unwrap();
    std::os::unix::fs::symlink("run.sh", src.join("dir/ln")).unwrap();
    std::fs::write(src.join("other/f.txt"), b"other\n").unwrap();
    src
}

fn titles(registry: &Registry, reference: &str) -> Vec<(String, String, bool)> {
    let manifest = oras_ok(
        Path::new("."),
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &format!("{}/{reference}", registry.addr),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let a = &l["annotations"];
            (
                a["org.opencontainers.image.title"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                l["mediaType"].as_str().unwrap().to_string(),
                a["io.deis.oras.content.unpack"] == "true",
            )
        })
        .collect()
}

fn directories_cross_both_ways(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let scratch = daemon.scratch();
    let src = source(scratch);
    let expected: BTreeMap<String, String> = tree(&src)
        .into_iter()
        .filter(|(k, _)| k.starts_with("dir") || k == "other/f.txt" || k == "other")
        .collect();
    let by_satchel = format!("{}/parity:satchel", registry.addr);
    let by_oras = format!("{}/parity:oras", registry.addr);

    daemon.ok_in(
        &src,
        &["push", "--plain-http", &by_satchel, "dir", "./other/f.txt"],
    );
    oras_ok(
        &src,
        &["push", "--plain-http", &by_oras, "dir", "./other/f.txt"],
    );
    let layers = vec![
        (
            "dir".to_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
            true,
        ),
        (
            "other/f.txt".to_string(),
            "application/vnd.oci.image.layer.v1.tar".to_string(),
            false,
        ),
    ];
    assert_eq!(titles(&registry, "parity:satchel"), layers);
    assert_eq!(titles(&registry, "parity:oras"), layers);

    for reference in [&by_satchel, &by_oras] {
        let with_oras = scratch.join(format!("oras-{}", reference.rsplit(':').next().unwrap()));
        std::fs::create_dir(&with_oras).unwrap();
        oras_ok(&with_oras, &["pull", "--plain-http", reference]);
        assert_eq!(tree(&with_oras), expected, "oras pull of {reference}");

        let with_satchel =
            scratch.join(format!("satchel-{}", reference.rsplit(':').next().unwrap()));
        daemon.pull_plain(reference, &with_satchel);
        assert_eq!(tree(&with_satchel), expected, "satchel pull of {reference}");
        // A second pull replaces the tree whole: nothing stale stays.
        std::fs::write(with_satchel.join("dir/stale"), b"old").unwrap();
        daemon.ok(&[
            "pull",
            "--stream",
            "--plain-http",
            reference,
            "-o",
            with_satchel.to_str().unwrap(),
        ]);
        assert_eq!(
            tree(&with_satchel),
            expected,
            "second satchel pull of {reference}"
        );
    }
}

/// A raw tar entry: name, typeflag, data, link target.
type RawEntry<'a> = (&'a str, u8, &'a [u8], &'a str);

/// A raw tar, written byte for byte so that hostile names go in as they
/// are.
fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = *kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn hostile_directory_layers_pushed_by_oras_are_refused_and_write_nothing() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let scratch = daemon.scratch();
    let cases: [(&str, Vec<RawEntry<'_>>); 4] = [
        (
            "climbs",
            vec![("d", b'5', b"", ""), ("d/../../escaped", b'0', b"x", "")],
        ),
        (
            "absolute-link",
            vec![("d", b'5', b"", ""), ("d/l", b'2', b"", "/etc/passwd")],
        ),
        (
            "through-a-link",
            vec![
                ("d", b'5', b"", ""),
                ("d/l", b'2', b"", ".."),
                ("d/l/escaped", b'0', b"x", ""),
            ],
        ),
        (
            "device",
            vec![("d", b'5', b"", ""), ("d/null", b'3', b"", "")],
        ),
    ];
    for (name, entries) in cases {
        let work = scratch.join(name);
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("evil.tgz"), gzip(&raw_tar(&entries))).unwrap();
        // The ORAS CLI's own annotation file marks the archive a directory.
        let annotations = serde_json::json!({
            "evil.tgz": {
                "org.opencontainers.image.title": "d",
                "io.deis.oras.content.unpack": "true",
            }
        });
        std::fs::write(work.join("a.json"), annotations.to_string()).unwrap();
        let reference = format!("{}/hostile:{name}", registry.addr);
        oras_ok(
            &work,
            &[
                "push",
                "--plain-http",
                "--annotation-file",
                "a.json",
                &reference,
                "evil.tgz:application/vnd.oci.image.layer.v1.tar+gzip",
            ],
        );
        let out = work.join("out");
        let err = daemon.fails(&[
            "pull",
            "--plain-http",
            &reference,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(cli_code(&err), "INVALID_ARGUMENT", "{name}: {err}");
        let left: Vec<_> = std::fs::read_dir(&out)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: left {left:?}");
        assert!(
            !scratch.join("escaped").exists() && !work.join("escaped").exists(),
            "{name}"
        );
    }
}

#[test]
fn titles_keep_relative_paths_and_refuse_climbing_ones() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let src = source(daemon.scratch());
    let reference = format!("{}/titles:v1", registry.addr);
    daemon.ok_in(
        &src.join("dir"),
        &["push", "--plain-http", &reference, "sub//deep.txt"],
    );
    assert_eq!(
        titles(&registry, "titles:v1"),
        [(
            "sub/deep.txt".to_string(),
            "application/vnd.oci.image.layer.v1.tar".to_string(),
            false
        )]
    );
    let pulled = daemon.scratch().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    oras_ok(&pulled, &["pull", "--plain-http", &reference]);
    assert_eq!(
        std::fs::read(pulled.join("sub/deep.txt")).unwrap(),
        std::fs::read(src.join("dir/sub/deep.txt")).unwrap()
    );

    // ORAS would push this title and refuse to pull it; satchel refuses it
    // at once.
    let out = daemon.run_in(
        &src.join("dir"),
        &["push", "--plain-http", &reference, "../other/f.txt"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(cli_code(&err), "INVALID_ARGUMENT", "{err}");
    assert!(err.contains("\"../other/f.txt\""), "{err}");
}

/// The index.json entries of a layout, without their digests and sizes
/// (the two tools' manifests differ in their creation times).
fn index_entries(layout: &Path) -> Vec<serde_json::Value> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut entries: Vec<serde_json::Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut annotations: BTreeMap<String, String> =
                serde_json::from_value(m["annotations"].clone()).unwrap_or_default();
            let created = annotations
                .remove("org.opencontainers.image.created")
                .expect("a creation time");
            assert!(
                created.starts_with("20") && created.ends_with('Z'),
                "{created}"
            );
            serde_json::json!({
                "mediaType": m["mediaType"],
                "artifactType": m["artifactType"],
                "annotations": annotations,
            })
        })
        .collect();
    entries.sort_by_key(|e| e.to_string());
    entries
}

#[test]
fn layout_index_entries_carry_what_oras_writes() {
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    for (tool, layout) in [("satchel", "by-satchel"), ("oras", "by-oras")] {
        let run = |args: &[&str]| match tool {
            "satchel" => {
                daemon.ok_in(work, args);
            }
            _ => {
                oras_ok(work, args);
            }
        };
        let tagged = format!("{layout}:v1");
        run(&[
            "push",
            "--oci-layout",
            &tagged,
            "--artifact-type",
            "application/x.t",
            "-a",
            "k=v",
            "f.txt",
        ]);
        run(&[
            "attach",
            "--oci-layout",
            &tagged,
            "--artifact-type",
            "application/x.sbom",
            "f.txt",
        ]);
    }
    let ours = index_entries(&work.join("by-satchel"));
    assert_eq!(ours, index_entries(&work.join("by-oras")));
    assert!(
        ours.iter()
            .any(|e| e["artifactType"] == "application/x.sbom"),
        "{ours:?}"
    );
}

/// Depth-3 trees, mixed attachers: `satchel discover` prints what `oras
/// discover` prints, as a tree (annotations included) and as JSON, for
/// every level and for one.
fn discover_matches(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    let repo = format!("{}/tree", registry.addr);
    oras_ok(
        work,
        &["push", "--plain-http", &format!("{repo}:v1"), "f.txt"],
    );
    let digest_of = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("Digest: "))
            .expect("a Digest line")
            .to_string()
    };
    let attach = |by: &str, subject: &str, artifact_type: &str| {
        let args = [
            "attach",
            "--plain-http",
            "--artifact-type",
            artifact_type,
            subject,
            "f.txt",
        ];
        match by {
            "satchel" => digest_of(&daemon.ok_in(work, &args)),
            _ => digest_of(&oras_ok(work, &args)),
        }
    };
    let subject = format!("{repo}:v1");
    let sbom = attach("satchel", &subject, "application/vnd.cyclonedx+json");
    attach("oras", &subject, "application/vnd.example.docs");
    let sig = attach(
        "oras",
        &format!("{repo}@{sbom}"),
        "application/vnd.example.sig",
    );
    attach(
        "satchel",
        &format!("{repo}@{sig}"),
        "application/vnd.example.countersig",
    );
    attach(
        "satchel",
        &format!("{repo}@{sbom}"),
        "application/vnd.example.vex",
    );

    for depth in [None, Some("1"), Some("2")] {
        let mut args = vec!["discover", "--plain-http"];
        if let Some(d) = depth {
            args.extend(["--depth", d]);
        }
        args.push(&subject);
        let ours = daemon.ok_in(work, &args);
        assert_eq!(ours, oras_ok(work, &args), "tree, depth {depth:?}");
        args.splice(2..2, ["--format", "json"]);
        let ours: serde_json::Value = serde_json::from_str(&daemon.ok_in(work, &args)).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&oras_ok(work, &args)).unwrap();
        assert_eq!(ours, theirs, "json, depth {depth:?}");
    }
}

/// `push --format json` and `pull --format json` carry the ORAS CLI's
/// fields with its values (paths aside, which name each tool's directory).
#[test]
fn json_documents_carry_what_oras_prints() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let src = source(daemon.scratch());
    let repo = format!("{}/json", registry.addr);
    let push = |by: &str, tags: &str| -> serde_json::Value {
        let reference = format!("{repo}:{tags}");
        let args = [
            "push",
            "--plain-http",
            "--format",
            "json",
            &reference,
            "dir",
            "other/f.txt",
        ];
        let out = match by {
            "satchel" => daemon.ok_in(&src, &args),
            _ => oras_ok(&src, &args),
        };
        serde_json::from_str(&out).unwrap()
    };
    let ours = push("satchel", "s1,s2");
    let theirs = push("oras", "o1,o2");
    for (key, value) in theirs.as_object().unwrap() {
        assert!(
            ours.get(key).is_some(),
            "push: satchel lacks {key} ({value})"
        );
    }
    assert_eq!(
        ours["referenceAsTags"],
        serde_json::json!([format!("{repo}:s1"), format!("{repo}:s2")])
    );

    let pull = |by: &str, out: &Path| -> serde_json::Value {
        std::fs::create_dir_all(out).unwrap();
        let args = [
            "pull",
            "--plain-http",
            "--format",
            "json",
            &format!("{repo}:o1"),
            "-o",
            ".",
        ];
        let text = match by {
            "satchel" => daemon.ok_in(out, &args),
            _ => oras_ok(out, &args),
        };
        let text = text.replace(&format!("{}/", out.display()), "OUT/");
        serde_json::from_str(&text).unwrap()
    };
    let scratch = daemon.scratch();
    let ours = pull("satchel", &scratch.join("pull-satchel"));
    let theirs = pull("oras", &scratch.join("pull-oras"));
    assert_eq!(ours, theirs);
    assert_eq!(theirs["files"][0]["path"], "OUT/dir/");
}

/// `manifest fetch`, `tag` and `repo tags`, by satchel and by ORAS, on one
/// repository: the same bytes, descriptors, documents and listings; their
/// error paths with the right codes.
fn manifests_and_tags_match(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    let repo = format!("{}/tags", registry.addr);
    let v1 = format!("{repo}:v1");
    oras_ok(work, &["push", "--plain-http", &v1, "f.txt"]);
    daemon.ok_in(
        work,
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/x.sbom",
            &v1,
            "f.txt",
        ],
    );

    let both = |args: &[&str]| (daemon.ok_in(work, args), oras_ok(work, args));
    for flags in [
        &[][..],
        &["--descriptor"],
        &["--format", "json"],
        &["--pretty"],
    ] {
        let mut args = vec!["manifest", "fetch", "--plain-http"];
        args.extend_from_slice(flags);
        args.push(&v1);
        let (ours, theirs) = both(&args);
        if flags.contains(&"json") {
            let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
            assert_eq!(parse(&ours), parse(&theirs));
        } else {
            assert_eq!(ours, theirs, "manifest fetch {flags:?}");
        }
    }

    // `-o FILE` gets the manifest's bytes; a descriptor still goes out.
    let ours = daemon.ok_in(
        work,
        &[
            "manifest",
            "fetch",
            "--plain-http",
            "--descriptor",
            "-o",
            "ours.json",
            &v1,
        ],
    );
    let theirs = oras_ok(
        work,
        &[
            "manifest",
            "fetch",
            "--plain-http",
            "--descriptor",
            "-o",
            "theirs.json",
            &v1,
        ],
    );
    assert_eq!(ours, theirs);
    assert_eq!(
        std::fs::read(work.join("ours.json")).unwrap(),
        std::fs::read(work.join("theirs.json")).unwrap()
    );

    let tagged = daemon.ok_in(work, &["tag", "--plain-http", &v1, "s1", "s2"]);
    assert!(
        tagged.starts_with("Tagging [registry] ") && tagged.ends_with("Tagged s1\nTagged s2\n"),
        "{tagged}"
    );
    oras_ok(work, &["tag", "--plain-http", &v1, "o1"]);
    for flags in [&[][..], &["--exclude-digest-tags"], &["--format", "json"]] {
        let mut args = vec!["repo", "tags", "--plain-http"];
        args.extend_from_slice(flags);
        args.push(&repo);
        let (ours, theirs) = both(&args);
        assert_eq!(ours, theirs, "repo tags {flags:?}");
    }
    let listed = daemon.ok_in(work, &["repo", "tags", "--plain-http", &repo]);
    for tag in ["v1", "s1", "s2", "o1"] {
        assert!(listed.lines().any(|l| l == tag), "{tag} in {listed}");
    }
    let schema_tag = listed.lines().any(|l| l.starts_with("sha256-"));
    assert_eq!(schema_tag, kind == RegistryKind::Distribution, "{listed}");

    let code = |args: &[&str]| cli_code(&daemon.fails(args)).to_string();
    assert_eq!(
        code(&["tag", "--plain-http", &v1, "bad tag"]),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(&[
            "manifest",
            "fetch",
            "--plain-http",
            &format!("{repo}:absent")
        ]),
        "NOT_FOUND"
    );
    assert_eq!(
        code(&["tag", "--plain-http", &format!("{repo}:absent"), "x"]),
        "NOT_FOUND"
    );
}

#[test]
fn layout_tags_match_oras() {
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    oras_ok(work, &["push", "--oci-layout", "lay:v1", "f.txt"]);
    daemon.ok_in(work, &["tag", "--oci-layout", "lay:v1", "b2", "a1"]);
    let args = ["repo", "tags", "--oci-layout", "lay"];
    assert_eq!(daemon.ok_in(work, &args), oras_ok(work, &args));
    assert_eq!(daemon.ok_in(work, &args), "a1\nb2\nv1\n");
    let fetch = ["manifest", "fetch", "--oci-layout", "lay:a1"];
    assert_eq!(daemon.ok_in(work, &fetch), oras_ok(work, &fetch));
}

/// `--platform` picks what crane and the ORAS CLI pick, for resolve,
/// manifest fetch, discover and attach; a bad or absent platform fails
/// with the right code.
#[test]
fn platform_picks_what_crane_and_oras_pick() {
    use satchel_tests::peers::crane_ok;
    let registry = Registry::start();
    let daemon = Daemon::start();
    let work = daemon.scratch();
    let repo = format!("{}/multi", registry.addr);
    let (amd64, arm64) = multi_arch_index(work, &repo);
    let index = format!("{repo}:idx");
    for (platform, want) in [
        ("linux/amd64", &amd64),
        ("linux/arm64", &arm64),
        ("linux/arm64/v8", &arm64),
    ] {
        let ours = daemon.ok(&["resolve", "--plain-http", "--platform", platform, &index]);
        assert_eq!(ours.trim(), want.as_str(), "{platform}");
        let crane = crane_ok(&["digest", "--insecure", "--platform", platform, &index]);
        assert_eq!(ours.trim(), crane.trim(), "{platform}: crane");
        let oras = oras_ok(
            work,
            &["resolve", "--plain-http", "--platform", platform, &index],
        );
        assert_eq!(ours.trim(), oras.trim(), "{platform}: oras");
        let fetched = daemon.ok(&[
            "manifest",
            "fetch",
            "--plain-http",
            "--platform",
            platform,
            &index,
        ]);
        assert_eq!(
            fetched,
            crane_ok(&["manifest", "--insecure", "--platform", platform, &index])
        );
    }
    // No platform: the index itself.
    let idx_digest = daemon.ok(&["resolve", "--plain-http", &index]);
    assert_eq!(
        idx_digest.trim(),
        crane_ok(&["digest", "--insecure", &index]).trim()
    );

    // An attachment with --platform goes on that platform's image.
    std::fs::write(work.join("sbom.json"), b"{}").unwrap();
    daemon.ok_in(
        work,
        &[
            "attach",
            "--plain-http",
            "--platform",
            "linux/arm64",
            "--artifact-type",
            "application/x.sbom",
            &index,
            "sbom.json",
        ],
    );
    let on_arm: serde_json::Value = serde_json::from_str(&oras_ok(
        work,
        &[
            "discover",
            "--plain-http",
            "--format",
            "json",
            &format!("{repo}@{arm64}"),
        ],
    ))
    .unwrap();
    assert_eq!(on_arm["referrers"].as_array().unwrap().len(), 1, "{on_arm}");
    let ours = daemon.ok(&[
        "discover",
        "--plain-http",
        "--platform",
        "linux/arm64",
        "--format",
        "json",
        &index,
    ]);
    let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
    assert_eq!(ours, on_arm);

    let code = |args: &[&str]| cli_code(&daemon.fails(args)).to_string();
    assert_eq!(
        code(&["resolve", "--plain-http", "--platform", "linux/", &index]),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        code(&[
            "resolve",
            "--plain-http",
            "--platform",
            "linux/s390x",
            &index
        ]),
        "NOT_FOUND"
    );
    let image = format!("{repo}@{amd64}");
    assert_eq!(
        code(&[
            "resolve",
            "--plain-http",
            "--platform",
            "linux/arm64",
            &image
        ]),
        "NOT_FOUND"
    );
    let same = daemon.ok(&[
        "resolve",
        "--plain-http",
        "--platform",
        "linux/amd64",
        &image,
    ]);
    assert_eq!(same.trim(), amd64);
}

fn repositories_match(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    for repo in ["team/a", "team/b", "solo"] {
        oras_ok(
            work,
            &[
                "push",
                "--plain-http",
                &format!("{}/{repo}:v1", registry.addr),
                "f.txt",
            ],
        );
    }
    for at in [registry.addr.clone(), format!("{}/team", registry.addr)] {
        for flags in [&[][..], &["--format", "json"]] {
            let mut args = vec!["repo", "ls", "--plain-http"];
            args.extend_from_slice(flags);
            args.push(&at);
            assert_eq!(
                daemon.ok_in(work, &args),
                oras_ok(work, &args),
                "repo ls {flags:?} {at}"
            );
        }
    }
    let listed = daemon.ok(&[
        "repo",
        "ls",
        "--plain-http",
        &format!("{}/team", registry.addr),
    ]);
    assert_eq!(listed, "a\nb\n");
    let slash = [
        "repo",
        "ls",
        "--plain-http",
        &format!("{}/team/", registry.addr),
    ];
    assert_eq!(daemon.ok_in(work, &slash), oras_ok(work, &slash));
}

/// `--export-manifest` on push and attach writes the manifest pushed;
/// `pull --config` writes the config blob, as the ORAS CLI's do.
#[test]
fn exported_manifests_and_pulled_configs_match_oras() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let work = daemon.scratch();
    std::fs::write(work.join("f.txt"), b"f\n").unwrap();
    std::fs::write(work.join("cfg.json"), br#"{"built":"by a test"}"#).unwrap();
    let v1 = format!("{}/export:v1", registry.addr);
    let pushed = daemon.ok_in(
        work,
        &[
            "push",
            "--plain-http",
            "--export-manifest",
            "pushed.json",
            "--config",
            "cfg.json:application/x.cfg",
            &v1,
            "f.txt",
        ],
    );
    let attached = daemon.ok_in(
        work,
        &[
            "attach",
            "--plain-http",
            "--export-manifest",
            "attached.json",
            "--artifact-type",
            "application/x.sbom",
            &v1,
            "f.txt",
        ],
    );
    for (out, file) in [(&pushed, "pushed.json"), (&attached, "attached.json")] {
        let digest = out
            .lines()
            .find_map(|l| l.strip_prefix("Digest: "))
            .unwrap();
        assert_eq!(
            sha256(&std::fs::read(work.join(file)).unwrap()),
            digest,
            "{file}"
        );
    }
    let fetched = oras_ok(work, &["manifest", "fetch", "--plain-http", &v1]);
    assert_eq!(
        std::fs::read(work.join("pushed.json")).unwrap(),
        fetched.as_bytes()
    );

    for (tool, dir) in [("satchel", "by-satchel"), ("oras", "by-oras")] {
        let out = work.join(dir);
        std::fs::create_dir(&out).unwrap();
        let args = [
            "pull",
            "--plain-http",
            "--config",
            "config.json",
            "-o",
            dir,
            &v1,
        ];
        match tool {
            "satchel" => daemon.ok_in(work, &args),
            _ => oras_ok(work, &args),
        };
        assert_eq!(
            std::fs::read(out.join("config.json")).unwrap(),
            br#"{"built":"by a test"}"#,
            "{tool}"
        );
    }
}

satchel_tests::on_both_registries!(
    directories_cross_both_ways,
    discover_matches,
    manifests_and_tags_match,
    repositories_match,
);
