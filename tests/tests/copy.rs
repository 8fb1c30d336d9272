//! `satchel cp`, `backup` and `restore` beside the real ORAS CLI's, on
//! docker-registry (referrers tag schema) and ferro-oci-server (referrers
//! API): the referrer trees they leave behind are the same, and each tool
//! restores the other's backups.

use std::path::Path;

use satchel_tests::leaks::cli_code;
use satchel_tests::peers::oras_ok;
use satchel_tests::{Daemon, Registry, RegistryKind};

/// A subject with two levels of referrers, pushed by the ORAS CLI:
/// `app:v1`, an SBOM on it and a signature on the SBOM.
fn seed(registry: &Registry, dir: &Path, repo: &str) -> String {
    std::fs::write(dir.join("app.txt"), b"the app\n").unwrap();
    std::fs::write(dir.join("sbom.json"), br#"{"bomFormat":"CycloneDX"}"#).unwrap();
    std::fs::write(dir.join("sig.txt"), b"signed\n").unwrap();
    let subject = format!("{}/{repo}:v1", registry.addr);
    oras_ok(dir, &["push", "--plain-http", &subject, "app.txt"]);
    let sbom = oras_ok(
        dir,
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/vnd.cyclonedx+json",
            "--format",
            "json",
            &subject,
            "sbom.json",
        ],
    );
    let sbom: serde_json::Value = serde_json::from_str(&sbom).unwrap();
    let sbom_ref = format!(
        "{}/{repo}@{}",
        registry.addr,
        sbom["digest"].as_str().unwrap()
    );
    oras_ok(
        dir,
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            "application/example.sig",
            &sbom_ref,
            "sig.txt",
        ],
    );
    subject
}

/// The referrer tree `oras discover` shows under `reference`, as digests
/// and artifact types only.
fn tree(reference: &str, layout: bool) -> serde_json::Value {
    let mut args = vec!["discover", "--format", "json"];
    args.push(if layout {
        "--oci-layout"
    } else {
        "--plain-http"
    });
    args.push(reference);
    let out = oras_ok(Path::new("."), &args);
    fn strip(v: &serde_json::Value) -> serde_json::Value {
        let mut children: Vec<serde_json::Value> = v["referrers"]
            .as_array()
            .map(|a| a.iter().map(strip).collect())
            .unwrap_or_default();
        children.sort_by_key(|c| c["digest"].to_string());
        serde_json::json!({
            "digest": v["digest"],
            "artifactType": v["artifactType"],
            "referrers": children,
        })
    }
    strip(&serde_json::from_str(&out).unwrap())
}

/// A registry of `kind` seeded as [`seed`] does, and a daemon.
fn seeded(kind: RegistryKind) -> (Registry, Daemon, String) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let subject = seed(&registry, daemon.scratch(), "app");
    (registry, daemon, subject)
}

fn registries(from: RegistryKind, to: RegistryKind) -> (Registry, Registry) {
    (Registry::start_kind(from), Registry::start_kind(to))
}

