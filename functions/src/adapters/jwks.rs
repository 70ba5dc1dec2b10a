//! The [`KeyFetcher`] port over HTTP: GET the issuer's JWKS with the hyper 1 + rustls (ring)
//! stack the AWS SDK already brings, bounded in time and size.

use crate::adapters::aws::hyper_https_client;
use crate::auth::jwks::{FetchError, JwksConfig, KeyFetcher, parse_jwks};
use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::jwk::JwkSet;
use std::time::Duration;

/// Fetches `JwksConfig::url`. Redirects are not followed: an issuer's JWKS URL is its final
/// address (an OIDC discovery document names it).
pub struct HttpKeyFetcher {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// The whole fetch, connection to last byte.
    timeout: Duration,
    max_body_bytes: usize,
}

impl HttpKeyFetcher {
    /// A fetcher for `config.url` (https, or http for a local issuer), trusting the system's
    /// root certificates.
    pub fn new(config: &JwksConfig) -> Result<Self, FetchError> {
        let url: Uri = config
            .url
            .parse()
            .map_err(|e| FetchError(format!("JWKS URL {:?} is invalid: {e}", config.url)))?;
        if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
            return Err(FetchError(format!(
                "JWKS URL {:?} is not an http(s) URL",
                config.url
            )));
        }
        let client = hyper_https_client(config.timeout, Duration::from_secs(30))
            .map_err(|e| FetchError(format!("no root certificates to verify the issuer: {e}")))?;
        Ok(Self {
            url,
            client,
            timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
        })
    }

    async fn get(&self) -> Result<JwkSet, FetchError> {
        let request = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError(format!("GET {}: {e}", self.url)))?;
        let response =
            self.client.request(request).await.map_err(|e| {
                FetchError(format!("GET {}: {}", self.url, super::aws::describe(&e)))
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError(format!("GET {} answered {status}", self.url)));
        }
        let body = Limited::new(response.into_body(), self.max_body_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError(format!(
                        "GET {}: the key set is larger than {} bytes",
                        self.url, self.max_body_bytes
                    ))
                } else {
                    FetchError(format!("GET {}: reading the key set: {e}", self.url))
                }
            })?
            .to_bytes();
        parse_jwks(&body)
    }
}

#[async_trait]
impl KeyFetcher for HttpKeyFetcher {
    async fn fetch(&self) -> Result<JwkSet, FetchError> {
        tokio::time::timeout(self.timeout, self.get())
            .await
            .map_err(|_| {
                FetchError(format!(
                    "GET {}: no complete answer within {:?}",
                    self.url, self.timeout
                ))
            })?
    }
}
