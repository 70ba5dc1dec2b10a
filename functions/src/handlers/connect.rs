//! `$connect`: register the connection, in the room `?room=` names (if any).

use super::reply::{connection_id, response};
use crate::config::settings;
use crate::domain::{Connection, RoomName, epoch_millis};
use crate::ports::ConnectionStore;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use std::time::{Duration, SystemTime};
use tracing::{error, info};

/// `$connect`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectConfig {
    /// `CONNECTION_TTL_SECONDS`: how long a stored connection lives if `$disconnect` never
    /// comes. API Gateway closes connections after 2 h; the default adds 5 minutes.
    pub ttl: Duration,
}

impl Default for ConnectConfig {
    fn default() -> Self {
        Self {
            ttl: settings::CONNECTION_TTL_SECONDS.default_duration(),
        }
    }
}

/// Stores the connection, with the grants the authorizer found in its token, in the room named
/// by `?room=` ([`RoomName::at_connect`]: default `lobby`, empty for none). A bad room name
/// refuses the handshake with 400 and the reason; a room other than the one the authorizer
/// allowed (when one ran), with 403.
pub async fn handle(
    store: &dyn ConnectionStore,
    config: &ConnectConfig,
    request: ApiGatewayWebsocketProxyRequest,
    now: SystemTime,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = connection_id(&request) else {
        return response(400, Some("the event carries no connection id".into()));
    };
    let room = match RoomName::at_connect(request.query_string_parameters.first("room")) {
        Ok(room) => room,
        Err(reason) => return response(400, Some(format!("invalid room: {reason}"))),
    };
    let principal = principal(&request);
    let asked = room.as_ref().map_or("", RoomName::as_str).to_owned();
    if principal.is_some() {
        let allowed = authorizer_field(&request, "room");
        if allowed != Some(asked.as_str()) {
            info!(
                connection_id,
                ?allowed,
                asked,
                "refused: not the room authorized (403)"
            );
            return response(403, Some(format!("room {asked:?} was not authorized")));
        }
    }
    let connection = Connection {
        connection_id: connection_id.to_owned(),
        rooms: room.into_iter().collect(),
        connected_at: epoch_millis(now),
        expires_at: epoch_millis(now + config.ttl) / 1000,
        grants: principal.is_some().then(|| {
            authorizer_field(&request, "rooms")
                .unwrap_or_default()
                .to_owned()
        }),
        principal,
        allowance: None,
    };
    match store.put(&connection).await {
        Ok(()) => {
            info!(connection_id, room = %asked, "connected");
            response(200, None)
        }
        Err(failure) => {
            error!(connection_id, error = %failure, "could not store the connection");
            response(
                500,
                Some("could not register the connection; try again".into()),
            )
        }
    }
}

/// The principal a `$connect` authorizer returned, if one ran.
fn principal(request: &ApiGatewayWebsocketProxyRequest) -> Option<String> {
    authorizer_field(request, "principalId").map(str::to_owned)
}

/// A string the authorizer put in its answer (its principal or its context).
fn authorizer_field<'a>(
    request: &'a ApiGatewayWebsocketProxyRequest,
    name: &str,
) -> Option<&'a str> {
    let authorizer = &request.request_context.authorizer;
    authorizer
        .other
        .get(name)
        .or_else(|| authorizer.fields.get(name))
        .and_then(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::handlers::fixtures::websocket;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    const NOW: Duration = Duration::from_millis(1_795_780_800_123);

    async fn connect(
        store: &MemoryStore,
        request: ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        handle(store, &ConnectConfig::default(), request, UNIX_EPOCH + NOW).await
    }

    #[tokio::test]
    async fn stores_the_connection_in_its_room_with_a_ttl() {
        let store = MemoryStore::new();
        let response = connect(&store, websocket("connect")).await;
        assert_eq!(response.status_code, 200);
        let stored = store.get("Dx4sXe1ZoAMCJvw=").await.unwrap().unwrap();
        assert_eq!(stored.rooms, [room("general")].into());
        assert_eq!(stored.connected_at, 1_795_780_800_123);
        assert_eq!(stored.expires_at, 1_795_780_800 + 7500);
        assert_eq!(stored.principal, None);
    }

    #[tokio::test]
    async fn defaults_to_the_lobby_and_keeps_the_principal() {
        let store = MemoryStore::new();
        connect(&store, websocket("connect-no-room")).await;
        assert_eq!(
            store.get("Dx4sXe1ZoAMCJvw=").await.unwrap().unwrap().rooms,
            [room("lobby")].into()
        );

        connect(&store, websocket("connect-authorized")).await;
        let stored = store.get("Dx4sXe1ZoAMCJvw=").await.unwrap().unwrap();
        assert_eq!(
            (stored.rooms, stored.principal.as_deref()),
            ([room("ops")].into(), Some("user-42"))
        );
        assert!(stored.grants.is_some());
    }

    #[tokio::test]
    async fn an_empty_room_joins_none_and_keeps_the_grants() {
        let store = MemoryStore::new();
        let mut request = websocket("connect-authorized");
        request.query_string_parameters =
            std::collections::HashMap::from([("room".to_owned(), String::new())]).into();
        let fields = &mut request.request_context.authorizer.fields;
        fields.insert("room".into(), "".into());
        fields.insert("rooms".into(), "ops team-42:*".into());
        assert_eq!(connect(&store, request).await.status_code, 200);
        let stored = store.get("Dx4sXe1ZoAMCJvw=").await.unwrap().unwrap();
        assert!(stored.rooms.is_empty());
        assert_eq!(stored.grants.as_deref(), Some("ops team-42:*"));
        assert!(stored.may_join(&room("team-42:chat")));
        assert!(!stored.may_join(&room("team-43:chat")));
        assert!(
            store
                .room_page(&room("ops"), None, None)
                .await
                .unwrap()
                .ids
                .is_empty()
        );
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[tokio::test]
    async fn refuses_a_room_other_than_the_one_authorized() {
        for granted in [Some("lobby"), None] {
            let store = MemoryStore::new();
            let mut request = websocket("connect-authorized");
            let fields = &mut request.request_context.authorizer.fields;
            fields.remove("room");
            if let Some(granted) = granted {
                fields.insert("room".into(), granted.into());
            }
            let response = connect(&store, request).await;
            assert_eq!(response.status_code, 403, "granted {granted:?}");
            assert!(store.is_empty());
        }
    }

    #[tokio::test]
    async fn refuses_an_invalid_room_with_the_reason_and_stores_nothing() {
        for bad in ["has space", "../etc", &"x".repeat(65)] {
            let store = MemoryStore::new();
            let mut request = websocket("connect");
            request.query_string_parameters =
                std::collections::HashMap::from([("room".to_owned(), bad.to_owned())]).into();
            let response = connect(&store, request).await;
            assert_eq!(response.status_code, 400, "{bad:?}");
            let Some(aws_lambda_events::encodings::Body::Text(reason)) = &response.body else {
                panic!("no reason for {bad:?}");
            };
            assert!(reason.starts_with("invalid room: "), "{reason}");
            assert!(store.is_empty());
        }
    }
}
