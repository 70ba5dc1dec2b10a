//! What a verified token says ([`Claims`]), and why one was refused ([`AuthError`]): shared by
//! the verifier and the key cache, which import this and not each other.

use crate::domain::{InvalidGrants, RoomGrants};

/// What a valid token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: who the holder is; stored on the connection as its principal, and every frame
    /// of its messages carries it as `user`. 1 to [`Claims::MAX_SUB_BYTES`], no control
    /// characters.
    pub sub: String,
    /// `rooms`: the rooms the holder may join. No claim grants none.
    pub rooms: RoomGrants,
}

impl Claims {
    /// OIDC's limit on `sub` (255 ASCII characters). With its JSON escapes (at most two bytes
    /// for one, as control characters are refused) it stays within the room the frame keeps
    /// for its envelope, so a message accepted is never too big to deliver.
    pub const MAX_SUB_BYTES: usize = 255;
}

/// Why a token was refused: for logs and tests. Every one is a 401 to the client, except
/// [`AuthError::KeysUnavailable`], which is the authorizer's own failure. Messages never
/// contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token: pass one in ?token= or an Authorization: Bearer header")]
    NoToken,
    #[error("the token is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token is unsigned (alg: none)")]
    Unsigned,
    #[error("the token's algorithm {0} is not accepted here")]
    DisallowedAlgorithm(String),
    #[error("the token names no key (kid), which this issuer requires")]
    MissingKid,
    #[error("the token names a key (kid {0:?}) the issuer does not publish")]
    UnknownKid(String),
    #[error("the key {kid:?} cannot verify this token: {reason}")]
    KeyMismatch { kid: String, reason: String },
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired { exp: i64, now: i64, leeway: u64 },
    #[error("the token is not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid { nbf: i64, now: i64, leeway: u64 },
    #[error("the token's issuer (iss) is not the one expected")]
    WrongIssuer,
    #[error("the token's audience (aud) is not this API")]
    WrongAudience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the token's rooms claim is invalid: {0}")]
    BadRooms(InvalidGrants),
    #[error(
        "the token's sub is {0} bytes or holds control characters; it must be 1 to {max} bytes of text",
        max = Claims::MAX_SUB_BYTES
    )]
    BadSub(usize),
    /// The issuer's keys could not be fetched and none are cached: the authorizer cannot tell
    /// a good token from a bad one.
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// The authorizer's fault, not the token's: answer 500 (try again), not 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable(_))
    }
}
