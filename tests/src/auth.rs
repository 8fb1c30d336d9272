//! Authentication fixtures: certificates made with `openssl`, htpasswd
//! files, and a test-only token issuer.
//!
//! [`TokenIssuer`] is a small HTTP server that plays the part of a registry's
//! token service for docker-registry's `auth: token`: it checks basic
//! credentials, signs ES256 JWTs whose `x5c` header carries its certificate
//! (docker-registry verifies the chain against its `rootcertbundle`), and
//! counts the tokens it hands out per scope.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// The password used in every auth test; grepped for in logs and outputs.
pub const CANARY_PASSWORD: &str = "canary-Pa55-7f3e9b1c";
/// The user name that goes with it.
pub const USER: &str = "ci-bot";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a self-signed P-256 certificate and its key in `dir`.
fn self_signed(dir: &Path, key: &str, cert: &str, subject: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "2",
            "-subj",
            subject,
        ],
    );
}

/// A CA and certificates it signed, as files.
pub struct Pki {
    /// The directory holding every file.
    pub dir: PathBuf,
}

impl Pki {
    /// Makes a CA in `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        self_signed(dir, "ca.key", "ca.crt", "/CN=satchel test CA");
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Issues `NAME.crt` and `NAME.key` with `extensions` (an openssl
    /// extension file body); returns (cert, key).
    pub fn issue(&self, name: &str, extensions: &str) -> (PathBuf, PathBuf) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.join(&ext), extensions).unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }

    /// A server certificate for 127.0.0.1.
    pub fn server(&self) -> (PathBuf, PathBuf) {
        self.issue(
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate.
    pub fn client(&self) -> (PathBuf, PathBuf) {
        self.issue(
            "client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
    }
}

/// Writes an htpasswd file with one bcrypt entry.
pub fn htpasswd(path: &Path, user: &str, password: &str) {
    let hash = bcrypt::hash(password, 5).expect("bcrypt");
    std::fs::write(path, format!("{user}:{hash}\n")).unwrap();
}

/// What the issuer should do with the next tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    /// Valid tokens, claiming `expires_in` seconds.
    Valid {
        /// The lifetime the answer claims (and the JWT's `exp`).
        expires_in: u64,
    },
    /// One token whose JWT expired long ago (beyond the registry's 60 s
    /// leeway) while the answer claims five minutes: a cached token the
    /// registry will refuse. Valid five-minute tokens follow.
    StaleOnce,
}

/// The test-only token issuer. Stops with the test process.
pub struct TokenIssuer {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The service name registries are configured with.
    pub service: String,
    /// The issuer name registries are configured with.
    pub issuer: String,
    /// The certificate registries must trust (`rootcertbundle`).
    pub cert: PathBuf,
    issued: Arc<Mutex<BTreeMap<String, u64>>>,
    mode: Arc<Mutex<TokenMode>>,
    refused: Arc<AtomicU64>,
    _stop: Arc<AtomicBool>,
}

impl TokenIssuer {
    /// Starts an issuer that accepts `user`/`password`, with its signing
    /// key and certificate in `dir`.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenIssuer {
        std::fs::create_dir_all(dir).unwrap();
        self_signed(
            dir,
            "issuer.pem",
            "issuer.crt",
            "/CN=satchel test token issuer",
        );
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "issuer.pem",
                "-outform",
                "DER",
                "-out",
                "issuer.p8",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-in",
                "issuer.crt",
                "-outform",
                "DER",
                "-out",
                "issuer.der",
            ],
        );
        let pkcs8 = std::fs::read(dir.join("issuer.p8")).unwrap();
        let cert_der = std::fs::read(dir.join("issuer.der")).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &rng,
        )
        .expect("issuer key");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = TokenIssuer {
            realm: format!("http://{addr}/token"),
            service: "satchel-test-registry".into(),
            issuer: "satchel-test-issuer".into(),
            cert: dir.join("issuer.crt"),
            issued: Arc::default(),
            mode: Arc::new(Mutex::new(TokenMode::Valid { expires_in: 300 })),
            refused: Arc::default(),
            _stop: Arc::default(),
        };
        let state = Shared {
            key: Arc::new(key),
            x5c: base64::engine::general_purpose::STANDARD.encode(&cert_der),
            service: issuer.service.clone(),
            issuer: issuer.issuer.clone(),
            basic: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            issued: issuer.issued.clone(),
            mode: issuer.mode.clone(),
            refused: issuer.refused.clone(),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || state.serve(stream));
            }
        });
        issuer
    }

    /// Tokens handed out so far, per scope (`""` for login's scope-less ones).
    pub fn issued(&self) -> BTreeMap<String, u64> {
        self.issued.lock().unwrap().clone()
    }

    /// Requests refused for bad credentials.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Changes what the next tokens look like.
    pub fn set_mode(&self, mode: TokenMode) {
        *self.mode.lock().unwrap() = mode;
    }
}

