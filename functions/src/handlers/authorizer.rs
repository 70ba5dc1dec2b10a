//! The `$connect` authorizer: a Lambda REQUEST authorizer that lets a client connect only with
//! a valid token, and only to a room its token grants.
//!
//! | the request | the authorizer | API Gateway answers the handshake |
//! | --- | --- | --- |
//! | no token, or an invalid one | fails with the message `Unauthorized` | 401 |
//! | a valid token; the room is not granted | a Deny policy, the reason in its context | 403 |
//! | a valid token; the room is granted | an Allow policy; principal = `sub` | `$connect` runs |
//! | a valid token; the room name is invalid | a Deny policy, the reason in its context | 403 |
//! | the issuer's keys cannot be fetched | fails with another message | 500 |
//!
//! The room is read exactly as `$connect` reads it (`queryStringParameters.room`, default
//! `lobby`, empty for none: [`RoomName::at_connect`]); a request naming several different
//! rooms, or a room that does not parse, is denied: nothing is allowed that was not granted.
//! The Allow's context names the room (empty for none), and `$connect` joins no other (403),
//! so the room authorized is the room joined. The context also carries the token's grants,
//! which `$connect` keeps on the connection: they decide every later `join`.
//!
//! WebSocket authorizers are not cached by API Gateway (the result TTL is for HTTP APIs only):
//! every `$connect` calls this function, so a decision about one room is never reused for
//! another.

use crate::auth::{AuthError, Claims, Verifier};
use crate::domain::{InvalidRoom, RoomName};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::json;
use std::time::SystemTime;
use tracing::{error, info};

/// The event API Gateway sends a WebSocket REQUEST authorizer.
pub type AuthorizerRequest = ApiGatewayCustomAuthorizerRequestTypeRequest;
/// The policy it answers with.
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse;

/// The query parameter that carries the token: browsers cannot set headers on a WebSocket.
pub const TOKEN_PARAMETER: &str = "token";

/// Why the authorizer answers with no policy. The Lambda binary turns it into the function's
/// error ([`lambda_runtime::Diagnostic`]), whose message API Gateway reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No valid token. The message must be exactly `Unauthorized`: that is what makes API
    /// Gateway answer 401 (any other failure is a 500).
    #[error("Unauthorized")]
    Unauthorized(AuthError),
    /// The authorizer cannot decide (the issuer's keys are unavailable, the event is not an
    /// authorizer event): API Gateway answers 500, and the client may try again.
    #[error("the authorizer could not decide: {0}")]
    Unavailable(String),
}

impl From<Refusal> for lambda_runtime::Diagnostic {
    fn from(refusal: Refusal) -> Self {
        let error_type = match refusal {
            Refusal::Unauthorized(_) => "Unauthorized",
            Refusal::Unavailable(_) => "Unavailable",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: refusal.to_string(),
        }
    }
}

/// Decides on one `$connect`. Logs the decision and its reason, never the token.
pub async fn handle(
    verifier: &Verifier,
    request: AuthorizerRequest,
    now: SystemTime,
) -> Result<AuthorizerResponse, Refusal> {
    let connection_id = request
        .request_context
        .other
        .get("connectionId")
        .and_then(|id| id.as_str())
        .unwrap_or("-")
        .to_owned();
    let Some(method_arn) = request.method_arn.as_deref().filter(|arn| !arn.is_empty()) else {
        error!(connection_id, "the event carries no methodArn");
        return Err(Refusal::Unavailable(
            "the event carries no methodArn; is this a REQUEST authorizer event?".into(),
        ));
    };
    let Some(token) = token(&request) else {
        info!(connection_id, reason = %AuthError::NoToken, "unauthorized (401)");
        return Err(Refusal::Unauthorized(AuthError::NoToken));
    };
    let Claims { sub, rooms } = match verifier.verify(token, now).await {
        Ok(claims) => claims,
        Err(failure) if failure.is_unavailable() => {
            error!(connection_id, error = %failure, "cannot verify tokens (500)");
            return Err(Refusal::Unavailable(failure.to_string()));
        }
        Err(failure) => {
            info!(connection_id, reason = %failure, "unauthorized (401)");
            return Err(Refusal::Unauthorized(failure));
        }
    };
    let granted = rooms.to_string();
    let room = match requested_room(&request) {
        Requested::Room(None) => {
            info!(connection_id, sub, "allowed, joining no room");
            return Ok(policy(
                IamPolicyEffect::Allow,
                method_arn,
                &sub,
                json!({"sub": sub, "rooms": granted, "room": ""}),
            ));
        }
        Requested::Room(Some(room)) => room,
        Requested::Invalid(invalid) => {
            let reason = format!("invalid room: {invalid}");
            info!(connection_id, sub, reason, "denied (403)");
            return Ok(policy(
                IamPolicyEffect::Deny,
                method_arn,
                &sub,
                json!({"sub": sub, "reason": reason}),
            ));
        }
        Requested::Several => {
            let reason = "the request names several different rooms";
            info!(connection_id, sub, reason, "denied (403)");
            return Ok(policy(
                IamPolicyEffect::Deny,
                method_arn,
                &sub,
                json!({"sub": sub, "reason": reason}),
            ));
        }
    };
    if rooms.allows(&room) {
        info!(connection_id, sub, %room, "allowed");
        Ok(policy(
            IamPolicyEffect::Allow,
            method_arn,
            &sub,
            json!({"sub": sub, "rooms": granted, "room": room.as_str()}),
        ))
    } else {
        let reason = format!("the token does not grant room {room}");
        info!(connection_id, sub, %room, reason, "denied (403)");
        Ok(policy(
            IamPolicyEffect::Deny,
            method_arn,
            &sub,
            json!({"sub": sub, "room": room.as_str(), "reason": reason}),
        ))
    }
}

