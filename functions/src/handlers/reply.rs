//! What every handler answers with: responses, error frames, and the connection id of an
//! event.

use crate::domain::{ClientError, ErrorCode, Frame};
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

/// The connection id of a route's event, or the error frame for an event without one.
pub fn sender(request: &ApiGatewayWebsocketProxyRequest) -> Result<&str, ClientError> {
    connection_id(request).ok_or_else(|| {
        ClientError::new(
            ErrorCode::NotConnected,
            "the event carries no connection id",
        )
    })
}
