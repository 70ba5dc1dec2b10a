//! Who may reach the local stack. It listens on loopback, and a web page the developer visits
//! reaches loopback too: a no-cors `fetch` with a text body goes out without a preflight, a
//! WebSocket has no same-origin policy, and DNS rebinding (a name of the page's that now
//! resolves to 127.0.0.1) lets the page read the answers. So, on top of what AWS itself checks
//! (the `$connect` authorizer, SigV4 on `/publish` and `@connections`):
//!
//! - every request must name, in `Host`, a loopback name or an IP address: a rebound name
//!   never passes (421, [`Access::check_host`]);
//! - a request from a browser page (one with an `Origin`) must come from the stack's own
//!   origin, or from one `--allowed-origin` names (403, [`Access::check_origin`]); the
//!   WebSocket upgrade included, which is what keeps an open stack's rooms from any page;
//! - `/admin` takes this run's token, `Authorization: Bearer TOKEN` (401, [`AdminToken`]);
//! - a POST to `/admin` or `/publish` must be `Content-Type: application/json` (415,
//!   [`check_json`]): the one kind a page cannot send without a preflight, which this stack
//!   never answers.
//!
//! The checks are plain functions over headers; [`refuse_foreign`], [`require_admin_token`] and
//! [`require_json`] put them in front of the routes (and `crate::management::require_signature`
//! the signature check in front of `@connections`).

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub use fanout::auth::ADMIN_TOKEN_ENV;

/// `n` random bytes as hexadecimal.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The token `/admin` takes: this run's random one, or the one `--admin-token` (or
/// [`ADMIN_TOKEN_ENV`]) gives, so scripts and a second terminal can know it in advance.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Shorter is guessable.
    pub const MIN_CHARS: usize = 16;

    /// 32 random bytes, in hexadecimal.
    pub fn random() -> Self {
        Self(random_hex(32))
    }

    /// `--admin-token`'s value: at least [`Self::MIN_CHARS`] visible ASCII characters (what a
    /// header carries as it is).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().count() < Self::MIN_CHARS {
            return Err(format!("at least {} characters", Self::MIN_CHARS));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("visible ASCII characters only, no spaces".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `authorization` is `Bearer` this token. The comparison takes the same time
    /// wherever the first difference is, so the answer's timing does not reveal the token.
    pub fn admits(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((scheme, presented)) = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer")
            && bool::from(presented.trim().as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// Why a request is refused: its status and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fanout-local admin\""),
            );
        }
        response
    }
}

/// What the stack lets in, from the options: see the module's documentation.
#[derive(Debug, Clone)]
pub struct Access {
    /// Where the stack listens: its own origin's port.
    pub listening: SocketAddr,
    pub admin_token: AdminToken,
    /// `--allowed-origin`, each as [`normalize_origin`] writes it.
    pub allowed_origins: Vec<String>,
}

/// A name that resolves to this machine wherever the page comes from.
fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
}

/// An IP address in a `Host` or an origin, brackets and all (`[::1]`).
fn ip_address(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// `Origin`'s way of writing an origin: lower case, no trailing slash.
pub fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `--allowed-origin`'s value: `null` or `SCHEME://HOST[:PORT]`, as a browser sends `Origin`.
pub fn parse_allowed_origin(text: &str) -> Result<String, String> {
    let origin = normalize_origin(text);
    if origin == "null" {
        return Ok(origin);
    }
    let uri: axum::http::Uri = origin
        .parse()
        .map_err(|error| format!("not an origin: {error}"))?;
    let whole = uri.scheme().is_some()
        && uri.authority().is_some()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none();
    if whole {
        Ok(origin)
    } else {
        Err("write an origin as a browser sends it: SCHEME://HOST[:PORT], or null".into())
    }
}

impl Access {
    /// The request's `Host` (or, in HTTP/2, its URI's authority) must be a loopback name or an
    /// IP address. Only a name can be rebound; an address is the one the browser connected to.
    pub fn check_host(&self, request: &Request) -> Result<(), Refusal> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Authority>().ok())
            .or_else(|| request.uri().authority().cloned());
        let allowed = host
            .as_ref()
            .is_some_and(|host| is_loopback_name(host.host()) || ip_address(host.host()).is_some());
        if allowed {
            return Ok(());
        }
        let named = host.map_or("none".to_owned(), |host| host.to_string());
        Err(Refusal::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "fanout-local answers Host localhost or an IP address, not {named} (a name \
                 could be another site's, rebound to this machine)"
            ),
        ))
    }

    /// A request with an `Origin` (a browser's) must come from this stack's own pages, at the
    /// address the request is sent to or at a loopback name on the stack's port, or from an
    /// `--allowed-origin`.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = normalize_origin(origin.to_str().unwrap_or("null"));
        if self.allowed_origins.contains(&origin) || self.is_own_origin(&origin, headers) {
            return Ok(());
        }
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "a page at {origin} may not use fanout-local: only its own pages may; start it \
                 with --allowed-origin {origin} to allow that one"
            ),
        ))
    }

    fn is_own_origin(&self, origin: &str, headers: &HeaderMap) -> bool {
        let Some(authority) = origin
            .strip_prefix("http://")
            .and_then(|rest| rest.parse::<Authority>().ok())
        else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(80);
        let loopback = is_loopback_name(authority.host())
            || ip_address(authority.host()).is_some_and(|ip| ip.is_loopback());
        if loopback && port == self.listening.port() {
            return true;
        }
        // The page and the request name the same host and port: same origin.
        headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<Authority>().ok())
            .is_some_and(|host| {
                host.host().eq_ignore_ascii_case(authority.host())
                    && host.port_u16().unwrap_or(80) == port
            })
    }

    /// `/admin`'s token.
    pub fn check_admin_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.admin_token.admits(headers.get(header::AUTHORIZATION)) {
            return Ok(());
        }
        Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "send Authorization: Bearer TOKEN, the admin token fanout-local printed at start \
                 (wsfanout --local reads it from {ADMIN_TOKEN_ENV} or --admin-token)"
            ),
        ))
    }
}

