//! The issuer's signing keys: its JWKS, fetched through the [`KeyFetcher`] port and cached by
//! `kid`.
//!
//! Keys are fetched when first needed, again when a token names a `kid` the cache does not
//! hold (the issuer rotated its keys), and again when the cached set is older than
//! [`JwksConfig::max_age`] (so that a key the issuer removed stops verifying). Fetches are
//! bounded: at most one per [`JwksConfig::refresh`] interval, so tokens with made-up `kid`s
//! cannot turn the authorizer into a load generator against the issuer; concurrent misses wait
//! for the one fetch under way and share its result; and a failed fetch keeps the keys cached
//! before it.

use super::claims::AuthError;
use crate::config::settings;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// Where the keys come from and how often they may be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `JWKS_URL`: the issuer's key set, e.g. Cognito's
    /// `https://cognito-idp.{region}.amazonaws.com/{pool-id}/.well-known/jwks.json`.
    pub url: String,
    /// `JWKS_REFRESH_SECONDS`: at most one fetch per this interval. An unknown `kid` within it is
    /// refused without a fetch. Issuers publish a new key well before signing with it, so a
    /// minute costs nothing in practice and bounds what forged `kid`s can cause.
    pub refresh: Duration,
    /// A cached set older than this is fetched again on its next use, so that a key the issuer
    /// withdrew (compromised, retired) stops verifying within this time even if no token ever
    /// names an unknown `kid`.
    pub max_age: Duration,
    /// One fetch, connection to last byte, within this; a Lambda authorizer has seconds, not
    /// minutes, before API Gateway gives up on it.
    pub timeout: Duration,
    /// A key set larger than this is refused: real ones are a few KiB.
    pub max_body_bytes: usize,
}

impl JwksConfig {
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
    /// After a failed fetch the next may come this soon (or after `refresh`, if that is
    /// shorter): a blip at cold start must not leave an instance without keys for a minute.
    pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            refresh: settings::JWKS_REFRESH_SECONDS.default_duration(),
            max_age: Self::DEFAULT_MAX_AGE,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Fetching the key set failed; the message says why (status, timeout, size, JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// The port: one fetch of the issuer's current key set. The cache decides when to call it.
/// `adapters::jwks::HttpKeyFetcher` is the HTTP implementation.
#[async_trait]
pub trait KeyFetcher: Send + Sync {
    async fn fetch(&self) -> Result<JwkSet, FetchError>;
}

/// Parses a JWKS document. Keys that do not parse as JWKs are left out (and logged) rather
/// than failing the set: one odd key must not take down the others.
pub fn parse_jwks(body: &[u8]) -> Result<JwkSet, FetchError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(body)
        .map_err(|e| FetchError(format!("the key set is not a JWKS document: {e}")))?;
    let keys = document
        .keys
        .into_iter()
        .enumerate()
        .filter_map(|(i, key)| match serde_json::from_value::<Jwk>(key) {
            Ok(jwk) => Some(jwk),
            Err(e) => {
                warn!(index = i, error = %e, "left out a key that is not a JWK");
                None
            }
        })
        .collect();
    Ok(JwkSet { keys })
}

/// A key that can verify tokens, and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The key `jwk` stands for, if this authorizer may use it: a `kid`, `use` absent or `sig`, and
/// RSA for RS256 (2048 bits or more) or EC P-256 for ES256, its `alg` absent or that one.
/// Symmetric (`oct`) keys in a JWKS are never used: that would let anyone who can read the
/// (public) key set sign tokens.
pub(crate) fn verifying_key(jwk: &Jwk) -> Result<(String, VerifyingKey), String> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .filter(|kid| !kid.is_empty())
        .ok_or("it has no kid")?;
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err(format!("its use is {usage:?}, not sig"));
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(rsa), None | Some(KeyAlgorithm::RS256)) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .map_err(|e| format!("its modulus is not base64url: {e}"))?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "its RSA modulus has about {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            Algorithm::RS256
        }
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        (params, alg) => {
            let kty = match params {
                AlgorithmParameters::RSA(_) => "RSA".to_owned(),
                AlgorithmParameters::EllipticCurve(ec) => format!("EC {:?}", ec.curve),
                AlgorithmParameters::OctetKey(_) => "oct".to_owned(),
                AlgorithmParameters::OctetKeyPair(_) => "OKP".to_owned(),
                _ => "unknown".to_owned(),
            };
            return Err(format!(
                "kty {kty} with alg {alg:?} is not accepted (RS256 on RSA, ES256 on EC P-256)"
            ));
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("it is not a valid key: {e}"))?;
    Ok((kid, VerifyingKey { algorithm, key }))
}

