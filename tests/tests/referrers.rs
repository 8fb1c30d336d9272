//! Referrers done right, on two real registries: docker-registry 2.8 (no
//! referrers API: Satchel keeps the tag-schema index) and ferro-oci-server
//! (referrers API). Every scenario runs against both.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use satchel_tests::{bin, http_get, skopeo_copy, subject_layout, Daemon, Registry, RegistryKind};
use serde_json::Value;

const SBOM: &str = "application/vnd.cyclonedx+json";
const PROVENANCE: &str = "application/vnd.in-toto+json";
const DOCS: &str = "application/vnd.example.docs";
const SIGNATURE: &str = "application/vnd.example.signature";
const CREATED: &str = "org.opencontainers.image.created";

/// A registry with one subject image, and a daemon in front of it.
struct World {
    registry: Registry,
    daemon: Daemon,
    /// `127.0.0.1:PORT/demo/app`.
    repo: String,
    /// The subject's digest.
    image: String,
}

impl World {
    fn new(kind: RegistryKind, repo: &str) -> World {
        let registry = Registry::start_kind(kind);
        let daemon = Daemon::start();
        let layout = daemon.scratch().join("image");
        let image = subject_layout(&layout, "latest").digest;
        let repo = format!("{}/{repo}", registry.addr);
        skopeo_copy(&layout, "latest", &format!("{repo}:latest"));
        World {
            registry,
            daemon,
            repo,
            image,
        }
    }

    fn subject(&self) -> String {
        format!("{}:latest", self.repo)
    }

    /// Writes a file in the scratch directory and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.daemon.scratch().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// Attaches `file` to `subject` as `artifact_type`; returns the digest.
    fn attach(&self, subject: &str, artifact_type: &str, file: &str, extra: &[&str]) -> String {
        let mut args = vec!["attach", "--plain-http", "--artifact-type", artifact_type];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[subject, file]);
        digest_of(&self.daemon.ok(&args))
    }

    fn discover_json(&self, extra: &[&str]) -> Value {
        let subject = self.subject();
        let mut args = vec!["discover", "--plain-http", "--format", "json"];
        args.extend_from_slice(extra);
        args.push(&subject);
        serde_json::from_str(&self.daemon.ok(&args)).unwrap()
    }

    /// The raw tag-schema index of the subject, if the registry has one.
    fn fallback_index(&self) -> Option<Vec<u8>> {
        let repo = self.repo.split_once('/').unwrap().1;
        let tag = self.image.replace(':', "-");
        let (status, body) =
            http_get(&self.registry.addr, &format!("/v2/{repo}/manifests/{tag}")).unwrap();
        (status == 200).then_some(body)
    }
}

fn digest_of(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {output:?}"))
        .to_string()
}

fn digests(referrers: &Value) -> BTreeSet<String> {
    referrers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect()
}

satchel_tests::on_both_registries!(
    three_types_filter_and_depth_two,
    delete_keeps_the_index_right,
    fifty_concurrent_attaches_are_all_discovered,
    one_step_pull_takes_the_newest,
);

