//! The verifier against every refusal the issue lists, and acceptance, with HS256 and with RSA
//! and EC keys published as a JWKS by a local HTTP server (rotation included).

use super::testkit::{
    self, AUDIENCE, ISSUER, JwksServer, Keys, NOW, SECRET, claims, ec_a, jwks, now, rsa_a, rsa_b,
    with,
};
use super::*;
use crate::adapters::jwks::HttpKeyFetcher;
use crate::domain::RoomName;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn config() -> VerifierConfig {
    VerifierConfig::new(ISSUER, AUDIENCE)
}

fn secret_verifier() -> Verifier {
    Verifier::hs256(config(), SECRET).unwrap()
}

fn hs256(claims: &Value) -> String {
    testkit::hs256(SECRET, claims, json!({}))
}

fn jwks_verifier_with(server: &JwksServer, jwks: JwksConfig) -> Verifier {
    let jwks = JwksConfig {
        url: server.url.clone(),
        ..jwks
    };
    let fetcher = HttpKeyFetcher::new(&jwks).unwrap();
    Verifier::jwks(config(), Arc::new(fetcher), &jwks)
}

fn jwks_verifier(server: &JwksServer) -> Verifier {
    jwks_verifier_with(server, JwksConfig::new(""))
}

async fn issuer(keys: &[&Keys]) -> JwksServer {
    JwksServer::start(&jwks(keys)).await
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).unwrap()
}

/// The verifier's answer, checked never to quote the token.
async fn verify(verifier: &Verifier, token: &str) -> Result<Claims, AuthError> {
    let result = verifier.verify(token, now()).await;
    if let Err(error) = &result
        && let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 8)
    {
        let message = format!("{error} {error:?}");
        assert!(
            !message.contains(signature),
            "the error quotes the token: {message}"
        );
    }
    result
}

mod acceptance {
    use super::*;

    #[tokio::test]
    async fn hs256_with_the_secret() {
        let verifier = secret_verifier();
        let claims = verify(&verifier, &hs256(&claims(&["ops", "team-42:*"])))
            .await
            .unwrap();
        assert_eq!(claims.sub, "user-42");
        assert!(claims.rooms.allows(&room("ops")));
        assert!(claims.rooms.allows(&room("team-42:chat")));
        assert!(!claims.rooms.allows(&room("lobby")));
    }

    #[tokio::test]
    async fn rs256_and_es256_with_the_issuers_jwks() {
        let (rsa, ec) = (rsa_a(), ec_a());
        let server = issuer(&[&rsa, &ec]).await;
        let verifier = jwks_verifier(&server);
        for keys in [&rsa, &ec] {
            let claims = verify(&verifier, &keys.sign(&claims(&["ops"]))).await;
            assert_eq!(claims.unwrap().sub, "user-42", "{}", keys.kid);
        }
        assert_eq!(server.hits(), 1, "one fetch serves both keys");
    }

    #[tokio::test]
    async fn an_audience_list_that_contains_this_api() {
        let listed = with(claims(&[]), "aud", json!(["another-api", AUDIENCE]));
        assert!(verify(&secret_verifier(), &hs256(&listed)).await.is_ok());
    }

    #[tokio::test]
    async fn exp_and_nbf_within_the_leeway() {
        let verifier = secret_verifier();
        let just_expired = with(claims(&[]), "exp", json!(NOW - 29));
        assert!(verify(&verifier, &hs256(&just_expired)).await.is_ok());
        let nearly_valid = with(claims(&[]), "nbf", json!(NOW + 30));
        assert!(verify(&verifier, &hs256(&nearly_valid)).await.is_ok());
        let fractional = with(claims(&[]), "exp", json!(NOW as f64 + 0.5));
        assert!(verify(&verifier, &hs256(&fractional)).await.is_ok());
    }

    #[tokio::test]
    async fn no_rooms_claim_is_a_valid_token_that_grants_no_room() {
        let claims = verify(
            &secret_verifier(),
            &hs256(&with(claims(&[]), "rooms", Value::Null)),
        )
        .await
        .unwrap();
        assert!(claims.rooms.is_empty());
    }
}

mod refusals {
    use super::*;

