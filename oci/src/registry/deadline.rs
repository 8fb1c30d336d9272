//! Nothing waits on a registry forever.
//!
//! Every request has a connect timeout and an idle timeout (both in
//! [`super::RegistryOptions`]). "Idle" means no progress: no answer within
//! the idle time after the request (or its streamed body) was sent, or a
//! response body that delivers less than [`MIN_WINDOW_BYTES`] in an idle
//! window, so a registry that sends one byte a second is as stuck as one
//! that sends none. A stalled request fails as [`ErrorKind::Unavailable`],
//! which the callers' retries treat like a dropped connection.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};

/// The idle timeout when the daemon sets none.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);
/// The connect timeout when the daemon sets none.
pub const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
/// Idle connections kept per registry host when the daemon sets no number.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 8;
/// The least a response body must deliver in each idle window.
pub const MIN_WINDOW_BYTES: u64 = 1024;

/// The error of a request that made no progress for `idle`.
pub(crate) fn stalled(what: &str, idle: Duration) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{what}: the registry made no progress for {} s",
            idle.as_secs_f64()
        ),
    )
}

/// Runs `fut`, failing with [`stalled`] if it takes longer than `idle`.
pub(crate) async fn within<T>(
    idle: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(idle, fut).await {
        Ok(result) => result,
        Err(_) => Err(stalled(&what(), idle)),
    }
}

/// When a streamed request body last moved, so a request whose body the
/// registry stops reading, or whose answer never comes after the body
/// ends, is given up after the idle time. Time spent waiting for the
/// body's own source (a caller that sends slowly) is not the registry's
/// and does not count.
#[derive(Clone)]
pub(crate) struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last piece taken.
    last_ms: Arc<AtomicU64>,
    /// Whether the HTTP client is waiting for the source of the body.
    on_source: Arc<AtomicBool>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Activity {
            started: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            on_source: Arc::new(AtomicBool::new(false)),
        }
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// `body`, marking activity each time the HTTP client takes a piece,
    /// and noting when it waits for the body's source.
    pub(crate) fn track<S>(&self, body: S) -> impl Stream<Item = Result<Bytes>> + Send + 'static
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let activity = self.clone();
        let mut body = Box::pin(body);
        futures::stream::poll_fn(move |cx| {
            let polled = body.as_mut().poll_next(cx);
            let waiting = polled.is_pending();
            activity.on_source.store(waiting, Ordering::Relaxed);
            if !waiting {
                activity.touch();
            }
            polled
        })
    }

    /// Resolves once nothing has moved for `idle` while the registry, not
    /// the body's source, was the one to wait for.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            if self.on_source.load(Ordering::Relaxed) {
                self.touch();
            }
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let due = last + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// Reads a response body at a pace: each window of `idle` must bring at
/// least [`MIN_WINDOW_BYTES`] (or the end of the body).
pub(crate) struct Paced<S> {
    body: S,
    idle: Duration,
    window_start: Instant,
    window_bytes: u64,
}

impl<S> Paced<S>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    pub(crate) fn new(body: S, idle: Duration) -> Self {
        Paced {
            body,
            idle,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// The next piece; `Err(None)` when the body stalled, `Err(Some(e))`
    /// when it failed.
    pub(crate) async fn next(
        &mut self,
    ) -> std::result::Result<Option<Bytes>, Option<reqwest::Error>> {
        loop {
            let due = self.window_start + self.idle;
            match tokio::time::timeout_at(due, self.body.next()).await {
                Ok(Some(Ok(piece))) => {
                    self.window_bytes += piece.len() as u64;
                    if Instant::now() >= due {
                        self.roll()?;
                    }
                    return Ok(Some(piece));
                }
                Ok(Some(Err(e))) => return Err(Some(e)),
                Ok(None) => return Ok(None),
                Err(_) => self.roll()?,
            }
        }
    }

    /// Starts a new window if the last one brought enough.
    fn roll(&mut self) -> std::result::Result<(), Option<reqwest::Error>> {
        if self.window_bytes < MIN_WINDOW_BYTES {
            return Err(None);
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_stalls_and_a_steady_one_does_not() {
        let idle = Duration::from_secs(30);
        // One byte a second: 30 bytes a window.
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, reqwest::Error>(Bytes::from_static(b"x")), ()))
        });
        let mut paced = Paced::new(Box::pin(trickle), idle);
        let mut got = 0;
        let stalled = loop {
            match paced.next().await {
                Ok(Some(p)) => got += p.len(),
                Ok(None) => break false,
                Err(e) => break e.is_none(),
            }
        };
        assert!(stalled);
        assert!(got <= 31, "{got}");

        // 4 KiB a second, for two minutes, then the end.
        let steady = futures::stream::iter(0..120).then(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, reqwest::Error>(Bytes::from(vec![0u8; 4096]))
        });
        let mut paced = Paced::new(Box::pin(steady), idle);
        let mut total = 0;
        while let Some(p) = paced.next().await.expect("steady body") {
            total += p.len();
        }
        assert_eq!(total, 120 * 4096);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_goes_idle_only_after_the_body_stops_moving() {
        let activity = Activity::new();
        let idle = Duration::from_secs(5);
        let a = activity.clone();
        let body = async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                a.touch();
            }
        };
        let start = Instant::now();
        tokio::join!(body, activity.idle_for(idle));
        // Twenty seconds of pieces, then five idle.
        assert_eq!(start.elapsed().as_secs(), 25);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_source_is_not_the_registry_stalling() {
        let activity = Activity::new();
        let idle = Duration::from_secs(5);
        // The source yields a piece every 8 s, longer than the idle time;
        // the HTTP client takes each at once.
        let source = futures::stream::iter(0..3).then(|_| async {
            tokio::time::sleep(Duration::from_secs(8)).await;
            Ok(Bytes::from_static(b"x"))
        });
        let mut body = Box::pin(activity.track(source));
        let start = Instant::now();
        let drained = async {
            while body.next().await.is_some() {}
            start.elapsed()
        };
        tokio::select! {
            took = drained => assert_eq!(took.as_secs(), 24),
            () = activity.idle_for(idle) => panic!("a slow source counted as a stall"),
        }
    }
}
