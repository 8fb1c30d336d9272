//! WatchReferrers: one poller per watched subject, shared by every watcher
//! of it in the daemon.
//!
//! A poller asks for the subject's referrers every poll interval, past the
//! cache, and publishes each listing that differs from the last as a new
//! version of a [`Snapshot`] on a `tokio::sync::watch` channel. That
//! channel holds only the newest snapshot, so a watcher can never make the
//! poller buffer for it: a watcher compares what it last sent with the
//! newest snapshot and sends the difference, unless it missed a version in
//! between (it fell behind), when it sends the whole set again, marked as a
//! resynchronisation. A poll that fails (a registry restarting) is logged
//! and tried again at the next interval; the watchers wait. The poller ends
//! when its last watcher goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use satchel_oci::digest::Digest;
use satchel_oci::manifest::Descriptor;
use satchel_oci::registry::Polled;
use satchel_oci::target::Target;
use satchel_oci::Result;
use tokio::sync::watch;

use super::manifests::Named;
use super::target::TargetSpec;
use super::Service;

/// How often a subject's referrers are asked for, by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// The pollers of a daemon, by target and subject.
pub struct Pollers {
    running: Mutex<HashMap<String, Arc<watch::Sender<Snapshot>>>>,
    interval: Duration,
}

impl Pollers {
    /// Pollers that poll every `interval`.
    pub fn new(interval: Duration) -> Pollers {
        Pollers {
            running: Mutex::default(),
            interval,
        }
    }

    /// How many pollers run, and how many watchers they serve.
    pub fn count(&self) -> (usize, usize) {
        let running = self.running.lock().expect("pollers lock");
        let watchers = running.values().map(|s| s.receiver_count()).sum();
        (running.len(), watchers)
    }
}

/// One listing of a subject's referrers, and how many listings that
/// differed came before it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    version: u64,
    referrers: Arc<Vec<Descriptor>>,
}

/// What a watcher sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Every current (matching) referrer; `resync` when sent again
    /// because the watcher fell behind.
    Current {
        referrers: Vec<Descriptor>,
        resync: bool,
    },
    /// A referrer that appeared.
    Appeared(Descriptor),
    /// A referrer that disappeared.
    Disappeared(Descriptor),
}

/// One caller's watch of one subject.
pub struct Watcher {
    /// The subject, resolved when the watch began.
    pub subject: Named,
    snapshots: watch::Receiver<Snapshot>,
    artifact_type: Option<String>,
    /// The version and the (matching) referrers last sent.
    sent: Option<(u64, Vec<Descriptor>)>,
}

impl Service {
    /// Starts watching the referrers of the manifest `spec` names,
    /// optionally only those of `artifact_type`.
    pub async fn watch_referrers(
        &self,
        spec: TargetSpec,
        artifact_type: Option<String>,
    ) -> Result<Watcher> {
        let (target, subject) = self.resolve_in(spec).await?;
        let snapshots = self.pollers.subscribe(target, &subject.descriptor.digest);
        Ok(Watcher {
            subject,
            snapshots,
            artifact_type,
            sent: None,
        })
    }

    /// How many pollers run (one per watched subject), and how many
    /// watchers they serve.
    pub fn pollers(&self) -> (usize, usize) {
        self.pollers.count()
    }
}

impl Pollers {
    /// A receiver of the snapshots of `subject` in `target`, starting its
    /// poller if none runs.
    fn subscribe(self: &Arc<Self>, target: Target, subject: &Digest) -> watch::Receiver<Snapshot> {
        let key = format!("{target:?}@{subject}");
        let mut running = self.running.lock().expect("pollers lock");
        if let Some(sender) = running.get(&key) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(Snapshot::default());
        let sender = Arc::new(sender);
        running.insert(key.clone(), sender.clone());
        tracing::info!(%subject, "started a referrers poller");
        tokio::spawn(self.clone().poll(key, target, subject.clone(), sender));
        receiver
    }

