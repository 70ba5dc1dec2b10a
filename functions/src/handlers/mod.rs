//! One handler per Lambda: a typed event in, a typed response out. They see the ports, never
//! an SDK type, so the local stack runs them unchanged.

pub mod connect;
pub mod default;
pub mod disconnect;
pub mod sendmessage;
pub mod worker;

use crate::domain::{ClientError, Frame};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

/// A response whose body API Gateway sends back to the client (route responses) or, for
/// `$connect`, uses as the handshake's answer.
pub fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}

/// An error frame for the sender. The status stays 200: API Gateway forwards the body of a
/// successful integration as the route response, and the frame itself carries the error.
pub fn error_response(error: &ClientError) -> ApiGatewayProxyResponse {
    let frame = Frame::Error {
        code: error.code,
        message: &error.message,
    };
    response(200, Some(frame.to_json()))
}

/// The connection id API Gateway assigned; every WebSocket event has one.
pub fn connection_id(request: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    request
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty())
}

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
