//! Who may ask what: challenges learned from 401s, bearer tokens fetched
//! from realms (checked first, see `secrets`), the login check, and the
//! `Authorization` each request carries.

use super::*;

/// The challenges in an answer's `WWW-Authenticate` headers.
fn challenges_of(resp: &reqwest::Response) -> Vec<Challenge> {
    resp.headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

impl RegistryClient {
    /// Checks `credential` against `registry` the way `docker login` does:
    /// basic auth on `/v2/`, or a token from the realm the registry names.
    /// On success, tokens cached for the registry are dropped.
    pub async fn verify_credentials(
        &self,
        registry: &str,
        plain_http: bool,
        credential: &Credential,
    ) -> Result<()> {
        let host = crate::reference::api_host_of(registry);
        let plain_http = plain_http || self.options.plain_http.contains(registry);
        let scheme = if plain_http { "http" } else { "https" };
        let url = Url::parse(&format!("{scheme}://{host}/v2/"))
            .map_err(|e| Error::invalid(format!("bad registry {registry:?}: {e}")))?;
        let probe = self.login_get(registry, &url, None).await?;
        // Only the registry itself may say how to authenticate to it: a
        // challenge from wherever a redirect led could name any realm.
        if !secrets::same_origin(probe.url(), &url) {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("{registry}/v2/ redirected to another origin; not logging in there"),
            ));
        }
        let result = match probe.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                self.answer_login_challenge(registry, scheme, &url, &probe, credential)
                    .await
            }
            other => Err(Error::new(
                ErrorKind::Unavailable,
                format!("{registry}/v2/ answered HTTP {other}"),
            )),
        };
        if result.is_ok() {
            self.tokens.evict_registry(host);
        }
        result
    }

    /// A GET of the login probe's `url`, with `authorization` if given.
    async fn login_get(
        &self,
        registry: &str,
        url: &Url,
        authorization: Option<String>,
    ) -> Result<reqwest::Response> {
        let http = self.http_for(crate::reference::api_host_of(registry));
        let reach = || format!("cannot reach {registry}");
        deadline::within(self.options.idle(), reach, async {
            let mut req = http.get(url.clone());
            if let Some(value) = authorization {
                req = req.header(header::AUTHORIZATION, value);
            }
            req.send()
                .await
                .map_err(|e| send_error(reach(), registry, e))
        })
        .await
    }

    /// Answers the 401 of the login probe: a token from the Bearer
    /// challenge's realm, else basic auth on `/v2/` again.
    async fn answer_login_challenge(
        &self,
        registry: &str,
        scheme: &str,
        url: &Url,
        probe: &reqwest::Response,
        credential: &Credential,
    ) -> Result<()> {
        let refused = || {
            Error::new(
                ErrorKind::Unauthenticated,
                format!(
                    "{registry} rejected the credentials for {}",
                    credential.username()
                ),
            )
        };
        let challenges = challenges_of(probe);
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            return self
                .fetch_token(registry, scheme, bearer, &service, "", Some(credential))
                .await
                .map(|_| ())
                .map_err(|e| match e.kind() {
                    ErrorKind::Unauthenticated => refused(),
                    _ => e,
                });
        }
        let Credential::Basic { username, password } = credential else {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                format!("{registry} asks for basic auth; an identity token cannot answer it"),
            ));
        };
        let authorization = basic(username, password.expose());
        let resp = self.login_get(registry, url, Some(authorization)).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused())
        }
    }

    /// Trades credentials (or nothing) for a bearer token at the
    /// challenge's realm: an OAuth2 POST with a refresh token, else a GET
    /// with basic auth. An empty `scope` asks for none (as `docker login`).
    pub(super) async fn fetch_token(
        &self,
        registry: &str,
        registry_scheme: &str,
        challenge: &Challenge,
        service: &str,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<(crate::auth::Secret, std::time::Duration)> {
        let realm = realm_of(registry, challenge)?;
        crate::metrics::TOKEN_FETCHES
            .with_label_values(&[registry])
            .inc();
        secrets::check_realm(registry, registry_scheme, &realm, self.options.idle()).await?;
        let request = self.token_request(&realm, service, scope, credential);
        let failed = || {
            format!(
                "token request to {} failed",
                realm.host_str().unwrap_or("?")
            )
        };
        let resp = deadline::within(self.options.idle(), failed, async {
            request.send().await.map_err(|e| Error::http(failed(), e))
        })
        .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(token_refused(registry, scope, status, credential.is_some()));
        }
        let body = read_limited(resp, MAX_ERROR_BODY, self.options.idle()).await?;
        let parsed: crate::auth::TokenResponse = serde_json::from_slice(&body).map_err(|_| {
            Error::new(
                ErrorKind::Unauthenticated,
                "the token endpoint answered with something that is not a token",
            )
        })?;
        parsed.into_token().ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "the token endpoint's answer holds no token",
            )
        })
    }

    /// The token request to `realm`: an OAuth2 form POST for an identity
    /// token, else a GET with `service` and each scope as parameters, with
    /// basic auth when the credential is a password.
    fn token_request(
        &self,
        realm: &Url,
        service: &str,
        scope: &str,
        credential: Option<&Credential>,
    ) -> reqwest::RequestBuilder {
        let http = self.token_http_for(&authority(realm));
        if let Some(Credential::IdentityToken(refresh)) = credential {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
                ("service", service),
                ("client_id", "satchel"),
            ];
            if !scope.is_empty() {
                form.push(("scope", scope));
            }
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            return http
                .post(realm.clone())
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body);
        }
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if !service.is_empty() {
                q.append_pair("service", service);
            }
            // Several scopes go as several parameters.
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                q.append_pair("scope", one);
            }
        }
        let req = http.get(url);
        match credential {
            Some(Credential::Basic { username, password }) => {
                req.header(header::AUTHORIZATION, basic(username, password.expose()))
            }
            _ => req,
        }
    }
}

