//! A test-only HTTP proxy that injects the faults a real registry cannot be
//! made to produce on demand: connections dropped mid-body, and 429/503
//! answers with `Retry-After`. Everything else passes through to the real
//! registry behind it.
//!
//! It rewrites each request to `Connection: close`, so every connection
//! carries one request and the proxy always knows which request it is
//! looking at.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
}

/// The running proxy; it lives as long as the test process.
pub struct FaultyProxy {
    /// `127.0.0.1:PORT`, to use in place of the registry's address.
    pub addr: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
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
            blobs_in_flight: Arc::default(),
        };
        let (rules, seen, upstream, flight) = (
            proxy.rules.clone(),
            proxy.seen.clone(),
            upstream.to_string(),
            proxy.blobs_in_flight.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (rules, seen, upstream, flight) = (
                    rules.clone(),
                    seen.clone(),
                    upstream.clone(),
                    flight.clone(),
                );
                std::thread::spawn(move || {
                    let _ = handle(client, &upstream, &rules, &seen, &flight);
                });
            }
        });
        proxy
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

fn handle(
    client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    seen: &Mutex<Vec<Seen>>,
    flight: &Flight,
) -> std::io::Result<()> {
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
    seen.lock().unwrap().push(Seen {
        line: request_line.clone(),
        range,
        fault,
    });
    let mut client = client;
    if let Some(Fault::Status { code, retry_after }) = fault {
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
    let result = forward(client, reader, upstream, &head, fault, progress);
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
    let _ = up.shutdown(Shutdown::Both);
    client.shutdown(Shutdown::Both)
}
