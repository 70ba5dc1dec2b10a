//! `PostToConnection` signed with SigV4 (see `sigv4`) and sent over one hyper + rustls pool.
//!
//! The request is the SDK's, byte for byte where API Gateway looks: the same path (the id
//! escaped as an HTTP label), `content-type: application/octet-stream`, the frame as the body,
//! and a SigV4 signature for `execute-api` with the SDK's settings (double-encoded path, no
//! payload-hash header, the session token signed). `functions/tests/management_wire.rs` holds
//! both gateways to that, and checks each signature as API Gateway would.

use super::credentials::CredentialsCache;
use super::sigv4::{OCTET_STREAM, SIGNING_NAME, Signer};
use super::wire::{classify, connection_url};
use crate::adapters::aws::{describe, hyper_https_client};
use crate::ports::{ConnectionGateway, PostError};
use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::{Duration, SystemTime};

/// Enough of an error body for its message; API Gateway's are a line of JSON.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// A connection that cannot be made in this long will not be made in time for the post.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// API Gateway closes idle connections after about a minute: drop ours before it does, so a
/// post rarely lands on a socket the far side is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Posts signed requests over a pool of keep-alive connections (one per post in flight).
/// The engine bounds each post and does its own retries, so there are none here.
pub struct ManagementGateway {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    credentials: CredentialsCache,
    /// `None` when the configuration names no region: every post is then refused as forbidden,
    /// as AWS would refuse a request signed for the wrong one.
    signer: Option<Signer>,
    user_agent: HeaderValue,
}

impl ManagementGateway {
    /// Region and credentials from the SDK's configuration (the provider chain, refreshed
    /// before expiry); roots of trust from the system's store, as the SDK's client has them
    /// (`SSL_CERT_FILE` overrides it). Fails only if that store is empty: no post could be
    /// verified, and a worker should say so when it starts rather than with every job.
    pub fn new(sdk: &aws_config::SdkConfig) -> Result<Self, String> {
        let client = hyper_https_client(CONNECT_TIMEOUT, POOL_IDLE_TIMEOUT)
            .map_err(|e| format!("no root certificates to verify the management API with: {e}"))?;
        Ok(Self {
            client,
            credentials: CredentialsCache::new(sdk.credentials_provider()),
            signer: sdk.region().map(|region| Signer::new(region.to_string())),
            user_agent: HeaderValue::from_static(concat!("wsfanout/", env!("CARGO_PKG_VERSION"))),
        })
    }

    /// The signed request, or why it cannot be signed (a missing region or credentials: no
    /// connection could take it, so the job stops as for a 403).
    async fn signed_request(
        &self,
        url: String,
        frame: Bytes,
    ) -> Result<Request<Full<Bytes>>, PostError> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            PostError::Forbidden("no AWS region is configured to sign for".into())
        })?;
        let identity = self
            .credentials
            .identity()
            .await
            .map_err(PostError::Forbidden)?;
        let uri = Uri::try_from(url.as_str())
            .map_err(|e| rejected(format!("the connection URL {url:?} is invalid: {e}")))?;
        let mut request = Request::post(uri.clone())
            .header(CONTENT_TYPE, OCTET_STREAM)
            .header(CONTENT_LENGTH, frame.len())
            .header(USER_AGENT, self.user_agent.clone())
            .body(Full::new(frame.clone()))
            .map_err(|e| rejected(format!("the connection URL {url:?} is invalid: {e}")))?;
        let now = SystemTime::now();
        let lean = identity.data::<Credentials>().and_then(|credentials| {
            let signature =
                signer.sign(credentials, now, &host_header(&uri)?, uri.path(), &frame)?;
            Some((signature, credentials.session_token()))
        });
        let headers = request.headers_mut();
        match lean {
            Some((signature, token)) => {
                let value = |text: &str| {
                    HeaderValue::from_str(text)
                        .map_err(|e| PostError::Forbidden(format!("cannot sign: {e}")))
                };
                headers.insert("x-amz-date", value(&signature.amz_date)?);
                headers.insert(AUTHORIZATION, value(&signature.authorization)?);
                if let Some(token) = token {
                    headers.insert("x-amz-security-token", value(token)?);
                }
            }
            // A path to normalize first: the general signer does it.
            None => general_sign(&mut request, signer.region(), &identity, now, &url, &frame)?,
        }
        Ok(request)
    }
}

