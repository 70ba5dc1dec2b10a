//! A backend's announcement through the publish endpoint (`POST /publish`, IAM-authorized):
//! the request body, checked before anything is sent, and the signed request that sends it,
//! retried under its idempotency key until it is answered.

use crate::backend::OpsError;
use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use fanout::domain::frame::MAX_FRAME_BYTES;
use fanout::domain::{IdempotencyKey, Published, Target};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::value::RawValue;
use std::time::{Duration, SystemTime};

/// The publish request for `data` (JSON text) to `target`, under `key`. Refused, before
/// anything is sent, when `data` is not JSON or is `null` (as the endpoint refuses it), or
/// when the delivered frame could not fit API Gateway's 128 KB.
pub fn request_body(target: &Target, data: &str, key: &IdempotencyKey) -> Result<String, OpsError> {
    let payload = RawValue::from_string(data.trim().to_owned())
        .map_err(|error| OpsError::Usage(format!("--data is not JSON: {error}")))?;
    if payload.get() == "null" {
        return Err(OpsError::Usage(
            "--data is null: a message needs data (sendmessage refuses null too)".into(),
        ));
    }
    // The frame's envelope (id, room, time, offset, epoch) takes well under 1 KB.
    if payload.get().len() > MAX_FRAME_BYTES - 1024 {
        return Err(OpsError::Usage(format!(
            "--data is {} bytes; a delivered frame holds at most {MAX_FRAME_BYTES}: send less --data",
            payload.get().len()
        )));
    }
    // `data` goes as it was given: the endpoint compares a repeated key's message as text.
    let to = match target {
        Target::Room(room) => format!("\"room\":{}", serde_json::Value::from(room.as_str())),
        _ => "\"all\":true".to_owned(),
    };
    Ok(format!(
        "{{{to},\"data\":{},\"idempotencyKey\":{}}}",
        payload.get(),
        serde_json::Value::from(key.as_str())
    ))
}

/// How long a publish is tried again, under its key, while the answers say to: past the
/// endpoint's lease on a key (35 s), so that a try that died mid-publish is taken over and
/// answered. Every try after the first answers the first's answer.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// The longest wait between two tries, whatever `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How long one try may take: the HTTP API waits at most 30 s for the function.
const TRY_TIMEOUT: Duration = Duration::from_secs(35);
/// Enough of an answer: a publish answer is a line of JSON.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends `body` to the publish endpoint at `url`, signed with SigV4 (`execute-api`, `region`)
/// by `credentials`, or else the SDK's credentials chain, for the region in the URL's host
/// (`{api}.execute-api.{region}.amazonaws.com`), else the SDK's. An answer that says to try
/// again (409 in progress, 429, 5xx, no answer) is tried again for [`RETRY_FOR`].
pub async fn send(
    sdk: &SdkConfig,
    credentials: Option<&Credentials>,
    url: &str,
    body: String,
) -> Result<Published, OpsError> {
    let credentials = match credentials {
        Some(credentials) => credentials.clone(),
        None => sdk
            .credentials_provider()
            .ok_or_else(|| OpsError::Usage("no AWS credentials to sign the publish with".into()))?
            .provide_credentials()
            .await
            .map_err(|error| {
                OpsError::Usage(format!(
                    "no AWS credentials to sign the publish with: {}",
                    fanout::adapters::aws::describe(&error)
                ))
            })?,
    };
    let region = region_of_url(url)
        .or_else(|| sdk.region().map(|region| region.to_string()))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let region = region.as_str();
    let client = fanout::adapters::aws::hyper_https_client::<Full<Bytes>>(
        Duration::from_secs(5),
        Duration::from_secs(30),
    )
    .map_err(|error| OpsError::Unavailable(format!("no root certificates: {error}")))?;
    let mut last = None;
    let give_up = tokio::time::Instant::now() + RETRY_FOR;
    for attempt in 0_u32.. {
        let request = signed(url, &body, &credentials, region)?;
        let outcome = tokio::time::timeout(TRY_TIMEOUT, async {
            let response = client.request(request).await.map_err(|error| {
                OpsError::Unavailable(format!(
                    "cannot reach {url}: {}",
                    fanout::adapters::aws::describe(&error)
                ))
            })?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|error| OpsError::Unavailable(format!("reading {url}'s answer: {error}")))?
                .to_bytes();
            Ok::<_, OpsError>((status, retry_after, bytes))
        })
        .await
        .unwrap_or_else(|_| {
            Err(OpsError::Unavailable(format!(
                "{url} did not answer within {TRY_TIMEOUT:?}"
            )))
        });
        let wait = match outcome {
            Ok((status, _, bytes)) if status.is_success() => {
                return serde_json::from_slice(&bytes).map_err(|error| {
                    OpsError::Unavailable(format!(
                        "{url} answered {status} with no publish answer: {error}"
                    ))
                });
            }
            Ok((status, retry_after, bytes)) => {
                let said = String::from_utf8_lossy(&bytes).trim().to_owned();
                let message = format!("{url} answered {status}: {said}");
                let again = status == StatusCode::CONFLICT
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error();
                if !again {
                    return Err(OpsError::Usage(message));
                }
                last = Some(OpsError::Unavailable(message));
                retry_after
            }
            Err(error) => {
                last = Some(error);
                None
            }
        };
        let backoff = Duration::from_millis(500_u64 << attempt.min(5));
        let next = tokio::time::Instant::now() + wait.unwrap_or(backoff).min(MAX_WAIT);
        if next > give_up {
            break;
        }
        tokio::time::sleep_until(next).await;
    }
    Err(last.unwrap_or_else(|| OpsError::Unavailable(format!("{url}: no answer"))))
}

