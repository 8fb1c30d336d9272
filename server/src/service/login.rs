//! Login, logout and the credential listing: credentials are checked
//! against the registry before they are stored, and never leave the daemon.

use satchel_oci::auth::{Credential, Secret};
use satchel_oci::{Reference, Result};

use super::{invalid, Service};
pub use crate::credentials::Listed;

/// What a login stored.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The registry, normalised.
    pub registry: String,
    /// The user name (`<token>` for an identity token).
    pub username: String,
    /// Where the credentials went: a helper's name or the config file.
    pub stored_in: String,
}

impl Service {
    /// Checks the credentials against `registry` as `docker login` does,
    /// then stores them. An empty `username` makes `password` an identity
    /// token.
    pub async fn login(
        &self,
        registry: &str,
        username: String,
        password: String,
        plain_http: bool,
    ) -> Result<LoggedIn> {
        let registry = registry_name(registry)?;
        if password.is_empty() {
            return Err(invalid("a password or identity token is required"));
        }
        let credential = if username.is_empty() {
            Credential::IdentityToken(Secret::new(password))
        } else {
            Credential::Basic {
                username,
                password: Secret::new(password),
            }
        };
        self.registry
            .verify_credentials(&registry, plain_http, &credential)
            .await?;
        let stored_in = self.credentials.store(&registry, &credential).await?;
        let username = credential.username().to_string();
        tracing::info!(%registry, %username, %stored_in, "login succeeded");
        Ok(LoggedIn {
            registry,
            username,
            stored_in,
        })
    }

    /// Forgets the stored credentials and cached tokens of `registry`;
    /// whether there were credentials to remove.
    pub async fn logout(&self, registry: &str) -> Result<bool> {
        let registry = registry_name(registry)?;
        let removed = self.credentials.erase(&registry).await?;
        self.registry.forget_tokens(&registry);
        tracing::info!(%registry, removed, "logout");
        Ok(removed)
    }

    /// The registries the daemon has credentials for, with user names.
    pub async fn credentials(&self) -> Result<Vec<Listed>> {
        self.credentials.list().await
    }
}

/// Normalises a registry name given to login or logout (`https://host/`
/// and `index.docker.io` forms included) and checks it is one.
fn registry_name(input: &str) -> Result<String> {
    let name = satchel_oci::auth::registry_of_key(input.trim());
    let parsed = Reference::parse(&format!("{name}/probe"))?;
    if parsed.registry() != name {
        return Err(invalid(format!(
            "{input:?} is not a registry host (use host[:port])"
        )));
    }
    Ok(name)
}
