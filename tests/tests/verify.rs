//! Signature verification against real cosign signatures, on
//! docker-registry (the tag schema) and ferro-oci-server (the referrers
//! API): cosign 3.1.3 signs (a Sigstore bundle v0.3 referrer), cosign 2.6.5
//! signs the older way (a `sha256-<hex>.sig` tag), and cosign's own verify
//! is the control: it must refuse what satchel refuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use satchel_tests::peers::{cosign2_bin, cosign_bin};
use satchel_tests::scrape::{scrape, sum};
use satchel_tests::{free_port, sha256, Daemon, Registry, RegistryKind};
use serde_json::Value;

const SBOM: &str = "application/vnd.cyclonedx+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A cosign key pair and a signing config with no transparency log, in a
/// directory that is also cosign's HOME.
struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    fn new() -> Signer {
        let signer = Signer {
            dir: tempfile::tempdir().unwrap(),
        };
        signer.cosign_ok(&cosign_bin(), &["generate-key-pair"]);
        signer.cosign_ok(
            &cosign_bin(),
            &["signing-config", "create", "--out", "sc.json"],
        );
        signer
    }

    /// A key pair of `algorithm` (openssl's name: RSA, EC P-384, ED25519)
    /// made by openssl and imported with `cosign import-key-pair`.
    fn imported(algorithm: &[&str]) -> Signer {
        let signer = Signer {
            dir: tempfile::tempdir().unwrap(),
        };
        let made = Command::new("openssl")
            .args(["genpkey", "-out", "key.pem"])
            .args(algorithm)
            .current_dir(signer.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let args = [
            "import-key-pair",
            "--key",
            "key.pem",
            "--output-key-prefix",
            "cosign",
        ];
        signer.cosign_ok(&cosign_bin(), &args);
        signer.cosign_ok(
            &cosign_bin(),
            &["signing-config", "create", "--out", "sc.json"],
        );
        signer
    }

    fn public(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    /// `sha256:<hex>` of the public key's DER, as satchel reports it.
    fn fingerprint(&self) -> String {
        use base64::Engine;
        let pem = std::fs::read_to_string(self.public()).unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        sha256(&der)
    }

    fn cosign(&self, program: &Path, args: &[&str]) -> Output {
        Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .env("COSIGN_YES", "true")
            .stdin(Stdio::null())
            .output()
            .expect("run cosign")
    }

    fn cosign_ok(&self, program: &Path, args: &[&str]) -> String {
        let out = self.cosign(program, args);
        assert!(
            out.status.success(),
            "cosign {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Signs `reference` (by digest) with cosign 3: a bundle referrer.
    fn sign(&self, reference: &str) {
        self.cosign_ok(
            &cosign_bin(),
            &[
                "sign",
                "--key",
                "cosign.key",
                "--signing-config",
                "sc.json",
                "--allow-http-registry",
                "--allow-insecure-registry",
                "-y",
                reference,
            ],
        );
    }

    /// Signs `reference` with cosign 2, the older form: a `.sig` tag.
    fn sign_v2(&self, reference: &str) {
        self.cosign_ok(
            &cosign2_bin(),
            &[
                "sign",
                "--key",
                "cosign.key",
                "--use-signing-config=false",
                "--tlog-upload=false",
                "--allow-http-registry",
                "--allow-insecure-registry",
                "-y",
                reference,
            ],
        );
    }
}

/// Whether cosign (`program`) accepts `reference` under `key`.
fn cosign_accepts(program: &Path, signer: &Signer, key: &Path, reference: &str) -> bool {
    let key = key.to_str().unwrap();
    signer
        .cosign(
            program,
            &[
                "verify",
                "--key",
                key,
                "--insecure-ignore-tlog",
                "--allow-http-registry",
                "--allow-insecure-registry",
                reference,
            ],
        )
        .status
        .success()
}

/// Pushes a small image-like artifact; returns `repo@digest`.
fn push(daemon: &Daemon, repo: &str, tag: &str) -> String {
    let content = format!("the {tag} image");
    let digest = daemon.push_plain(&format!("{repo}:{tag}"), &format!("{tag}.txt"), &content);
    format!("{repo}@{digest}")
}

/// Attaches an SBOM file `name` to `subject`; returns `repo@digest`.
fn attach_sbom(daemon: &Daemon, subject: &str, name: &str) -> String {
    let content = format!("{{\"bomFormat\":\"CycloneDX\",\"name\":\"{name}\"}}");
    let repo = subject.split('@').next().unwrap();
    format!(
        "{repo}@{}",
        daemon.attach_plain(subject, SBOM, name, &content)
    )
}

/// `satchel verify` of `reference` under `key`; requires success and
/// returns what it printed.
fn verify_ok(daemon: &Daemon, key: &Path, reference: &str) -> String {
    let out = verify(daemon, key, reference);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify {reference}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn verify(daemon: &Daemon, key: &Path, reference: &str) -> Output {
    daemon.satchel(&[
        "verify",
        "--plain-http",
        "--key",
        key.to_str().unwrap(),
        reference,
    ])
}

/// Fails unless `out` failed with `code` and says `says`.
fn refused(out: &Output, code: &str, says: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected a refusal, got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(code), "expected {code}: {err}");
    assert!(err.contains(says), "expected {says:?}: {err}");
    err
}

/// Fails unless satchel refuses `reference` under `key` with `code`,
/// saying `says`, and cosign refuses it too; returns satchel's error.
fn both_refuse(
    daemon: &Daemon,
    signer: &Signer,
    key: &Path,
    reference: &str,
    code: &str,
    says: &str,
) -> String {
    let err = refused(&verify(daemon, key, reference), code, says);
    assert!(
        !cosign_accepts(&cosign_bin(), signer, key, reference),
        "cosign accepted what satchel refused: {err}"
    );
    err
}

/// The manifest JSON of `reference`.
fn manifest(daemon: &Daemon, reference: &str) -> Value {
    serde_json::from_str(&daemon.ok(&["manifest", "fetch", "--plain-http", reference])).unwrap()
}

/// The bundle referrers of `subject`.
fn bundles(daemon: &Daemon, subject: &str) -> Vec<String> {
    let out = daemon.ok(&[
        "discover",
        "--plain-http",
        "--format",
        "json",
        "--artifact-type",
        BUNDLE,
        subject,
    ]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let repo = subject.split('@').next().unwrap();
    doc["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{repo}@{}", r["digest"].as_str().unwrap()))
        .collect()
}

/// Pushes `manifest` (JSON) to `repo` by digest; returns `repo@digest`.
fn push_manifest(daemon: &Daemon, repo: &str, manifest: &Value) -> String {
    let file = daemon.scratch().join("manifest.json");
    let bytes = serde_json::to_vec(manifest).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    let reference = format!("{repo}@{}", sha256(&bytes));
    daemon.ok(&[
        "manifest",
        "push",
        "--plain-http",
        &reference,
        file.to_str().unwrap(),
    ]);
    reference
}

/// The cases every registry must get right: the right key, another key,
/// an unsigned image, an altered bundle, a signature copied from another
/// image, each beside cosign's own verdict.
fn signatures_verify_as_cosign_says(kind: RegistryKind) {
    let registry = Registry::start_kind(kind);
    let daemon = Daemon::start();
    let (ours, theirs) = (Signer::new(), Signer::new());
    let repo = format!("{}/signed/app", registry.addr);
    let image = push(&daemon, &repo, "v1");
    ours.sign(&image);

    // The right key: the signature, the key and the predicate are named.
    let out = verify_ok(&daemon, &ours.public(), &image);
    assert!(
        out.contains(&format!("Key: {}", ours.fingerprint())),
        "{out}"
    );
    assert!(
        out.contains("Predicate type: https://sigstore.dev/cosign/sign/v1"),
        "{out}"
    );
    assert!(out.contains("(sigstore-bundle-v0.3)"), "{out}");
    assert!(cosign_accepts(&cosign_bin(), &ours, &ours.public(), &image));

    // Another key.
    let other = theirs.public();
    both_refuse(
        &daemon,
        &ours,
        &other,
        &image,
        "PERMISSION_DENIED",
        "none of the trusted keys",
    );

    // Unsigned.
    let unsigned = push(&daemon, &repo, "unsigned");
    let key = ours.public();
    both_refuse(
        &daemon,
        &ours,
        &key,
        &unsigned,
        "FAILED_PRECONDITION",
        "is not signed",
    );

    // A bundle whose signature bytes were altered, pushed again in place of
    // the real one.
    let altered = push(&daemon, &repo, "altered");
    ours.sign(&altered);
    let [original] = bundles(&daemon, &altered).try_into().unwrap();
    let mut sig_manifest = manifest(&daemon, &original);
    let layer = sig_manifest["layers"][0].clone();
    let blob = daemon.scratch().join("bundle.json");
    daemon.ok(&[
        "blob",
        "fetch",
        "--plain-http",
        "-o",
        blob.to_str().unwrap(),
        &format!("{repo}@{}", layer["digest"].as_str().unwrap()),
    ]);
    let mut bundle: Value = serde_json::from_slice(&std::fs::read(&blob).unwrap()).unwrap();
    // The last byte of the signature (inside its DER, so still well-formed).
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap();
    let mut sig = b64.decode(sig).unwrap();
    *sig.last_mut().unwrap() ^= 1;
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = b64.encode(sig).into();
    let forged = serde_json::to_vec(&bundle).unwrap();
    std::fs::write(&blob, &forged).unwrap();
    daemon.ok(&[
        "blob",
        "push",
        "--plain-http",
        &repo,
        blob.to_str().unwrap(),
    ]);
    sig_manifest["layers"][0]["digest"] = sha256(&forged).into();
    sig_manifest["layers"][0]["size"] = forged.len().into();
    push_manifest(&daemon, &repo, &sig_manifest);
    daemon.ok(&["manifest", "delete", "--plain-http", "-f", &original]);
    // The bundle names our key (its hint), so this is told apart from
    // another key's signature.
    both_refuse(
        &daemon,
        &ours,
        &key,
        &altered,
        "PERMISSION_DENIED",
        "altered or forged",
    );

    // A valid signature of `image`, copied onto another image.
    let target = push(&daemon, &repo, "copied");
    let [good] = bundles(&daemon, &image).try_into().unwrap();
    let mut copied = manifest(&daemon, &good);
    let target_desc: Value = serde_json::from_str(&daemon.ok(&[
        "manifest",
        "fetch",
        "--plain-http",
        "--descriptor",
        &target,
    ]))
    .unwrap();
    copied["subject"] = target_desc;
    push_manifest(&daemon, &repo, &copied);
    assert_eq!(bundles(&daemon, &target).len(), 1);
    both_refuse(
        &daemon,
        &ours,
        &key,
        &target,
        "PERMISSION_DENIED",
        "copied from another manifest",
    );
}

#[test]
fn cosign_bundles_verify_on_docker_registry() {
    signatures_verify_as_cosign_says(RegistryKind::Distribution);
}

#[test]
fn cosign_bundles_verify_on_ferro() {
    signatures_verify_as_cosign_says(RegistryKind::Ferro);
}

#[test]
fn cosign_v2_signatures_verify() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let (ours, theirs) = (Signer::new(), Signer::new());
    let image = push(&daemon, &format!("{}/signed/old", registry.addr), "v1");
    ours.sign_v2(&image);
    let out = verify_ok(&daemon, &ours.public(), &image);
    assert!(out.contains("(cosign-simple-signing)"), "{out}");
    assert!(
        out.contains(&format!("Key: {}", ours.fingerprint())),
        "{out}"
    );
    assert!(cosign_accepts(
        &cosign2_bin(),
        &ours,
        &ours.public(),
        &image
    ));
    let other = theirs.public();
    let err = refused(
        &verify(&daemon, &other, &image),
        "PERMISSION_DENIED",
        "none of the trusted keys",
    );
    assert!(
        !cosign_accepts(&cosign2_bin(), &ours, &other, &image),
        "{err}"
    );
}

/// An image with an older SBOM that the build signed and a newer one that
/// nobody did.
struct Sboms {
    image: String,
    signed: String,
    unsigned: String,
}

fn signed_and_unsigned_sboms(daemon: &Daemon, registry: &Registry, signer: &Signer) -> Sboms {
    let image = push(daemon, &format!("{}/evidence/app", registry.addr), "v1");
    let signed = attach_sbom(daemon, &image, "signed.cdx.json");
    signer.sign(&signed);
    let unsigned = attach_sbom(daemon, &image, "unsigned.cdx.json");
    Sboms {
        image,
        signed,
        unsigned,
    }
}

#[test]
fn the_newest_verified_sbom_is_pulled_over_a_newer_unsigned_one() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let (ours, theirs) = (Signer::new(), Signer::new());
    let s = signed_and_unsigned_sboms(&daemon, &registry, &ours);
    let key = ours.public();
    let pull = |out: &Path, key: Option<&Path>| {
        let mut args = vec![
            "pull",
            "--plain-http",
            "--subject",
            &s.image,
            "--artifact-type",
            SBOM,
        ];
        let out = out.to_str().unwrap();
        args.extend(["-o", out]);
        if let Some(k) = key {
            args.extend(["--verify-key", k.to_str().unwrap()]);
        }
        daemon.satchel(&args)
    };
    let plain = daemon.scratch().join("plain");
    assert!(pull(&plain, None).status.success());
    assert!(plain.join("unsigned.cdx.json").exists());

    let verified = daemon.scratch().join("verified");
    let out = pull(&verified, Some(&key));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Digest: {}", s.signed.split('@').nth(1).unwrap())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("by key {}", ours.fingerprint())),
        "{stdout}"
    );
    assert!(verified.join("signed.cdx.json").exists());
    assert!(!verified.join("unsigned.cdx.json").exists());

    // Under another key nothing verifies: nothing is written, and the
    // error names both candidates.
    let none = daemon.scratch().join("none");
    let err = refused(
        &pull(&none, Some(&theirs.public())),
        "PERMISSION_DENIED",
        "verifies; tried",
    );
    for digest in [&s.signed, &s.unsigned] {
        assert!(err.contains(digest.split('@').nth(1).unwrap()), "{err}");
    }
    assert!(std::fs::read_dir(&none).map_or(true, |mut d| d.next().is_none()));

    // Discover says which verify.
    let tree = daemon.ok(&[
        "discover",
        "--plain-http",
        "--verify-key",
        key.to_str().unwrap(),
        &s.image,
    ]);
    let line = |digest: &str| {
        let d = digest.split('@').nth(1).unwrap();
        tree.lines()
            .find(|l| l.contains(d))
            .unwrap_or_else(|| panic!("{d} not in {tree}"))
            .to_string()
    };
    assert!(line(&s.signed).contains("[verified: key"), "{tree}");
    assert!(line(&s.unsigned).contains("[not verified:"), "{tree}");
}

