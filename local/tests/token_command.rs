//! `fanout-local token` reads its secret from the environment, so that it need not show in
//! `ps`, and the token it prints is one a stack started the same way accepts.

use fanout_local::auth::{AuthOptions, JWT_SECRET_VAR};
use std::process::Command;
use std::time::SystemTime;

const SECRET: &str = "a-development-secret-of-at-least-32-bytes";

fn token(env_secret: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fanout-local"));
    command
        .args(["token", "--sub", "alice", "--rooms", "lobby,team-42:*"])
        .env_remove(JWT_SECRET_VAR);
    if let Some(secret) = env_secret {
        command.env(JWT_SECRET_VAR, secret);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_secret_comes_from_the_environment_and_the_token_verifies() {
    let output = token(Some(SECRET));
    assert!(output.status.success(), "{output:?}");
    let minted = String::from_utf8(output.stdout).unwrap();

    let stack = AuthOptions {
        jwt_secret: Some(SECRET.to_owned()),
        ..AuthOptions::default()
    };
    let verifier = stack.verifier().await.unwrap().unwrap();
    let claims = verifier
        .verify(minted.trim(), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(claims.sub, "alice");

    let without = token(None);
    assert!(!without.status.success());
    let error = String::from_utf8_lossy(&without.stderr);
    assert!(error.contains("--jwt-secret"), "{error}");
}
