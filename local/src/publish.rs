//! `POST /publish`: the deployed HTTP API's publish route, IAM-authorized, on this stack. A
//! request must be signed with SigV4 (service `execute-api`, any region) by the access key the
//! stack was given (`crate::auth::PublishCredentials`); it then runs the same handler as the
//! Lambda.

use crate::app::App;
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayV2httpRequest,
};
use aws_lambda_events::encodings::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use fanout::auth::sigv4::{Received, verify};
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
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let path_and_query = uri.path_and_query().map_or(PATH, |p| p.as_str());
    let received = Received {
        method: method.as_str(),
        path_and_query,
        headers: &header_list,
        body: &body,
    };
    let now = SystemTime::now();
    let signer = match verify(
        &received,
        &credentials.access_key_id,
        &credentials.secret_access_key,
        now,
    ) {
        Ok(signer) => signer,
        Err(reason) => return forbidden(&reason),
    };
    if signer.service != "execute-api" {
        return forbidden("sign for the execute-api service");
    }
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
