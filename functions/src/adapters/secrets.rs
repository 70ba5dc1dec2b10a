//! The authorizer's HS256 secret from AWS Secrets Manager, read once at cold start.
//!
//! Secrets Manager rather than SSM Parameter Store: it is the AWS home for credentials (KMS
//! encryption by default, rotation, resource policies), and one `GetSecretValue` at cold start
//! costs nothing per `$connect`. A rotated secret reaches an instance when it next starts.

use super::aws::describe;
use aws_sdk_secretsmanager::Client;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("could not read secret {id}: {reason}")]
    Unreadable { id: String, reason: String },
    #[error("secret {id} has no value (neither SecretString nor SecretBinary)")]
    Empty { id: String },
}

/// The secret's value: its `SecretString` as UTF-8 bytes, or its `SecretBinary`. The bytes are
/// the HMAC key as they are (no base64 or JSON decoding).
pub async fn read_secret(client: &Client, id: &str) -> Result<Vec<u8>, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Unreadable {
            id: id.to_owned(),
            reason: describe(&e),
        })?;
    if let Some(text) = output.secret_string() {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(binary) = output.secret_binary() {
        return Ok(binary.as_ref().to_vec());
    }
    Err(SecretError::Empty { id: id.to_owned() })
}
