//! A connected client as the store keeps it.

use crate::domain::{Allowance, RoomName};
use serde::{Deserialize, Serialize};

/// One row of the `connections` table. Field names are the table's attribute names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    pub room: RoomName,
    /// Epoch milliseconds.
    pub connected_at: i64,
    /// Epoch seconds: the table's TTL attribute. API Gateway closes every connection after 2 h
    /// and `$disconnect` is best-effort, so this is what finally removes a lost connection.
    pub expires_at: i64,
    /// Who the `$connect` authorizer said this is, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// What is left of its sending allowance (sendmessage's rate limit); absent until it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<Allowance>,
}

/// The characters of API Gateway's connection ids (standard base64: 11 random bytes, one `=`
/// of padding, e.g. `L0SM9cOFvHcCIhw=`), in byte order: the order of the room index's sort key.
pub const CONNECTION_ID_ALPHABET: &[u8; 64] =
    b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
