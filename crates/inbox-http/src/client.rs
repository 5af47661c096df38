//! Construction of the `reqwest::Client` every adapter keeps for the life of the process.

use std::time::Duration;

use inbox_core::{Error, Result};

/// The `User-Agent` adapters send unless configured otherwise. Some platforms (Reddit) reject
/// generic agents, so it names the product and its version.
pub const DEFAULT_USER_AGENT: &str = concat!("inboxgw/", env!("CARGO_PKG_VERSION"));

/// Options for the HTTP client an adapter talks to its platform with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long establishing a connection (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// How long one whole request may take, unless the call overrides it (long polls do).
    pub request_timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Whether to follow redirects. Off by default: platform APIs answer directly, and
    /// following a redirect could carry credentials in the path to another host.
    pub follow_redirects: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            follow_redirects: false,
        }
    }
}

impl ClientOptions {
    /// A `reqwest::ClientBuilder` with these options applied, for adapters that need to add
    /// more (default headers, a proxy).
    pub fn builder(&self) -> reqwest::ClientBuilder {
        let redirects = if self.follow_redirects {
            reqwest::redirect::Policy::limited(5)
        } else {
            reqwest::redirect::Policy::none()
        };
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(self.user_agent.clone())
            .redirect(redirects)
    }

    /// Builds the client.
    ///
    /// # Errors
    /// `Internal` when the TLS backend cannot be initialised.
    pub fn build(&self) -> Result<reqwest::Client> {
        self.builder()
            .build()
            .map_err(|err| Error::internal("cannot build the HTTP client", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_build_a_client() {
        let options = ClientOptions::default();
        assert!(options.user_agent.starts_with("inboxgw/"));
        assert!(!options.follow_redirects);
        assert!(options.build().is_ok());
    }
}