fn cp_r_carries_the_tree_like_oras(from: RegistryKind, to: RegistryKind) {
    let (src, dst) = registries(from, to);
    let daemon = Daemon::start();
    let subject = seed(&src, daemon.scratch(), "app");
    let expected = tree(&subject, false);
    assert_eq!(
        expected["referrers"][0]["referrers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let by_satchel = format!("{}/copied:v1", dst.addr);
    let out = daemon.ok(&[
        "cp",
        "-r",
        "--from-plain-http",
        "--to-plain-http",
        &subject,
        &format!("{by_satchel},v2"),
    ]);
    assert!(
        out.contains(&format!(
            "Copied [registry] {subject} => [registry] {by_satchel}"
        )),
        "{out}"
    );
    assert!(out.contains("Tagged v2"), "{out}");
    let by_oras = format!("{}/oras-copied:v1", dst.addr);
    oras_ok(
        Path::new("."),
        &[
            "cp",
            "-r",
            "--from-plain-http",
            "--to-plain-http",
            &subject,
            &by_oras,
        ],
    );

    assert_eq!(tree(&by_satchel, false), expected);
    assert_eq!(tree(&by_oras, false), expected);
    assert_eq!(tree(&format!("{}/copied:v2", dst.addr), false), expected);
    // A second copy finds the root there and walks nothing below it.
    let again = daemon.ok(&[
        "cp",
        "--from-plain-http",
        "--to-plain-http",
        &subject,
        &by_satchel,
    ]);
    assert!(again.contains("Exists "), "{again}");
    assert!(!again.contains("Copying"), "{again}");
}

#[test]
fn cp_r_from_the_tag_schema_to_the_referrers_api() {
    cp_r_carries_the_tree_like_oras(RegistryKind::Distribution, RegistryKind::Ferro);
}

#[test]
fn cp_r_from_the_referrers_api_to_the_tag_schema() {
    cp_r_carries_the_tree_like_oras(RegistryKind::Ferro, RegistryKind::Distribution);
}

fn within_one_registry_blobs_are_mounted(kind: RegistryKind) {
    let (registry, daemon, subject) = seeded(kind);
    let copy = format!("{}/elsewhere:v1", registry.addr);
    let out = daemon.ok(&[
        "cp",
        "-r",
        "--from-plain-http",
        "--to-plain-http",
        &subject,
        &copy,
    ]);
    // No blob goes through satcheld: docker-registry mounts each (app.txt,
    // the SBOM, the signature, the empty config), ferro-oci-server keeps
    // blobs registry-wide and has them already.
    let uploaded: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Copying") && !l.ends_with("manifest.v1+json"))
        .collect();
    assert_eq!(uploaded, Vec::<&str>::new(), "{out}");
    let mounted = out.lines().filter(|l| l.starts_with("Mounted ")).count();
    if kind == RegistryKind::Distribution {
        assert!(mounted >= 4, "{out}");
    }
    assert_eq!(tree(&copy, false), tree(&subject, false));
}

fn backups_restore_across_the_tools(kind: RegistryKind) {
    let (registry, daemon, subject) = seeded(kind);
    let scratch = daemon.scratch();
    let expected = tree(&subject, false);
    for out in ["by-satchel.tar", "by-satchel-dir"] {
        let path = scratch.join(out);
        let done = daemon.ok(&[
            "backup",
            "--plain-http",
            "--include-referrers",
            "-o",
            path.to_str().unwrap(),
            &subject,
        ]);
        assert!(done.contains("Pulled tag v1 with 2 referrer(s)"), "{done}");
        let restored = format!("{}/from-{out}", registry.addr);
        oras_ok(
            scratch,
            &[
                "restore",
                "--plain-http",
                "--input",
                path.to_str().unwrap(),
                &restored,
            ],
        );
        assert_eq!(tree(&format!("{restored}:v1"), false), expected, "{out}");
    }
    for out in ["by-oras.tar", "by-oras-dir"] {
        let path = scratch.join(out);
        oras_ok(
            scratch,
            &[
                "backup",
                "--plain-http",
                "--include-referrers",
                "-o",
                path.to_str().unwrap(),
                &subject,
            ],
        );
        let restored = format!("{}/from-{out}", registry.addr);
        let input = path.to_str().unwrap();
        let dry = daemon.ok(&[
            "restore",
            "--plain-http",
            "--dry-run",
            "--input",
            input,
            &restored,
        ]);
        assert!(
            dry.contains("Dry run: would push tag v1 with 2 referrer(s)"),
            "{dry}"
        );
        let listed =
            satchel_tests::peers::oras(scratch, &["repo", "tags", "--plain-http", &restored]);
        assert!(
            String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
            "a dry run pushed"
        );
        let done = daemon.ok(&["restore", "--plain-http", "--input", input, &restored]);
        assert!(done.contains("Pushed tag v1 with 2 referrer(s)"), "{done}");
        assert_eq!(tree(&format!("{restored}:v1"), false), expected, "{out}");
    }
}

fn a_layout_in_between_keeps_the_tree(kind: RegistryKind) {
    let (registry, daemon, subject) = seeded(kind);
    let scratch = daemon.scratch();
    let layout = scratch.join("layout");
    let layout_ref = format!("{}:v1", layout.display());
    daemon.ok(&[
        "cp",
        "-r",
        "--from-plain-http",
        "--to-oci-layout",
        &subject,
        &layout_ref,
    ]);
    let by_oras = format!("{}:v1", scratch.join("oras-layout").display());
    let args = ["cp", "-r", "--from-plain-http", "--to-oci-layout"];
    oras_ok(scratch, &[&args[..], &[&subject, &by_oras]].concat());
    let (ours, theirs) = (tree(&layout_ref, true), tree(&by_oras, true));
    assert_eq!(ours["digest"], theirs["digest"]);
    assert_eq!(ours["referrers"], theirs["referrers"]);
    assert_eq!(ours["referrers"], tree(&subject, false)["referrers"]);
    // satchel's index.json entry for the tag carries the manifest's
    // artifactType, as `oras push --oci-layout` writes one; `oras cp`
    // writes the registry's descriptor, which has none (docs/cli-json.md).
    assert_eq!(ours["artifactType"], "application/vnd.unknown.artifact.v1");
    assert_eq!(theirs["artifactType"], serde_json::Value::Null);
    let back = format!("{}/back:v1", registry.addr);
    daemon.ok(&[
        "cp",
        "-r",
        "--from-oci-layout",
        "--to-plain-http",
        &layout_ref,
        &back,
    ]);
    assert_eq!(tree(&back, false), tree(&subject, false));
}

fn bad_copies_are_refused(kind: RegistryKind) {
    let (registry, daemon, subject) = seeded(kind);
    let scratch = daemon.scratch();
    let other = format!("{}/x@sha256:{}", registry.addr, "0".repeat(64));
    let out = daemon.satchel(&[
        "cp",
        "--from-plain-http",
        "--to-plain-http",
        &subject,
        &other,
    ]);
    assert_eq!(
        cli_code(&String::from_utf8_lossy(&out.stderr)),
        "INVALID_ARGUMENT",
        "{out:?}"
    );
    let missing = format!("{}/app:nope", registry.addr);
    let out = daemon.satchel(&[
        "cp",
        "--from-plain-http",
        "--to-plain-http",
        &missing,
        &format!("{}/y:v1", registry.addr),
    ]);
    assert_eq!(
        cli_code(&String::from_utf8_lossy(&out.stderr)),
        "NOT_FOUND",
        "{out:?}"
    );
    // A backup archive holding anything but a layout's names is refused
    // before a byte is pushed.
    let evil = scratch.join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "oci-layout", &b"{}\n"[..])
        .unwrap();
    // The tar crate refuses to write `..`; the name goes in by hand.
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    let name = b"blobs/sha256/../../../satchel-restore-escaped";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    builder.finish().unwrap();
    let out = daemon.satchel(&[
        "restore",
        "--plain-http",
        "--input",
        evil.to_str().unwrap(),
        &format!("{}/z", registry.addr),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an OCI layout archive"),
        "{out:?}"
    );
    // Wherever the archive would have been unpacked, nothing escaped.
    for dir in [scratch, scratch.parent().unwrap(), &std::env::temp_dir()] {
        assert!(
            !dir.join("satchel-restore-escaped").exists(),
            "{}",
            dir.display()
        );
    }
}

/// An index over `subject`'s manifest, pushed with `satchel manifest
/// push` as `app:idx`, with a note attached to the index itself.
fn index_over(registry: &Registry, daemon: &Daemon, subject: &str) -> (String, String) {
    let dir = daemon.scratch();
    let child = oras_ok(dir, &["resolve", "--plain-http", subject]);
    let size = oras_ok(dir, &["manifest", "fetch", "--plain-http", subject]).len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": child.trim(),
            "size": size,
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let reference = format!("{}/app:idx", registry.addr);
    daemon.ok_in(
        dir,
        &["manifest", "push", "--plain-http", &reference, "index.json"],
    );
    std::fs::write(dir.join("note.txt"), b"about the index\n").unwrap();
    let attach = [
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/example.note",
    ];
    oras_ok(dir, &[&attach[..], &[&reference, "note.txt"]].concat());
    (reference, child.trim().to_string())
}

fn cp_r_of_an_index_carries_its_manifests_referrers(kind: RegistryKind) {
    let (registry, daemon, subject) = seeded(kind);
    let (index, child) = index_over(&registry, &daemon, &subject);
    let cp = ["cp", "-r", "--from-plain-http", "--to-plain-http"];
    let ours = format!("{}/ours:idx", registry.addr);
    daemon.ok(&[&cp[..], &[&index, &ours]].concat());
    let theirs = format!("{}/theirs:idx", registry.addr);
    oras_ok(Path::new("."), &[&cp[..], &[&index, &theirs]].concat());
    assert_eq!(tree(&ours, false), tree(&index, false));
    assert_eq!(tree(&ours, false), tree(&theirs, false));
    let child_in = |repo: &str| format!("{}/{repo}@{child}", registry.addr);
    let expected = tree(&subject, false);
    assert_eq!(
        expected["referrers"][0]["referrers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        tree(&child_in("ours"), false)["referrers"],
        expected["referrers"]
    );
    assert_eq!(
        tree(&child_in("theirs"), false)["referrers"],
        expected["referrers"]
    );
}

satchel_tests::on_both_registries!(
    cp_r_of_an_index_carries_its_manifests_referrers,
    within_one_registry_blobs_are_mounted,
    backups_restore_across_the_tools,
    a_layout_in_between_keeps_the_tree,
    bad_copies_are_refused,
);

/// `cp --platform` copies the platform's image alone, as `oras cp
/// --platform` does.
#[test]
fn cp_platform_copies_the_image_oras_copies() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    let repo = format!("{}/multi", registry.addr);
    let (_, arm64) = satchel_tests::peers::multi_arch_index(dir, &repo);
    let cp = [
        "cp",
        "--from-plain-http",
        "--to-plain-http",
        "--platform",
        "linux/arm64",
    ];
    let (ours, theirs) = (
        format!("{}/ours:arm", registry.addr),
        format!("{}/theirs:arm", registry.addr),
    );
    daemon.ok(&[&cp[..], &[&format!("{repo}:idx"), &ours]].concat());
    oras_ok(dir, &[&cp[..], &[&format!("{repo}:idx"), &theirs]].concat());
    for copy in [&ours, &theirs] {
        let resolved = oras_ok(dir, &["resolve", "--plain-http", copy]);
        assert_eq!(resolved.trim(), arm64, "{copy}");
    }
}
