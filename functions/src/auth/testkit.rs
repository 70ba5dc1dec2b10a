//! What the authorizer's tests share: signing keys (from `tests/fixtures/keys/`), tokens, and
//! an issuer's JWKS served over HTTP on a local port.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.example/pool-1";
pub const AUDIENCE: &str = "fanout-client";
pub const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";
/// The tests' clock: tokens are minted and verified around this instant.
pub const NOW: u64 = 1_795_780_800;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A signing key pair and the `kid` its public half is published under.
pub struct Keys {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
}

impl Keys {
    /// The public key as the issuer publishes it.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    /// `claims` signed with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn rsa_a() -> Keys {
    Keys {
        kid: "rsa-a".into(),
        algorithm: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(&fixture("rsa-a.pem")).unwrap(),
    }
}

pub fn rsa_b() -> Keys {
    Keys {
        kid: "rsa-b".into(),
        algorithm: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(&fixture("rsa-b.pem")).unwrap(),
    }
}

pub fn ec_a() -> Keys {
    Keys {
        kid: "ec-a".into(),
        algorithm: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(&fixture("ec-a.pem")).unwrap(),
    }
}

/// The PEM of `rsa-a`'s public key: what an attacker would use as an HMAC secret.
pub fn rsa_a_public_pem() -> Vec<u8> {
    fixture("rsa-a.pub.pem")
}

pub fn jwks(keys: &[&Keys]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk()).collect(),
    }
}

/// Valid claims for [`ISSUER`] and [`AUDIENCE`] at [`NOW`], granting `rooms`.
pub fn claims(rooms: &[&str]) -> Value {
    json!({
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 600,
        "rooms": rooms,
    })
}

/// `claims` with `field` set to `value` (or removed, for `Value::Null`).
pub fn with(mut claims: Value, field: &str, value: Value) -> Value {
    match value {
        Value::Null => {
            claims.as_object_mut().unwrap().remove(field);
        }
        value => claims[field] = value,
    }
    claims
}

/// `claims` signed with HS256 and `secret`, with `header_extra` merged into the header.
pub fn hs256(secret: &[u8], claims: &Value, header_extra: Value) -> String {
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    merge(&mut header, header_extra);
    sign_raw(&header, claims, |message| {
        let key = EncodingKey::from_secret(secret).unwrap();
        jsonwebtoken::crypto::sign(message, &key, Algorithm::HS256).unwrap()
    })
}

/// An unsigned token: `alg` as given (`none`, `None`, ...), an empty signature.
pub fn unsigned(alg: &str, claims: &Value, kid: Option<&str>) -> String {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    sign_raw(&header, claims, |_| String::new())
}

fn merge(target: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            target[key] = value;
        }
    }
}

/// `header.claims.signature`, the signature (base64url) made by `sign` over the first two.
fn sign_raw(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> String) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(message.as_bytes());
    format!("{message}.{signature}")
}

/// What the issuer's JWKS endpoint answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

/// An issuer's JWKS endpoint on 127.0.0.1: serves what the test publishes, counts requests.
pub struct JwksServer {
    pub url: String,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(set: &JwkSet) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: serde_json::to_string(set).unwrap(),
            delay: Duration::ZERO,
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (Arc::clone(&answer), Arc::clone(&hits));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, hits) = (Arc::clone(&shared), Arc::clone(&counter));
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let (answer, hits) = (Arc::clone(&answer), Arc::clone(&hits));
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let answer = answer.lock().unwrap().clone();
                            tokio::time::sleep(answer.delay).await;
                            let response = hyper::Response::builder()
                                .status(answer.status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(answer.body)))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            answer,
            hits,
            task,
        }
    }

    /// The issuer publishes `set` from now on.
    pub fn publish(&self, set: &JwkSet) {
        self.answer(200, &serde_json::to_string(set).unwrap());
    }

    /// Answers `status` and `body` from now on.
    pub fn answer(&self, status: u16, body: &str) {
        let mut answer = self.answer.lock().unwrap();
        answer.status = status;
        answer.body = body.to_owned();
    }

    /// Waits `delay` before each answer from now on.
    pub fn delay(&self, delay: Duration) {
        self.answer.lock().unwrap().delay = delay;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
