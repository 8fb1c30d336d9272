//! Many writers of one subject's tag-schema index on docker-registry 2.8,
//! which cannot make the read-modify-write of a tag atomic: several
//! satcheld replicas, satcheld beside the ORAS CLI, and a replica killed
//! mid-burst. Each daemon journals the referrers it wrote and merges back
//! any that another writer's index dropped; these tests hold it to that,
//! ten rounds in a row, reading the index straight from the registry.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use satchel_tests::peers::oras_bin;
use satchel_tests::{bin, digest_of, http_get, Daemon, Registry, RegistryKind};
use serde_json::Value;

const ROUNDS: usize = 10;
const BURST: usize = 15;
/// How soon after the last attach returned every entry must be listed.
const SETTLE: Duration = Duration::from_secs(10);
const SBOM: &str = "application/vnd.cyclonedx+json";

/// A docker-registry and `replicas` daemons in front of it.
struct World {
    registry: Registry,
    daemons: Vec<Daemon>,
}

impl World {
    fn new(replicas: usize) -> World {
        World {
            registry: Registry::start_kind(RegistryKind::Distribution),
            daemons: (0..replicas).map(|_| Daemon::start()).collect(),
        }
    }

    /// Pushes a small artifact to be round `round`'s subject; returns
    /// `REGISTRY/replicas@DIGEST`.
    fn subject(&self, round: usize) -> String {
        let d = &self.daemons[0];
        let file = d.scratch().join(format!("subject{round}.txt"));
        std::fs::write(&file, format!("subject of round {round}")).unwrap();
        let reference = format!("{}/replicas:round{round}", self.registry.addr);
        let out = d.ok(&["push", "--plain-http", &reference, file.to_str().unwrap()]);
        format!("{}/replicas@{}", self.registry.addr, digest_of(&out))
    }