/// A policy trusting `signer` for SBOMs on `registry`.
fn policy(signer: &Signer, registry: &Registry) -> String {
    format!(
        "[[trust]]\nscope = \"{}/*\"\nartifact_type = \"{SBOM}\"\nkeys = [\"{}\"]\n",
        registry.addr,
        signer.public().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_verified_pulls_make_one_verification() {
    let registry = Registry::start();
    let signer = Signer::new();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(&signer, &registry)).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_in(
        dir,
        &[
            "--verify-policy",
            policy_file.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
        ],
        &[],
    );
    let image = push(&daemon, &format!("{}/evidence/many", registry.addr), "v1");
    let sbom = attach_sbom(&daemon, &image, "sbom.cdx.json");
    signer.sign(&sbom);
    let before = scrape(&metrics);
    let client = satchel_client::connect(&daemon.addr).await.unwrap();
    let mut pulls = Vec::new();
    for n in 0..100 {
        let mut c = client.clone().without_local_handoff();
        let out = daemon.scratch().join(format!("pull-{n}"));
        let subject = satchel_tests::grpc::plain_target(&image).unwrap();
        pulls.push(tokio::spawn(async move {
            satchel_client::pull_attachment(&mut c, subject, SBOM, &out, |_| {}).await
        }));
    }
    for p in pulls {
        let pulled = p.await.unwrap().expect("a verified pull");
        assert_eq!(pulled.reference, sbom);
        let sig = pulled.signature.expect("the policy verified it");
        assert_eq!(sig.key_fingerprint, signer.fingerprint());
    }
    let after = scrape(&metrics);
    let delta =
        |name: &str, labels: &[&str]| sum(&after, name, labels) - sum(&before, name, labels);
    let checks = delta("satchel_verifications_total", &[]);
    let requests = delta("satchel_registry_requests_total", &[]);
    println!(
        "100 concurrent verified pulls: {checks} verification(s), {} shared (cached or in flight), {requests} registry requests",
        delta("satchel_verifications_shared_total", &[])
    );
    assert_eq!(
        checks, 1.0,
        "concurrent verifications of one SBOM share one check"
    );
}

#[test]
fn nothing_unverified_is_served_as_verified_after_a_policy_change_or_restart() {
    let registry = Registry::start();
    let (ours, theirs) = (Signer::new(), Signer::new());
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy(&ours, &registry)).unwrap();
    let mut daemon = Daemon::start_in(
        dir,
        &["--verify-policy", policy_file.to_str().unwrap()],
        &[],
    );
    let image = push(&daemon, &format!("{}/evidence/policy", registry.addr), "v1");
    let sbom = attach_sbom(&daemon, &image, "sbom.cdx.json");
    ours.sign(&sbom);
    let pull = |daemon: &Daemon, n: &str| {
        let out = daemon.scratch().join(n);
        daemon.satchel(&[
            "pull",
            "--plain-http",
            "--subject",
            &image,
            "--artifact-type",
            SBOM,
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let ok = pull(&daemon, "first");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("Verified: signature"));

    // A caller's key adds to the policy, never replaces it: a newer SBOM
    // signed by another key is not served on that key's word.
    let intruder = attach_sbom(&daemon, &image, "intruder.cdx.json");
    theirs.sign(&intruder);
    let out = daemon.scratch().join("callers-key");
    let theirs_key = theirs.public();
    let bypass = daemon.satchel(&[
        "pull",
        "--plain-http",
        "--subject",
        &image,
        "--artifact-type",
        SBOM,
        "--verify-key",
        theirs_key.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = refused(&bypass, "PERMISSION_DENIED", "verifies; tried");
    assert!(err.contains(intruder.split('@').nth(1).unwrap()), "{err}");
    assert!(!out.exists());
    daemon.ok(&["manifest", "delete", "--plain-http", "-f", &intruder]);

    // The policy now trusts another key: the cached success must not count.
    std::fs::write(&policy_file, policy(&theirs, &registry)).unwrap();
    refused(
        &pull(&daemon, "after-change"),
        "PERMISSION_DENIED",
        "none of the trusted keys",
    );
    // Nor after a restart.
    daemon.restart_after_kill();
    refused(
        &pull(&daemon, "after-restart"),
        "PERMISSION_DENIED",
        "none of the trusted keys",
    );
    // The key file itself replaced: the same path, another key.
    std::fs::write(&policy_file, policy(&ours, &registry)).unwrap();
    assert!(pull(&daemon, "trusted-again").status.success());
    std::fs::copy(theirs.public(), ours.public()).unwrap();
    refused(
        &pull(&daemon, "key-replaced"),
        "PERMISSION_DENIED",
        "none of the trusted keys",
    );
    // A policy that cannot be read fails closed.
    std::fs::write(&policy_file, "[[trust]\n").unwrap();
    refused(
        &pull(&daemon, "broken-policy"),
        "FAILED_PRECONDITION",
        "policy cannot be read",
    );
}

/// Keys openssl made and cosign imported, each signing both forms. RSA
/// verifies for both tools. cosign 3.1.3 and 2.6.5 refuse their own P-384
/// signatures (they verify with another hash than they sign with); the
/// signatures are still the key's, and satchel takes them. Neither cosign
/// verifies its own Ed25519 signatures, which are not pure Ed25519 over the
/// signed bytes; satchel checks pure Ed25519 (as DSSE and simple signing
/// specify; the unit tests sign that way) and refuses them too.
#[test]
fn rsa_p384_and_ed25519_keys_as_cosign_signs_with_them() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let p256 = Signer::new();
    let repo = format!("{}/signed/keys", registry.addr);
    let satchel_accepts = |signer: &Signer, image: &str| {
        // Never under a key of another kind.
        refused(
            &verify(&daemon, &p256.public(), image),
            "PERMISSION_DENIED",
            "none of the trusted keys",
        );
        let out = verify(&daemon, &signer.public(), image);
        if !out.status.success() {
            refused(&out, "PERMISSION_DENIED", "no signature of");
            return false;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Key: {}", signer.fingerprint())),
            "{text}"
        );
        true
    };
    let kinds: [(&str, &[&str], bool, bool); 3] = [
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            true,
            true,
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            true,
            false,
        ),
        ("ed25519", &["-algorithm", "ED25519"], false, false),
    ];
    for (name, algorithm, satchel_should, cosign_does) in kinds {
        let signer = Signer::imported(algorithm);
        let image = push(&daemon, &repo, name);
        signer.sign(&image);
        let old = push(&daemon, &repo, &format!("{name}-v2"));
        signer.sign_v2(&old);
        let verdicts = [
            satchel_accepts(&signer, &image),
            cosign_accepts(&cosign_bin(), &signer, &signer.public(), &image),
            satchel_accepts(&signer, &old),
            cosign_accepts(&cosign2_bin(), &signer, &signer.public(), &old),
        ];
        let want = [satchel_should, cosign_does, satchel_should, cosign_does];
        assert_eq!(
            verdicts, want,
            "{name}: satchel, cosign 3, satchel on v2, cosign 2"
        );
    }
}

/// The Rust client: Verify, and the verified pull of the newest SBOM that
/// verifies (nothing written under another key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_verifies_and_pulls_verified() {
    let registry = Registry::start();
    let daemon = Daemon::start();
    let (ours, theirs) = (Signer::new(), Signer::new());
    let s = signed_and_unsigned_sboms(&daemon, &registry, &ours);
    let pem = |signer: &Signer| bytes::Bytes::from(std::fs::read(signer.public()).unwrap());
    let mut client = satchel_client::connect(&daemon.addr).await.unwrap();
    let verified = client
        .verify(satchel_client::pb::VerifyRequest {
            target: satchel_tests::grpc::plain_target(&s.signed),
            keys: vec![pem(&ours)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.reference, s.signed);
    assert_eq!(
        verified.signature.unwrap().key_fingerprint,
        ours.fingerprint()
    );
    let subject = satchel_tests::grpc::plain_target(&s.image).unwrap();
    let out = daemon.scratch().join("rust-ok");
    let pulled = satchel_client::pull_verified_attachment(
        &mut client,
        subject.clone(),
        SBOM,
        vec![pem(&ours)],
        &out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(pulled.reference, s.signed);
    assert!(pulled.signature.is_some());
    let refused = daemon.scratch().join("rust-refused");
    let err = satchel_client::pull_verified_attachment(
        &mut client,
        subject,
        SBOM,
        vec![pem(&theirs)],
        &refused,
        |_| {},
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(!refused.exists());
}
