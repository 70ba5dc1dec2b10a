//! `join` and `leave`: the rooms of a connection after `$connect`. One socket holds many rooms;
//! each is a membership record the worker pages when the room's messages fan out.

use super::reply::{connection_id, error_response, response, sender};
use crate::config::settings;
use crate::domain::{ClientError, ErrorCode, Frame, RoomAction, RoomName, parse_room_action};
use crate::ports::{ConnectionStore, Join};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{error, info};

/// The rooms handler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomsConfig {
    /// `MAX_ROOMS_PER_CONNECTION`: the most rooms one connection may be in; a join past it is
    /// refused with `too_many_rooms`.
    pub max_rooms: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            max_rooms: settings::MAX_ROOMS_PER_CONNECTION.default_value() as usize,
        }
    }
}

/// Answers `{"type":"joined","room":R}` or `{"type":"left","room":R}` once the membership is
/// written (a message fanned out after that reaches the connection, or no longer does), or an
/// error frame. Joining a room again and leaving one it is not in both succeed.
pub async fn handle(
    store: &dyn ConnectionStore,
    config: &RoomsConfig,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    match act(store, config, &request).await {
        Ok(done) => response(200, Some(done.to_json())),
        Err(refusal) => {
            info!(connection_id = ?connection_id(&request), code = ?refusal.code, "refused room action");
            error_response(&refusal)
        }
    }
}

async fn act(
    store: &dyn ConnectionStore,
    config: &RoomsConfig,
    request: &ApiGatewayWebsocketProxyRequest,
) -> Result<Done, ClientError> {
    let action = parse_room_action(request.body.as_deref(), request.is_base64_encoded)?;
    let id = sender(request)?;
    match action {
        RoomAction::Leave(room) => {
            store.leave(id, &room).await.map_err(|failure| {
                error!(connection_id = id, %room, error = %failure, "could not leave");
                unavailable()
            })?;
            info!(connection_id = id, %room, "left");
            Ok(Done::Left(room))
        }
        RoomAction::Join(room) => {
            let connection = match store.get(id).await {
                Ok(Some(connection)) => connection,
                Ok(None) => return Err(not_connected()),
                Err(failure) => {
                    error!(connection_id = id, error = %failure, "store lookup failed");
                    return Err(unavailable());
                }
            };
            if !connection.may_join(&room) {
                return Err(ClientError::new(
                    ErrorCode::Forbidden,
                    format!("your token does not grant room {room}"),
                ));
            }
            match store.join(&connection, &room, config.max_rooms).await {
                Ok(Join::Joined) => {
                    info!(connection_id = id, %room, "joined");
                    Ok(Done::Joined(room))
                }
                Ok(Join::TooManyRooms) => Err(ClientError::new(
                    ErrorCode::TooManyRooms,
                    format!(
                        "this connection is in {} rooms, the most it may be in; leave one first",
                        config.max_rooms
                    ),
                )),
                Ok(Join::NotConnected) => Err(not_connected()),
                Err(failure) => {
                    error!(connection_id = id, %room, error = %failure, "could not join");
                    Err(unavailable())
                }
            }
        }
    }
}

enum Done {
    Joined(RoomName),
    Left(RoomName),
}

impl Done {
    fn to_json(&self) -> String {
        match self {
            Done::Joined(room) => Frame::Joined {
                room: room.as_str(),
            },
            Done::Left(room) => Frame::Left {
                room: room.as_str(),
            },
        }
        .to_json()
    }
}

fn not_connected() -> ClientError {
    ClientError::new(
        ErrorCode::NotConnected,
        "this connection is not registered (expired?); reconnect",
    )
}

