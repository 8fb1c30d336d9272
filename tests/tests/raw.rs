//! `satchel manifest push`, `manifest fetch-config` and `blob
//! fetch|push|delete` beside the real ORAS CLI's, on both real registries:
//! the same bytes, descriptors and digests from both tools.

use std::path::Path;

use satchel_tests::leaks::cli_code;
use satchel_tests::peers::{oras, oras_ok};
use satchel_tests::{Daemon, Registry};

/// Fails if a fetch left its temporary file behind in `dir`.
fn no_partial_files(dir: &Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let partial = |n: &std::ffi::OsString| n.to_string_lossy().starts_with(".satchel-fetch");
    assert!(!names.iter().any(partial), "{names:?}");
}

fn code(out: &std::process::Output) -> String {
    cli_code(&String::from_utf8_lossy(&out.stderr)).to_string()
}

/// An artifact pushed by ORAS as `app:v1`, with a config of its own; its
/// manifest's bytes and its layer's digest.
fn seed(registry: &Registry, dir: &Path) -> (String, Vec<u8>, String) {
    std::fs::write(dir.join("layer.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.join("config.json"), br#"{"made":"by a test"}"#).unwrap();
    let subject = format!("{}/app:v1", registry.addr);
    let args = [
        "push",
        "--plain-http",
        "--config",
        "config.json:application/vnd.example.config+json",
        &subject,
        "layer.bin",
    ];
    oras_ok(dir, &args);
    let manifest = oras_ok(dir, &["manifest", "fetch", "--plain-http", &subject]);
    let doc: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap().to_string();
    (subject, manifest.into_bytes(), layer)
}

fn manifests_push_as_oras_pushes_them(kind: satchel_tests::RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    let (subject, manifest, _) = seed(&registry, dir);
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    let digest = satchel_tests::sha256(&manifest);

    let ours = format!("{}/app:v2", registry.addr);
    let out = daemon.ok_in(
        dir,
        &[
            "manifest",
            "push",
            "--plain-http",
            &format!("{ours},v3"),
            "manifest.json",
        ],
    );
    assert!(
        out.contains(&format!("Pushed: [registry] {ours}\n")),
        "{out}"
    );
    assert!(out.contains("Tagged v3\n"), "{out}");
    assert!(out.ends_with(&format!("Digest: {digest}\n")), "{out}");
    for tag in ["v2", "v3"] {
        let resolved = oras_ok(
            dir,
            &[
                "resolve",
                "--plain-http",
                &format!("{}/app:{tag}", registry.addr),
            ],
        );
        assert_eq!(resolved.trim(), digest);
    }
    // The whole summary is ORAS's: status lines, Pushed, Digest.
    let args = |tag: &str| {
        [
            "manifest",
            "push",
            "--plain-http",
            &format!("{}/app:{tag}", registry.addr),
            "manifest.json",
        ]
        .map(String::from)
    };
    let theirs = oras_ok(dir, &args("v6").each_ref().map(String::as_str));
    let ours = daemon.ok_in(dir, &args("v7").each_ref().map(String::as_str));
    assert_eq!(ours.replace(":v7", ":v6"), theirs);
    // --descriptor prints what ORAS prints, byte for byte.
    let theirs = oras_ok(
        dir,
        &[
            "manifest",
            "push",
            "--plain-http",
            "--descriptor",
            &format!("{}/app:v4", registry.addr),
            "manifest.json",
        ],
    );
    let ours = daemon.ok_in(
        dir,
        &[
            "manifest",
            "push",
            "--plain-http",
            "--descriptor",
            &format!("{}/app:v5", registry.addr),
            "manifest.json",
        ],
    );
    assert_eq!(ours.trim(), theirs.trim());

    // A digest that is not the content's, and a document without a
    // mediaType, are refused before anything is stored.
    let wrong = format!("{}/app@sha256:{}", registry.addr, "0".repeat(64));
    let out = daemon.run_in(
        dir,
        &["manifest", "push", "--plain-http", &wrong, "manifest.json"],
    );
    assert_eq!(code(&out), "INVALID_ARGUMENT", "{out:?}");
    let mut bare: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    bare.as_object_mut().unwrap().remove("mediaType");
    std::fs::write(dir.join("bare.json"), serde_json::to_vec(&bare).unwrap()).unwrap();
    let out = daemon.run_in(
        dir,
        &[
            "manifest",
            "push",
            "--plain-http",
            &format!("{}/app:bare", registry.addr),
            "bare.json",
        ],
    );
    assert_eq!(code(&out), "INVALID_ARGUMENT", "{out:?}");
    let listed = oras_ok(
        dir,
        &[
            "repo",
            "tags",
            "--plain-http",
            &format!("{}/app", registry.addr),
        ],
    );
    assert!(!listed.lines().any(|t| t == "bare"), "{listed}");

    // A manifest with a subject, pushed by hand, is listed as a referrer
    // (by the tag schema on docker-registry).
    let mut referrer = bare.clone();
    referrer["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    referrer["artifactType"] = "application/vnd.example.note".into();
    referrer["subject"] = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest,
        "size": manifest.len(),
    });
    std::fs::write(
        dir.join("referrer.json"),
        serde_json::to_vec(&referrer).unwrap(),
    )
    .unwrap();
    let by_digest = format!("{}/app", registry.addr);
    daemon.ok_in(
        dir,
        &[
            "manifest",
            "push",
            "--plain-http",
            &by_digest,
            "referrer.json",
        ],
    );
    let found = oras_ok(
        dir,
        &["discover", "--plain-http", "--format", "json", &subject],
    );
    let found: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(
        found["referrers"][0]["artifactType"], "application/vnd.example.note",
        "{found}"
    );
}

fn blobs_fetch_as_oras_fetches_them(kind: satchel_tests::RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    let (subject, _, layer) = seed(&registry, dir);
    let blob = format!("{}/app@{layer}", registry.addr);
    daemon.ok_in(
        dir,
        &["blob", "fetch", "--plain-http", "-o", "ours.bin", &blob],
    );
    oras_ok(
        dir,
        &["blob", "fetch", "--plain-http", "-o", "theirs.bin", &blob],
    );
    assert_eq!(
        std::fs::read(dir.join("ours.bin")).unwrap(),
        std::fs::read(dir.join("theirs.bin")).unwrap()
    );
    let ours = daemon.ok_in(
        dir,
        &["blob", "fetch", "--plain-http", "--descriptor", &blob],
    );
    let theirs = oras_ok(
        dir,
        &["blob", "fetch", "--plain-http", "--descriptor", &blob],
    );
    assert_eq!(ours.trim(), theirs.trim());
    let out = daemon.run_in(dir, &["blob", "fetch", "--plain-http", "-o", "-", &blob]);
    assert_eq!(out.stdout, std::fs::read(dir.join("theirs.bin")).unwrap());

    // The config, as `oras manifest fetch-config` prints it.
    let ours = daemon.ok_in(dir, &["manifest", "fetch-config", "--plain-http", &subject]);
    let theirs = oras_ok(dir, &["manifest", "fetch-config", "--plain-http", &subject]);
    assert_eq!(ours, theirs);
    let ours = daemon.ok_in(
        dir,
        &[
            "manifest",
            "fetch-config",
            "--plain-http",
            "--descriptor",
            &subject,
        ],
    );
    let theirs = oras_ok(
        dir,
        &[
            "manifest",
            "fetch-config",
            "--plain-http",
            "--descriptor",
            &subject,
        ],
    );
    assert_eq!(ours.trim(), theirs.trim());

    // A missing blob is NOT_FOUND and leaves no file.
    let missing = format!("{}/app@sha256:{}", registry.addr, "1".repeat(64));
    let out = daemon.run_in(
        dir,
        &[
            "blob",
            "fetch",
            "--plain-http",
            "-o",
            "missing.bin",
            &missing,
        ],
    );
    assert_eq!(code(&out), "NOT_FOUND", "{out:?}");
    assert!(!dir.join("missing.bin").exists());
    no_partial_files(dir);
}

fn blobs_push_and_delete_as_oras(kind: satchel_tests::RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    std::fs::write(dir.join("data.bin"), vec![3u8; 200_000]).unwrap();
    let repo = format!("{}/blobs", registry.addr);
    let out = daemon.ok_in(dir, &["blob", "push", "--plain-http", &repo, "data.bin"]);
    let digest = out
        .lines()
        .last()
        .unwrap()
        .strip_prefix("Digest: ")
        .unwrap()
        .to_string();
    assert!(
        out.contains(&format!("Pushed: [registry] {repo}\n")),
        "{out}"
    );
    let blob = format!("{repo}@{digest}");
    oras_ok(
        dir,
        &["blob", "fetch", "--plain-http", "-o", "back.bin", &blob],
    );
    assert_eq!(
        std::fs::read(dir.join("back.bin")).unwrap(),
        std::fs::read(dir.join("data.bin")).unwrap()
    );
    let ours = daemon.ok_in(
        dir,
        &[
            "blob",
            "push",
            "--plain-http",
            "--descriptor",
            &repo,
            "data.bin",
        ],
    );
    let theirs = oras_ok(
        dir,
        &[
            "blob",
            "push",
            "--plain-http",
            "--descriptor",
            &repo,
            "data.bin",
        ],
    );
    assert_eq!(ours.trim(), theirs.trim());
    let wrong = format!("{repo}@sha256:{}", "2".repeat(64));
    let out = daemon.run_in(dir, &["blob", "push", "--plain-http", &wrong, "data.bin"]);
    assert_eq!(code(&out), "INVALID_ARGUMENT", "{out:?}");

    let out = daemon.ok_in(dir, &["blob", "delete", "--plain-http", "-f", &blob]);
    assert_eq!(out, format!("Deleted [registry] {blob}\n"));
    assert!(!oras(
        dir,
        &["blob", "fetch", "--plain-http", "-o", "gone.bin", &blob]
    )
    .status
    .success());
    let out = daemon.ok_in(dir, &["blob", "delete", "--plain-http", "-f", &blob]);
    assert_eq!(out, format!("Missing {blob}\n"));
    let out = daemon.run_in(dir, &["blob", "delete", "--plain-http", &blob]);
    assert_eq!(code(&out), "NOT_FOUND", "{out:?}");
}

fn tags_of_one_manifest_and_after_last(kind: satchel_tests::RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    std::fs::write(dir.join("one.txt"), b"one\n").unwrap();
    std::fs::write(dir.join("two.txt"), b"two\n").unwrap();
    let repo = format!("{}/tagged", registry.addr);
    oras_ok(
        dir,
        &["push", "--plain-http", &format!("{repo}:b,d,a"), "one.txt"],
    );
    oras_ok(
        dir,
        &["push", "--plain-http", &format!("{repo}:c"), "two.txt"],
    );
    let digest = oras_ok(dir, &["resolve", "--plain-http", &format!("{repo}:a")]);
    for args in [
        vec!["repo", "tags", "--plain-http", &repo],
        vec!["repo", "tags", "--plain-http", "--last", "b", &repo],
        vec!["repo", "tags", "--plain-http", &format!("{repo}:d")],
        vec![
            "repo",
            "tags",
            "--plain-http",
            &format!("{repo}@{}", digest.trim()),
        ],
        vec![
            "repo",
            "tags",
            "--plain-http",
            "--last",
            "a",
            &format!("{repo}:d"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(|s| s.as_ref()).collect();
        assert_eq!(daemon.ok_in(dir, &args), oras_ok(dir, &args), "{args:?}");
    }
    let out = daemon.ok_in(dir, &["repo", "tags", "--plain-http", &format!("{repo}:d")]);
    let mut listed: Vec<&str> = out.lines().collect();
    listed.sort();
    assert_eq!(listed, ["a", "b", "d"]);
}

#[test]
fn layouts_keep_their_rules() {
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    let layout = dir.join("layout");
    std::fs::write(dir.join("f.txt"), vec![5u8; 100_000]).unwrap();
    let at = format!("{}:v1", layout.display());
    daemon.ok_in(dir, &["push", "--oci-layout", &at, "f.txt"]);
    let manifest = daemon.ok_in(dir, &["manifest", "fetch", "--oci-layout", &at]);
    let doc: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = format!("{}@{layer}", layout.display());

    // A blob whose bytes were swapped (same size) fails DATA_LOSS, and a
    // file already at the output name is left as it was.
    let (_, hex) = layer.split_once(':').unwrap();
    std::fs::write(layout.join("blobs/sha256").join(hex), vec![6u8; 100_000]).unwrap();
    std::fs::write(dir.join("kept.bin"), b"before").unwrap();
    let out = daemon.run_in(
        dir,
        &["blob", "fetch", "--oci-layout", "-o", "kept.bin", &blob],
    );
    assert_eq!(code(&out), "DATA_LOSS", "{out:?}");
    assert_eq!(std::fs::read(dir.join("kept.bin")).unwrap(), b"before");
    no_partial_files(dir);

    // The manifest's own file is not a blob to delete: index.json lists it.
    let digest = satchel_tests::sha256(manifest.as_bytes());
    let own = format!("{}@{digest}", layout.display());
    let out = daemon.run_in(dir, &["blob", "delete", "--oci-layout", "-f", &own]);
    assert_eq!(code(&out), "FAILED_PRECONDITION", "{out:?}");
    assert!(layout
        .join("blobs/sha256")
        .join(digest.split_once(':').unwrap().1)
        .exists());

    // A manifest naming a blob the layout lacks is refused.
    let mut missing = doc.clone();
    missing["layers"][0]["digest"] = format!("sha256:{}", "3".repeat(64)).into();
    std::fs::write(
        dir.join("missing.json"),
        serde_json::to_vec(&missing).unwrap(),
    )
    .unwrap();
    let to = format!("{}:broken", layout.display());
    let out = daemon.run_in(
        dir,
        &["manifest", "push", "--oci-layout", &to, "missing.json"],
    );
    assert_eq!(code(&out), "FAILED_PRECONDITION", "{out:?}");
    // A media type the document contradicts is refused.
    std::fs::write(dir.join("m.json"), &manifest).unwrap();
    let index = "application/vnd.oci.image.index.v1+json";
    let out = daemon.run_in(
        dir,
        &[
            "manifest",
            "push",
            "--oci-layout",
            "--media-type",
            index,
            &to,
            "m.json",
        ],
    );
    assert_eq!(code(&out), "INVALID_ARGUMENT", "{out:?}");
    let tags = daemon.ok_in(
        dir,
        &[
            "repo",
            "tags",
            "--oci-layout",
            &layout.display().to_string(),
        ],
    );
    assert_eq!(tags, "v1\n");
}

satchel_tests::on_both_registries!(
    manifests_push_as_oras_pushes_them,
    blobs_fetch_as_oras_fetches_them,
    blobs_push_and_delete_as_oras,
    tags_of_one_manifest_and_after_last,
);