/// The region of an API Gateway URL: `https://{api}.execute-api.{region}.amazonaws.com/...`.
fn region_of_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let mut labels = host.split('.');
    let (_api, service, region) = (labels.next()?, labels.next()?, labels.next()?);
    (service == "execute-api").then(|| region.to_owned())
}

/// `POST url` with `body`, signed.
fn signed(
    url: &str,
    body: &str,
    credentials: &Credentials,
    region: &str,
) -> Result<Request<Full<Bytes>>, OpsError> {
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("execute-api")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| OpsError::Usage(format!("cannot sign: {error}")))?
        .into();
    let uri: http::Uri = url
        .parse()
        .map_err(|error| OpsError::Usage(format!("the publish URL {url:?}: {error}")))?;
    let host = uri
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .ok_or_else(|| OpsError::Usage(format!("the publish URL {url:?} has no host")))?;
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|error| OpsError::Usage(format!("cannot sign a request to {url}: {error}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|error| OpsError::Usage(format!("cannot sign: {error}")))?
        .into_parts();
    let mut request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .header("host", host)
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|error| OpsError::Usage(error.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// `room NAME` or `all`, for people.
pub fn describe_target(target: &Target) -> String {
    match target {
        Target::Room(room) => format!("room {room}"),
        Target::All => "all".into(),
        Target::Connections { ids, .. } => format!("{} connections", ids.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fanout::domain::RoomName;

    fn key() -> IdempotencyKey {
        IdempotencyKey::parse("k-1").unwrap()
    }

    #[test]
    fn the_body_names_the_room_or_all_and_carries_data_and_key() {
        let room = Target::Room(RoomName::parse("ops").unwrap());
        let body: serde_json::Value =
            serde_json::from_str(&request_body(&room, r#" {"text":"at 5"} "#, &key()).unwrap())
                .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"room":"ops","data":{"text":"at 5"},"idempotencyKey":"k-1"})
        );
        let all: serde_json::Value =
            serde_json::from_str(&request_body(&Target::All, "1", &key()).unwrap()).unwrap();
        assert_eq!(
            all,
            serde_json::json!({"all":true,"data":1,"idempotencyKey":"k-1"})
        );
    }

    #[test]
    fn the_data_goes_as_given_and_the_region_comes_from_the_url() {
        let body = request_body(
            &Target::All,
            r#"{"b":1, "a":12345678901234567890123}"#,
            &key(),
        )
        .unwrap();
        assert!(
            body.contains(r#""data":{"b":1, "a":12345678901234567890123}"#),
            "{body}"
        );
        assert_eq!(
            region_of_url("https://abc123.execute-api.eu-west-1.amazonaws.com/publish").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of_url("http://127.0.0.1:8080/publish"), None);
    }

    #[test]
    fn bad_data_is_refused_before_anything_is_sent() {
        for (data, says) in [
            ("", "not JSON"),
            ("{", "not JSON"),
            ("null", "null"),
            ("hello", "not JSON"),
        ] {
            let error = request_body(&Target::All, data, &key())
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{data}: {error}");
        }
        let huge = format!("\"{}\"", "x".repeat(MAX_FRAME_BYTES));
        let error = request_body(&Target::All, &huge, &key())
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most"), "{error}");
    }
}