/// A POST's body must be declared JSON (parameters, as `; charset=utf-8`, aside).
pub fn check_json(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if method != Method::POST {
        return Ok(());
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    if media_type.is_some_and(|media| media.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "send Content-Type: application/json",
    ))
}

/// Every route: the `Host` and the `Origin`.
pub async fn refuse_foreign(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let checked = access
        .check_host(&request)
        .and_then(|()| access.check_origin(request.headers()));
    match checked {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::info!(status = refusal.status.as_u16(), reason = %refusal.message, "request refused");
            refusal.into_response()
        }
    }
}

/// `/admin`'s routes: the token.
pub async fn require_admin_token(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    match access.check_admin_token(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The routes that take JSON: a POST says it is.
pub async fn require_json(request: Request, next: Next) -> Response {
    match check_json(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn access(allowed: &[&str]) -> Access {
        Access {
            listening: "127.0.0.1:8080".parse().unwrap(),
            admin_token: AdminToken::parse("a-token-of-16-chars").unwrap(),
            allowed_origins: allowed
                .iter()
                .map(|o| parse_allowed_origin(o).unwrap())
                .collect(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect()
    }

    fn with_host(host: Option<&str>) -> Request {
        let mut request = Request::builder().uri("/admin/dlq");
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        request.body(Body::empty()).unwrap()
    }

    #[test]
    fn hosts_are_loopback_names_or_addresses() {
        let access = access(&[]);
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:9",
            "192.168.1.20:8080",
        ] {
            assert!(access.check_host(&with_host(Some(host))).is_ok(), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example:8080",
            "127.0.0.1.nip.io",
            "",
        ] {
            let refused = access.check_host(&with_host(Some(host))).unwrap_err();
            assert_eq!(refused.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        }
        assert!(access.check_host(&with_host(None)).is_err());
    }

    #[test]
    fn origins_are_the_stacks_own_or_allowed() {
        let access = access(&["http://LOCALHOST:3000/"]);
        let host = ("host", "127.0.0.1:8080");
        for origin in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "http://localhost:3000",
        ] {
            let sent = headers(&[host, ("origin", origin)]);
            assert!(access.check_origin(&sent).is_ok(), "{origin}");
        }
        assert!(access.check_origin(&headers(&[host])).is_ok(), "no Origin");
        // The page at the address the request names, whatever it is (a LAN address).
        let lan = headers(&[
            ("host", "192.168.1.20:8080"),
            ("origin", "http://192.168.1.20:8080"),
        ]);
        assert!(access.check_origin(&lan).is_ok());
        for origin in [
            "https://evil.example",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "http://localhost:3001",
            "http://192.168.1.20:8080",
            "null",
        ] {
            let refused = access
                .check_origin(&headers(&[host, ("origin", origin)]))
                .unwrap_err();
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{origin}");
            assert!(refused.message.contains("--allowed-origin"), "{refused:?}");
        }
    }

    #[test]
    fn allowed_origins_are_written_as_browsers_send_them() {
        assert_eq!(
            parse_allowed_origin("HTTP://Localhost:3000/").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(parse_allowed_origin("null").unwrap(), "null");
        for bad in ["localhost:3000", "http://a/b", "http://a/?x=1", "*", ""] {
            assert!(parse_allowed_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_admin_token_is_a_bearer_token_and_long_enough() {
        let token = AdminToken::parse("a-token-of-16-chars").unwrap();
        let admits = |value: &str| token.admits(Some(&HeaderValue::from_str(value).unwrap()));
        assert!(admits("Bearer a-token-of-16-chars"));
        assert!(admits("bearer a-token-of-16-chars"));
        for refused in [
            "a-token-of-16-chars",
            "Basic a-token-of-16-chars",
            "Bearer a-token-of-16-chars-and-more",
            "Bearer a-token-of-16-char",
            "Bearer ",
        ] {
            assert!(!admits(refused), "{refused}");
        }
        assert!(!token.admits(None));
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse("sixteen chars here").is_err(), "a space");
        let random = AdminToken::random();
        assert_eq!(random.as_str().len(), 64);
        assert_ne!(random, AdminToken::random());
        assert_eq!(format!("{random:?}"), "AdminToken(..)");
    }

    #[test]
    fn posts_are_json_and_other_methods_need_not_be() {
        let json = headers(&[("content-type", "Application/JSON; charset=utf-8")]);
        assert!(check_json(&Method::POST, &json).is_ok());
        assert!(check_json(&Method::GET, &HeaderMap::new()).is_ok());
        for sent in ["text/plain", "application/jsonx", "multipart/form-data"] {
            let refused = check_json(&Method::POST, &headers(&[("content-type", sent)]));
            assert_eq!(
                refused.unwrap_err().status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{sent}"
            );
        }
        assert!(check_json(&Method::POST, &HeaderMap::new()).is_err());
    }
}