    #[tokio::test]
    async fn expired() {
        let expired = with(claims(&[]), "exp", json!(NOW - 30));
        assert_eq!(
            verify(&secret_verifier(), &hs256(&expired)).await,
            Err(AuthError::Expired {
                exp: NOW as i64 - 30,
                now: NOW as i64,
                leeway: 30
            })
        );
    }

    #[tokio::test]
    async fn not_yet_valid() {
        let early = with(claims(&[]), "nbf", json!(NOW + 31));
        assert!(matches!(
            verify(&secret_verifier(), &hs256(&early)).await,
            Err(AuthError::NotYetValid { .. })
        ));
    }

    #[tokio::test]
    async fn wrong_issuer() {
        for iss in [json!("https://evil.example/pool-1"), json!(""), json!(42)] {
            let token = hs256(&with(claims(&[]), "iss", iss.clone()));
            let refused = verify(&secret_verifier(), &token).await.unwrap_err();
            assert!(
                // An iss that is not a string is no issuer at all.
                matches!(refused, AuthError::WrongIssuer | AuthError::MissingClaim(_)),
                "{iss}: {refused:?}"
            );
        }
        let token = hs256(&with(claims(&[]), "iss", json!("https://evil.example")));
        assert_eq!(
            verify(&secret_verifier(), &token).await,
            Err(AuthError::WrongIssuer)
        );
    }

    #[tokio::test]
    async fn wrong_audience() {
        for aud in [json!("another-api"), json!(["another-api"]), json!([])] {
            let token = hs256(&with(claims(&[]), "aud", aud.clone()));
            assert_eq!(
                verify(&secret_verifier(), &token).await,
                Err(AuthError::WrongAudience),
                "{aud}"
            );
        }
    }

    #[tokio::test]
    async fn missing_claims() {
        for claim in ["exp", "iss", "aud", "sub"] {
            let token = hs256(&with(claims(&[]), claim, Value::Null));
            assert_eq!(
                verify(&secret_verifier(), &token).await,
                Err(AuthError::MissingClaim(claim.into())),
                "{claim}"
            );
        }
        let empty_sub = hs256(&with(claims(&[]), "sub", json!("")));
        assert_eq!(
            verify(&secret_verifier(), &empty_sub).await,
            Err(AuthError::MissingClaim("sub".into()))
        );
    }

