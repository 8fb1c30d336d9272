//! A test-only HTTP proxy that injects the faults a real registry cannot be
//! made to produce on demand: connections dropped mid-body, and 429/503
//! answers with `Retry-After`. Everything else passes through to the real
//! registry behind it.
//!
//! It rewrites each request to `Connection: close`, so every connection
//! carries one request and the proxy always knows which request it is
//! looking at.
//!
//! It also counts. Every request is recorded with the instant its head
//! arrived and the instant the proxy began to answer it, so a test can ask
//! how many registry requests an operation made ([`FaultyProxy::since`])
//! and how many round trips lay on its critical path
//! ([`Requests::round_trips`]): the longest chain of requests each of which
//! arrived after the one before it was answered. Requests that overlap in
//! time were in flight together and count once. To make that count
//! deterministic, [`FaultyProxy::with_delay`] holds every request for a
//! fixed time (say 30 ms) before forwarding it: long against the daemon's
//! own work between requests, so requests the daemon sends together always
//! overlap and a request that waited for another's answer always starts
//! after it. The answer instant is taken before the first byte goes back,
//! so a client cannot have seen a response before it is recorded as
//! answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do to a matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Answer with this status and `Retry-After: secs` instead of
    /// forwarding.
    Status {
        /// 429 or 503, typically.
        code: u16,
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// Forward, but cut the connection after this many response bytes.
    DropAfter(usize),
    /// Forward the response at about this many bytes per second.
    Throttle(usize),
    /// Forward only this many bytes of the request body, then cut both
    /// connections: an upload interrupted mid-body.
    CutRequestAfter(usize),
}

/// A fault applied to the next `times` requests whose method matches and
/// whose path contains `path_contains`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `HEAD`, ...
    pub method: &'static str,
    /// A substring of the request path.
    pub path_contains: &'static str,
    /// The fault.
    pub fault: Fault,
    /// How many requests it applies to.
    pub times: usize,
}

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line, e.g. `GET /v2/a/blobs/sha256:... HTTP/1.1`.
    pub line: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// When its head arrived.
    pub started: Instant,
    /// When the proxy began to send its answer (`None` while it waits, or
    /// if it never got one).
    pub answered: Option<Instant>,
}

impl Seen {
    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.line.split_whitespace().next().unwrap_or("")
    }

    /// The path, e.g. `/v2/a/manifests/latest`.
    pub fn path(&self) -> &str {
        self.line.split_whitespace().nth(1).unwrap_or("")
    }
}

/// The requests one operation made, from [`FaultyProxy::since`].
#[derive(Debug, Clone)]
pub struct Requests(pub Vec<Seen>);

impl Requests {
    /// How many requests reached the proxy.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The round trips on the critical path: the longest chain of requests
    /// where each arrived after the previous one was answered. Requests
    /// not yet answered count as answered now.
    pub fn round_trips(&self) -> usize {
        let now = Instant::now();
        let mut spans: Vec<(Instant, Instant)> = self
            .0
            .iter()
            .map(|s| (s.started, s.answered.unwrap_or(now)))
            .collect();
        spans.sort();
        // chain[i]: the longest chain ending with request i.
        let mut chain = vec![0usize; spans.len()];
        for i in 0..spans.len() {
            let before = (0..i)
                .filter(|&j| spans[j].1 <= spans[i].0)
                .map(|j| chain[j])
                .max()
                .unwrap_or(0);
            chain[i] = before + 1;
        }
        chain.into_iter().max().unwrap_or(0)
    }

    /// Only the requests answered by `t`: those a caller who had its answer
    /// at `t` waited for (work a daemon does after answering is answered
    /// at least one delay later).
    pub fn answered_by(&self, t: Instant) -> Requests {
        Requests(
            self.0
                .iter()
                .filter(|s| s.answered.is_some_and(|a| a <= t))
                .cloned()
                .collect(),
        )
    }

