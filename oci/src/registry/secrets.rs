//! Where credentials may go, and keeping them out of what comes back.
//!
//! - A registry credential (Basic or a bearer token) is sent only to the
//!   origin (scheme, host, port) of the registry it belongs to; an upload
//!   `Location` elsewhere gets the request without it ([`same_origin`]).
//! - A password travels to a token realm only over TLS when the registry
//!   itself speaks TLS, and never to a link-local address ([`check_realm`]).
//! - Text a registry sends back (error bodies) is scrubbed of whatever
//!   credential the request carried before it reaches an error
//!   ([`redact`]).

use std::net::IpAddr;

use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// What replaces a credential in text.
const REDACTED: &str = "[redacted]";

/// Whether `a` and `b` share scheme, host and port (default ports count).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Checks that credentials may be sent to the token `realm` of a registry
/// reached over `registry_scheme`: a TLS registry's realm must use TLS
/// too, and no realm may sit on a link-local address (where cloud metadata
/// services live), by name or by number.
pub(crate) async fn check_realm(
    registry: &str,
    registry_scheme: &str,
    realm: &Url,
    idle: std::time::Duration,
) -> Result<()> {
    let refuse = |why: String| {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "{registry}: refusing token realm {}: {why}",
                shown_realm(realm)
            ),
        )
    };
    match realm.scheme() {
        "https" => {}
        "http" if registry_scheme == "http" => {}
        "http" => {
            return Err(refuse(
                "the registry speaks https, and a password must not travel in clear text".into(),
            ))
        }
        other => return Err(refuse(format!("unsupported scheme {other:?}"))),
    }
    let host = match realm.host() {
        Some(url::Host::Ipv4(ip)) => return refuse_link_local(IpAddr::V4(ip)).map_err(refuse),
        Some(url::Host::Ipv6(ip)) => return refuse_link_local(IpAddr::V6(ip)).map_err(refuse),
        Some(url::Host::Domain(d)) => d.to_string(),
        None => return Err(refuse("it names no host".into())),
    };
    let port = realm.port_or_known_default().unwrap_or(443);
    // A name that resolves to a link-local address is refused too. A name
    // that does not resolve fails later, in the request, as unreachable;
    // one that later resolves elsewhere meets [`NoLinkLocal`].
    let lookup = tokio::time::timeout(idle, tokio::net::lookup_host((host.as_str(), port))).await;
    if let Ok(Ok(addrs)) = lookup {
        for addr in addrs {
            refuse_link_local(addr.ip()).map_err(refuse)?;
        }
    }
    Ok(())
}

/// The HTTP clients' resolver: the system's, less link-local addresses,
/// so no name (a token realm's or a redirect's, even one that resolves
/// anew between a check and the request) leads a credential to a cloud
/// metadata service.
pub(crate) struct NoLinkLocal;

impl reqwest::dns::Resolve for NoLinkLocal {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<std::net::SocketAddr> = found
                .into_iter()
                .filter(|a| refuse_link_local(a.ip()).is_ok())
                .collect();
            if kept.is_empty() {
                return Err(format!("{host} resolves to no address but link-local ones").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn refuse_link_local(ip: IpAddr) -> std::result::Result<(), String> {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    };
    if link_local {
        Err(format!("{ip} is a link-local address"))
    } else {
        Ok(())
    }
}

/// The realm as shown in messages: its origin and path, without user
/// information or query.
fn shown_realm(realm: &Url) -> String {
    let mut shown = realm.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    crate::text::cut(shown.as_str(), 200)
}

/// Scrubs `text` (a registry's answer) of the credentials in `known`,
/// each an `Authorization` value (or a bare token), in every form a server
/// might echo it: the whole value, its credential part, and for Basic the
/// decoded `user:password` and the password alone. Anything that looks
/// like a `Basic` or `Bearer` credential, or a JWT, is scrubbed as well.
pub(crate) fn redact(text: &str, known: &[String]) -> String {
    let mut forms: Vec<String> = known.iter().flat_map(|v| secret_forms(v)).collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_string();
    for secret in forms {
        if secret.len() >= 4 {
            out = replace_all(&out, &secret);
        }
    }
    scrub_patterns(&out)
}

/// The forms in which the credential of an `Authorization` value may come
/// back, longest first.
fn secret_forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    let (scheme, credential) = value.split_once(' ').unwrap_or(("", value));
    let credential = credential.trim();
    forms.push(credential.to_string());
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credential) {
            if let Ok(pair) = String::from_utf8(decoded) {
                if let Some((_, password)) = pair.split_once(':') {
                    forms.push(password.to_string());
                }
                forms.push(pair);
            }
        }
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

fn replace_all(text: &str, secret: &str) -> String {
    text.replace(secret, REDACTED)
}

/// Scrubs `Basic …` and `Bearer …` credentials and JWT-shaped strings
/// wherever they appear, whoever sent them.
fn scrub_patterns(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, keep)) = next_credential(rest) {
        out.push_str(&rest[..start + keep]);
        out.push_str(REDACTED);
        let after = &rest[start + keep..];
        let end = after
            .find(|c: char| !is_token_char(c))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of the next credential in `text`, and how many bytes of
/// it to keep (the scheme word and its space): `(offset, kept)`.
fn next_credential(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<(usize, usize)> = None;
    for scheme in ["basic ", "bearer "] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(scheme) {
            let at = from + i;
            let value_at = at + scheme.len();
            let word_start = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
            let value = text[value_at..]
                .split(|c: char| !is_token_char(c))
                .next()
                .unwrap_or("");
            if word_start && looks_like_credential(scheme, value) {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, scheme.len()));
                }
                break;
            }
            from = value_at;
        }
    }
    for (jwt, _) in lower.match_indices("eyj") {
        if best.is_some_and(|(b, _)| b <= jwt) {
            break;
        }
        let starts_token = jwt == 0 || !lower.as_bytes()[jwt - 1].is_ascii_alphanumeric();
        let looks_like_jwt = text[jwt..]
            .split(|c: char| !is_token_char(c))
            .next()
            .is_some_and(|t| t.matches('.').count() >= 2 && t.len() >= 20);
        if starts_token && looks_like_jwt {
            best = Some((jwt, 0));
            break;
        }
    }
    best
}