/// The token: the `token` query parameter, else an `Authorization: Bearer` header.
pub fn token(request: &AuthorizerRequest) -> Option<&str> {
    if let Some(token) = request
        .query_string_parameters
        .first(TOKEN_PARAMETER)
        .filter(|token| !token.is_empty())
    {
        return Some(token);
    }
    let value = request
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

enum Requested {
    /// The room to join, or none.
    Room(Option<RoomName>),
    Invalid(InvalidRoom),
    Several,
}

/// The room `$connect` will put the connection in, as it reads it.
fn requested_room(request: &AuthorizerRequest) -> Requested {
    if let Some(all) = request.multi_value_query_string_parameters.all("room")
        && all.iter().any(|name| *name != all[0])
    {
        return Requested::Several;
    }
    match RoomName::at_connect(request.query_string_parameters.first("room")) {
        Ok(room) => Requested::Room(room),
        Err(invalid) => Requested::Invalid(invalid),
    }
}

/// An IAM policy on `execute-api:Invoke` for the `$connect` route's ARN. The context holds only
/// strings: API Gateway passes it on to `$connect` as `requestContext.authorizer`.
fn policy(
    effect: IamPolicyEffect,
    method_arn: &str,
    principal: &str,
    context: serde_json::Value,
) -> AuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_owned()];
    let mut document = ApiGatewayCustomAuthorizerPolicy::default();
    document.version = Some("2012-10-17".into());
    document.statement = vec![statement];
    let mut response = AuthorizerResponse::default();
    response.principal_id = Some(principal.to_owned());
    response.policy_document = document;
    response.context = context;
    response
}

/// Whether `response` lets the connection through: for callers that act as API Gateway (the
/// local stack).
pub fn allows(response: &AuthorizerResponse) -> bool {
    !response.policy_document.statement.is_empty()
        && response
            .policy_document
            .statement
            .iter()
            .all(|statement| statement.effect == IamPolicyEffect::Allow)
}

/// What API Gateway hands `$connect` as `requestContext.authorizer` after an Allow: the
/// principal (`principalId`, which `$connect` stores on the connection) and the context.
pub fn connect_context(
    response: &AuthorizerResponse,
) -> std::collections::HashMap<String, serde_json::Value> {
    let mut fields: std::collections::HashMap<String, serde_json::Value> = response
        .context
        .as_object()
        .map(|context| context.clone().into_iter().collect())
        .unwrap_or_default();
    if let Some(principal) = &response.principal_id {
        fields.insert("principalId".into(), principal.clone().into());
    }
    fields
}