    /// The request lines, in arrival order, for failure messages.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(|s| s.line.clone()).collect()
    }
}

impl std::fmt::Display for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = self.0.first().map(|s| s.started);
        for s in &self.0 {
            let ms = |t: Instant| origin.map_or(0, |o| t.duration_since(o).as_millis());
            let answered = s.answered.map_or("-".to_string(), |t| ms(t).to_string());
            writeln!(f, "  {:>5}..{:>5} ms  {}", ms(s.started), answered, s.line)?;
        }
        Ok(())
    }
}

/// The running proxy; it lives as long as the test process.
pub struct FaultyProxy {
    /// `127.0.0.1:PORT`, to use in place of the registry's address.
    pub addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// How long every request is held before it is forwarded.
    delay: Arc<Mutex<Duration>>,
    /// Blob downloads under way (bytes relayed so far, by request), and how
    /// many started while another was still early on.
    blobs_in_flight: Arc<Flight>,
}

/// Bookkeeping of concurrent blob downloads.
#[derive(Default)]
struct Flight {
    relayed: Mutex<std::collections::HashMap<u64, usize>>,
    next_id: AtomicUsize,
    overlapping_starts: AtomicUsize,
}

/// A blob download that has relayed less than this is "early on": one that
/// starts then overlaps it for real, not just at the seam between two.
const EARLY: usize = 1 << 20;

impl FaultyProxy {
    /// Proxies to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = FaultyProxy {
            addr: listener.local_addr().unwrap().to_string(),
            rules: Arc::default(),
            seen: Arc::default(),
            delay: Arc::default(),
            blobs_in_flight: Arc::default(),
        };
        let shared = Shared {
            rules: proxy.rules.clone(),
            seen: proxy.seen.clone(),
            delay: proxy.delay.clone(),
            flight: proxy.blobs_in_flight.clone(),
        };
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (shared, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = handle(client, &upstream, &shared);
                });
            }
        });
        proxy
    }

    /// Proxies to `upstream`, holding every request for `delay` before
    /// forwarding it, so that round trips can be counted (see the module
    /// documentation).
    pub fn with_delay(upstream: &str, delay: Duration) -> FaultyProxy {
        let proxy = Self::start(upstream);
        *proxy.delay.lock().unwrap() = delay;
        proxy
    }

    /// How many requests the proxy has seen: a mark for [`Self::since`].
    pub fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The requests seen since `mark`.
    pub fn since(&self, mark: usize) -> Requests {
        Requests(self.seen.lock().unwrap()[mark..].to_vec())
    }

    /// Adds a rule.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// How many blob downloads started while another one had relayed less
    /// than 1 MiB: zero when downloads run one after another.
    pub fn overlapping_blob_starts(&self) -> usize {
        self.blobs_in_flight
            .overlapping_starts
            .load(Ordering::SeqCst)
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// What every connection's thread shares with the proxy.
#[derive(Clone)]
struct Shared {
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Arc<Mutex<Duration>>,
    flight: Arc<Flight>,
}

fn handle(client: TcpStream, upstream: &str, shared: &Shared) -> std::io::Result<()> {
    let Shared {
        rules,
        seen,
        delay,
        flight,
    } = shared;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let request_line = line.trim_end().to_string();
    let mut range = None;
    head.push(request_line.clone());
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if lower.starts_with("range:") {
            range = Some(l[6..].trim().to_string());
        }
        head.push(l.to_string());
    }
    head.push("Connection: close".into());
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.times > 0 && r.method == method && path.contains(r.path_contains))
            .map(|r| {
                r.times -= 1;
                r.fault
            })
    };
    let started = Instant::now();
    let number = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            line: request_line.clone(),
            range,
            fault,
            started,
            answered: None,
        });
        seen.len() - 1
    };
    let delay = *delay.lock().unwrap();
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    // Called just before the first byte of the answer goes back.
    let answered = || {
        if let Some(s) = seen.lock().unwrap().get_mut(number) {
            s.answered.get_or_insert_with(Instant::now);
        }
    };
    let mut client = client;
    if let Some(Fault::Status { code, retry_after }) = fault {
        answered();
        let reason = if code == 429 {
            "Too Many Requests"
        } else {
            "Service Unavailable"
        };
        write!(
            client,
            "HTTP/1.1 {code} {reason}\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return client.shutdown(Shutdown::Both);
    }
    let is_blob = method == "GET" && path.contains("/blobs/sha256:");
    let id = flight.next_id.fetch_add(1, Ordering::SeqCst) as u64;
    if is_blob {
        let mut relayed = flight.relayed.lock().unwrap();
        if relayed.values().any(|&n| n < EARLY) {
            flight.overlapping_starts.fetch_add(1, Ordering::SeqCst);
        }
        relayed.insert(id, 0);
    }
    let progress = |n: usize| {
        if is_blob {
            if let Some(v) = flight.relayed.lock().unwrap().get_mut(&id) {
                *v = n;
            }
        }
    };
    let result = forward(client, reader, upstream, &head, fault, progress, answered);
    if is_blob {
        flight.relayed.lock().unwrap().remove(&id);
    }
    result
}

