//! One handler per Lambda: a typed event in, a typed response out. They see the ports, never
//! an SDK type, so the local stack runs them unchanged.

pub mod authorizer;
pub mod connect;
pub mod default;
pub mod disconnect;
pub mod publish;
pub mod recover;
mod reply;
pub mod rooms;
pub mod sendmessage;
mod sequence;
pub mod worker;

pub use reply::{connection_id, error_response, response};

#[cfg(test)]
pub(crate) mod fixtures {
    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;

    /// A real API Gateway WebSocket event from `tests/fixtures/`.
    pub fn websocket(name: &str) -> ApiGatewayWebsocketProxyRequest {
        let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Connects the client of `connect.json` (`Dx4sXe1ZoAMCJvw=`, in the lobby) to `store`,
    /// through the `$connect` handler.
    pub async fn connect_client(store: &dyn crate::ports::ConnectionStore) {
        let response = super::connect::handle(
            store,
            &super::connect::ConnectConfig::default(),
            websocket("connect"),
            std::time::SystemTime::now(),
        )
        .await;
        assert_eq!(response.status_code, 200, "{response:?}");
    }

    /// The same event with another body.
    pub fn with_body(
        mut request: ApiGatewayWebsocketProxyRequest,
        body: &str,
    ) -> ApiGatewayWebsocketProxyRequest {
        request.body = Some(body.to_owned());
        request
    }

    pub fn body_json(
        response: &aws_lambda_events::apigw::ApiGatewayProxyResponse,
    ) -> serde_json::Value {
        match &response.body {
            Some(aws_lambda_events::encodings::Body::Text(text)) => {
                serde_json::from_str(text).unwrap()
            }
            other => panic!("expected a text body, got {other:?}"),
        }
    }
}
