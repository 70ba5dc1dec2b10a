//! A connected client as the store keeps it, and the rooms it has joined.

use crate::domain::grants::RoomGrants;
use crate::domain::{Allowance, ClientError, ErrorCode, RoomName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One row of the `connections` table. Field names are the table's attribute names.
///
/// Its rooms are kept twice: here, so that a send, a leave and `$disconnect` know them from
/// one read, and as one membership record per room (the `memberships` table), which the
/// worker pages for a room's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    /// The rooms it has joined (a DynamoDB string set; absent when none).
    #[serde(
        with = "serde_dynamo::string_set",
        default,
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub rooms: BTreeSet<RoomName>,
    /// Epoch milliseconds.
    pub connected_at: i64,
    /// Epoch seconds: the table's TTL attribute. API Gateway closes every connection after 2 h
    /// and `$disconnect` is best-effort, so this is what finally removes a lost connection.
    pub expires_at: i64,
    /// Who the `$connect` authorizer said this is, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The rooms its token grants (the authorizer's `rooms`, as [`RoomGrants`] prints them),
    /// which bound what it may join later; absent when no authorizer ran: then any room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<String>,
    /// What is left of its sending allowance (sendmessage's rate limit); absent until it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<Allowance>,
}

impl Connection {
    /// A connection in one room, with no principal, grants or allowance: how tests and tools
    /// make one.
    pub fn in_room(
        connection_id: impl Into<String>,
        room: RoomName,
        connected_at: i64,
        expires_at: i64,
    ) -> Self {
        Self {
            connection_id: connection_id.into(),
            rooms: BTreeSet::from([room]),
            connected_at,
            expires_at,
            principal: None,
            grants: None,
            allowance: None,
        }
    }

    /// Whether its token lets it join `room`. Grants that no longer parse (written by another
    /// version) allow nothing.
    pub fn may_join(&self, room: &RoomName) -> bool {
        match &self.grants {
            None => true,
            Some(grants) => {
                RoomGrants::parse(grants.split_whitespace()).is_ok_and(|grants| grants.allows(room))
            }
        }
    }

    /// The room a frame acts on: the one it names, which it must have joined; without one, its
    /// only room.
    pub fn room_for(&self, named: Option<RoomName>) -> Result<RoomName, ClientError> {
        if let Some(room) = named {
            return match self.rooms.contains(&room) {
                true => Ok(room),
                false => Err(ClientError::new(
                    ErrorCode::NotInRoom,
                    format!("this connection has not joined room {room}; join it first"),
                )),
            };
        }
        let mut rooms = self.rooms.iter();
        match (rooms.next(), rooms.next()) {
            (Some(only), None) => Ok(only.clone()),
            (None, _) => Err(ClientError::new(
                ErrorCode::NotInRoom,
                "this connection is in no room; join one first",
            )),
            (Some(_), Some(_)) => Err(ClientError::new(
                ErrorCode::RoomRequired,
                format!(
                    "this connection is in {} rooms; name one in \"room\" ({})",
                    self.rooms.len(),
                    self.rooms_listed(5)
                ),
            )),
        }
    }

    /// Its rooms, at most `shown` of them named, for a message.
    fn rooms_listed(&self, shown: usize) -> String {
        let named: Vec<&str> = self
            .rooms
            .iter()
            .take(shown)
            .map(RoomName::as_str)
            .collect();
        match self.rooms.len().saturating_sub(shown) {
            0 => named.join(", "),
            more => format!("{}, and {more} more", named.join(", ")),
        }
    }

    /// The membership record of one of its rooms.
    pub fn membership(&self, room: &RoomName) -> Membership {
        Membership {
            room: room.clone(),
            connection_id: self.connection_id.clone(),
            user: self.principal.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// One row of the `memberships` table: a connection in a room. The table's key is `room`
/// then `connectionId`, so a room's members page in connection-id order, one Query a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub room: RoomName,
    pub connection_id: String,
    /// The connection's principal, for presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Epoch seconds: the connection's own TTL, so that a record its `$disconnect` missed
    /// goes with it.
    pub expires_at: i64,
}

/// The characters of API Gateway's connection ids (standard base64: 11 random bytes, one `=`
/// of padding, e.g. `L0SM9cOFvHcCIhw=`), in byte order: the order of the memberships table's sort key.
pub const CONNECTION_ID_ALPHABET: &[u8; 64] =
    b"+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn in_rooms(names: &[&str]) -> Connection {
        Connection {
            rooms: names.iter().map(|name| room(name)).collect(),
            ..Connection::in_room("c", room("x"), 0, 0)
        }
    }

    #[test]
    fn a_frame_acts_on_the_room_it_names_or_the_only_one() {
        let one = in_rooms(&["ops"]);
        assert_eq!(one.room_for(None), Ok(room("ops")));
        assert_eq!(one.room_for(Some(room("ops"))), Ok(room("ops")));
        assert_eq!(
            one.room_for(Some(room("dev"))).unwrap_err().code,
            ErrorCode::NotInRoom
        );
        assert_eq!(
            in_rooms(&[]).room_for(None).unwrap_err().code,
            ErrorCode::NotInRoom
        );
        let many: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
        let many = in_rooms(&many.iter().map(String::as_str).collect::<Vec<_>>());
        let refused = many.room_for(None).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RoomRequired);
        assert!(
            refused.message.contains("r0, r1, r2, r3, r4, and 3 more"),
            "{}",
            refused.message
        );
        assert_eq!(many.room_for(Some(room("r7"))), Ok(room("r7")));
    }

    #[test]
    fn grants_bound_the_rooms_it_may_join() {
        let anyone = in_rooms(&[]);
        assert!(anyone.may_join(&room("anything")));
        let granted = Connection {
            grants: Some("ops team-42:*".into()),
            ..in_rooms(&[])
        };
        assert!(granted.may_join(&room("ops")));
        assert!(granted.may_join(&room("team-42:chat")));
        assert!(!granted.may_join(&room("team-43")));
        for none in ["", "ops! dev"] {
            let nothing = Connection {
                grants: Some(none.into()),
                ..in_rooms(&[])
            };
            assert!(!nothing.may_join(&room("ops")), "{none:?}");
        }
    }

    #[test]
    fn rooms_are_a_string_set_in_dynamodb_and_absent_when_none() {
        let item: serde_dynamo::Item = serde_dynamo::to_item(in_rooms(&["b", "a"])).unwrap();
        assert_eq!(
            item["rooms"],
            serde_dynamo::AttributeValue::Ss(vec!["a".into(), "b".into()])
        );
        let back: Connection = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, in_rooms(&["a", "b"]));
        let none: serde_dynamo::Item = serde_dynamo::to_item(in_rooms(&[])).unwrap();
        assert!(!none.contains_key("rooms"));
    }
}