fn forward(
    mut client: TcpStream,
    mut reader: BufReader<TcpStream>,
    upstream: &str,
    head: &[String],
    fault: Option<Fault>,
    progress: impl Fn(usize),
    answered: impl Fn(),
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all((head.join("\r\n") + "\r\n\r\n").as_bytes())?;
    // The rest of the request (a body, if any) flows on in the background.
    let mut up_writer = up.try_clone()?;
    if let Some(Fault::CutRequestAfter(n)) = fault {
        let mut part = (&mut reader).take(n as u64);
        std::io::copy(&mut part, &mut up_writer)?;
        // Let the registry take in what it got before the line goes dead.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = up.shutdown(Shutdown::Both);
        answered();
        return client.shutdown(Shutdown::Both);
    }
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_writer);
    });
    let limit = match fault {
        Some(Fault::DropAfter(n)) => n,
        _ => usize::MAX,
    };
    // With a throttle, send a slice every 10 ms.
    let (slice, pause) = match fault {
        Some(Fault::Throttle(rate)) => (
            (rate / 100).max(1),
            Some(std::time::Duration::from_millis(10)),
        ),
        _ => (64 << 10, None),
    };
    let mut sent = 0usize;
    let mut buf = vec![0u8; slice];
    loop {
        let n = up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let n = n.min(limit - sent);
        if sent == 0 {
            answered();
        }
        client.write_all(&buf[..n])?;
        sent += n;
        progress(sent);
        if sent >= limit {
            break;
        }
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    }
    answered();
    let _ = up.shutdown(Shutdown::Both);
    client.shutdown(Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(start_ms: u64, end_ms: u64) -> Seen {
        let base = Instant::now();
        Seen {
            line: "GET / HTTP/1.1".into(),
            range: None,
            fault: None,
            started: base + Duration::from_millis(start_ms),
            answered: Some(base + Duration::from_millis(end_ms)),
        }
    }

    #[test]
    fn overlapping_requests_count_once_on_the_critical_path() {
        // Two together, then one after both, then two after that: 3.
        let r = Requests(vec![
            seen(0, 30),
            seen(1, 31),
            seen(32, 62),
            seen(63, 93),
            seen(64, 94),
        ]);
        assert_eq!((r.round_trips(), r.count()), (3, 5));
        // One long request beside a chain of three short ones: 3.
        let r = Requests(vec![seen(0, 100), seen(0, 30), seen(31, 61), seen(62, 92)]);
        assert_eq!(r.round_trips(), 3);
        assert_eq!(Requests(vec![]).round_trips(), 0);
    }
}