/// The `host` SigV4 signs: the URL's authority, without a port that is its scheme's default.
fn host_header(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?;
    let default_port = matches!(
        (uri.scheme_str(), authority.port_u16()),
        (Some("http"), Some(80)) | (Some("https"), Some(443))
    );
    Some(if default_port {
        authority.host().to_owned()
    } else {
        authority.as_str().to_owned()
    })
}

/// Signs `request` with `aws_sigv4`'s general signer.
fn general_sign(
    request: &mut Request<Full<Bytes>>,
    region: &str,
    identity: &aws_smithy_runtime_api::client::identity::Identity,
    now: SystemTime,
    url: &str,
    frame: &[u8],
) -> Result<(), PostError> {
    let content_length = frame.len().to_string();
    let headers = [
        (CONTENT_TYPE.as_str(), OCTET_STREAM),
        (CONTENT_LENGTH.as_str(), content_length.as_str()),
    ];
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| PostError::Forbidden(format!("cannot sign: {e}")))?
        .into();
    let signable =
        SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(frame))
            .map_err(|e| rejected(format!("the connection URL {url:?} cannot be signed: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| PostError::Forbidden(format!("cannot sign: {e}")))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// A request that cannot be made is refused like a 400: retrying will not help.
fn rejected(reason: String) -> PostError {
    PostError::Rejected {
        status: 400,
        reason,
    }
}

/// `ErrorType: message` from API Gateway's error answer, as far as it has one.
fn error_reason(status: u16, error_type: Option<&str>, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(alias = "Message")]
        message: Option<String>,
    }
    // `x-amzn-ErrorType` may carry a `:`-separated suffix (a URL); the name comes first.
    let kind = error_type
        .and_then(|t| t.split(':').next())
        .filter(|t| !t.is_empty());
    let message = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|body| body.message)
        .or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_owned())
        });
    match (kind, message) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(kind), None) => kind.to_owned(),
        (None, Some(message)) => format!("HTTP {status}: {message}"),
        (None, None) => format!("HTTP {status}"),
    }
}

#[async_trait]
impl ConnectionGateway for ManagementGateway {
    async fn post(
        &self,
        endpoint: &str,
        connection_id: &str,
        frame: Bytes,
    ) -> Result<(), PostError> {
        let request = self
            .signed_request(connection_url(endpoint, connection_id), frame)
            .await?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| PostError::Transport(describe(&e)))?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read to the end, so the connection goes back to the pool.
        let body = Limited::new(response.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|body| body.to_bytes());
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = body.unwrap_or_default();
        Err(classify(status, || {
            error_reason(status, error_type.as_deref(), &body)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::error_reason;

    #[test]
    fn an_error_reason_names_the_type_and_the_message() {
        assert_eq!(
            error_reason(
                403,
                Some("ForbiddenException:http://internal.amazon.com/"),
                br#"{"message":"Forbidden"}"#
            ),
            "ForbiddenException: Forbidden"
        );
        assert_eq!(
            error_reason(413, None, br#"{"Message":"too big"}"#),
            "HTTP 413: too big"
        );
        assert_eq!(
            error_reason(400, None, b" plain text \n"),
            "HTTP 400: plain text"
        );
        assert_eq!(
            error_reason(400, Some("BadRequestException"), b""),
            "BadRequestException"
        );
        assert_eq!(error_reason(404, None, b""), "HTTP 404");
    }
}
