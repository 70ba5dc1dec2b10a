//! `$disconnect`: leave.

use super::reply::{connection_id, response};
use crate::ports::ConnectionStore;
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::{error, info};

/// Deletes the connection. A connection that is already gone (deleted on a 410, expired) is
/// fine: `$disconnect` is best-effort and may come after either.
pub async fn handle(
    store: &dyn ConnectionStore,
    request: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = connection_id(&request) else {
        return response(400, Some("the event carries no connection id".into()));
    };
    match store.delete(connection_id).await {
        Ok(()) => {
            info!(
                connection_id,
                status = ?request.request_context.disconnect_status_code,
                reason = ?request.request_context.disconnect_reason,
                "disconnected"
            );
            response(200, None)
        }
        Err(failure) => {
            // The TTL removes it later, and a post to it will answer 410.
            error!(connection_id, error = %failure, "could not delete the connection");
            response(500, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::handlers::fixtures::{connect_client, websocket};

    #[tokio::test]
    async fn deletes_the_connection_and_tolerates_a_second_time() {
        let store = MemoryStore::new();
        connect_client(&store).await;
        assert!(store.contains("Dx4sXe1ZoAMCJvw="));

        assert_eq!(
            handle(&store, websocket("disconnect")).await.status_code,
            200
        );
        assert!(store.is_empty());
        assert_eq!(
            handle(&store, websocket("disconnect")).await.status_code,
            200
        );
    }
}