fn unavailable() -> ClientError {
    ClientError::new(
        ErrorCode::Unavailable,
        "the service is briefly unavailable; try again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::handlers::fixtures::{body_json, connect_client, websocket, with_body};
    use crate::ports::{Page, StaleDelete, StoreError};
    use serde_json::json;

    const ID: &str = "Dx4sXe1ZoAMCJvw=";

    async fn send(store: &MemoryStore, max_rooms: usize, body: &str) -> serde_json::Value {
        let request = with_body(websocket("sendmessage"), body);
        body_json(&handle(store, &RoomsConfig { max_rooms }, request).await)
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    async fn members(store: &MemoryStore, name: &str) -> Vec<String> {
        store.room_page(&room(name), None, None).await.unwrap().ids
    }

    #[tokio::test]
    async fn joins_and_leaves_rooms_on_one_connection() {
        let store = MemoryStore::new();
        connect_client(&store).await;
        for name in ["ops", "dev"] {
            let answer = send(
                &store,
                100,
                &format!(r#"{{"action":"join","room":"{name}"}}"#),
            )
            .await;
            assert_eq!(answer, json!({"type":"joined","room":name}));
            assert_eq!(members(&store, name).await, [ID]);
        }
        let rooms = store.get(ID).await.unwrap().unwrap().rooms;
        assert_eq!(rooms, [room("dev"), room("general"), room("ops")].into());

        let answer = send(&store, 100, r#"{"action":"leave","room":"ops"}"#).await;
        assert_eq!(answer, json!({"type":"left","room":"ops"}));
        assert!(members(&store, "ops").await.is_empty());
        assert_eq!(members(&store, "dev").await, [ID]);
        // Again, and a room it never joined: nothing to do, and said so the same way.
        for name in ["ops", "never"] {
            let answer = send(
                &store,
                100,
                &format!(r#"{{"action":"leave","room":"{name}"}}"#),
            )
            .await;
            assert_eq!(answer["type"], "left");
        }
    }

    #[tokio::test]
    async fn a_join_past_the_limit_is_refused_but_a_join_again_is_not() {
        let store = MemoryStore::new();
        connect_client(&store).await; // in "general": one of two
        assert_eq!(
            send(&store, 2, r#"{"action":"join","room":"a"}"#).await["type"],
            "joined"
        );
        let refused = send(&store, 2, r#"{"action":"join","room":"b"}"#).await;
        assert_eq!(refused["code"], "too_many_rooms", "{refused}");
        assert!(members(&store, "b").await.is_empty());
        assert_eq!(
            send(&store, 2, r#"{"action":"join","room":"a"}"#).await["type"],
            "joined"
        );
        send(&store, 2, r#"{"action":"leave","room":"general"}"#).await;
        assert_eq!(
            send(&store, 2, r#"{"action":"join","room":"b"}"#).await["type"],
            "joined"
        );
    }

    #[tokio::test]
    async fn a_room_the_token_does_not_grant_is_forbidden() {
        let store = MemoryStore::new();
        let mut connection =
            crate::domain::Connection::in_room(ID, room("team-1:chat"), 0, i64::MAX);
        connection.grants = Some("team-*".into());
        store.put(&connection).await.unwrap();
        assert_eq!(
            send(&store, 100, r#"{"action":"join","room":"team-2"}"#).await["type"],
            "joined"
        );
        let refused = send(&store, 100, r#"{"action":"join","room":"ops"}"#).await;
        assert_eq!(refused["code"], "forbidden", "{refused}");
        assert!(members(&store, "ops").await.is_empty());
    }

    /// The memory store whose join and leave fail, as DynamoDB does when it throttles or is
    /// unreachable past the SDK's retries.
    struct Failing(MemoryStore);

    #[async_trait::async_trait]
    impl ConnectionStore for Failing {
        async fn put(&self, connection: &crate::domain::Connection) -> Result<(), StoreError> {
            self.0.put(connection).await
        }
        async fn get(&self, id: &str) -> Result<Option<crate::domain::Connection>, StoreError> {
            self.0.get(id).await
        }
        async fn join(
            &self,
            _: &crate::domain::Connection,
            _: &RoomName,
            _: usize,
        ) -> Result<Join, StoreError> {
            Err(StoreError::Unavailable("injected".into()))
        }
        async fn leave(&self, _: &str, _: &RoomName) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("injected".into()))
        }
        async fn delete(&self, id: &str) -> Result<(), StoreError> {
            self.0.delete(id).await
        }
        async fn delete_stale(&self, id: &str, before: i64) -> Result<StaleDelete, StoreError> {
            self.0.delete_stale(id, before).await
        }
        async fn room_page(
            &self,
            room: &RoomName,
            cursor: Option<&str>,
            until: Option<&str>,
        ) -> Result<Page, StoreError> {
            self.0.room_page(room, cursor, until).await
        }
        async fn scan_page(
            &self,
            segment: crate::domain::Segment,
            cursor: Option<&str>,
        ) -> Result<Page, StoreError> {
            self.0.scan_page(segment, cursor).await
        }
        fn cursor_after(&self, room: Option<&RoomName>, id: &str) -> String {
            self.0.cursor_after(room, id)
        }
    }

    #[tokio::test]
    async fn a_store_that_fails_is_answered_unavailable_and_changes_nothing() {
        let store = Failing(MemoryStore::new());
        connect_client(&store).await;
        for body in [
            r#"{"action":"join","room":"ops"}"#,
            r#"{"action":"leave","room":"general"}"#,
        ] {
            let request = with_body(websocket("sendmessage"), body);
            let answer = body_json(&handle(&store, &RoomsConfig::default(), request).await);
            assert_eq!(answer["code"], "unavailable", "{body}: {answer}");
        }
        assert!(members(&store.0, "ops").await.is_empty());
        assert_eq!(members(&store.0, "general").await, [ID]);
    }

    #[tokio::test]
    async fn refusals_name_their_cause() {
        let store = MemoryStore::new();
        let answer = send(&store, 100, r#"{"action":"join","room":"ops"}"#).await;
        assert_eq!(answer["code"], "not_connected");
        connect_client(&store).await;
        assert_eq!(
            send(&store, 100, r#"{"action":"join"}"#).await["code"],
            "invalid_room"
        );
        assert_eq!(
            send(&store, 100, r#"{"action":"join","room":"a/b"}"#).await["code"],
            "invalid_room"
        );
        assert_eq!(send(&store, 100, "nope").await["code"], "invalid_json");
    }
}
