//! `$default`: anything that matched no route, and the keep-alive `{"action":"ping"}` (answered
//! `{"type":"pong"}`, with nothing else done: a connection that pings stays open past API
//! Gateway's 10-minute idle timeout at the cost of one invocation).

use super::reply::{error_response, response};
use crate::domain::Frame;
use crate::domain::message::{ClientFrame, PING, unknown_action};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::info;

/// Answers a ping with a pong, anything else with an error frame that says what was wrong and
/// which actions exist.
pub fn handle(request: ApiGatewayWebsocketProxyRequest) -> ApiGatewayProxyResponse {
    let error = match ClientFrame::parse(request.body.as_deref(), request.is_base64_encoded) {
        Err(error) => error,
        Ok(frame) => match frame.action() {
            Ok(action) if action == PING => return response(200, Some(Frame::Pong.to_json())),
            Ok(action) => unknown_action(&action),
            Err(error) => error,
        },
    };
    info!(connection_id = ?request.request_context.connection_id, code = ?error.code, "refused frame");
    error_response(&error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::fixtures::{body_json, websocket, with_body};

    fn answer(body: &str) -> serde_json::Value {
        body_json(&handle(with_body(websocket("default"), body)))
    }

    #[test]
    fn an_unknown_action_names_the_actions_that_exist() {
        let frame = body_json(&handle(websocket("default")));
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], "unknown_action");
        assert!(
            frame["message"].as_str().unwrap().contains("sendmessage"),
            "{frame}"
        );
    }

    #[test]
    fn a_ping_is_answered_with_a_pong() {
        assert_eq!(
            answer(r#"{"action":"ping"}"#),
            serde_json::json!({"type":"pong"})
        );
    }

    #[test]
    fn each_kind_of_garbage_gets_its_code() {
        assert_eq!(answer("hello")["code"], "invalid_json");
        assert!(
            answer("hello")["message"]
                .as_str()
                .unwrap()
                .contains("sendmessage")
        );
        assert_eq!(answer("")["code"], "empty_body");
        assert_eq!(answer("[]")["code"], "invalid_message");
        assert_eq!(answer(r#"{"data":1}"#)["code"], "invalid_message");
        assert_eq!(answer(r#"{"action":["x"]}"#)["code"], "invalid_message");
        let mut binary = websocket("default");
        binary.is_base64_encoded = true;
        assert_eq!(body_json(&handle(binary))["code"], "binary_not_supported");
        let mut empty = websocket("default");
        empty.body = None;
        assert_eq!(body_json(&handle(empty))["code"], "empty_body");
    }
}