    /// Polls until no watcher is left.
    async fn poll(
        self: Arc<Self>,
        key: String,
        target: Target,
        subject: Digest,
        sender: Arc<watch::Sender<Snapshot>>,
    ) {
        let mut failing = false;
        // The index's ETag from the last poll: the registry answers 304,
        // and sends no body, while it holds.
        let mut validator: Option<String> = None;
        loop {
            let polled = target.poll_referrers(&subject, validator.as_deref()).await;
            match polled {
                Ok(Polled::Unchanged) => failing = false,
                Ok(Polled::Listed {
                    referrers: listed,
                    validator: etag,
                }) => {
                    if failing {
                        tracing::info!(%subject, "the referrers listing answers again");
                        failing = false;
                    }
                    validator = etag;
                    sender.send_if_modified(|now| {
                        let changed = now.version == 0 || !same_digests(&now.referrers, &listed);
                        if changed {
                            now.version += 1;
                            now.referrers = Arc::new(listed);
                        }
                        changed
                    });
                }
                Err(e) if !failing => {
                    tracing::warn!(%subject, error = %e, "cannot list the watched referrers; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = sender.closed() => {}
            }
            let mut running = self.running.lock().expect("pollers lock");
            if sender.receiver_count() == 0 {
                running.remove(&key);
                tracing::info!(%subject, "stopped a referrers poller: no watcher left");
                return;
            }
        }
    }
}

/// Whether two listings name the same referrers in the same order.
fn same_digests(a: &[Descriptor], b: &[Descriptor]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.digest == y.digest)
}

impl Watcher {
    /// The next events: the current set first, then the changes (or the
    /// whole set again after a missed version). Waits for a change that
    /// matters to this watcher; `None` when the poller is gone.
    pub async fn next(&mut self) -> Option<Vec<WatchEvent>> {
        loop {
            let Some((version, sent)) = &self.sent else {
                let snapshot = self
                    .snapshots
                    .wait_for(|s| s.version > 0)
                    .await
                    .ok()?
                    .clone();
                let referrers = self.matching(&snapshot.referrers);
                self.sent = Some((snapshot.version, referrers.clone()));
                return Some(vec![WatchEvent::Current {
                    referrers,
                    resync: false,
                }]);
            };
            let version = *version;
            self.snapshots.changed().await.ok()?;
            let snapshot = self.snapshots.borrow_and_update().clone();
            let now = self.matching(&snapshot.referrers);
            let events = match snapshot.version == version + 1 {
                true => differences(sent, &now),
                false => vec![WatchEvent::Current {
                    referrers: now.clone(),
                    resync: true,
                }],
            };
            self.sent = Some((snapshot.version, now));
            if !events.is_empty() {
                return Some(events);
            }
        }
    }

    fn matching(&self, referrers: &[Descriptor]) -> Vec<Descriptor> {
        referrers
            .iter()
            .filter(|d| {
                self.artifact_type
                    .as_deref()
                    .is_none_or(|t| d.artifact_type.as_deref() == Some(t))
            })
            .cloned()
            .collect()
    }
}

/// The events that take a watcher from `before` to `after`: what
/// disappeared, then what appeared, each in listing order.
fn differences(before: &[Descriptor], after: &[Descriptor]) -> Vec<WatchEvent> {
    let has = |list: &[Descriptor], d: &Descriptor| list.iter().any(|x| x.digest == d.digest);
    let gone = before
        .iter()
        .filter(|d| !has(after, d))
        .map(|d| WatchEvent::Disappeared(d.clone()));
    let new = after
        .iter()
        .filter(|d| !has(before, d))
        .map(|d| WatchEvent::Appeared(d.clone()));
    gone.chain(new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(n: u8, artifact_type: &str) -> Descriptor {
        let mut d = Descriptor::for_bytes("application/vnd.oci.image.manifest.v1+json", &[n]);
        d.artifact_type = Some(artifact_type.to_string());
        d
    }

    fn watcher(receiver: watch::Receiver<Snapshot>, artifact_type: Option<&str>) -> Watcher {
        Watcher {
            subject: Named {
                reference: "r@sha256:x".into(),
                descriptor: desc(0, "subject"),
            },
            snapshots: receiver,
            artifact_type: artifact_type.map(str::to_string),
            sent: None,
        }
    }

    fn publish(sender: &watch::Sender<Snapshot>, referrers: Vec<Descriptor>) {
        sender.send_modify(|s| {
            s.version += 1;
            s.referrers = Arc::new(referrers);
        });
    }

    #[tokio::test]
    async fn a_watcher_gets_the_set_then_changes_and_a_resync_when_behind() {
        let (a, b, c) = (desc(1, "sbom"), desc(2, "sig"), desc(3, "sbom"));
        let (sender, receiver) = watch::channel(Snapshot::default());
        let mut all = watcher(receiver.clone(), None);
        let mut sboms = watcher(receiver, Some("sbom"));
        publish(&sender, vec![a.clone(), b.clone()]);
        let current =
            |referrers: Vec<Descriptor>, resync| WatchEvent::Current { referrers, resync };
        assert_eq!(
            all.next().await.unwrap(),
            vec![current(vec![a.clone(), b.clone()], false)]
        );
        assert_eq!(
            sboms.next().await.unwrap(),
            vec![current(vec![a.clone()], false)]
        );
        publish(&sender, vec![b.clone(), c.clone()]);
        assert_eq!(
            all.next().await.unwrap(),
            vec![
                WatchEvent::Disappeared(a.clone()),
                WatchEvent::Appeared(c.clone())
            ]
        );
        // Two versions while `sboms` was not looking: it is told, with the
        // whole set.
        publish(&sender, vec![b.clone(), c.clone(), a.clone()]);
        assert_eq!(
            sboms.next().await.unwrap(),
            vec![current(vec![c.clone(), a.clone()], true)]
        );
        assert_eq!(
            all.next().await.unwrap(),
            vec![WatchEvent::Appeared(a.clone())]
        );
        // A change no matching referrer is part of is no event for `sboms`.
        publish(&sender, vec![c.clone(), a.clone()]);
        assert_eq!(
            all.next().await.unwrap(),
            vec![WatchEvent::Disappeared(b.clone())]
        );
        let quiet = tokio::time::timeout(Duration::from_millis(50), sboms.next()).await;
        assert!(quiet.is_err(), "{quiet:?}");
        publish(&sender, vec![c.clone()]);
        assert_eq!(
            sboms.next().await.unwrap(),
            vec![WatchEvent::Disappeared(a.clone())]
        );
    }
}
