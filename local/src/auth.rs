//! The same `$connect` authorizer as the deployed stack, run by the emulator before `$connect`
//! as API Gateway runs it: HS256 with `--jwt-secret SECRET`, or RS256/ES256 against an issuer's
//! key set with `--jwks-url URL --issuer ISS --audience AUD`. No valid token is a 401, a room the
//! token does not grant a 403 with the reason, and an accepted connection's `$connect` gets the
//! token's `sub` as its principal. Without either flag the stack stays open (every room public)
//! and says so when it starts. `fanout-local token` mints development tokens.
//!
//! Backends publish through `POST /publish` signed with SigV4 by one access key
//! ([`AccessKey`]), as the deployed route takes callers IAM allows.

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use clap::Args;
use fanout::adapters::jwks::HttpKeyFetcher;
use fanout::auth::sigv4::{Received, Signer, verify};
use fanout::auth::{DEV_AUDIENCE, DEV_ISSUER, DevToken, JwksConfig, Verifier, VerifierConfig};
use fanout::handlers::authorizer::{self, Refusal};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where `--jwt-secret` is read from when the flag is absent.
pub const JWT_SECRET_VAR: &str = "FANOUT_LOCAL_JWT_SECRET";

/// How connections are authenticated: the flags shared by the stack and `fanout-local token`.
#[derive(Args, Debug, Clone, Default)]
pub struct AuthOptions {
    /// Require an HS256 token signed with this secret (32 bytes or more) on every connection,
    /// as the deployed authorizer does with JWT_SECRET_ARN. Prefer the environment variable:
    /// a command line shows in `ps`.
    #[arg(
        long,
        value_name = "SECRET",
        env = JWT_SECRET_VAR,
        hide_env_values = true,
        conflicts_with = "jwks_url"
    )]
    pub jwt_secret: Option<String>,

    /// Require an RS256 or ES256 token verified against this key set (an OIDC issuer's JWKS;
    /// http is allowed here); needs --issuer and --audience.
    #[arg(long, value_name = "URL", requires_all = ["issuer", "audience"])]
    pub jwks_url: Option<String>,

    /// The `iss` tokens must carry (default with --jwt-secret: fanout-local).
    #[arg(long, value_name = "ISS")]
    pub issuer: Option<String>,

    /// The `aud` tokens must carry (default with --jwt-secret: fanout).
    #[arg(long, value_name = "AUD")]
    pub audience: Option<String>,
}

/// An AWS access key the stack takes on a signed request, as an IAM policy would allow one
/// role: the publisher's on `POST /publish` and `@connections`, the worker's own on
/// `@connections`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// `ACCESS_KEY_ID:SECRET`, as `--publish-credentials` takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self {
                access_key_id: id.to_owned(),
                secret_access_key: secret.to_owned(),
            }),
            _ => Err("use ACCESS_KEY_ID:SECRET_ACCESS_KEY".into()),
        }
    }

    /// A key of this run's own, for the stack's own clients (the worker's management client):
    /// its secret is random and never leaves the process.
    pub fn random(access_key_id: &str) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: crate::access::random_hex(32),
        }
    }

    /// The SDK's environment variables, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, when
    /// both are set: the key a backend on this machine signs with by default.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|value| !value.is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
        })
    }
}

/// The service a request to API Gateway (the management API, an IAM-authorized route) is
/// signed for.
const SIGNING_SERVICE: &str = "execute-api";

