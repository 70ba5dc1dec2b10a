//! Authentication at `$connect`: who the client is, and which rooms it may join.
//!
//! A client presents a JWT (`?token=`, or an `Authorization: Bearer` header where the client can
//! set one). The `$connect` authorizer (`handlers::authorizer`) has a [`Verifier`] check it:
//!
//! - [`verifier`]: signature, `exp`/`nbf` with a small leeway, `iss`, `aud`, `sub`, and the
//!   `rooms` claim ([`crate::domain::RoomGrants`]); every refusal has its own [`AuthError`].
//! - [`jwks`]: the issuer's signing keys (RS256, ES256), fetched through the [`KeyFetcher`]
//!   port and cached by `kid`, refetched on an unknown `kid` at a bounded rate. The HTTP
//!   fetcher is `adapters::jwks::HttpKeyFetcher`; an HS256 secret comes from
//!   `adapters::secrets` instead.
//! - [`dev`]: HS256 tokens for development ([`DevToken`]).
//! - [`sigv4`]: an IAM-signed request checked as API Gateway checks one (the publish endpoint
//!   of the local stack; the deployed one is API Gateway's `AWS_IAM`).
//!
//! docs/security.md describes the whole scheme.

pub mod claims;
pub mod dev;
pub mod jwks;
pub mod sigv4;
pub mod verifier;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

pub use claims::{AuthError, Claims};
pub use dev::{ADMIN_TOKEN_ENV, DEV_AUDIENCE, DEV_ISSUER, DevToken, MintError};
pub use jwks::{FetchError, JwksConfig, KeyCache, KeyFetcher, parse_jwks};
pub use verifier::{Verifier, VerifierConfig, WeakSecret};