/// The keys of one successful fetch, by `kid`.
struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    /// `None` until the first successful fetch.
    fetched_at: Option<Instant>,
}

impl KeySet {
    fn from_jwks(set: &JwkSet, fetched_at: Instant) -> Self {
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match verifying_key(jwk) {
                Ok((kid, key)) => match keys.entry(kid) {
                    Entry::Occupied(first) => {
                        warn!(
                            kid = first.key(),
                            "the key set names this kid twice; the first key is used"
                        );
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(key);
                    }
                },
                Err(reason) => {
                    let kid = jwk.common.key_id.as_deref().unwrap_or("-");
                    info!(kid, reason, "left out a key this authorizer cannot use");
                }
            }
        }
        Self {
            keys,
            fetched_at: Some(fetched_at),
        }
    }
}

/// When the last fetch happened and how it went.
#[derive(Default)]
struct FetchState {
    last: Option<(Instant, Result<(), FetchError>)>,
}

/// The cache of the issuer's keys. Lookups of a known `kid` take a read lock and clone an
/// `Arc`; only misses and stale sets go through the fetch lock.
pub struct KeyCache {
    fetcher: Arc<dyn KeyFetcher>,
    refresh: Duration,
    max_age: Duration,
    /// The current set, replaced whole by each successful fetch (so a withdrawn key goes
    /// with it). A std lock: it is never held across an await.
    keys: RwLock<Arc<KeySet>>,
    /// Held for the length of a fetch: concurrent misses queue here, and each then looks at the
    /// set the fetch before it left instead of fetching again.
    fetch: tokio::sync::Mutex<FetchState>,
}

