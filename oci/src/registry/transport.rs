//! The HTTP side: clients with the daemon's timeouts, `send` with its
//! retries and backoff, `send_once` for streamed bodies, and errors built
//! from registry answers (scrubbed, cut short).

use super::*;
use crate::metrics;

impl Repository {
    /// Sends a request whose body (if any) can be replayed: authenticates
    /// and retries once when the registry answers 401, and retries 408, 429,
    /// 5xx, connection errors and stalls with capped, jittered exponential
    /// backoff that honours `Retry-After`.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        access: Access,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response> {
        let mut authenticated = false;
        let mut attempt = 0u32;
        let idle = self.client.options.idle();
        loop {
            let mut req = self
                .client
                .http_for(self.name.api_host())
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            let auth = self.authorization_for(&url, &access).await?;
            if let Some(auth) = &auth {
                req = req.header(header::AUTHORIZATION, auth.clone());
            }
            let what = || format!("{method} {} failed", redact_query(&url));
            let sent = std::time::Instant::now();
            let answer = tokio::time::timeout(idle, req.send()).await;
            self.count_request(
                &method,
                sent,
                answer.as_ref().ok().and_then(|a| a.as_ref().ok()),
            );
            let failure = match answer {
                Ok(Ok(mut resp)) => {
                    remember_authorization(&mut resp, auth);
                    Ok(resp)
                }
                Ok(Err(e)) if e.is_timeout() => Err(deadline::stalled(&what(), idle)),
                Ok(Err(e)) if e.is_connect() || e.is_request() => {
                    Err(send_error(what(), self.name.registry(), e))
                }
                Ok(Err(e)) => return Err(send_error(what(), self.name.registry(), e)),
                Err(_) => Err(deadline::stalled(&what(), idle)),
            };
            let resp = match failure {
                Ok(resp) => resp,
                Err(e) if attempt + 1 < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "retrying after a connection error");
                    self.wait_to_retry(attempt, None).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED
                && !authenticated
                && self.owns(&url)
                && self.owns(resp.url())
                && self.learn_challenge(&resp, &access)
            {
                authenticated = true;
                continue;
            }
            let transient = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            if transient && attempt + 1 < MAX_ATTEMPTS {
                tracing::debug!(%status, attempt, url = %redact_query(&url), "retrying");
                self.wait_to_retry(attempt, retry_after(resp.headers()))
                    .await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends a request with a one-shot (streaming) body. Auth must already be
    /// known: callers make a replayable request first (the upload POST).
    /// The request fails as stalled when the registry stops taking the body,
    /// or gives no answer within the idle time after its end.
    pub(super) async fn send_once<S>(
        &self,
        method: Method,
        url: Url,
        access: Access,
        headers: HeaderMap,
        body: S,
    ) -> Result<reqwest::Response>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let activity = deadline::Activity::new();
        let mut req = self
            .client
            .http_for(self.name.api_host())
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(reqwest::Body::wrap_stream(activity.track(body.inspect(
                |piece| {
                    if let Ok(piece) = piece {
                        metrics::moved("up", piece.len());
                    }
                },
            ))));
        let auth = self.authorization_for(&url, &access).await?;
        if let Some(auth) = &auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let what = || format!("{method} {} failed", redact_query(&url));
        let idle = self.client.options.idle();
        let sent = std::time::Instant::now();
        let mut resp = tokio::select! {
            answer = req.send() => {
                self.count_request(&method, sent, answer.as_ref().ok());
                answer.map_err(|e| send_error(what(), self.name.registry(), e))?
            }
            () = activity.idle_for(idle) => {
                self.count_request(&method, sent, None);
                return Err(deadline::stalled(&what(), idle));
            }
        };
        remember_authorization(&mut resp, auth);
        Ok(resp)
    }

    /// Counts a request sent at `sent` and its answer (`None`: none came).
    fn count_request(
        &self,
        method: &Method,
        sent: std::time::Instant,
        answer: Option<&reqwest::Response>,
    ) {
        let host = self.name.registry();
        let code = answer.map(|a| a.status());
        let status = code.as_ref().map_or("error", |c| c.as_str());
        metrics::REGISTRY_REQUESTS
            .with_label_values(&[host, method.as_str(), status])
            .inc();
        metrics::REGISTRY_LATENCY
            .with_label_values(&[host, method.as_str()])
            .observe(sent.elapsed().as_secs_f64());
    }

    /// Counts a retry and waits before it, as [`backoff`] says.
    async fn wait_to_retry(&self, attempt: u32, retry_after: Option<std::time::Duration>) {
        metrics::REGISTRY_RETRIES
            .with_label_values(&[self.name.registry()])
            .inc();
        tokio::time::sleep(backoff(attempt, retry_after)).await;
    }

    /// Builds the error for an unsuccessful response.
    pub(super) async fn error(&self, resp: reqwest::Response, what: &str) -> Error {
        let status = resp.status();
        let sent = resp
            .extensions()
            .get::<SentAuthorization>()
            .map(|s| s.0.clone());
        let body = read_limited(resp, MAX_ERROR_BODY, self.client.options.idle())
            .await
            .unwrap_or_default();
        // Scrub the whole body before taking its first line or cutting it,
        // so no fragment of a credential survives.
        let body = self.client.scrub(
            self.name.registry(),
            &String::from_utf8_lossy(&body),
            sent.as_ref(),
        );
        let details = error_details(body.as_bytes());
        let details = crate::text::cut(&details, crate::text::ECHO_MAX * 2);
        let kind = match status {
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => ErrorKind::Unavailable,
            s if s.is_server_error() => ErrorKind::Unavailable,
            StatusCode::BAD_REQUEST if details.contains("DIGEST_INVALID") => ErrorKind::DataLoss,
            // A manifest naming content the repository lacks: push that first.
            StatusCode::BAD_REQUEST if details.contains("BLOB_UNKNOWN") => {
                ErrorKind::FailedPrecondition
            }
            StatusCode::BAD_REQUEST => ErrorKind::InvalidArgument,
            _ => ErrorKind::FailedPrecondition,
        };
        let mut msg = format!("{}: {what}: HTTP {status}", self.name.registry());
        if !details.is_empty() {
            msg.push_str(": ");
            msg.push_str(&details);
        }
        Error::new(kind, msg)
    }
}

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
pub(super) struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

pub(super) fn error_codes(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors.into_iter().map(|e| e.code).collect())
        .unwrap_or_default()
}