/// The realm a Bearer challenge names, as a URL.
fn realm_of(registry: &str, challenge: &Challenge) -> Result<Url> {
    let realm = challenge.params.get("realm").ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthenticated,
            format!("{} sent a Bearer challenge without a realm", registry),
        )
    })?;
    Url::parse(realm).map_err(|e| {
        Error::new(
            ErrorKind::Unauthenticated,
            format!("{registry} named a token realm that is not a URL ({e})"),
        )
    })
}

/// The error for a token endpoint's refusal: Unavailable for a server
/// error or 429 (worth retrying later), Unauthenticated otherwise.
fn token_refused(registry: &str, scope: &str, status: StatusCode, had_credentials: bool) -> Error {
    let kind = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthenticated,
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => ErrorKind::Unavailable,
        _ => ErrorKind::Unauthenticated,
    };
    Error::new(
        kind,
        format!(
            "{} refused a token for {scope}: HTTP {status}{}",
            registry,
            if had_credentials {
                " (check the credentials)"
            } else {
                " (no credentials configured)"
            }
        ),
    )
}

impl Repository {
    /// The Authorization header for `access`, if the registry asked for one.
    pub(super) async fn authorization(&self, access: &Access) -> Result<Option<HeaderValue>> {
        let host = self.name.api_host().to_string();
        let challenges = self
            .client
            .challenges
            .lock()
            .expect("challenges lock")
            .get(&host)
            .cloned();
        let Some(challenges) = challenges else {
            return Ok(None);
        };
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            let scope = self.scope(access);
            if let Some(token) = self.client.tokens.get(&host, &service, &scope) {
                return header_value(&format!("Bearer {}", token.expose())).map(Some);
            }
            // One fetch per key: whoever gets the lock first fetches, the
            // rest find the token in the cache.
            let _fetching = self
                .client
                .token_locks
                .lock(&format!("{host}\n{service}\n{scope}"))
                .await;
            let token = match self.client.tokens.get(&host, &service, &scope) {
                Some(token) => token,
                None => {
                    let credential = self.client.credentials.get(self.name.registry()).await?;
                    self.client
                        .remember_secret(self.name.registry(), credential.as_ref());
                    let (token, lifetime) = self
                        .client
                        .fetch_token(
                            self.name.registry(),
                            self.scheme,
                            bearer,
                            &service,
                            &scope,
                            credential.as_ref(),
                        )
                        .await?;
                    self.client
                        .tokens
                        .put(&host, &service, &scope, token.clone(), lifetime);
                    self.client
                        .remember_value(self.name.registry(), format!("Bearer {}", token.expose()));
                    token
                }
            };
            return header_value(&format!("Bearer {}", token.expose())).map(Some);
        }
        let credential = self.client.credentials.get(self.name.registry()).await?;
        self.client
            .remember_secret(self.name.registry(), credential.as_ref());
        if challenges.iter().any(|c| c.scheme == "basic") {
            if let Some(Credential::Basic { username, password }) = credential {
                return header_value(&basic(&username, password.expose())).map(Some);
            }
        }
        Ok(None)
    }

    /// Whether `url` is on this repository's registry (scheme, host and
    /// port): only there does a request carry the registry's credentials.
    pub(super) fn owns(&self, url: &Url) -> bool {
        self.url("")
            .is_ok_and(|base| secrets::same_origin(&base, url))
    }

    /// The Authorization header for a request to `url`: none for another
    /// origin (an upload `Location` elsewhere, say).
    pub(super) async fn authorization_for(
        &self,
        url: &Url,
        access: &Access,
    ) -> Result<Option<HeaderValue>> {
        if self.owns(url) {
            return self.authorization(access).await;
        }
        tracing::debug!(
            url = %redact_query(url),
            "not sending credentials to another origin"
        );
        Ok(None)
    }

    /// Records the challenges of a 401; returns whether a retry may help.
    pub(super) fn learn_challenge(&self, resp: &reqwest::Response, access: &Access) -> bool {
        let challenges = challenges_of(resp);
        if challenges.is_empty() {
            return false;
        }
        let host = self.name.api_host().to_string();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let service = bearer.params.get("service").cloned().unwrap_or_default();
            let sent = resp
                .extensions()
                .get::<SentAuthorization>()
                .and_then(|s| s.0.to_str().ok());
            self.client
                .tokens
                .evict_rejected(&host, &service, &self.scope(access), sent);
        }
        self.client
            .challenges
            .lock()
            .expect("challenges lock")
            .insert(host, challenges);
        true
    }
}

pub(super) fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}
