//! The walking-skeleton story, end to end: a CI job attaches an SBOM to an
//! image, discovers it, resolves the image and pulls the SBOM back, through
//! real `satchel` and `satcheld` processes, against Debian's docker-registry
//! (no referrers API, so the tag schema) and against an OCI layout.

use std::collections::BTreeMap;
use std::path::Path;

use satchel_tests::image::image_layout;
use satchel_tests::{
    http_get, list_files, sha256, sha256_file, skopeo_copy, subject_layout, without_annotations,
    write_random_file, Daemon, Registry,
};

const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

fn digest_line(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no Digest line in {output:?}"))
        .to_string()
}

/// Runs the story against `subject` (a registry reference, or a layout
/// reference with `--oci-layout` in `flags`). `repo` is how outputs name the
/// repository; `image_digest` is the subject's digest.
fn story(daemon: &Daemon, subject: &str, repo: &str, flags: &[&str], image_digest: &str) {
    let work = daemon.scratch();
    let sbom = work.join("sbom.json");
    let sbom_bytes =
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"name":"hugo"}]}"#;
    std::fs::write(&sbom, sbom_bytes).unwrap();
    let operand = format!("{}:{SBOM_TYPE}", sbom.display());

    let args = |a: &[&str]| -> Vec<String> {
        a.iter()
            .chain(flags.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |a: &[&str]| daemon.ok(&args(a).iter().map(String::as_str).collect::<Vec<_>>());

    let attached = run(&["attach", "--artifact-type", SBOM_TYPE, subject, &operand]);
    let sbom_digest = digest_line(&attached);
    assert!(
        attached.contains(&format!("Attached to {repo}@{image_digest}")),
        "{attached}"
    );

    let tree = run(&["discover", subject]);
    assert!(tree.contains("[annotations]"), "{tree}");
    assert_eq!(
        without_annotations(&tree),
        format!("{repo}@{image_digest}\n└── {SBOM_TYPE}\n    └── {sbom_digest}\n")
    );

    assert_eq!(run(&["resolve", subject]), format!("{image_digest}\n"));

    let json: serde_json::Value =
        serde_json::from_str(&run(&["discover", "--format", "json", subject])).unwrap();
    assert_eq!(json["digest"], image_digest);
    assert_eq!(json["reference"], format!("{repo}@{image_digest}"));
    let referrers = json["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0]["digest"], sbom_digest.as_str());
    assert_eq!(referrers[0]["artifactType"], SBOM_TYPE);
    assert_eq!(
        referrers[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(referrers[0]["annotations"]["org.opencontainers.image.created"].is_string());

    // A filter that matches nothing leaves only the subject.
    let filtered = run(&["discover", "--artifact-type", "application/x-none", subject]);
    assert_eq!(filtered, format!("{repo}@{image_digest}\n"));

    let out = work.join("out");
    let pulled_ref = format!("{}@{sbom_digest}", subject_repo(subject));
    let pulled = run(&["pull", &pulled_ref, "-o", out.to_str().unwrap()]);
    assert!(pulled.contains(&sbom_digest), "{pulled}");
    assert_eq!(std::fs::read(out.join("sbom.json")).unwrap(), sbom_bytes);
    assert_eq!(list_files(&out), vec!["sbom.json"]);

    // Deleting the SBOM takes it out of the subject's referrers.
    let deleted = run(&["manifest", "delete", &pulled_ref]);
    assert!(deleted.contains(&sbom_digest), "{deleted}");
    assert_eq!(
        run(&["discover", subject]),
        format!("{repo}@{image_digest}\n")
    );
}

/// The subject reference without its tag.
fn subject_repo(subject: &str) -> &str {
    let slash = subject.rfind('/').map_or(0, |i| i + 1);
    match subject[slash..].rfind(':') {
        Some(i) => &subject[..slash + i],
        None => subject,
    }
}

#[test]
fn story_against_docker_registry() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let layout = daemon.scratch().join("image");
    let image = subject_layout(&layout, "latest");
    let repo = format!("{}/demo/hugo-builder", registry.addr);
    skopeo_copy(&layout, "latest", &format!("{repo}:latest"));

    story(
        &daemon,
        &format!("{repo}:latest"),
        &repo,
        &["--plain-http"],
        &image.digest,
    );

    // docker-registry has no referrers API, so the SBOM was listed in the
    // tag-schema index; deleting it, the last referrer, removed the index.
    let tag = image.digest.replace(':', "-");
    let (status, _) = http_get(
        &registry.addr,
        &format!("/v2/demo/hugo-builder/manifests/{tag}"),
    )
    .unwrap();
    assert_eq!(status, 404);
}

#[test]
fn story_against_oci_layout() {
    let daemon = Daemon::start();
    let layout = daemon.scratch().join("layout");
    let image = subject_layout(&layout, "latest");
    let subject = format!("{}:latest", layout.display());
    story(
        &daemon,
        &subject,
        &layout.display().to_string(),
        &["--oci-layout"],
        &image.digest,
    );
}

#[test]
fn push_and_pull_200_mib_through_the_daemon() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let big = daemon.scratch().join("big.bin");
    write_random_file(&big, 200 << 20, 0x5a7c_4e1d);
    let expected = sha256_file(&big);
    let reference = format!("{}/demo/big:v1", registry.addr);
    let pushed = daemon.ok(&["push", "--plain-http", &reference, big.to_str().unwrap()]);
    assert!(pushed.contains(&expected), "{pushed}");
    let out = daemon.scratch().join("out");
    daemon.pull_plain(&reference, &out);
    assert_eq!(sha256_file(&out.join("big.bin")), expected);
    assert_eq!(list_files(&out), vec!["big.bin"]);
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let work = daemon.scratch();
    let layout = work.join("image");
    subject_layout(&layout, "latest");
    let repo = format!("{}/demo/hugo-builder", registry.addr);
    skopeo_copy(&layout, "latest", &format!("{repo}:latest"));
    let out = work.join("out");
    let out_arg = out.to_str().unwrap();

    // A malformed reference.
    let err = daemon.fails(&[
        "resolve",
        "--plain-http",
        &format!("{}/Demo/Bad Name:x", registry.addr),
    ]);
    assert!(
        err.contains("invalid reference") && err.contains("INVALID_ARGUMENT"),
        "{err}"
    );

    // A missing file: nothing reaches the registry.
    let err = daemon.fails(&[
        "push",
        "--plain-http",
        &format!("{}/demo/missing:v1", registry.addr),
        "/nonexistent/file.txt",
    ]);
    assert!(err.contains("/nonexistent/file.txt"), "{err}");
    let (status, _) = http_get(&registry.addr, "/v2/demo/missing/tags/list").unwrap();
    assert_eq!(status, 404);

    // An unknown digest.
    let unknown = format!("{repo}@{}", sha256(b"nothing has this digest"));
    let err = daemon.fails(&["pull", "--plain-http", &unknown, "-o", out_arg]);
    assert!(err.contains("NOT_FOUND"), "{err}");
    assert!(list_files(&out).is_empty());

    // An artifact whose layer title escapes the output directory, written
    // by hand and copied in by skopeo, in the registry and in a layout.
    let evil = work.join("evil");
    let titles = BTreeMap::from([(
        "org.opencontainers.image.title".to_string(),
        "../x".to_string(),
    )]);
    image_layout(&evil, "evil", "x", titles);
    skopeo_copy(&evil, "evil", &format!("{repo}:evil"));
    let err = daemon.fails(&[
        "pull",
        "--plain-http",
        &format!("{repo}:evil"),
        "-o",
        out_arg,
    ]);
    assert!(
        err.contains("../x") && err.contains("INVALID_ARGUMENT"),
        "{err}"
    );
    let err = daemon.fails(&[
        "pull",
        "--oci-layout",
        &format!("{}:evil", evil.display()),
        "-o",
        out_arg,
    ]);
    assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    assert!(!work.join("x").exists());
    assert!(list_files(&out).is_empty());

    // Content that does not match its digest is never written under its name.
    let sbom = work.join("sbom.json");
    std::fs::write(&sbom, b"{\"bomFormat\":\"CycloneDX\"}").unwrap();
    let lay_ref = format!("{}:latest", layout.display());
    let attached = daemon.ok(&[
        "attach",
        "--oci-layout",
        "--artifact-type",
        SBOM_TYPE,
        &lay_ref,
        sbom.to_str().unwrap(),
    ]);
    let digest = digest_line(&attached);
    corrupt_blob(&layout, &sha256(b"{\"bomFormat\":\"CycloneDX\"}"));
    let err = daemon.fails(&[
        "pull",
        "--oci-layout",
        &format!("{}@{digest}", layout.display()),
        "-o",
        out_arg,
    ]);
    assert!(err.contains("DATA_LOSS"), "{err}");
    assert!(list_files(&out).is_empty(), "{:?}", list_files(&out));
}

/// Flips a byte of a blob in a layout, keeping its size.
fn corrupt_blob(layout: &Path, digest: &str) {
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let mut data = std::fs::read(&path).unwrap();
    data[0] ^= 0xff;
    std::fs::write(&path, data).unwrap();
}

#[test]
fn daemon_stops_cleanly_on_sigterm() {
    let mut daemon = Daemon::start();
    let socket = daemon.addr.trim_start_matches("unix://").to_string();
    assert!(Path::new(&socket).exists());
    let status = daemon.stop();
    assert!(status.success(), "satcheld exited with {status}");
    assert!(
        !Path::new(&socket).exists(),
        "the socket file should be removed"
    );
    assert!(daemon.log().contains("satcheld stopped"));
}
