//! The browser page at `/`: pick a room, send messages, see each one with its sender and its
//! latency, the connection's state, reconnection after a drop, and a token field for a server
//! that asks for one. Plain HTML, CSS and JavaScript from `local/static/`, compiled into the
//! binary: no build step, and the page loads nothing from anywhere but this server (its
//! Content-Security-Policy says so to the browser).
//!
//! `GET /` with a WebSocket upgrade is still the emulator's `$connect`, as `GET /{stage}` is.

use crate::app::App;
use crate::emulator;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const CLIENT_JS: &str = include_str!("../static/fanout-client.js");
const APP_CSS: &str = include_str!("../static/app.css");

/// Where the page's script and style are served.
pub const SCRIPT_PATH: &str = "/app.js";
/// The reference client's rule (`local/static/fanout-client.js`), which the page uses.
pub const CLIENT_PATH: &str = "/fanout-client.js";
pub const STYLE_PATH: &str = "/app.css";

/// Only this server's own script, style and WebSocket: nothing inline, nothing from elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page with the stage it connects to (`ws://HOST/{stage}?room=NAME`). Stage names are
/// `[A-Za-z0-9_-]` (`--stage` refuses anything else), so they need no escaping in HTML.
pub fn index_html(stage: &str) -> String {
    INDEX_HTML.replace("__STAGE__", stage)
}

/// `GET /`: the WebSocket API when the request asks for an upgrade, the page otherwise.
pub async fn root(
    state: State<Arc<App>>,
    source: ConnectInfo<SocketAddr>,
    query: RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => emulator::upgrade(state, source, query, headers, upgrade).await,
        // A malformed WebSocket handshake gets the reason, not the page.
        Err(rejection) if headers.contains_key(header::UPGRADE) => rejection.into_response(),
        Err(_) => {
            let State(app) = state;
            asset("text/html; charset=utf-8", index_html(&app.stage))
        }
    }
}

/// `GET /app.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /fanout-client.js`.
pub async fn client() -> Response {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

/// `GET /app.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: impl Into<String>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.into(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_stage_and_loads_only_its_own_assets() {
        let html = index_html("prod_1");
        assert!(html.contains(r#"<meta name="fanout-stage" content="prod_1">"#));
        assert!(!html.contains("__STAGE__"));
        assert!(html.contains(&format!(r#"src="{SCRIPT_PATH}""#)));
        assert!(html.contains(&format!(r#"src="{CLIENT_PATH}""#)));
        assert!(html.contains(&format!(r#"href="{STYLE_PATH}""#)));
        for asset in [INDEX_HTML, APP_JS, CLIENT_JS, APP_CSS] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
            assert!(!asset.contains("<script>") && !asset.contains("style=\""));
        }
        // Text from the server goes into the page as text.
        for script in [APP_JS, CLIENT_JS] {
            assert!(!script.contains("innerHTML") && !script.contains("insertAdjacentHTML"));
        }
    }
}
