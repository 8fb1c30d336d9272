//! Round trips on the critical path, counted: a warm daemon (one that has
//! made the same kind of call before, so tokens, connections and referrers
//! probes are learned) against a real registry behind the test proxy,
//! which holds every request 30 ms so that requests sent together overlap
//! and requests sent one after another do not (see `tests/src/faulty.rs`).
//!
//! Each budget is asserted on the critical path (the longest chain of
//! requests each waiting for the one before) and on the request count. The
//! daemons here run with the tag and referrer-listing cache off
//! (`registry_tag_cache_secs = 0`), so the budgets are what a call costs
//! when nothing that can change is cached; content by digest is cached.
//! Their reconcile window is a millisecond, so that the reconciler looks
//! at an index once, half a second after a write, and is done: the tests
//! that count a call made after an attach wait for that look first.

use std::time::Duration;

use satchel_tests::faulty::{FaultyProxy, Requests};
use satchel_tests::{skopeo_copy, subject_layout, Daemon, Registry, RegistryKind};

const SBOM: &str = "application/vnd.cyclonedx+json";
/// Long against the daemon's own work between two requests.
const DELAY: Duration = Duration::from_millis(30);
/// A reconcile window that ends at the reconciler's first look.
const ONE_LOOK: &str = "reconcile_window_secs = 0.001\n";
/// Longer than an attach's work after its answer, the reconciler's look
/// half a second after the write included.
const AFTER_ATTACH: Duration = Duration::from_millis(800);

/// A registry with one subject image, a counting proxy in front of it and
/// a daemon that talks to the proxy.
struct World {
    _registry: Registry,
    proxy: FaultyProxy,
    daemon: Daemon,
    /// `PROXY/demo/app`.
    repo: String,
    /// The subject's digest.
    image: String,
}

impl World {
    fn new(kind: RegistryKind, config: &str) -> World {
        let registry = Registry::start_kind(kind);
        let proxy = FaultyProxy::with_delay(&registry.addr, DELAY);
        let daemon = Daemon::start_with_config(&format!("{config}{ONE_LOOK}"));
        let layout = daemon.scratch().join("image");
        let image = subject_layout(&layout, "latest").digest;
        skopeo_copy(
            &layout,
            "latest",
            &format!("{}/demo/app:latest", registry.addr),
        );
        World {
            repo: format!("{}/demo/app", proxy.addr),
            _registry: registry,
            proxy,
            daemon,
            image,
        }
    }

    /// A world whose daemon caches no tags or listings.
    fn uncached(kind: RegistryKind) -> World {
        World::new(kind, "registry_tag_cache_secs = 0\n")
    }

    fn tagged(&self) -> String {
        format!("{}:latest", self.repo)
    }

    fn by_digest(&self) -> String {
        format!("{}@{}", self.repo, self.image)
    }

    /// Runs `satchel args` (plain HTTP) and returns the requests it made.
    fn counted(&self, args: &[&str]) -> Requests {
        let mark = self.proxy.mark();
        let mut all = vec![args[0], "--plain-http"];
        all.extend_from_slice(&args[1..]);
        self.daemon.ok(&all);
        self.proxy.since(mark)
    }

    /// Attaches a file with `content` as an SBOM created on `day` of
    /// March 2026; returns the requests of the call, and waits for its
    /// work after the answer (read-back, delete, the reconciler's look).
    fn attach(&self, name: &str, content: &str, day: u32) -> Requests {
        let requests = self.attach_only(name, content, day);
        std::thread::sleep(AFTER_ATTACH);
        requests
    }

    /// [`World::attach`] without the wait.
    fn attach_only(&self, name: &str, content: &str, day: u32) -> Requests {
        let path = self.daemon.scratch().join(name);
        std::fs::write(&path, content).unwrap();
        let subject = self.tagged();
        let created = format!("org.opencontainers.image.created=2026-03-{day:02}T10:00:00Z");
        self.counted(&[
            "attach",
            "--artifact-type",
            SBOM,
            "-a",
            &created,
            &subject,
            path.to_str().unwrap(),
        ])
    }
}

/// Asserts `requests` took `trips` round trips on the critical path and
/// `count` requests in all.
#[track_caller]
fn assert_costs(what: &str, requests: &Requests, trips: usize, count: usize) {
    assert_eq!(
        (requests.round_trips(), requests.count()),
        (trips, count),
        "{what}: (round trips, requests) differ from the budget:\n{requests}"
    );
}