fn three_types_filter_and_depth_two(kind: RegistryKind) {
    let w = World::new(kind, "demo/three");
    let subject = w.subject();
    let sbom = w.attach(&subject, SBOM, &w.file("sbom.json", "{\"sbom\":1}"), &[]);
    let prov = w.attach(
        &subject,
        PROVENANCE,
        &w.file("prov.json", "{\"prov\":1}"),
        &[],
    );
    let docs = w.attach(&subject, DOCS, &w.file("README.md", "# docs"), &[]);

    let all = w.discover_json(&[]);
    assert_eq!(
        digests(&all["referrers"]),
        BTreeSet::from([sbom.clone(), prov.clone(), docs.clone()])
    );
    for r in all["referrers"].as_array().unwrap() {
        let expected = match r["digest"].as_str().unwrap() {
            d if d == sbom => SBOM,
            d if d == prov => PROVENANCE,
            _ => DOCS,
        };
        assert_eq!(r["artifactType"], expected);
        assert!(r["annotations"][CREATED].is_string(), "{r}");
    }

    let only_sbom = w.discover_json(&["--artifact-type", SBOM]);
    assert_eq!(
        digests(&only_sbom["referrers"]),
        BTreeSet::from([sbom.clone()])
    );

    // A signature on the SBOM: found at depth 2 and by default (every
    // level), not at depth 1.
    let sbom_ref = format!("{}@{sbom}", w.repo);
    let sig = w.attach(&sbom_ref, SIGNATURE, &w.file("sig.bin", "signed"), &[]);
    let shallow = w.discover_json(&["--depth", "1"]);
    for r in shallow["referrers"].as_array().unwrap() {
        assert_eq!(r["referrers"], Value::Array(vec![]));
    }
    assert_eq!(w.discover_json(&[]), w.discover_json(&["--depth", "2"]));
    let deep = w.discover_json(&["--depth", "2"]);
    let sbom_node = deep["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["digest"] == sbom.as_str())
        .unwrap();
    assert_eq!(
        digests(&sbom_node["referrers"]),
        BTreeSet::from([sig.clone()])
    );
    assert_eq!(sbom_node["referrers"][0]["artifactType"], SIGNATURE);

    // The tree shows the signature under the SBOM.
    let tree = w.daemon.ok(&[
        "discover",
        "--plain-http",
        "--depth",
        "2",
        "--artifact-type",
        SBOM,
        &subject,
    ]);
    assert_eq!(
        satchel_tests::without_annotations(&tree),
        format!(
            "{}@{}\n└── {SBOM}\n    └── {sbom}\n        └── {SIGNATURE}\n            └── {sig}\n",
            w.repo, w.image
        )
    );

    // Where the registry has the referrers API, no tag-schema index is written.
    match kind {
        RegistryKind::Distribution => assert!(w.fallback_index().is_some()),
        RegistryKind::Ferro => assert!(w.fallback_index().is_none()),
    }
}

fn delete_keeps_the_index_right(kind: RegistryKind) {
    let w = World::new(kind, "demo/delete");
    let subject = w.subject();
    let keep = w.attach(&subject, SBOM, &w.file("keep.json", "{\"keep\":1}"), &[]);
    let gone = w.attach(&subject, DOCS, &w.file("gone.md", "# gone"), &[]);
    let out = w.daemon.ok(&[
        "manifest",
        "delete",
        "--plain-http",
        &format!("{}@{gone}", w.repo),
    ]);
    assert!(out.contains(&format!("Deleted {}@{gone}", w.repo)), "{out}");
    assert_eq!(
        digests(&w.discover_json(&[])["referrers"]),
        BTreeSet::from([keep.clone()])
    );
    let err = w
        .daemon
        .fails(&["resolve", "--plain-http", &format!("{}@{gone}", w.repo)]);
    assert!(err.contains("NOT_FOUND"), "{err}");
    if kind == RegistryKind::Distribution {
        let index: Value = serde_json::from_slice(&w.fallback_index().unwrap()).unwrap();
        assert_eq!(digests(&index["manifests"]), BTreeSet::from([keep.clone()]));
    }
    // Deleting the last referrer leaves no referrers at all.
    w.daemon.ok(&[
        "manifest",
        "delete",
        "--plain-http",
        &format!("{}@{keep}", w.repo),
    ]);
    assert_eq!(w.discover_json(&[])["referrers"], Value::Array(vec![]));
}

fn fifty_concurrent_attaches_are_all_discovered(kind: RegistryKind) {
    let w = World::new(kind, "demo/fifty");
    let subject = w.subject();
    let children: Vec<_> = (0..50)
        .map(|i| {
            let file = w.file(&format!("att{i}.json"), &format!("{{\"n\":{i}}}"));
            Command::new(bin("satchel"))
                .args(["--addr", &w.daemon.addr, "attach", "--plain-http"])
                .args(["--artifact-type", SBOM, &subject, &file])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut attached = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        attached.insert(digest_of(&String::from_utf8(out.stdout).unwrap()));
    }
    assert_eq!(attached.len(), 50);
    assert_eq!(digests(&w.discover_json(&[])["referrers"]), attached);
}

fn one_step_pull_takes_the_newest(kind: RegistryKind) {
    let w = World::new(kind, "demo/onestep");
    let subject = w.subject();
    let dir_old = w.daemon.scratch().join("v1");
    let dir_new = w.daemon.scratch().join("v2");
    std::fs::create_dir_all(&dir_old).unwrap();
    std::fs::create_dir_all(&dir_new).unwrap();
    std::fs::write(dir_old.join("sbom.json"), "{\"version\":1}").unwrap();
    std::fs::write(dir_new.join("sbom.json"), "{\"version\":2}").unwrap();
    let old = dir_old.join("sbom.json").display().to_string();
    let new = dir_new.join("sbom.json").display().to_string();
    // The newer one is attached first: order must not matter, dates must.
    let newest = w.attach(
        &subject,
        SBOM,
        &new,
        &["-a", &format!("{CREATED}=2026-03-02T10:00:00Z")],
    );
    w.attach(
        &subject,
        SBOM,
        &old,
        &["-a", &format!("{CREATED}=2026-03-01T10:00:00Z")],
    );
    w.attach(&subject, DOCS, &w.file("docs.md", "# d"), &[]);

    let out = w.daemon.scratch().join("out");
    let pulled = w.daemon.ok(&[
        "pull",
        "--plain-http",
        "--subject",
        &subject,
        "--artifact-type",
        SBOM,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(pulled.contains(&newest), "{pulled}");
    assert_eq!(
        std::fs::read_to_string(out.join("sbom.json")).unwrap(),
        "{\"version\":2}"
    );

    // A tie goes to the later entry of the referrers listing, whatever
    // the registry's order.
    let tie = w.attach(
        &subject,
        SBOM,
        &old,
        &[
            "-a",
            &format!("{CREATED}=2026-03-02T10:00:00Z"),
            "-a",
            "n=2",
        ],
    );
    let listed: Vec<String> = w.discover_json(&[])["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .filter(|d| *d == tie || *d == newest)
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let out2 = w.daemon.scratch().join("out2");
    let pulled = w.daemon.ok(&[
        "pull",
        "--plain-http",
        "--subject",
        &subject,
        "--artifact-type",
        SBOM,
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert!(pulled.contains(&listed[1]), "{listed:?}: {pulled}");
    let version = if listed[1] == tie { 1 } else { 2 };
    assert_eq!(
        std::fs::read_to_string(out2.join("sbom.json")).unwrap(),
        format!("{{\"version\":{version}}}")
    );

    // No attachment of the type at all.
    let err = w.daemon.fails(&[
        "pull",
        "--plain-http",
        "--subject",
        &subject,
        "--artifact-type",
        "application/x-none",
    ]);
    assert!(err.contains("NOT_FOUND"), "{err}");
}

/// The tag-schema index Satchel writes has exactly the shape ORAS clients
/// read: an OCI index, `manifests` an array of descriptors carrying
/// `artifactType` and the referrer's annotations.
#[test]
fn fallback_index_has_the_exact_oras_shape() {
    let w = World::new(RegistryKind::Distribution, "demo/shape");
    let subject = w.subject();
    let sbom = w.attach(
        &subject,
        SBOM,
        &w.file("sbom.json", "{}"),
        &["-a", &format!("{CREATED}=2026-01-01T00:00:00Z")],
    );
    let listed = w.discover_json(&[]);
    let size = listed["referrers"][0]["size"].as_u64().unwrap();
    let expected = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#,
            r#""manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""digest":"{}","size":{},"artifactType":"{}","#,
            r#""annotations":{{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}}}]}}"#
        ),
        sbom, size, SBOM
    );
    let raw = w.fallback_index().expect("a fallback index");
    assert_eq!(String::from_utf8(raw).unwrap(), expected);
}

/// `--distribution-spec` forces the mode per call, as in ORAS.
#[test]
fn distribution_spec_forces_the_mode() {
    // The tag schema on a registry that has the API.
    let w = World::new(RegistryKind::Ferro, "demo/forced");
    let subject = w.subject();
    let sbom = w.attach(
        &subject,
        SBOM,
        &w.file("sbom.json", "{}"),
        &["--distribution-spec", "v1.1-referrers-tag"],
    );
    let index: Value = serde_json::from_slice(&w.fallback_index().expect("tag index")).unwrap();
    assert_eq!(digests(&index["manifests"]), BTreeSet::from([sbom.clone()]));
    let listed = w.discover_json(&["--distribution-spec", "v1.1-referrers-tag"]);
    assert_eq!(digests(&listed["referrers"]), BTreeSet::from([sbom]));

    // The API on a registry that has none.
    let d = World::new(RegistryKind::Distribution, "demo/forced");
    let err = d.daemon.fails(&[
        "discover",
        "--plain-http",
        "--distribution-spec",
        "v1.1-referrers-api",
        &d.subject(),
    ]);
    assert!(
        err.contains("no referrers API") && err.contains("FAILED_PRECONDITION"),
        "{err}"
    );
}
