//! `POST /publish`: the deployed HTTP API's publish route, IAM-authorized, on this stack. A
//! request must be signed with SigV4 (service `execute-api`, any region) by the access key the
//! stack was given (`crate::auth::AccessKey`); it then runs the same handler as the
//! Lambda.

use crate::app::App;
use crate::auth::{header_list, verify_signature};
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequest,
};
use aws_lambda_events::encodings::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;

/// The path, as the deployed HTTP API serves it on its `$default` stage.
pub const PATH: &str = "/publish";

pub async fn post(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(credentials) = &app.publish_credentials else {
        return forbidden(
            "this fanout-local has no publish credentials: start it with --publish-credentials \
             ACCESS_KEY_ID:SECRET or with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set",
        );
    };
    let now = SystemTime::now();
    let signer = match verify_signature(&[credentials], &method, &uri, &headers, &body, now) {
        Ok(signer) => signer,
        Err(reason) => return forbidden(&reason),
    };
    let header_list = header_list(&headers);
    let response = app
        .publish()
        .handle(event(&header_list, body, &signer.access_key_id), now)
        .await;
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match response.body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    (status, response.headers, body).into_response()
}

/// The event API Gateway hands the Lambda for this request (payload format 2.0).
fn event(
    headers: &[(String, String)],
    body: Bytes,
    access_key_id: &str,
) -> ApiGatewayV2httpRequest {
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.access_key = Some(access_key_id.to_owned());
    iam.user_arn = Some(format!("arn:aws:iam::000000000000:user/{access_key_id}"));
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    let mut request = ApiGatewayV2httpRequest::default();
    request.route_key = Some(format!("POST {PATH}"));
    request.raw_path = Some(PATH.to_owned());
    request.request_context.authorizer = Some(authorizer);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(value),
        ) {
            request.headers.insert(name, value);
        }
    }
    match String::from_utf8(body.to_vec()) {
        Ok(text) => request.body = Some(text),
        Err(_) => {
            request.body = Some(base64::engine::general_purpose::STANDARD.encode(&body));
            request.is_base64_encoded = true;
        }
    }
    request
}

/// API Gateway's answer to a request IAM refuses.
fn forbidden(reason: &str) -> Response {
    tracing::info!(reason, "publish refused: not authenticated");
    (
        StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "message": format!("Forbidden: {reason}") })),
    )
        .into_response()
}