pub(super) fn error_details(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errors.is_empty() => b
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)])
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
    }
}

/// The `Authorization` a request carried, kept on its response so an
/// error built from the answer can scrub it.
#[derive(Clone)]
pub(super) struct SentAuthorization(pub(super) HeaderValue);

pub(super) fn remember_authorization(resp: &mut reqwest::Response, auth: Option<HeaderValue>) {
    if let Some(auth) = auth {
        resp.extensions_mut().insert(SentAuthorization(auth));
    }
}

/// Reads a response body, failing when it exceeds `limit` bytes or stalls
/// (see [`deadline::Paced`]).
pub(super) async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Bytes> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("response larger than {limit} bytes"),
        ));
    }
    let mut out = BytesMut::new();
    let mut stream = deadline::Paced::new(resp.bytes_stream(), idle);
    loop {
        let chunk = match stream.next().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(Some(e)) => return Err(Error::http("reading a response failed", e)),
            Err(None) => return Err(deadline::stalled("reading a response", idle)),
        };
        if out.len() + chunk.len() > limit {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("response larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

pub(super) fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| Error::invalid("a header value has invalid characters"))
}

/// A `Retry-After` of whole seconds (the form registries send).
fn retry_after(headers: &HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// How long to wait before attempt `attempt + 1`: the server's
/// `Retry-After` if it gave one, else 100 ms doubling per attempt, with up to
/// 50% jitter; never more than [`MAX_BACKOFF`].
pub(super) fn backoff(
    attempt: u32,
    retry_after: Option<std::time::Duration>,
) -> std::time::Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_BACKOFF);
    }
    let base = std::time::Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(10));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 2000.0);
    (base + jitter).min(MAX_BACKOFF)
}

/// Builds an HTTP client, with a registry's TLS settings if given.
/// Every client has the daemon's timeouts and idle-connection cap,
/// resolves names to no link-local address ([`secrets::NoLinkLocal`]), and
/// follows redirects only as far as 10 hops and never from https to http
/// (reqwest drops `Authorization` whenever a redirect changes origin); a
/// token client (`follow_redirects` false) follows none.
pub(super) fn http_client(
    tls: Option<&RegistryTls>,
    options: &RegistryOptions,
    follow_redirects: bool,
) -> std::result::Result<reqwest::Client, reqwest::Error> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if !follow_redirects {
            // The 3xx itself is the answer: not a token.
            return attempt.stop();
        }
        let downgrade = attempt.previous().iter().any(|u| u.scheme() == "https")
            && attempt.url().scheme() != "https";
        if downgrade {
            attempt.error("refusing a redirect from https to http")
        } else if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("satchel/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout.unwrap_or(DEFAULT_CONNECT))
        .read_timeout(options.idle())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(
            options
                .max_idle_per_host
                .unwrap_or(DEFAULT_MAX_IDLE_PER_HOST),
        )
        .redirect(redirects)
        .dns_resolver(secrets::NoLinkLocal);
    if let Some(tls) = tls {
        if let Some(ca) = &tls.ca_pem {
            builder = builder.tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca)?);
        }
        if let Some(identity) = &tls.identity_pem {
            builder = builder.identity(reqwest::Identity::from_pem(identity)?);
        }
        if tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
    }
    builder.build()
}

/// `host[:port]` of a URL.
/// The error for a request to `registry` that got no answer. A TLS
/// handshake answered in plain HTTP (rustls's "received corrupt message of
/// type InvalidContentType") says instead what to set: the registry speaks
/// plain HTTP and nothing asked for it. Unavailable either way.
pub(super) fn send_error(context: String, registry: &str, err: reqwest::Error) -> Error {
    if !answered_in_plain_http(&err) {
        return Error::http(context, err);
    }
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "{context}: {registry} speaks plain HTTP, not TLS; to use plain HTTP, set the \
             target's plain_http (satchel --plain-http), or list it in the daemon config \
             as [registries.\"{registry}\"] plain_http = true"
        ),
    )
}

/// Whether `err` is a TLS handshake that got a plain-HTTP answer: rustls
/// read a record whose content type is not TLS's.
fn answered_in_plain_http(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) =
            e.downcast_ref::<rustls::Error>()
        {
            return true;
        }
        // An io::Error's source() skips the error it wraps: step into it.
        source = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

pub(super) fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// The URL without its query, which may carry upload state.
pub(super) fn redact_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_prefer_the_json_codes() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_details(body), "MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(error_details(b"404 page not found\n"), "404 page not found");
    }
}