/// Within the time-to-live a warm daemon asks nothing again; its own
/// writes are seen at once all the same.
#[test]
fn tags_and_listings_are_kept_for_the_ttl_and_dropped_on_own_writes() {
    let w = World::new(RegistryKind::Distribution, "registry_tag_cache_secs = 60\n");
    w.attach("one.json", "{\"sbom\":1}", 1);
    let tagged = w.tagged();
    w.counted(&["discover", &tagged]);
    assert_costs("resolve, cached", &w.counted(&["resolve", &tagged]), 0, 0);
    assert_costs("discover, cached", &w.counted(&["discover", &tagged]), 0, 0);
    w.attach("two.json", "{\"sbom\":2}", 2);
    let mark = w.proxy.mark();
    let listed = w.daemon.ok(&[
        "discover",
        "--plain-http",
        "--depth",
        "1",
        "--format",
        "json",
        &tagged,
    ]);
    let listing = w.proxy.since(mark);
    let found: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(found["referrers"].as_array().unwrap().len(), 2, "{listed}");
    // The daemon's own write made it ask again.
    assert_costs("discover after an attach", &listing, 1, 1);
    // Every level: the tag listing too, which the write also made stale.
    let mark = w.proxy.mark();
    w.daemon.ok(&["discover", "--plain-http", &tagged]);
    assert_costs("deep discover after an attach", &w.proxy.since(mark), 1, 1);
}

/// Concurrent identical calls share each fetch: eight pulls of the newest
/// SBOM at once make one request per object. The proxy's long delay keeps
/// every call waiting on the first one's fetches.
#[test]
fn concurrent_identical_fetches_share_one_request() {
    let registry = Registry::start_kind(RegistryKind::Distribution);
    let proxy = FaultyProxy::with_delay(&registry.addr, Duration::from_millis(400));
    let daemon = Daemon::start_with_config("registry_tag_cache_secs = 60\n");
    let layout = daemon.scratch().join("image");
    subject_layout(&layout, "latest");
    skopeo_copy(
        &layout,
        "latest",
        &format!("{}/demo/app:latest", registry.addr),
    );
    // Attached straight to the registry, so the daemon knows nothing of it.
    let other = Daemon::start();
    let sbom = other.scratch().join("sbom.json");
    std::fs::write(&sbom, "{\"sbom\":true}").unwrap();
    let direct = format!("{}/demo/app:latest", registry.addr);
    other.ok(&[
        "attach",
        "--plain-http",
        "--artifact-type",
        SBOM,
        &direct,
        sbom.to_str().unwrap(),
    ]);
    let tagged = format!("{}/demo/app:latest", proxy.addr);
    let mark = proxy.mark();
    let pulls: Vec<_> = (0..8)
        .map(|i| {
            let out = daemon.scratch().join(format!("out{i}"));
            let args = [
                "pull",
                "--plain-http",
                "--subject",
                &tagged,
                "--artifact-type",
                SBOM,
                "-o",
                out.to_str().unwrap(),
            ];
            daemon.spawn_satchel(&args)
        })
        .collect();
    for mut pull in pulls {
        assert!(pull.wait().unwrap().success());
    }
    let requests = proxy.since(mark);
    let mut lines = requests.lines();
    lines.sort();
    lines.dedup();
    assert_eq!(
        lines.len(),
        requests.count(),
        "a request repeated:\n{requests}"
    );
    // The subject's tag, the referrers API probe, the tag-schema index, the
    // SBOM's manifest and its blob.
    assert_eq!(requests.count(), 5, "{requests}");
}

fn resolve_by_tag(kind: RegistryKind) {
    let w = World::uncached(kind);
    let tagged = w.tagged();
    w.counted(&["resolve", &tagged]);
    assert_costs("resolve by tag", &w.counted(&["resolve", &tagged]), 1, 1);
}

fn discover(kind: RegistryKind) {
    let w = World::uncached(kind);
    w.attach("one.json", "{\"sbom\":1}", 1);
    w.attach("two.json", "{\"sbom\":2}", 2);
    let (tagged, by_digest) = (w.tagged(), w.by_digest());
    w.counted(&["discover", "--depth", "1", &tagged]);
    assert_costs(
        "discover by tag",
        &w.counted(&["discover", "--depth", "1", &tagged]),
        2,
        2,
    );
    w.counted(&["discover", "--depth", "1", &by_digest]);
    let by_digest = w.counted(&["discover", "--depth", "1", &by_digest]);
    assert_costs("discover by digest", &by_digest, 1, 1);
}

