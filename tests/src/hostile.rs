//! A test-only hostile registry: an HTTP/1.1 server on loopback that
//! answers as a scripted handler says, for the answers a real registry
//! cannot be made to give (credentials echoed in error bodies, upload
//! `Location`s on another host, bodies that trickle or stop, answers that
//! never come). A handler may also forward a request to a real registry
//! and tamper with its answer.
//!
//! Every request it sees is recorded with its headers, so a test can ask
//! whether a credential reached a place it must not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the server read.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The path and query, e.g. `/v2/a/blobs/uploads/?x=1`.
    pub path: String,
    /// The headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers besides `Content-Length` and `Connection`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The `Content-Length` to send instead of the body's (an answer to
    /// HEAD, or a body that promises more than it holds).
    pub length: Option<usize>,
}

impl Response {
    /// An answer with `status`, headers and body.
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            length: None,
        }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces (or adds) the header `name`.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
    }
}

/// What to do with a request.
pub enum Action {
    /// Send this answer.
    Reply(Response),
    /// Forward the request to the real registry at `upstream`, then pass
    /// its answer through `tamper` before sending it.
    Forward {
        /// `127.0.0.1:PORT` of a real registry.
        upstream: String,
        /// Changes to the real answer.
        tamper: Box<dyn FnOnce(&mut Response) + Send>,
    },
    /// Send the status line and headers of this answer, with its
    /// `Content-Length`, then the body one byte at a time with `gap`
    /// between bytes.
    Trickle(Response, Duration),
    /// Send the headers (with the body's `Content-Length`) and then nothing
    /// more, holding the connection open until the server is dropped.
    HeadersThenSilence(Response),
    /// Read the request and never answer.
    Silence,
    /// Close the connection without an answer.
    Hangup,
    /// Wait this long, then do the action.
    Later(Duration, Box<Action>),
}

type Handler = dyn Fn(&Request) -> Action + Send + Sync;

/// The running server; it stops accepting when dropped (connections held
/// open are closed then too).
pub struct HostileRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    seen: Arc<Mutex<Vec<Request>>>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HostileRegistry {
    /// Starts a server answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let (seen, held, stop) = (seen.clone(), held.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (seen, held, handler) = (seen.clone(), held.clone(), handler.clone());
                    std::thread::spawn(move || serve(conn, &*handler, &seen, &held));
                }
            });
        }
        HostileRegistry {
            addr,
            seen,
            held,
            stop,
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for conn in self.held.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Serves requests on one connection until it closes.
fn serve(
    conn: TcpStream,
    handler: &Handler,
    seen: &Mutex<Vec<Request>>,
    held: &Mutex<Vec<TcpStream>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    while let Some(req) = read_request(&mut reader) {
        seen.lock().unwrap().push(req.clone());
        let mut action = handler(&req);
        while let Action::Later(wait, then) = action {
            std::thread::sleep(wait);
            action = *then;
        }
        let written = match action {
            Action::Reply(resp) => write_response(&mut out, &resp),
            Action::Forward { upstream, tamper } => {
                let mut resp = forward(&upstream, &req);
                tamper(&mut resp);
                write_response(&mut out, &resp)
            }
            Action::Trickle(resp, gap) => {
                let _ = out.write_all(&head(&resp));
                for b in &resp.body {
                    if out.write_all(&[*b]).and_then(|()| out.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(gap);
                }
                Ok(())
            }
            Action::HeadersThenSilence(resp) => {
                let _ = out.write_all(&head(&resp));
                held.lock().unwrap().push(out);
                return;
            }
            Action::Silence => {
                held.lock().unwrap().push(out);
                return;
            }
            Action::Hangup | Action::Later(..) => return,
        };
        if written.is_err() {
            return;
        }
    }
}

/// The status line and headers of `resp`, with its `Content-Length`.
fn head(resp: &Response) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {} Hostile\r\n", resp.status);
    for (n, v) in &resp.headers {
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("connection") {
            continue;
        }
        h += &format!("{n}: {v}\r\n");
    }
    let length = resp.length.unwrap_or(resp.body.len());
    h += &format!("Content-Length: {length}\r\n\r\n");
    h.into_bytes()
}

fn write_response(out: &mut TcpStream, resp: &Response) -> std::io::Result<()> {
    out.write_all(&head(resp))?;
    out.write_all(&resp.body)?;
    out.flush()
}

/// Reads one request; `None` at the end of the connection.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers = read_headers(reader)?;
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(reader)?
    } else {
        let len: usize = find("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        body
    };
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn read_headers(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(headers);
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            read_headers(reader)?; // trailers
            return Some(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
    }
}

/// Sends `req` to the real registry at `upstream` and reads its answer.
/// The `Host` header is kept, so the registry's `Location`s point back at
/// this server, as they would at any proxy in front of a registry.
fn forward(upstream: &str, req: &Request) -> Response {
    let mut conn = TcpStream::connect(upstream).expect("upstream registry");
    let mut h = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (n, v) in &req.headers {
        if matches!(
            n.as_str(),
            "connection" | "content-length" | "transfer-encoding"
        ) {
            continue;
        }
        h += &format!("{n}: {v}\r\n");
    }
    h += &format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        req.body.len()
    );
    conn.write_all(h.as_bytes()).unwrap();
    conn.write_all(&req.body).unwrap();
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let headers = read_headers(&mut reader).unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if req.method == "HEAD" {
        Vec::new()
    } else if chunked {
        read_chunked(&mut reader).unwrap_or_default()
    } else {
        let mut body = Vec::new();
        let _ = reader.read_to_end(&mut body);
        body
    };
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(n, _)| n != "transfer-encoding")
        .collect();
    let length = (req.method == "HEAD")
        .then(|| {
            headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
        })
        .flatten();
    Response {
        status,
        headers,
        body,
        length,
    }
}