/// An authorizer event for a `$connect` with these query parameters and, if given, this
/// `Authorization` header: what the local stack hands the handler in place of API Gateway.
pub fn connect_request(
    method_arn: &str,
    query: &[(&str, &str)],
    authorization: Option<&str>,
) -> AuthorizerRequest {
    let mut request = AuthorizerRequest::default();
    request.type_ = Some("REQUEST".into());
    request.method_arn = Some(method_arn.to_owned());
    let mut single = std::collections::HashMap::new();
    let mut multi: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for (name, value) in query {
        // API Gateway keeps the last value of a repeated parameter in queryStringParameters.
        single.insert((*name).to_owned(), (*value).to_owned());
        multi
            .entry((*name).to_owned())
            .or_default()
            .push((*value).to_owned());
    }
    request.query_string_parameters = single.into();
    request.multi_value_query_string_parameters = multi.into();
    if let Some(value) = authorization.and_then(|v| http::HeaderValue::from_str(v).ok()) {
        request
            .headers
            .insert(http::header::AUTHORIZATION, value.clone());
        request
            .multi_value_headers
            .insert(http::header::AUTHORIZATION, value);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testkit::{self, AUDIENCE, ISSUER, SECRET, claims, now, with};
    use crate::auth::{DevToken, VerifierConfig};
    use serde_json::Value;

    const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/dev/$connect";

    fn verifier() -> Verifier {
        Verifier::hs256(VerifierConfig::new(ISSUER, AUDIENCE), SECRET).unwrap()
    }

    fn token(rooms: &[&str]) -> String {
        testkit::hs256(SECRET, &claims(rooms), json!({}))
    }

    /// The fixture event (a real WebSocket REQUEST authorizer event) with these query
    /// parameters.
    fn event(query: &[(&str, &str)]) -> AuthorizerRequest {
        let path = format!(
            "{}/tests/fixtures/authorizer.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut request: AuthorizerRequest =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let built = connect_request(ARN, query, None);
        request.query_string_parameters = built.query_string_parameters;
        request.multi_value_query_string_parameters = built.multi_value_query_string_parameters;
        request
    }

    async fn decide(request: AuthorizerRequest) -> Result<AuthorizerResponse, Refusal> {
        handle(&verifier(), request, now()).await
    }

    fn context(response: &AuthorizerResponse) -> &serde_json::Map<String, Value> {
        response.context.as_object().unwrap()
    }

    #[test]
    fn the_fixture_is_a_websocket_authorizer_event() {
        let request = event(&[]);
        assert_eq!(request.method_arn.as_deref(), Some(ARN));
        assert_eq!(request.request_context.other["routeKey"], "$connect");
        assert_eq!(
            request.request_context.other["connectionId"],
            "Dx4sXe1ZoAMCJvw="
        );
    }

    #[tokio::test]
    async fn allows_a_granted_room_with_the_principal_and_the_grants() {
        let token = token(&["ops", "team-42:*"]);
        let response = decide(event(&[("room", "team-42:chat"), ("token", &token)]))
            .await
            .unwrap();
        assert!(allows(&response));
        assert_eq!(response.principal_id.as_deref(), Some("user-42"));
        let statement = &response.policy_document.statement[0];
        assert_eq!(statement.action, ["execute-api:Invoke"]);
        assert_eq!(statement.resource, [ARN]);
        assert_eq!(context(&response)["sub"], "user-42");
        assert_eq!(context(&response)["rooms"], "ops team-42:*");
        assert_eq!(context(&response)["room"], "team-42:chat");

        // As API Gateway reads it.
        let wire = serde_json::to_value(&response).unwrap();
        assert_eq!(wire["principalId"], "user-42");
        assert_eq!(wire["policyDocument"]["Version"], "2012-10-17");
        assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            wire["policyDocument"]["Statement"][0]["Action"][0],
            "execute-api:Invoke"
        );
        assert!(
            wire["context"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
    }

    #[tokio::test]
    async fn the_room_defaults_to_the_lobby() {
        let granted = token(&["lobby"]);
        assert!(allows(
            &decide(event(&[("token", &granted)])).await.unwrap()
        ));
        let other = token(&["ops"]);
        assert!(!allows(&decide(event(&[("token", &other)])).await.unwrap()));
    }

    #[tokio::test]
    async fn denies_a_room_the_token_does_not_grant_with_the_reason() {
        let token = token(&["ops", "team-42:*"]);
        let response = decide(event(&[("room", "team-7:chat"), ("token", &token)]))
            .await
            .unwrap();
        assert!(!allows(&response));
        assert_eq!(
            response.policy_document.statement[0].effect,
            IamPolicyEffect::Deny
        );
        assert_eq!(response.principal_id.as_deref(), Some("user-42"));
        assert_eq!(
            context(&response)["reason"],
            "the token does not grant room team-7:chat"
        );

        let nothing = testkit::hs256(SECRET, &with(claims(&[]), "rooms", Value::Null), json!({}));
        let response = decide(event(&[("room", "ops"), ("token", &nothing)]))
            .await
            .unwrap();
        assert!(!allows(&response), "no rooms claim grants no room");
    }

    #[tokio::test]
    async fn several_different_rooms_are_denied() {
        let token = token(&["ops"]);
        let response = decide(event(&[
            ("room", "ops"),
            ("room", "secret"),
            ("token", &token),
        ]))
        .await
        .unwrap();
        assert!(!allows(&response));
        assert_eq!(
            context(&response)["reason"],
            "the request names several different rooms"
        );
        let same_twice = decide(event(&[
            ("room", "ops"),
            ("room", "ops"),
            ("token", &token),
        ]))
        .await
        .unwrap();
        assert!(allows(&same_twice));
    }

    #[tokio::test]
    async fn an_invalid_room_name_is_denied_with_the_reason() {
        let token = token(&["*"]);
        let response = decide(event(&[("room", "has space"), ("token", &token)]))
            .await
            .unwrap();
        assert!(!allows(&response));
        let reason = context(&response)["reason"].as_str().unwrap().to_owned();
        assert!(reason.starts_with("invalid room: "), "{reason}");
    }

    #[tokio::test]
    async fn without_a_valid_token_the_function_fails_with_unauthorized() {
        assert_eq!(
            decide(event(&[("room", "ops")])).await,
            Err(Refusal::Unauthorized(AuthError::NoToken))
        );
        assert_eq!(
            decide(event(&[("room", "ops"), ("token", "")])).await,
            Err(Refusal::Unauthorized(AuthError::NoToken))
        );
        let forged = testkit::hs256(
            b"another-secret-of-at-least-32-bytes!",
            &claims(&["ops"]),
            json!({}),
        );
        assert_eq!(
            decide(event(&[("room", "ops"), ("token", &forged)])).await,
            Err(Refusal::Unauthorized(AuthError::BadSignature))
        );

        // What the runtime reports to Lambda, and API Gateway reads: exactly "Unauthorized".
        let diagnostic =
            lambda_runtime::Diagnostic::from(Refusal::Unauthorized(AuthError::NoToken));
        assert_eq!(diagnostic.error_message, "Unauthorized");
    }

    #[tokio::test]
    async fn reads_a_bearer_header_when_there_is_no_token_parameter() {
        let token = token(&["ops"]);
        for header in [format!("Bearer {token}"), format!("bearer  {token} ")] {
            let mut request = event(&[("room", "ops")]);
            request.headers.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_str(&header).unwrap(),
            );
            assert!(allows(&decide(request).await.unwrap()), "{header:?}");
        }
        for header in [format!("Basic {token}"), token.clone(), "Bearer ".into()] {
            let mut request = event(&[("room", "ops")]);
            request.headers.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_str(&header).unwrap(),
            );
            assert_eq!(
                decide(request).await,
                Err(Refusal::Unauthorized(AuthError::NoToken)),
                "{header:?}"
            );
        }
        // The query parameter wins over the header.
        let mut request = event(&[("room", "ops"), ("token", "not-a-token")]);
        request.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert!(matches!(
            decide(request).await,
            Err(Refusal::Unauthorized(AuthError::Malformed(_)))
        ));
    }

    #[tokio::test]
    async fn an_event_without_a_method_arn_is_not_an_authorizer_event() {
        let mut request = event(&[("token", &token(&["lobby"]))]);
        request.method_arn = None;
        let refusal = decide(request).await.unwrap_err();
        assert!(matches!(refusal, Refusal::Unavailable(_)));
        assert_ne!(
            lambda_runtime::Diagnostic::from(refusal).error_message,
            "Unauthorized",
            "a 500, not a 401"
        );
    }

    #[tokio::test]
    async fn connect_stores_the_principal_the_authorizer_allowed() {
        use crate::adapters::memory::MemoryStore;
        use crate::handlers::connect::{ConnectConfig, handle as connect};
        use crate::handlers::fixtures::websocket;
        use crate::ports::ConnectionStore;

        let token = token(&["ops"]);
        let allowed = decide(event(&[("room", "ops"), ("token", &token)]))
            .await
            .unwrap();
        let mut request = websocket("connect");
        request.query_string_parameters =
            std::collections::HashMap::from([("room".to_owned(), "ops".to_owned())]).into();
        request.request_context.authorizer.fields = connect_context(&allowed);

        let store = MemoryStore::new();
        let response = connect(&store, &ConnectConfig::default(), request, now()).await;
        assert_eq!(response.status_code, 200);
        let stored = store.get("Dx4sXe1ZoAMCJvw=").await.unwrap().unwrap();
        assert_eq!(stored.principal.as_deref(), Some("user-42"));
        assert_eq!(stored.rooms, [RoomName::parse("ops").unwrap()].into());
    }

    #[tokio::test]
    async fn a_dev_token_opens_its_rooms() {
        let config = VerifierConfig::new(crate::auth::DEV_ISSUER, crate::auth::DEV_AUDIENCE);
        let verifier = Verifier::hs256(config, SECRET).unwrap();
        let token = DevToken::new("dev-1", vec!["lobby".into(), "team-42:*".into()])
            .mint(SECRET, now())
            .unwrap();
        let request = connect_request(ARN, &[("room", "team-42:x"), ("token", &token)], None);
        let response = handle(&verifier, request, now()).await.unwrap();
        assert!(allows(&response));
        assert_eq!(response.principal_id.as_deref(), Some("dev-1"));

        let header = format!("Bearer {token}");
        let request = connect_request(ARN, &[], Some(&header));
        assert!(allows(&handle(&verifier, request, now()).await.unwrap()));
    }
}