impl KeyCache {
    pub fn new(fetcher: Arc<dyn KeyFetcher>, config: &JwksConfig) -> Self {
        Self {
            fetcher,
            refresh: config.refresh,
            max_age: config.max_age,
            keys: RwLock::new(Arc::new(KeySet {
                keys: HashMap::new(),
                fetched_at: None,
            })),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn fresh(&self, set: &KeySet, now: Instant) -> bool {
        set.fetched_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.max_age)
    }

    /// Fetches the key set now (subject to the rate limit), e.g. at cold start so that the
    /// first `$connect` does not wait for it. A failure is logged and left to the next lookup.
    pub async fn prefetch(&self) {
        let seen = self.current();
        let _ = self.refetch(&seen).await;
    }

    /// The key named `kid`, fetching the set if the cache lacks it or holds a stale set.
    pub(crate) async fn key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        let seen = self.current();
        if let Some(key) = seen.keys.get(kid)
            && self.fresh(&seen, Instant::now())
        {
            return Ok(key.clone());
        }
        let current = self.refetch(&seen).await;
        match current.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if current.fetched_at.is_none() => {
                let state = self.fetch.lock().await;
                let reason = match &state.last {
                    Some((_, Err(error))) => error.to_string(),
                    _ => "no key set fetched yet".to_owned(),
                };
                Err(AuthError::KeysUnavailable(reason))
            }
            // The kid is the client's; a bounded piece of it is enough for a log line.
            None => Err(AuthError::UnknownKid(kid.chars().take(64).collect())),
        }
    }

    /// Fetches a new set unless another task replaced `seen` while this one waited, or the
    /// last fetch was too recent. Returns the set to use.
    async fn refetch(&self, seen: &Arc<KeySet>) -> Arc<KeySet> {
        let mut state = self.fetch.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, seen) {
            // Another task fetched while this one waited: share its result.
            return current;
        }
        let now = Instant::now();
        if let Some((at, outcome)) = &state.last {
            let wait = match outcome {
                Ok(()) => self.refresh,
                Err(_) => self.refresh.min(JwksConfig::RETRY_AFTER_FAILURE),
            };
            if now.saturating_duration_since(*at) < wait {
                return current;
            }
        }
        let outcome = self.fetcher.fetch().await;
        let now = Instant::now();
        match outcome {
            Ok(set) => {
                let fresh = Arc::new(KeySet::from_jwks(&set, now));
                info!(keys = fresh.keys.len(), "fetched the issuer's key set");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&fresh);
                state.last = Some((now, Ok(())));
                fresh
            }
            Err(error) => {
                warn!(error = %error, cached = current.keys.len(), "could not fetch the issuer's key set; keeping the cached keys");
                state.last = Some((now, Err(error)));
                current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testkit::{self, Keys};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fetcher that serves whatever set the test puts in it, after `delay`, and counts calls.
    struct FakeFetcher {
        set: Mutex<Result<JwkSet, FetchError>>,
        delay: Duration,
        calls: AtomicUsize,
    }

    impl FakeFetcher {
        fn new(set: JwkSet, delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                set: Mutex::new(Ok(set)),
                delay,
                calls: AtomicUsize::new(0),
            })
        }

        fn serve(&self, set: Result<JwkSet, FetchError>) {
            *self.set.lock().unwrap() = set;
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyFetcher for FakeFetcher {
        async fn fetch(&self) -> Result<JwkSet, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.set.lock().unwrap().clone()
        }
    }

    fn cache(fetcher: &Arc<FakeFetcher>) -> KeyCache {
        KeyCache::new(
            Arc::clone(fetcher) as Arc<dyn KeyFetcher>,
            &JwksConfig::new("unused"),
        )
    }

    fn set(keys: &[&Keys]) -> JwkSet {
        JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fetches_once_then_serves_known_kids_from_the_cache() {
        let (a, b) = (testkit::rsa_a(), testkit::ec_a());
        let fetcher = FakeFetcher::new(set(&[&a, &b]), Duration::ZERO);
        let cache = cache(&fetcher);
        for _ in 0..5 {
            assert_eq!(cache.key(&a.kid).await.unwrap().algorithm, Algorithm::RS256);
            assert_eq!(cache.key(&b.kid).await.unwrap().algorithm, Algorithm::ES256);
        }
        assert_eq!(fetcher.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let a = testkit::rsa_a();
        let fetcher = FakeFetcher::new(set(&[&a]), Duration::ZERO);
        let cache = cache(&fetcher);
        cache.key(&a.kid).await.unwrap();
        assert_eq!(fetcher.calls(), 1);

        // The first unknown kid after the initial fetch is within the interval: no fetch.
        for i in 0..50 {
            let error = cache.key(&format!("forged-{i}")).await.err().unwrap();
            assert!(matches!(error, AuthError::UnknownKid(_)), "{error:?}");
        }
        assert_eq!(fetcher.calls(), 1, "forged kids do not cause fetches");

        tokio::time::advance(Duration::from_secs(61)).await;
        for i in 0..50 {
            assert!(cache.key(&format!("forged-{i}")).await.is_err());
        }
        assert_eq!(fetcher.calls(), 2, "one fetch per interval");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_fetch() {
        let (a, b) = (testkit::rsa_a(), testkit::rsa_b());
        let fetcher = FakeFetcher::new(set(&[&a]), Duration::from_millis(500));
        let cache = Arc::new(cache(&fetcher));
        cache.key(&a.kid).await.unwrap();

        // b is published; 20 connections with tokens signed by b arrive at once.
        fetcher.serve(Ok(set(&[&a, &b])));
        tokio::time::advance(Duration::from_secs(61)).await;
        let lookups: Vec<_> = (0..20)
            .map(|_| {
                let (cache, kid) = (Arc::clone(&cache), b.kid.clone());
                tokio::spawn(async move { cache.key(&kid).await.map(|k| k.algorithm) })
            })
            .collect();
        for lookup in lookups {
            assert_eq!(lookup.await.unwrap().unwrap(), Algorithm::RS256);
        }
        assert_eq!(fetcher.calls(), 2, "one fetch for all twenty");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_fetch_keeps_the_cached_keys_and_retries_sooner() {
        let a = testkit::rsa_a();
        let fetcher = FakeFetcher::new(set(&[&a]), Duration::ZERO);
        let cache = cache(&fetcher);
        cache.key(&a.kid).await.unwrap();

        fetcher.serve(Err(FetchError("503 from the issuer".into())));
        tokio::time::advance(JwksConfig::DEFAULT_MAX_AGE).await;
        // The set is stale: a refetch is tried, fails, and the cached key still verifies.
        assert!(cache.key(&a.kid).await.is_ok());
        assert_eq!(fetcher.calls(), 2);

        // After a failure the next attempt comes after RETRY_AFTER_FAILURE, not a whole interval.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.key(&a.kid).await.is_ok());
        assert_eq!(fetcher.calls(), 2);
        tokio::time::advance(JwksConfig::RETRY_AFTER_FAILURE).await;
        fetcher.serve(Ok(set(&[])));
        // This fetch succeeds, with a set that no longer has the key: it stops verifying.
        assert!(matches!(
            cache.key(&a.kid).await,
            Err(AuthError::UnknownKid(_))
        ));
        assert_eq!(fetcher.calls(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_any_keys_the_error_is_unavailability_not_a_bad_token() {
        let fetcher = FakeFetcher::new(JwkSet::default(), Duration::ZERO);
        fetcher.serve(Err(FetchError("connection refused".into())));
        let cache = cache(&fetcher);
        match cache.key("k").await {
            Err(AuthError::KeysUnavailable(reason)) => {
                assert!(reason.contains("connection refused"), "{reason}")
            }
            other => panic!("{:?}", other.map(|k| k.algorithm)),
        }
        // The next attempt waits RETRY_AFTER_FAILURE, then succeeds.
        fetcher.serve(Ok(set(&[&testkit::ec_a()])));
        assert!(cache.key(&testkit::ec_a().kid).await.is_err());
        tokio::time::advance(JwksConfig::RETRY_AFTER_FAILURE).await;
        assert!(cache.key(&testkit::ec_a().kid).await.is_ok());
        assert_eq!(fetcher.calls(), 2);
    }

    #[test]
    fn uses_only_signing_keys_it_accepts() {
        let accepted = |jwk: serde_json::Value| {
            verifying_key(&serde_json::from_value::<Jwk>(jwk).unwrap()).map(|(_, k)| k.algorithm)
        };
        let rsa = serde_json::to_value(testkit::rsa_a().jwk()).unwrap();
        let ec = serde_json::to_value(testkit::ec_a().jwk()).unwrap();
        assert_eq!(accepted(rsa.clone()), Ok(Algorithm::RS256));
        assert_eq!(accepted(ec.clone()), Ok(Algorithm::ES256));

        let with = |base: &serde_json::Value, field: &str, value: serde_json::Value| {
            let mut jwk = base.clone();
            jwk[field] = value;
            jwk
        };
        let without = |base: &serde_json::Value, field: &str| {
            let mut jwk = base.clone();
            jwk.as_object_mut().unwrap().remove(field);
            jwk
        };
        assert_eq!(accepted(without(&rsa, "alg")), Ok(Algorithm::RS256));
        for (refused, why) in [
            (without(&rsa, "kid"), "no kid"),
            (with(&rsa, "kid", "".into()), "no kid"),
            (with(&rsa, "use", "enc".into()), "use"),
            (with(&rsa, "alg", "RS512".into()), "not accepted"),
            (with(&rsa, "alg", "HS256".into()), "not accepted"),
            (with(&ec, "alg", "RS256".into()), "not accepted"),
            (with(&ec, "crv", "P-384".into()), "not accepted"),
            (
                serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}),
                "oct",
            ),
            (
                with(&rsa, "n", URL_SAFE_NO_PAD.encode([0xff_u8; 128]).into()),
                "1024 bits",
            ),
        ] {
            let error = accepted(refused.clone()).unwrap_err();
            assert!(error.contains(why), "{refused}: {error}");
        }
    }

    #[test]
    fn a_jwks_document_with_odd_keys_keeps_the_good_ones() {
        let rsa = serde_json::to_value(testkit::rsa_a().jwk()).unwrap();
        let body = serde_json::json!({"keys": [rsa, 42, {"kty": "made-up"}]}).to_string();
        let set = parse_jwks(body.as_bytes()).unwrap();
        let usable = KeySet::from_jwks(&set, Instant::now());
        assert_eq!(usable.keys.len(), 1);
        assert!(usable.keys.contains_key(&testkit::rsa_a().kid));

        assert!(parse_jwks(b"<html>").is_err());
        assert!(parse_jwks(br#"{"no":"keys"}"#).is_err());
    }
}