    /// A `sub` rides in every frame of its holder's messages: one too long for the frame's
    /// envelope would make a message acked, then undeliverable.
    #[tokio::test]
    async fn a_sub_too_long_or_with_control_characters_is_refused() {
        let longest = "\"".repeat(Claims::MAX_SUB_BYTES);
        let accepted = hs256(&with(claims(&[]), "sub", json!(longest)));
        assert!(verify(&secret_verifier(), &accepted).await.is_ok());
        for bad in ["x".repeat(Claims::MAX_SUB_BYTES + 1), "line\nbreak".into()] {
            let token = hs256(&with(claims(&[]), "sub", json!(bad)));
            assert_eq!(
                verify(&secret_verifier(), &token).await,
                Err(AuthError::BadSub(bad.len())),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn bad_signature() {
        // Signed with another secret.
        let forged = testkit::hs256(
            b"not-the-secret-but-32-bytes-long!!",
            &claims(&[]),
            json!({}),
        );
        assert_eq!(
            verify(&secret_verifier(), &forged).await,
            Err(AuthError::BadSignature)
        );

        // A payload swapped under a genuine signature.
        let genuine = hs256(&claims(&["lobby"]));
        let other = hs256(&claims(&["*"]));
        let parts: Vec<&str> = genuine.split('.').collect();
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            other.split('.').nth(1).unwrap(),
            parts[2]
        );
        assert_eq!(
            verify(&secret_verifier(), &swapped).await,
            Err(AuthError::BadSignature)
        );

        // Signed by another RSA key under a published kid.
        let (published, impostor) = (rsa_a(), rsa_b());
        let server = issuer(&[&published]).await;
        let impostor = Keys {
            kid: published.kid.clone(),
            ..impostor
        };
        assert_eq!(
            verify(&jwks_verifier(&server), &impostor.sign(&claims(&[]))).await,
            Err(AuthError::BadSignature)
        );
    }

    #[tokio::test]
    async fn alg_none() {
        let server = issuer(&[&rsa_a()]).await;
        let jwks = jwks_verifier(&server);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = testkit::unsigned(alg, &claims(&["*"]), Some("rsa-a"));
            assert_eq!(
                verify(&secret_verifier(), &token).await,
                Err(AuthError::Unsigned),
                "{alg}"
            );
            assert_eq!(
                verify(&jwks, &token).await,
                Err(AuthError::Unsigned),
                "{alg}"
            );
        }
        assert_eq!(server.hits(), 0, "refused before any key is looked up");
    }

    #[tokio::test]
    async fn hs256_signed_with_the_rsa_public_key() {
        let rsa = rsa_a();
        let server = issuer(&[&rsa]).await;
        // The classic confusion: the public key (which anyone can fetch) used as an HMAC
        // secret, in PEM and as the JWK's modulus.
        let pem = testkit::rsa_a_public_pem();
        for secret in [pem.clone(), serde_json::to_vec(&rsa.jwk()).unwrap()] {
            let token = testkit::hs256(&secret, &claims(&["*"]), json!({"kid": "rsa-a"}));
            assert_eq!(
                verify(&jwks_verifier(&server), &token).await,
                Err(AuthError::DisallowedAlgorithm("HS256".into()))
            );
        }
    }

    #[tokio::test]
    async fn algorithms_the_key_source_does_not_use() {
        // An RS256 token where keys are a shared secret.
        let token = rsa_a().sign(&claims(&[]));
        assert_eq!(
            verify(&secret_verifier(), &token).await,
            Err(AuthError::DisallowedAlgorithm("RS256".into()))
        );
        // HS512, RS512, EdDSA and made-up names where keys come from a JWKS.
        let server = issuer(&[&rsa_a()]).await;
        for alg in ["HS512", "RS512", "PS256", "EdDSA", "XYZ"] {
            let token = testkit::unsigned(alg, &claims(&[]), Some("rsa-a"));
            assert_eq!(
                verify(&jwks_verifier(&server), &token).await,
                Err(AuthError::DisallowedAlgorithm(alg.into())),
                "{alg}"
            );
        }
        // An ES256 token naming an RSA key.
        let ec = Keys {
            kid: "rsa-a".into(),
            ..ec_a()
        };
        assert!(matches!(
            verify(&jwks_verifier(&server), &ec.sign(&claims(&[]))).await,
            Err(AuthError::KeyMismatch { kid, .. }) if kid == "rsa-a"
        ));
    }

    #[tokio::test]
    async fn unknown_or_missing_kid() {
        let server = issuer(&[&rsa_a()]).await;
        let verifier = jwks_verifier(&server);
        let stranger = Keys {
            kid: "rsa-z".into(),
            ..rsa_b()
        };
        assert_eq!(
            verify(&verifier, &stranger.sign(&claims(&[]))).await,
            Err(AuthError::UnknownKid("rsa-z".into()))
        );
        let no_kid = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims(&[]),
            &rsa_a().encoding,
        )
        .unwrap();
        assert_eq!(verify(&verifier, &no_kid).await, Err(AuthError::MissingKid));
    }

