//! Development tokens: HS256 tokens signed with a shared secret, for the local stack
//! (`fanout-local token`) and for tests. A deployment's tokens come from its identity provider.

use super::verifier::{Verifier, WeakSecret};
use crate::domain::{InvalidGrants, RoomGrants};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The issuer the local stack expects when it is given only a secret.
pub const DEV_ISSUER: &str = "fanout-local";
/// The audience the local stack expects when it is given only a secret.
pub const DEV_AUDIENCE: &str = "fanout";
/// The environment variable holding the local stack's admin token: `fanout-local` takes its
/// token from it (else makes one up), `wsfanout --local` sends it. Here, where both crates
/// find it.
pub const ADMIN_TOKEN_ENV: &str = "FANOUT_LOCAL_ADMIN_TOKEN";

/// A token to mint: who, which rooms, for how long, for which issuer and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevToken {
    pub sub: String,
    /// Entries of the `rooms` claim: room names and `prefix*` ([`RoomGrants`]).
    pub rooms: Vec<String>,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: String,
}

/// Why a token could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Secret(#[from] WeakSecret),
    #[error("the subject (sub) is empty")]
    NoSubject,
    #[error(transparent)]
    Rooms(#[from] InvalidGrants),
    #[error("could not sign the token: {0}")]
    Signing(String),
}

impl DevToken {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// A token for `sub` and `rooms`, valid an hour, for [`DEV_ISSUER`] and [`DEV_AUDIENCE`].
    pub fn new(sub: impl Into<String>, rooms: Vec<String>) -> Self {
        Self {
            sub: sub.into(),
            rooms,
            ttl: Self::DEFAULT_TTL,
            issuer: DEV_ISSUER.to_owned(),
            audience: DEV_AUDIENCE.to_owned(),
        }
    }

    /// Signs the token with HS256 and `secret`, issued at `now`. Refuses what the verifier
    /// would refuse (a short secret, an empty subject, invalid room entries), so that a token
    /// minted here is one the authorizer accepts until it expires.
    pub fn mint(&self, secret: &[u8], now: SystemTime) -> Result<String, MintError> {
        if secret.len() < Verifier::MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()).into());
        }
        if self.sub.is_empty() {
            return Err(MintError::NoSubject);
        }
        RoomGrants::parse(self.rooms.iter().map(String::as_str))?;
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "sub": self.sub,
            "rooms": self.rooms,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": iat,
            "exp": iat.saturating_add(self.ttl.as_secs()),
        });
        let key =
            EncodingKey::from_secret(secret).map_err(|e| MintError::Signing(e.to_string()))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|e| MintError::Signing(e.to_string()))
    }
}
