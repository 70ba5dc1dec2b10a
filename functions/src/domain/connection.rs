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