/// Whether `value`, after the scheme word, is a credential rather than a
/// word of prose ("basic auth required"): for Basic, padded base64 of a
/// `user:password` pair; for Bearer, a long token with a digit or a dot.
fn looks_like_credential(scheme: &str, value: &str) -> bool {
    if scheme.starts_with("basic") {
        use base64::Engine as _;
        return value.len().is_multiple_of(4)
            && base64::engine::general_purpose::STANDARD
                .decode(value)
                .is_ok_and(|d| d.contains(&b':'));
    }
    value.len() >= 16 && value.contains(|c: char| c.is_ascii_digit() || c == '.')
}

/// Characters of base64, base64url and JWTs.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_' | '.' | '~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<String> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        vec![format!("Basic {b64}")]
    }

    #[test]
    fn every_echoed_form_of_a_basic_credential_is_scrubbed() {
        let sent = basic("alice", "canary-pw-123");
        let b64 = sent[0].strip_prefix("Basic ").unwrap();
        for echoed in [
            format!("denied: Authorization: Basic {b64}"),
            format!("bad token {b64} here"),
            "user alice:canary-pw-123 unknown".to_string(),
            "password canary-pw-123 is wrong".to_string(),
        ] {
            let out = redact(&echoed, &sent);
            assert!(!out.contains("canary-pw-123"), "{out}");
            assert!(!out.contains(b64), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn credential_shapes_are_scrubbed_without_knowing_them() {
        let out = redact(
            "got authorization: bearer abc.def-ghi_jkl.mno and Basic Zm9vOmJhcg==, fine",
            &[],
        );
        assert_eq!(
            out,
            "got authorization: bearer [redacted] and Basic [redacted], fine"
        );
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        assert_eq!(redact(&format!("token={jwt};"), &[]), "token=[redacted];");
        assert_eq!(redact(&format!("heyjoe {jwt}"), &[]), "heyjoe [redacted]");
        // Plain words survive.
        assert_eq!(
            redact("Basic authentication required; bearer token needed", &[]),
            "Basic authentication required; bearer token needed"
        );
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r.io/v2/x"),
            &u("https://r.io:443/up?x=1")
        ));
        assert!(!same_origin(&u("https://r.io/v2/"), &u("http://r.io/v2/")));
        assert!(!same_origin(
            &u("http://127.0.0.1:5000/"),
            &u("http://127.0.0.1:5001/")
        ));
        assert!(!same_origin(
            &u("http://localhost:5000/"),
            &u("http://127.0.0.1:5000/")
        ));
    }

    const IDLE: std::time::Duration = std::time::Duration::from_secs(5);

    #[tokio::test]
    async fn realms_that_would_leak_a_password_are_refused() {
        let u = |s: &str| Url::parse(s).unwrap();
        for (scheme, realm) in [
            ("https", "http://auth.example/token"),
            ("https", "https://169.254.169.254/token"),
            ("http", "http://169.254.1.1:8080/token"),
            ("https", "https://[fe80::1]/token"),
            ("https", "https://[::ffff:169.254.169.254]/token"),
            ("https", "ftp://auth.example/token"),
        ] {
            let err = check_realm("r.io", scheme, &u(realm), IDLE)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::FailedPrecondition, "{realm}");
            assert!(err.to_string().contains("refusing token realm"), "{err}");
        }
        for (scheme, realm) in [
            ("https", "https://127.0.0.1:1/token"),
            ("http", "http://127.0.0.1:1/token"),
        ] {
            check_realm("r.io", scheme, &u(realm), IDLE).await.unwrap();
        }
    }
}
