//! Verifying a token: [`Verifier::verify`].
//!
//! The algorithms a token may use are fixed by where the keys come from, never by the token:
//! HS256 with a shared secret, or RS256/ES256 with the issuer's JWKS (each key verifying only
//! the algorithm its type and `alg` say). So `alg: none` and algorithm confusion (an HS256 token
//! "signed" with the bytes of the issuer's public RSA key) are refused before any signature is
//! checked.

use super::claims::{AuthError, Claims};
use super::jwks::{JwksConfig, KeyCache, KeyFetcher, VerifyingKey};
use crate::config::settings;
use crate::domain::RoomGrants;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a token must say, and how much of it the verifier reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// `JWT_ISSUER`: `iss` must be exactly this (Cognito:
    /// `https://cognito-idp.{region}.amazonaws.com/{pool-id}`).
    pub issuer: String,
    /// `JWT_AUDIENCE`: `aud` must be or contain this (Cognito ID tokens: the app client id).
    pub audience: String,
    /// `JWT_LEEWAY_SECONDS`: clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// A longer token is refused before it is decoded: real ones are 1 to 2 KiB, and every byte
    /// is base64-decoded and parsed.
    pub max_token_bytes: usize,
}

impl VerifierConfig {
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

    /// The defaults for `issuer` and `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: settings::JWT_LEEWAY_SECONDS.default_duration(),
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Where the keys come from, which fixes the algorithms.
enum Keys {
    /// HS256 only.
    Secret(DecodingKey),
    /// RS256 and ES256, one per key.
    Jwks(KeyCache),
}

/// Verifies tokens against one issuer's keys. Built once per Lambda instance; `verify` is
/// cheap for a known key and fetches the key set only as [`KeyCache`] allows.
pub struct Verifier {
    config: VerifierConfig,
    keys: Keys,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        let keys = match self.keys {
            Keys::Secret(_) => "HS256 secret",
            Keys::Jwks(_) => "JWKS",
        };
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("keys", &keys)
            .finish()
    }
}

/// The HS256 secret is too short to be a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the HS256 secret is {0} bytes; use at least {min} random bytes (e.g. `openssl rand -base64 32`)",
    min = Verifier::MIN_SECRET_BYTES
)]
pub struct WeakSecret(pub usize);

impl Verifier {
    /// RFC 7518 §3.2: an HS256 key must be at least as long as the hash, 256 bits.
    pub const MIN_SECRET_BYTES: usize = 32;

    /// Verifies HS256 tokens signed with `secret` (its bytes as they are, not base64-decoded).
    pub fn hs256(config: VerifierConfig, secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < Self::MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        let key = DecodingKey::from_secret(secret).map_err(|_| WeakSecret(secret.len()))?;
        Ok(Self {
            config,
            keys: Keys::Secret(key),
        })
    }

    /// Verifies RS256 and ES256 tokens against the key set `fetcher` fetches, cached as
    /// `jwks` says.
    pub fn jwks(config: VerifierConfig, fetcher: Arc<dyn KeyFetcher>, jwks: &JwksConfig) -> Self {
        Self {
            config,
            keys: Keys::Jwks(KeyCache::new(fetcher, jwks)),
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Fetches the key set now, if keys come from a JWKS: at cold start, so that the first
    /// `$connect` does not wait for it.
    pub async fn prefetch(&self) {
        if let Keys::Jwks(cache) = &self.keys {
            cache.prefetch().await;
        }
    }

    /// The token's claims if it is valid at `now`, or why not.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, AuthError> {
        if token.len() > self.config.max_token_bytes {
            return Err(AuthError::TooLarge {
                bytes: token.len(),
                limit: self.config.max_token_bytes,
            });
        }
        let algorithm = self.algorithm(token)?;
        let published: VerifyingKey;
        let (kid, key) = match &self.keys {
            Keys::Secret(secret) => (String::new(), secret),
            Keys::Jwks(cache) => {
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|e| AuthError::Malformed(format!("header: {e}")))?;
                let kid = header
                    .kid
                    .filter(|kid| !kid.is_empty())
                    .ok_or(AuthError::MissingKid)?;
                published = cache.key(&kid).await?;
                if published.algorithm != algorithm {
                    return Err(AuthError::KeyMismatch {
                        kid,
                        reason: format!(
                            "it verifies {:?} and the token is {algorithm:?}",
                            published.algorithm
                        ),
                    });
                }
                (kid, &published.key)
            }
        };

        let mut validation = Validation::new(algorithm);
        // `exp` and `nbf` are checked below against `now`, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        let claims = jsonwebtoken::decode::<RawClaims>(token, key, &validation)
            .map_err(|e| from_jwt_error(e.into_kind(), &kid))?
            .claims;

        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let leeway = self.config.leeway.as_secs();
        let slack = i64::try_from(leeway).unwrap_or(i64::MAX);
        let exp = seconds(&claims.exp, "exp")?.ok_or(AuthError::MissingClaim("exp".into()))?;
        if now >= exp.saturating_add(slack) {
            return Err(AuthError::Expired { exp, now, leeway });
        }
        if let Some(nbf) = seconds(&claims.nbf, "nbf")?
            && now < nbf.saturating_sub(slack)
        {
            return Err(AuthError::NotYetValid { nbf, now, leeway });
        }
        let sub = claims
            .sub
            .filter(|sub| !sub.is_empty())
            .ok_or(AuthError::MissingClaim("sub".into()))?;
        if sub.len() > Claims::MAX_SUB_BYTES || sub.chars().any(char::is_control) {
            return Err(AuthError::BadSub(sub.len()));
        }
        let rooms = match &claims.rooms {
            None => RoomGrants::none(),
            Some(entries) => RoomGrants::parse(entries.iter().map(String::as_str))
                .map_err(AuthError::BadRooms)?,
        };
        Ok(Claims { sub, rooms })
    }