#[derive(Clone)]
struct Shared {
    key: Arc<ring::signature::EcdsaKeyPair>,
    x5c: String,
    service: String,
    issuer: String,
    basic: String,
    issued: Arc<Mutex<BTreeMap<String, u64>>>,
    mode: Arc<Mutex<TokenMode>>,
    refused: Arc<AtomicU64>,
}

impl Shared {
    fn serve(&self, stream: std::net::TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut stream = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut authorization = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "authorization" => authorization = v.trim().to_string(),
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0u8; length];
            std::io::Read::read_exact(&mut reader, &mut body).ok();
            let target = request_line.split_whitespace().nth(1).unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            // Several scopes come as several parameters; count them as one set.
            let scope = url_params(query, "scope").join(" ");
            let (status, payload) = if authorization != self.basic {
                self.refused.fetch_add(1, Ordering::SeqCst);
                (
                    "401 Unauthorized",
                    r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_string(),
                )
            } else {
                *self
                    .issued
                    .lock()
                    .unwrap()
                    .entry(scope.clone())
                    .or_default() += 1;
                ("200 OK", self.token(&scope))
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
                payload.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn token(&self, scope: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (exp, expires_in) = {
            let mut mode = self.mode.lock().unwrap();
            match *mode {
                TokenMode::Valid { expires_in } => (now + expires_in, expires_in),
                TokenMode::StaleOnce => {
                    *mode = TokenMode::Valid { expires_in: 300 };
                    (now - 600, 300)
                }
            }
        };
        let mut access = Vec::new();
        for part in scope.split(' ').filter(|s| !s.is_empty()) {
            let mut fields = part.splitn(3, ':');
            let (kind, name, actions) = (fields.next(), fields.next(), fields.next());
            if let (Some(kind), Some(name), Some(actions)) = (kind, name, actions) {
                access.push(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": USER, "aud": self.service,
            "exp": exp, "nbf": now - 700, "iat": now - 700,
            "jti": format!("{now}-{}", rand_u64()),
            "access": access,
        });
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let rng = ring::rand::SystemRandom::new();
        let signature = self.key.sign(&rng, signing_input.as_bytes()).unwrap();
        let jwt = format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        serde_json::json!({"token": jwt, "access_token": jwt, "expires_in": expires_in}).to_string()
    }
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap();
    u64::from_le_bytes(b)
}

fn url_params(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token issuer accepting the canary credential, and a docker-registry
/// that trusts it.
pub fn token_world(scratch: &Path) -> (TokenIssuer, crate::Registry) {
    let issuer = TokenIssuer::start(&scratch.join("issuer"), USER, CANARY_PASSWORD);
    let registry = crate::Registry::start_with(crate::RegistrySetup {
        token: Some((
            issuer.realm.clone(),
            issuer.service.clone(),
            issuer.issuer.clone(),
            issuer.cert.clone(),
        )),
        ..Default::default()
    });
    (issuer, registry)
}

/// A docker-registry with htpasswd auth for the canary credential, its
/// password file in `dir`.
pub fn htpasswd_registry(dir: &Path) -> crate::Registry {
    let pw = dir.join("htpasswd");
    htpasswd(&pw, USER, CANARY_PASSWORD);
    crate::Registry::start_with(crate::RegistrySetup {
        htpasswd: Some(pw),
        ..Default::default()
    })
}
