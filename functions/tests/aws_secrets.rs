//! The Secrets Manager adapter against moto: the `$connect` authorizer's HS256 secret, read
//! as the authorizer binary reads it at cold start.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use fanout::adapters::secrets::{SecretError, read_secret};
use fanout::auth::{DevToken, Verifier, VerifierConfig};
use fanout_test_support::moto::{moto_sdk_config, unique};
use std::time::SystemTime;

const SECRET: &str = "a-shared-secret-of-at-least-32-bytes";

async fn client() -> Client {
    Client::new(&moto_sdk_config().await)
}

#[tokio::test]
async fn reads_a_secret_string_by_arn_and_verifies_tokens_with_it() {
    let client = client().await;
    let created = client
        .create_secret()
        .name(unique("fanout-jwt"))
        .secret_string(SECRET)
        .send()
        .await
        .expect("create the secret in moto");
    let arn = created.arn().expect("moto returns the ARN");

    let secret = read_secret(&client, arn).await.unwrap();
    assert_eq!(secret, SECRET.as_bytes());

    let verifier = Verifier::hs256(VerifierConfig::new("fanout", "fanout"), &secret).unwrap();
    let token = DevToken {
        issuer: "fanout".into(),
        audience: "fanout".into(),
        ..DevToken::new("user-1", vec!["lobby".into()])
    }
    .mint(SECRET.as_bytes(), SystemTime::now())
    .unwrap();
    let claims = verifier.verify(&token, SystemTime::now()).await.unwrap();
    assert_eq!(claims.sub, "user-1");
}

#[tokio::test]
async fn reads_a_secret_binary_as_it_is() {
    let client = client().await;
    let bytes: Vec<u8> = (0..=255).collect();
    let created = client
        .create_secret()
        .name(unique("fanout-jwt-binary"))
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .expect("create the secret in moto");
    assert_eq!(
        read_secret(&client, created.arn().unwrap()).await.unwrap(),
        bytes
    );
}

#[tokio::test]
async fn a_missing_secret_is_named_in_the_error() {
    let client = client().await;
    let arn = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}",
        unique("absent")
    );
    match read_secret(&client, &arn).await {
        Err(SecretError::Unreadable { id, reason }) => {
            assert_eq!(id, arn);
            assert!(reason.contains("ResourceNotFound"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