/// A request's SigV4 signature checked as API Gateway checks it, against the one of `keys` its
/// `Credential` names: who signed, or why it is refused (for the 403).
pub fn verify_signature(
    keys: &[&AccessKey],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Signer, String> {
    let header_list = header_list(headers);
    let received = Received {
        method: method.as_str(),
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: &header_list,
        body,
    };
    // `Credential=KEY/...` names the key; another key id is refused by `verify`, by name.
    let named = received
        .header("authorization")
        .and_then(|value| value.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').next());
    let key = keys
        .iter()
        .find(|key| Some(key.access_key_id.as_str()) == named)
        .or(keys.first())
        .ok_or("this stack takes no access key")?;
    let signer = verify(&received, &key.access_key_id, &key.secret_access_key, now)?;
    if signer.service != SIGNING_SERVICE {
        return Err(format!("sign for the {SIGNING_SERVICE} service"));
    }
    Ok(signer)
}

/// The headers as `(lower-case name, value)`, those that are text.
pub fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

impl AuthOptions {
    fn config(&self) -> VerifierConfig {
        VerifierConfig::new(
            self.issuer.clone().unwrap_or_else(|| DEV_ISSUER.to_owned()),
            self.audience
                .clone()
                .unwrap_or_else(|| DEV_AUDIENCE.to_owned()),
        )
    }

    /// The verifier the flags ask for, `None` for an open stack, or why it cannot be built.
    pub async fn verifier(&self) -> Result<Option<Arc<Verifier>>, String> {
        if let Some(secret) = &self.jwt_secret {
            let verifier = Verifier::hs256(self.config(), secret.as_bytes())
                .map_err(|weak| format!("--jwt-secret: {weak}"))?;
            return Ok(Some(Arc::new(verifier)));
        }
        let Some(url) = &self.jwks_url else {
            return Ok(None);
        };
        let jwks = JwksConfig::new(url.clone());
        let fetcher = HttpKeyFetcher::new(&jwks).map_err(|e| format!("--jwks-url: {e}"))?;
        let verifier = Verifier::jwks(self.config(), Arc::new(fetcher), &jwks);
        verifier.prefetch().await;
        Ok(Some(Arc::new(verifier)))
    }

    /// For the start-up banner.
    pub fn describe(&self) -> String {
        let config = self.config();
        if self.jwt_secret.is_some() {
            format!(
                "tokens: HS256, iss {}, aud {} (mint one with `fanout-local token`)",
                config.issuer, config.audience
            )
        } else if let Some(url) = &self.jwks_url {
            format!(
                "tokens: JWKS {url}, iss {}, aud {}",
                config.issuer, config.audience
            )
        } else {
            "authentication off: every room is public (--jwt-secret or --jwks-url turn it on)"
                .to_owned()
        }
    }
}

/// `fanout-local token`: prints a development token.
#[derive(Args, Debug, Clone)]
pub struct TokenOptions {
    /// Who the token is for (`sub`).
    #[arg(long)]
    pub sub: String,

    /// The rooms it may join, comma-separated; an entry ending in `*` is a prefix
    /// (`lobby,team-42:*`).
    #[arg(long, value_delimiter = ',')]
    pub rooms: Vec<String>,

    /// How long it is valid, for example 1h.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,

    #[command(flatten)]
    pub auth: AuthOptions,
}

impl TokenOptions {
    /// The signed token, or why it cannot be minted.
    pub fn mint(&self, now: SystemTime) -> Result<String, String> {
        let Some(secret) = &self.auth.jwt_secret else {
            return Err("--jwt-secret is required: tokens are signed with it".to_owned());
        };
        let config = self.auth.config();
        DevToken {
            sub: self.sub.clone(),
            rooms: self.rooms.clone(),
            ttl: self.ttl,
            issuer: config.issuer,
            audience: config.audience,
        }
        .mint(secret.as_bytes(), now)
        .map_err(|e| e.to_string())
    }
}

/// What the authorizer said of a handshake.
pub enum Admission {
    /// `$connect` runs with these `requestContext.authorizer` fields.
    Allowed(HashMap<String, Value>),
    /// The handshake is answered with this status and body.
    Refused(StatusCode, String),
}

/// Runs the authorizer on a handshake's query (`room`, `token`) and `Authorization` header.
pub async fn admit(
    verifier: &Verifier,
    method_arn: &str,
    query: &HashMap<String, Vec<String>>,
    headers: &HeaderMap,
) -> Admission {
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), v.as_str())))
        .collect();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let request = authorizer::connect_request(method_arn, &pairs, authorization);
    match authorizer::handle(verifier, request, SystemTime::now()).await {
        Ok(response) if authorizer::allows(&response) => {
            Admission::Allowed(authorizer::connect_context(&response))
        }
        Ok(response) => {
            let reason = response.context["reason"]
                .as_str()
                .unwrap_or("Forbidden")
                .to_owned();
            Admission::Refused(StatusCode::FORBIDDEN, reason)
        }
        Err(Refusal::Unauthorized(_)) => {
            Admission::Refused(StatusCode::UNAUTHORIZED, "Unauthorized".to_owned())
        }
        Err(Refusal::Unavailable(reason)) => {
            Admission::Refused(StatusCode::INTERNAL_SERVER_ERROR, reason)
        }
    }
}