    /// The digests the registry lists in `subject`'s tag-schema index.
    fn listed(&self, subject: &str) -> BTreeSet<String> {
        let digest = subject.rsplit_once('@').unwrap().1;
        let path = format!("/v2/replicas/manifests/{}", digest.replace(':', "-"));
        let (status, body) = http_get(&self.registry.addr, &path).unwrap();
        if status != 200 {
            return BTreeSet::new();
        }
        let index: Value = serde_json::from_slice(&body).unwrap();
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// The digest of `subject`'s tag-schema index, as the registry says.
    fn index_digest(&self, subject: &str) -> String {
        let digest = subject.rsplit_once('@').unwrap().1;
        let path = format!("/v2/replicas/manifests/{}", digest.replace(':', "-"));
        let (status, body) = http_get(&self.registry.addr, &path).unwrap();
        assert_eq!(status, 200);
        satchel_tests::sha256(&body)
    }

    /// Waits up to [`SETTLE`] for every one of `want` to be listed; returns
    /// how long that took, or the missing ones.
    fn settle(&self, subject: &str, want: &BTreeSet<String>) -> Result<Duration, Vec<String>> {
        let start = Instant::now();
        loop {
            let listed = self.listed(subject);
            let missing: Vec<String> = want.difference(&listed).cloned().collect();
            if missing.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > SETTLE {
                return Err(missing);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts `satchel attach` of a fresh small file through `daemon`.
fn satchel_attach(daemon: &Daemon, subject: &str, name: &str) -> Child {
    let file = daemon.scratch().join(format!("{name}.json"));
    std::fs::write(&file, format!("{{\"attachment\":\"{name}\"}}")).unwrap();
    Command::new(bin("satchel"))
        .args(["--addr", &daemon.addr, "attach", "--plain-http"])
        .args(["--artifact-type", SBOM, subject, file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `oras attach` of a fresh small file, run in `dir`.
fn oras_attach(dir: &Path, subject: &str, name: &str) -> Child {
    let file = format!("{name}.json");
    std::fs::write(dir.join(&file), format!("{{\"oras\":\"{name}\"}}")).unwrap();
    Command::new(oras_bin())
        .args(["attach", "--plain-http", "--artifact-type", SBOM])
        .args([subject, &file])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The digest an attach that succeeded printed; `None` if it failed.
fn finished(child: Child) -> Option<String> {
    let out = child.wait_with_output().unwrap();
    out.status
        .success()
        .then(|| digest_of(&String::from_utf8_lossy(&out.stdout)))
}

/// Waits for every attach, all of which must succeed; returns their digests.
fn all_succeed(children: Vec<Child>) -> BTreeSet<String> {
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "attach failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            digest_of(&String::from_utf8_lossy(&out.stdout))
        })
        .collect()
}

/// Prints one round's figures, for the closing notes and for anyone who
/// runs the test with `--nocapture`.
fn report(test: &str, round: usize, line: String) {
    eprintln!("{test} round {round}: {line}");
}

#[test]
fn three_replicas_bursting_on_one_subject_lose_nothing() {
    let w = World::new(3);
    for round in 0..ROUNDS {
        let subject = w.subject(round);
        let children: Vec<Child> = (0..BURST)
            .flat_map(|i| {
                w.daemons
                    .iter()
                    .enumerate()
                    .map(move |(r, d)| (i, r, d))
                    .collect::<Vec<_>>()
            })
            .map(|(i, r, d)| satchel_attach(d, &subject, &format!("r{round}-d{r}-{i}")))
            .collect();
        let attached = all_succeed(children);
        assert_eq!(attached.len(), 3 * BURST);
        let right_away = attached.intersection(&w.listed(&subject)).count();
        match w.settle(&subject, &attached) {
            Ok(took) => report(
                "three replicas",
                round,
                format!(
                    "{right_away} of {} listed at once, all after {took:?}",
                    attached.len()
                ),
            ),
            Err(missing) => panic!(
                "round {round}: {} of {} attaches not listed {SETTLE:?} after the last returned: {missing:?}",
                missing.len(),
                attached.len()
            ),
        }
    }
}

#[test]
fn satchel_beside_the_oras_cli_loses_none_of_its_own() {
    let w = World::new(1);
    let d = &w.daemons[0];
    let mut survived = Vec::new();
    for round in 0..ROUNDS {
        let subject = w.subject(round);
        let mut children = Vec::new();
        for i in 0..BURST {
            children.push((true, satchel_attach(d, &subject, &format!("s{round}-{i}"))));
            children.push((
                false,
                oras_attach(d.scratch(), &subject, &format!("o{round}-{i}")),
            ));
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for (is_satchel, child) in children {
            match is_satchel {
                true => ours.push(child),
                false => theirs.push(child),
            }
        }
        let ours = all_succeed(ours);
        let theirs = all_succeed(theirs);
        if let Err(missing) = w.settle(&subject, &ours) {
            panic!("round {round}: satchel's {missing:?} not listed {SETTLE:?} after the burst");
        }
        let kept = theirs.intersection(&w.listed(&subject)).count();
        report(
            "beside ORAS",
            round,
            format!("all {BURST} of satchel's listed; {kept} of {BURST} of ORAS's"),
        );
        survived.push(kept);
    }
    eprintln!("ORAS entries that survived per round: {survived:?}");
}

#[test]
fn a_replica_killed_mid_burst_keeps_every_attach_that_returned() {
    let mut w = World::new(3);
    for round in 0..ROUNDS {
        let subject = w.subject(round);
        let mut victims: Vec<Option<Child>> = (0..BURST)
            .map(|i| {
                Some(satchel_attach(
                    &w.daemons[0],
                    &subject,
                    &format!("k{round}-{i}"),
                ))
            })
            .collect();
        let others: Vec<Child> = (0..BURST)
            .flat_map(|i| [(1, i), (2, i)])
            .map(|(r, i)| satchel_attach(&w.daemons[r], &subject, &format!("k{round}-d{r}-{i}")))
            .collect();
        // Kill the first replica once a third of its attaches returned.
        let mut returned = BTreeSet::new();
        let mut failed = 0;
        let start = Instant::now();
        while returned.len() < BURST / 3 && start.elapsed() < Duration::from_secs(30) {
            for slot in victims.iter_mut() {
                let done = slot
                    .as_mut()
                    .is_some_and(|c| c.try_wait().unwrap().is_some());
                if done {
                    match finished(slot.take().unwrap()) {
                        Some(digest) => returned.insert(digest),
                        None => {
                            failed += 1;
                            false
                        }
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        w.daemons[0].restart_after_kill();
        // Attaches that were in flight may fail; those that succeeded count.
        for child in victims.into_iter().flatten() {
            match finished(child) {
                Some(digest) => {
                    returned.insert(digest);
                }
                None => failed += 1,
            }
        }
        let mut want = returned.clone();
        want.extend(all_succeed(others));
        match w.settle(&subject, &want) {
            Ok(took) => report(
                "kill and restart",
                round,
                format!(
                    "{} of the killed replica's attaches returned ({failed} failed), all {} listed after {took:?}",
                    returned.len(),
                    want.len()
                ),
            ),
            Err(missing) => panic!(
                "round {round}: {} attaches that returned are not listed after the restart: {missing:?}",
                missing.len()
            ),
        }
    }
}

/// The journal entries in `daemon`'s state directory.
fn journalled(daemon: &Daemon) -> usize {
    std::fs::read_dir(daemon.scratch().join("state").join("journal"))
        .map(|dir| {
            dir.flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// Attaches one file through `daemon`; returns its digest.
fn attach_one(daemon: &Daemon, subject: &str, name: &str) -> String {
    all_succeed(vec![satchel_attach(daemon, subject, name)])
        .pop_first()
        .unwrap()
}

#[test]
fn an_entry_leaves_the_journal_once_seen_across_the_window_or_deleted() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let short = Daemon::start_with_config("reconcile_window_secs = 1\n");
    let w = World {
        registry,
        daemons: vec![short, Daemon::start()],
    };
    let subject = w.subject(0);
    // Seen across a one-second window: retired.
    let first = attach_one(&w.daemons[0], &subject, "seen");
    assert_eq!(journalled(&w.daemons[0]), 1);
    satchel_tests::wait_for("the entry to retire", Duration::from_secs(5), || {
        journalled(&w.daemons[0]) == 0
    });
    assert!(w.listed(&subject).contains(&first));
    // Deleted through Satchel: gone from the journal at once.
    let d = &w.daemons[1];
    let second = attach_one(d, &subject, "deleted");
    assert_eq!(journalled(d), 1);
    let repo = subject.rsplit_once('@').unwrap().0;
    d.ok(&[
        "manifest",
        "delete",
        "--plain-http",
        "-f",
        &format!("{repo}@{second}"),
    ]);
    assert_eq!(journalled(d), 0);
    assert!(!w.listed(&subject).contains(&second));
}

#[test]
fn a_referrer_deleted_by_another_writer_is_not_merged_back() {
    let w = World::new(1);
    let d = &w.daemons[0];
    let subject = w.subject(0);
    let kept = attach_one(d, &subject, "kept");
    let gone = attach_one(d, &subject, "gone");
    assert_eq!(journalled(d), 2);
    // The ORAS CLI deletes one: the manifest, then its index entry.
    let repo = subject.rsplit_once('@').unwrap().0;
    satchel_tests::peers::oras_ok(
        d.scratch(),
        &[
            "manifest",
            "delete",
            "--plain-http",
            "--force",
            &format!("{repo}@{gone}"),
        ],
    );
    satchel_tests::wait_for(
        "the deleted entry to leave the journal",
        Duration::from_secs(10),
        || journalled(d) == 1,
    );
    // Past the reconciler's next looks, it stays deleted.
    std::thread::sleep(Duration::from_secs(3));
    let listed = w.listed(&subject);
    assert!(listed.contains(&kept), "{listed:?}");
    assert!(!listed.contains(&gone), "{listed:?}");
    assert_eq!(journalled(d), 1);
}

/// A registry that does conditional writes is asked for them: the index is
/// written `If-None-Match: *` where there was none and `If-Match` its ETag
/// after, and a write refused with 412 (another writer came between) is
/// merged and written again. docker-registry ignores the headers, so a
/// test-only proxy in front of it refuses the first conditional write.
#[test]
fn a_registry_that_does_conditional_writes_gets_them() {
    use satchel_tests::hostile::{Action, HostileRegistry, Response};
    use std::sync::atomic::{AtomicBool, Ordering};
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let upstream = registry.addr.clone();
    let refused = AtomicBool::new(false);
    let proxy = HostileRegistry::start(move |req| {
        let index_write = req.method == "PUT" && req.path.contains("/manifests/sha256-");
        if index_write && !refused.swap(true, Ordering::SeqCst) {
            return Action::Reply(Response::new(412, &[], "precondition failed"));
        }
        Action::Forward {
            upstream: upstream.clone(),
            tamper: Box::new(|_| {}),
        }
    });
    let w = World {
        registry,
        daemons: vec![Daemon::start()],
    };
    let subject = w.subject(0).replace(&w.registry.addr, &proxy.addr);
    let d = &w.daemons[0];
    let first = attach_one(d, &subject, "first");
    let writes =
        |seen: &[satchel_tests::hostile::Request]| -> Vec<satchel_tests::hostile::Request> {
            seen.iter()
                .filter(|r| r.method == "PUT" && r.path.contains("/manifests/sha256-"))
                .cloned()
                .collect()
        };
    let puts = writes(&proxy.seen());
    assert_eq!(puts.len(), 2, "the refused write and the second one");
    for put in &puts {
        assert_eq!(put.header("if-none-match"), Some("*"), "{put:?}");
    }
    let direct = subject.replace(&proxy.addr, &w.registry.addr);
    assert_eq!(w.listed(&direct), BTreeSet::from([first.clone()]));
    // The index exists now: the next write requires the version read.
    let index = w.index_digest(&direct);
    let second = attach_one(d, &subject, "second");
    let puts = writes(&proxy.seen());
    assert_eq!(puts.len(), 3);
    assert_eq!(
        puts[2].header("if-match"),
        Some(format!("\"{index}\"").as_str()),
        "{:?}",
        puts[2]
    );
    assert_eq!(w.listed(&direct), BTreeSet::from([first, second]));
}
