//! The daemon's parts, put together from its [`Config`]: the credential
//! store, the content store (and its sweeper), this daemon's spool, the
//! registry client (with its referrers journal, whose entries it watches
//! again) and the [`Service`] over them. What serves them is the
//! gRPC layer's business ([`crate::grpc::serve`]).

use std::sync::{Arc, Weak};

use anyhow::Context as _;
use std::time::Duration;

use satchel_oci::content::{ContentStore, UPLOAD_EXPIRY};
use satchel_oci::registry::{RegistryClient, MONOLITHIC_MAX};

use crate::callers::LayoutRoots;
use crate::config::Config;
use crate::credentials::DockerCredentials;
use crate::policy::PolicySource;
use crate::service::watch::DEFAULT_POLL;
use crate::service::{Service, DEFAULT_CONCURRENCY};
use crate::spool::{self, Spool};

/// A running daemon's parts.
pub struct Daemon {
    /// The service core every call goes to.
    pub service: Service,
    /// The registry client, which also knows the secrets to scrub.
    pub registry: Arc<RegistryClient>,
    /// Where callers other than the daemon's user may name layouts.
    pub roots: LayoutRoots,
    /// This daemon's spool, removed when the daemon is dropped.
    _spool: Option<Spool>,
    /// The metrics endpoint's task, if one listens.
    metrics: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(task) = &self.metrics {
            task.abort();
        }
    }
}

impl Daemon {
    /// Opens the stores and builds the service `config` describes. Starts
    /// the content store's sweeper, so it runs inside a Tokio runtime.
    pub fn start(config: &Config) -> anyhow::Result<Daemon> {
        let credentials = Arc::new(DockerCredentials::new(config.docker_config.clone()));
        let roots = LayoutRoots::new(&config.layout_roots)?;
        let store = match &config.cache {
            Some((dir, max)) => {
                let expiry = config.upload_expiry.unwrap_or(UPLOAD_EXPIRY);
                let store = Arc::new(ContentStore::open(dir, *max)?.with_upload_expiry(expiry));
                tokio::spawn(sweep(Arc::downgrade(&store)));
                Some(store)
            }
            None => None,
        };
        let mut options = config.registry.clone();
        let mut own_spool = None;
        if options.spool_dir.is_none() {
            let parent = spool::parent_dir(config.cache.as_ref().map(|(d, _)| d.as_path()));
            let own = Spool::create(&parent)?;
            options.spool_dir = Some(own.dir().to_path_buf());
            own_spool = Some(own);
        }
        let hash_first_below = options.monolithic_max.unwrap_or(MONOLITHIC_MAX);
        let mut registry = RegistryClient::new(credentials.clone(), options)?;
        if let Some(store) = &store {
            registry = registry.with_manifest_store(store.clone());
        }
        if let Some(state) = &config.state_dir {
            registry = registry.with_journal(&state.join("journal"))?;
        }
        let registry = Arc::new(registry);
        let resumed = registry.resume_journal();
        if resumed > 0 {
            tracing::info!(
                entries = resumed,
                "watching the referrers the journal holds from before the restart"
            );
        }
        let service = Service::new(registry.clone(), credentials, store)
            .with_concurrency(config.concurrency.unwrap_or(DEFAULT_CONCURRENCY))
            .with_hash_first_below(hash_first_below)
            .with_watch_interval(config.watch_interval.unwrap_or(DEFAULT_POLL))
            .with_policy(
                PolicySource::open(config.verify_policy.clone())
                    .context("the verification policy")?,
            );
        let metrics = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::start(
                addr,
                crate::metrics::Sources {
                    service: service.clone(),
                    registry: registry.clone(),
                },
            )?),
            None => None,
        };
        Ok(Daemon {
            service,
            registry,
            roots,
            _spool: own_spool,
            metrics,
        })
    }
}

/// Sweeps the content store's abandoned ingest files every quarter of the
/// expiry (between one second and five minutes) while the store lives.
async fn sweep(store: Weak<ContentStore>) {
    let every = match store.upgrade() {
        Some(s) => (s.upload_expiry() / 4).clamp(Duration::from_secs(1), Duration::from_secs(300)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = store.upgrade() else { return };
        let kept = tokio::task::spawn_blocking(move || store.sweep()).await;
        tracing::debug!(ingest_bytes = ?kept.ok(), "swept the content store");
    }
}