    /// The token's algorithm, if the key source accepts it. Read from the header before
    /// anything else is decoded, so that `none` and a foreign algorithm get their own answer.
    fn algorithm(&self, token: &str) -> Result<Algorithm, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed(
                "a JWT has three parts separated by dots".into(),
            ));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|e| AuthError::Malformed(format!("header is not base64url: {e}")))?;
        let header: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| AuthError::Malformed(format!("header is not JSON: {e}")))?;
        let Some(name) = header.get("alg").and_then(serde_json::Value::as_str) else {
            return Err(AuthError::Malformed("header has no alg".into()));
        };
        if name.eq_ignore_ascii_case("none") {
            return Err(AuthError::Unsigned);
        }
        let accepted: &[Algorithm] = match self.keys {
            Keys::Secret(_) => &[Algorithm::HS256],
            Keys::Jwks(_) => &[Algorithm::RS256, Algorithm::ES256],
        };
        name.parse::<Algorithm>()
            .ok()
            .filter(|algorithm| accepted.contains(algorithm))
            .ok_or_else(|| AuthError::DisallowedAlgorithm(shorten(name)))
    }
}

/// The claims read from a token; `iss` and `aud` are checked by `jsonwebtoken`.
#[derive(serde::Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    rooms: Option<Vec<String>>,
}

/// A NumericDate claim in whole seconds (fractions are allowed and dropped).
fn seconds(value: &Option<serde_json::Number>, claim: &str) -> Result<Option<i64>, AuthError> {
    let Some(number) = value else {
        return Ok(None);
    };
    match number.as_i64() {
        Some(whole) => Ok(Some(whole)),
        None => match number.as_f64() {
            // Saturating: a date beyond i64 is "never" (exp) or "not yet" (nbf).
            Some(float) if float.is_finite() => Ok(Some(float.floor() as i64)),
            _ => Err(AuthError::Malformed(format!("{claim} is not a date"))),
        },
    }
}

/// `kid` is the key's, empty for the HS256 secret.
fn from_jwt_error(kind: ErrorKind, kid: &str) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        // The verifier checks exp and nbf itself (against `now`); should jsonwebtoken ever
        // report them, the answer is the same 401.
        ErrorKind::ExpiredSignature => AuthError::Malformed("expired".into()),
        ErrorKind::ImmatureSignature => AuthError::Malformed("not yet valid".into()),
        ErrorKind::InvalidToken => AuthError::Malformed(
            "not a JWT, or a header this verifier does not support (crit, b64)".into(),
        ),
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::Malformed(format!("the {claim} claim has the wrong type"))
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::DisallowedAlgorithm("(as the key sees it)".into())
        }
        ErrorKind::InvalidRsaKey(reason) => AuthError::KeyMismatch {
            kid: kid.to_owned(),
            reason,
        },
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => AuthError::KeyMismatch {
            kid: kid.to_owned(),
            reason: "the key is not valid for its algorithm".into(),
        },
        ErrorKind::Json(e) => AuthError::Malformed(format!("claims: {e}")),
        other => AuthError::Malformed(format!("{other:?}")),
    }
}

/// An attacker-chosen string, bounded for a log line.
fn shorten(text: &str) -> String {
    text.chars().take(32).collect()
}