    #[tokio::test]
    async fn malformed() {
        let verifier = secret_verifier();
        let good = hs256(&claims(&[]));
        let (header, payload) = {
            let mut parts = good.split('.');
            (parts.next().unwrap(), parts.next().unwrap())
        };
        let b64 = |text: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
        };
        let cases = [
            String::new(),
            "not-a-jwt".into(),
            "a.b".into(),
            format!("{good}.extra"),
            format!("!!!.{payload}.sig"),
            format!("{}.{payload}.sig", b64("not json")),
            format!("{}.{payload}.sig", b64(r#"{"typ":"JWT"}"#)),
            format!("{}.{payload}.sig", b64(r#"{"alg":42}"#)),
            format!("{header}.{}.sig", b64("not json")),
            hs256(&with(claims(&[]), "rooms", json!("ops"))),
            hs256(&with(claims(&[]), "rooms", json!([1, 2]))),
            hs256(&with(claims(&[]), "exp", json!("tomorrow"))),
            hs256(&with(claims(&[]), "sub", json!(42))),
            testkit::hs256(SECRET, &claims(&[]), json!({"crit": ["exp"]})),
        ];
        for token in cases {
            match verify(&verifier, &token).await {
                Err(AuthError::Malformed(_)) => {}
                // A payload that is not JSON under a made-up signature shows only that.
                Err(AuthError::BadSignature) if token.ends_with(".sig") => {}
                other => panic!("{token:?}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn too_large() {
        let limit = VerifierConfig::DEFAULT_MAX_TOKEN_BYTES;
        let padding = "x".repeat(limit);
        let big = hs256(&with(claims(&[]), "padding", json!(padding)));
        assert_eq!(
            verify(&secret_verifier(), &big).await,
            Err(AuthError::TooLarge {
                bytes: big.len(),
                limit
            })
        );
        let huge = "a".repeat(10 * 1024 * 1024);
        assert!(matches!(
            verify(&secret_verifier(), &huge).await,
            Err(AuthError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn invalid_room_entries() {
        for rooms in [json!(["ok", ""]), json!(["a*b"]), json!(["has space"])] {
            let token = hs256(&with(claims(&[]), "rooms", rooms.clone()));
            assert!(
                matches!(
                    verify(&secret_verifier(), &token).await,
                    Err(AuthError::BadRooms(_))
                ),
                "{rooms}"
            );
        }
        let many: Vec<String> = (0..500).map(|i| format!("r{i}")).collect();
        let token = hs256(&with(claims(&[]), "rooms", json!(many)));
        assert!(matches!(
            verify(&secret_verifier(), &token).await,
            Err(AuthError::BadRooms(crate::domain::InvalidGrants::TooMany(
                101
            )))
        ));
    }

    #[tokio::test]
    async fn room_not_allowed() {
        let claims = verify(&secret_verifier(), &hs256(&claims(&["team-42:*"])))
            .await
            .unwrap();
        assert!(!claims.rooms.allows(&room("team-43:chat")));
        assert!(!claims.rooms.allows(&room("lobby")));
    }

    #[test]
    fn a_short_secret() {
        assert_eq!(
            Verifier::hs256(config(), b"short").unwrap_err(),
            WeakSecret(5)
        );
    }
}

mod jwks_over_http {
    use super::*;

    #[tokio::test]
    async fn key_rotation_a_new_key_verifies_and_a_removed_one_stops() {
        let (old, new) = (rsa_a(), rsa_b());
        let server = issuer(&[&old]).await;
        let verifier = jwks_verifier_with(
            &server,
            JwksConfig {
                refresh: Duration::ZERO,
                ..JwksConfig::new("")
            },
        );
        assert!(verify(&verifier, &old.sign(&claims(&[]))).await.is_ok());

        // The issuer publishes the new key next to the old one and starts signing with it.
        server.publish(&jwks(&[&old, &new]));
        assert!(verify(&verifier, &new.sign(&claims(&[]))).await.is_ok());
        assert!(verify(&verifier, &old.sign(&claims(&[]))).await.is_ok());
        assert_eq!(server.hits(), 2);

        // The issuer withdraws the old key; the next refetch (here caused by an unknown kid)
        // replaces the set, and the old key stops verifying.
        server.publish(&jwks(&[&new]));
        let unknown = Keys {
            kid: "rsa-next".into(),
            ..rsa_b()
        };
        assert!(
            verify(&verifier, &unknown.sign(&claims(&[])))
                .await
                .is_err()
        );
        assert_eq!(server.hits(), 3);
        assert_eq!(
            verify(&verifier, &old.sign(&claims(&[]))).await,
            Err(AuthError::UnknownKid("rsa-a".into()))
        );
        assert!(verify(&verifier, &new.sign(&claims(&[]))).await.is_ok());
    }

    #[tokio::test]
    async fn unknown_kids_refetch_at_a_bounded_rate() {
        let server = issuer(&[&rsa_a()]).await;
        let verifier = jwks_verifier(&server);
        assert!(verify(&verifier, &rsa_a().sign(&claims(&[]))).await.is_ok());
        for i in 0..25 {
            let forged = Keys {
                kid: format!("forged-{i}"),
                ..rsa_b()
            };
            assert_eq!(
                verify(&verifier, &forged.sign(&claims(&[]))).await,
                Err(AuthError::UnknownKid(format!("forged-{i}")))
            );
        }
        assert_eq!(server.hits(), 1, "within the refresh interval: no refetch");
    }

    #[tokio::test]
    async fn concurrent_first_lookups_share_one_fetch() {
        let server = issuer(&[&rsa_a()]).await;
        server.delay(Duration::from_millis(200));
        let verifier = Arc::new(jwks_verifier(&server));
        let token = rsa_a().sign(&claims(&[]));
        let lookups: Vec<_> = (0..10)
            .map(|_| {
                let (verifier, token) = (Arc::clone(&verifier), token.clone());
                tokio::spawn(async move { verifier.verify(&token, now()).await.map(|c| c.sub) })
            })
            .collect();
        for lookup in lookups {
            assert_eq!(lookup.await.unwrap().unwrap(), "user-42");
        }
        assert_eq!(server.hits(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailability_and_cached_keys_survive_it() {
        let server = issuer(&[&rsa_a()]).await;
        server.answer(503, "busy");
        let verifier = jwks_verifier(&server);
        let token = rsa_a().sign(&claims(&[]));
        match verify(&verifier, &token).await {
            Err(AuthError::KeysUnavailable(reason)) => {
                assert!(reason.contains("503"), "{reason}")
            }
            other => panic!("{other:?}"),
        }

        // Once fetched, the keys outlive the issuer's outage.
        let server = issuer(&[&rsa_a()]).await;
        let verifier = jwks_verifier_with(
            &server,
            JwksConfig {
                refresh: Duration::ZERO,
                max_age: Duration::ZERO,
                ..JwksConfig::new("")
            },
        );
        assert!(verify(&verifier, &token).await.is_ok());
        server.answer(500, "down");
        assert!(verify(&verifier, &token).await.is_ok());
        assert_eq!(
            server.hits(),
            2,
            "the stale set was refetched, and the failure ignored"
        );
    }

    #[tokio::test]
    async fn a_slow_or_oversized_key_set_is_refused() {
        let server = issuer(&[&rsa_a()]).await;
        server.delay(Duration::from_secs(5));
        let verifier = jwks_verifier_with(
            &server,
            JwksConfig {
                timeout: Duration::from_millis(300),
                ..JwksConfig::new("")
            },
        );
        match verify(&verifier, &rsa_a().sign(&claims(&[]))).await {
            Err(AuthError::KeysUnavailable(reason)) => {
                assert!(reason.contains("within"), "{reason}")
            }
            other => panic!("{other:?}"),
        }

        let server = issuer(&[&rsa_a()]).await;
        server.answer(
            200,
            &format!(r#"{{"keys":[], "padding":"{}"}}"#, "x".repeat(300_000)),
        );
        match verify(&jwks_verifier(&server), &rsa_a().sign(&claims(&[]))).await {
            Err(AuthError::KeysUnavailable(reason)) => {
                assert!(reason.contains("larger than"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_fetcher_wants_an_http_url() {
        for url in ["", "ftp://issuer.example/jwks", "/jwks.json", "https://"] {
            assert!(
                HttpKeyFetcher::new(&JwksConfig::new(url)).is_err(),
                "{url:?}"
            );
        }
    }
}

mod dev_tokens {
    use super::*;

    #[tokio::test]
    async fn a_minted_token_verifies_until_it_expires() {
        let verifier =
            Verifier::hs256(VerifierConfig::new(DEV_ISSUER, DEV_AUDIENCE), SECRET).unwrap();
        let token = DevToken {
            ttl: Duration::from_secs(60),
            ..DevToken::new("dev-1", vec!["team-42:*".into()])
        };
        let minted = token.mint(SECRET, now()).unwrap();
        let claims = verifier.verify(&minted, now()).await.unwrap();
        assert_eq!(claims.sub, "dev-1");
        assert!(claims.rooms.allows(&room("team-42:a")));
        let later = now() + Duration::from_secs(60 + 30);
        assert!(matches!(
            verifier.verify(&minted, later).await,
            Err(AuthError::Expired { .. })
        ));
    }

    #[test]
    fn refuses_what_the_verifier_would_refuse() {
        let token = DevToken::new("dev-1", vec!["lobby".into()]);
        assert!(matches!(
            token.mint(b"short", now()),
            Err(MintError::Secret(_))
        ));
        let nobody = DevToken::new("", vec![]);
        assert_eq!(nobody.mint(SECRET, now()), Err(MintError::NoSubject));
        let bad = DevToken::new("dev-1", vec!["a b".into()]);
        assert!(matches!(bad.mint(SECRET, now()), Err(MintError::Rooms(_))));
    }
}