fn newest_sbom(kind: RegistryKind) {
    let w = World::uncached(kind);
    w.attach("old.json", "{\"sbom\":\"old\"}", 1);
    w.attach("new.json", "{\"sbom\":\"new\"}", 2);
    let out = w.daemon.scratch().join("out");
    let out = out.to_str().unwrap();
    let tagged = w.tagged();
    let args = [
        "pull",
        "--subject",
        &tagged,
        "--artifact-type",
        SBOM,
        "-o",
        out,
    ];
    w.counted(&args);
    assert_costs("newest SBOM", &w.counted(&args), 2, 2);
}

mod distribution {
    use super::*;

    #[test]
    fn resolve_by_tag_is_one_round_trip() {
        resolve_by_tag(RegistryKind::Distribution)
    }

    #[test]
    fn discover_by_tag_is_two_round_trips_and_by_digest_one() {
        discover(RegistryKind::Distribution)
    }

    #[test]
    fn newest_sbom_in_the_store_is_two_round_trips() {
        newest_sbom(RegistryKind::Distribution)
    }

    /// Below the first level, one tag listing says which manifests have a
    /// tag-schema index: the two leaves are not asked for theirs.
    #[test]
    fn a_deep_discover_asks_only_for_the_indexes_that_exist() {
        let w = World::uncached(RegistryKind::Distribution);
        w.attach("one.json", "{\"sbom\":1}", 1);
        w.attach("two.json", "{\"sbom\":2}", 2);
        let by_digest = w.by_digest();
        w.counted(&["discover", "--depth", "3", &by_digest]);
        let deep = w.counted(&["discover", "--depth", "3", &by_digest]);
        assert_costs("deep discover by digest", &deep, 2, 2);
        assert!(deep.to_string().contains("/tags/list"), "{deep}");
    }

    #[test]
    fn attach_of_a_new_small_file_confirms_and_deletes_the_old_index_after_the_answer() {
        let w = World::uncached(RegistryKind::Distribution);
        w.attach("warm.json", "{\"sbom\":\"warm\"}", 1);
        let mark = w.proxy.mark();
        w.attach_only("new.json", "{\"sbom\":\"new\"}", 2);
        let answered = std::time::Instant::now();
        std::thread::sleep(AFTER_ATTACH);
        let all = w.proxy.since(mark);
        let on_path = all.answered_by(answered);
        // The subject, the blob and config checks and the upload session
        // at once; the blob; the manifest with the index read; the index.
        assert_costs("attach", &on_path, 4, 8);
        // After the answer: the new index read back, then the old deleted;
        // the reconciler's look at the index, a moment later, sees the
        // entry and ends the watch.
        let after = &all.0[on_path.count()..];
        let lines: Vec<(&str, &str)> = after.iter().map(|s| (s.method(), s.path())).collect();
        let tag = w.image.replace(':', "-");
        assert!(
            matches!(lines.as_slice(), [("GET", get), ("DELETE", _), ("GET", look)]
                if get.ends_with(&tag) && look.ends_with(&tag)),
            "after the answer:\n{all}"
        );
        assert!(after[1].started >= after[0].answered.unwrap(), "{all}");
    }
    /// A standalone push of a new small file by tag: the blob and config
    /// checks with the upload session, the blob, the manifest.
    #[test]
    fn push_of_a_new_small_file_by_tag_is_three_round_trips() {
        let w = World::uncached(RegistryKind::Distribution);
        let push = |name: &str, content: &str| {
            let path = w.daemon.scratch().join(name);
            std::fs::write(&path, content).unwrap();
            let to = format!("{}:{}", w.repo, name.replace('.', "-"));
            w.counted(&["push", &to, path.to_str().unwrap()])
        };
        push("warm.txt", "warm");
        assert_costs("push", &push("new.txt", "new"), 3, 5);
    }
}

mod ferro {
    use super::*;

    #[test]
    fn resolve_by_tag_is_one_round_trip() {
        resolve_by_tag(RegistryKind::Ferro)
    }

    #[test]
    fn discover_by_tag_is_two_round_trips_and_by_digest_one() {
        discover(RegistryKind::Ferro)
    }

    #[test]
    fn newest_sbom_in_the_store_is_two_round_trips() {
        newest_sbom(RegistryKind::Ferro)
    }
}
