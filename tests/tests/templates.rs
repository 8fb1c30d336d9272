//! `--format go-template` beside the real ORAS CLI's: the same template over
//! the same registry content prints the same text, for every command that
//! takes one (push, attach, discover, pull, manifest fetch, repo tags, repo
//! ls), in both spellings (`--template T` and `go-template=T`).

use std::path::Path;

use satchel_tests::peers::oras_ok;
use satchel_tests::{Daemon, Registry, RegistryKind};

/// Runs one command with the same template under both tools (the ORAS CLI
/// in `--template` form, satchel in both forms) and checks the three agree.
fn same(daemon: &Daemon, dir: &Path, args: &[&str], template: &str) -> String {
    let with_flag = [args, &["--format", "go-template", "--template", template]].concat();
    let inline = format!("go-template={template}");
    let with_eq = [args, &["--format", &inline]].concat();
    let theirs = oras_ok(dir, &with_flag);
    let ours = daemon.ok_in(dir, &with_flag);
    assert_eq!(ours, theirs, "{args:?} {template}");
    assert_eq!(daemon.ok_in(dir, &with_eq), theirs, "{args:?} {inline}");
    theirs
}

fn templates_print_what_oras_prints(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let dir = daemon.scratch();
    std::fs::write(dir.join("a.txt"), b"a\n").unwrap();
    std::fs::write(dir.join("sbom.json"), b"{}").unwrap();
    let repo = format!("{}/tmpl", registry.addr);
    let subject = format!("{repo}:v1");

    // Each command runs three times (ORAS, then satchel in both forms).
    // Pushes and attaches differ in their creation times, so only what
    // does not depend on them is compared.
    let push = ["push", "--plain-http", &subject, "a.txt"];
    let out = same(
        &daemon,
        dir,
        &push,
        "{{.mediaType}} {{.artifactType}} {{range .referenceAsTags}}[{{.}}]{{end}}",
    );
    assert_eq!(
        out,
        format!("application/vnd.oci.image.manifest.v1+json application/vnd.unknown.artifact.v1 [{subject}]")
    );
    let attach = [
        "attach",
        "--plain-http",
        "--artifact-type",
        "application/example",
        &subject,
        "sbom.json",
    ];
    same(&daemon, dir, &attach, "{{.mediaType}} {{.artifactType}}");

    let discover = ["discover", "--plain-http", &subject];
    let out = same(
        &daemon,
        dir,
        &discover,
        "{{.digest}}{{range .referrers}}\n{{.artifactType}} {{.digest}}{{end}}",
    );
    // The subject, then the three attachments (one by ORAS, two by satchel).
    assert_eq!(out.lines().count(), 4, "{out}");
    // sprig's keys and sortAlpha: the one map order both tools share.
    let keys =
        "{{range .referrers}}{{range $k := keys .annotations | sortAlpha}}{{$k}};{{end}}{{end}}";
    let out = same(&daemon, dir, &discover, keys);
    assert!(out.contains("org.opencontainers.image.created;"), "{out}");
    same(
        &daemon,
        dir,
        &["manifest", "fetch", "--plain-http", &subject],
        "{{.digest}} {{.size}} {{.content.mediaType}} {{(index .content.layers 0).size}}",
    );
    same(
        &daemon,
        dir,
        &["repo", "tags", "--plain-http", &repo],
        "{{range .tags}}{{.}};{{end}}",
    );
    same(
        &daemon,
        dir,
        &["repo", "ls", "--plain-http", &registry.addr],
        "{{.registry}}:{{range .repositories}} {{.}}{{end}}",
    );
    let pull = ["pull", "--plain-http", "-o", "out", &subject];
    same(
        &daemon,
        dir,
        &pull,
        "{{.reference}} {{len .files}} {{(index .files 0).reference}}",
    );
    // A template that does not parse is refused by both.
    let bad = [
        &discover[..],
        &["--format", "go-template", "--template", "{{.digest"],
    ]
    .concat();
    assert!(!satchel_tests::peers::oras(dir, &bad).status.success());
    assert!(!daemon.run_in(dir, &bad).status.success());
}

satchel_tests::on_both_registries!(templates_print_what_oras_prints);
