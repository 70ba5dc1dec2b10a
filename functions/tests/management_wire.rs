//! The management API's two gateways on the wire: the signed one the worker runs and the SDK's
//! client it replaced must send the same request (path, content type, body, a valid SigV4
//! signature) and read API Gateway's answers the same way. Against a small server that answers
//! like API Gateway (moto never answers 410) and against moto.

use aws_credential_types::Credentials;
use bytes::Bytes;
use fanout::adapters::management::{ManagementGateway, SdkManagementGateway};
use fanout::auth::sigv4;
use fanout::ports::{ConnectionGateway, PostError};
use fanout_test_support::moto::moto_endpoint;
use fanout_test_support::net::free_port;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const REGION: &str = "eu-west-1";

/// Credentials with a session token, as Lambda's are, so its signing is covered too.
fn credentials() -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("session-token-example".into()),
        None,
        "test",
    )
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(credentials())
        .http_client(fanout::adapters::aws::https_client())
        .load()
        .await
}

/// Both gateways, by name.
async fn gateways() -> Vec<(&'static str, Box<dyn ConnectionGateway>)> {
    let sdk = sdk_config().await;
    vec![
        ("signed", Box::new(ManagementGateway::new(&sdk).unwrap())),
        ("sdk", Box::new(SdkManagementGateway::new(&sdk))),
    ]
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers like API Gateway's management API, by connection id: `gone` 410, `busy` 429,
/// `broken` 500, `forbidden` 403, `huge` 413, anything else 200. Records every request.
async fn fake_api_gateway() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/dev", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let record = record.clone();
            tokio::spawn(async move {
                let mut socket = BufReader::new(socket);
                // Keep-alive: serve requests until the client closes.
                loop {
                    let mut request_line = String::new();
                    if socket.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut header = String::new();
                        socket.read_line(&mut header).await.unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
                    }
                    let length = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; length];
                    socket.read_exact(&mut body).await.unwrap();
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap().to_owned();
                    let path = parts.next().unwrap().to_owned();
                    let id = path.rsplit('/').next().unwrap().to_owned();
                    record.lock().unwrap().push(Seen {
                        method,
                        path,
                        headers,
                        body,
                    });
                    let (status, error_type) = match id.as_str() {
                        "gone" => ("410 Gone", Some("GoneException")),
                        "busy" => ("429 Too Many Requests", Some("LimitExceededException")),
                        "broken" => (
                            "500 Internal Server Error",
                            Some("InternalServerErrorException"),
                        ),
                        "forbidden" => ("403 Forbidden", Some("ForbiddenException")),
                        "huge" => ("413 Payload Too Large", Some("PayloadTooLargeException")),
                        _ => ("200 OK", None),
                    };
                    let response = match error_type {
                        Some(kind) => {
                            let body = format!("{{\"message\":\"{kind} says no\"}}");
                            format!(
                                "HTTP/1.1 {status}\r\nx-amzn-ErrorType: {kind}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                        None => format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n"),
                    };
                    socket
                        .get_mut()
                        .write_all(response.as_bytes())
                        .await
                        .unwrap();
                }
            });
        }
    });
    (endpoint, seen)
}

/// What API Gateway does with a request: recompute the SigV4 signature over the headers the
/// request says it signed, as they arrived, and compare. Returns the signed header names.
fn verify_signature(seen: &Seen) -> Result<Vec<String>, String> {
    let credentials = credentials();
    let received = sigv4::Received {
        method: &seen.method,
        path_and_query: &seen.path,
        headers: &seen.headers,
        body: &seen.body,
    };
    let amz_date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    // Checked at the time it was signed: the test's clock is the request's own.
    let signed_at = sigv4::parse_amz_date(amz_date)?;
    let signer = sigv4::verify(
        &received,
        credentials.access_key_id(),
        credentials.secret_access_key(),
        signed_at,
    )?;
    if seen.header("x-amz-security-token") != Some("session-token-example") {
        return Err("the session token was not sent".into());
    }
    Ok(signer.signed_headers)
}

#[tokio::test]
async fn both_gateways_send_the_same_request_with_a_valid_signature() {
    let (endpoint, seen) = fake_api_gateway().await;
    // API Gateway's ids end in `=`; a hostile one must stay one path segment. Ids with dots
    // take the general signer's path (it normalizes dot segments as SigV4 says).
    let ids = ["Dx4sXe1ZoAMCJvw=", "a b/../c+é?x=1#y", "a.b", ".."];
    let frame = Bytes::from_static(b"{\"type\":\"message\",\"data\":\"\xc3\xa9\"}");
    for (_, gateway) in gateways().await {
        for id in ids {
            gateway.post(&endpoint, id, frame.clone()).await.unwrap();
        }
    }
    let seen = seen.lock().unwrap().clone();
    let (signed, sdk) = seen.split_at(ids.len());
    for (ours, theirs) in signed.iter().zip(sdk) {
        assert_eq!(ours.method, "POST");
        assert_eq!(ours.method, theirs.method);
        assert_eq!(ours.path, theirs.path);
        assert_eq!(ours.body, frame.as_ref());
        assert_eq!(ours.body, theirs.body);
        for header in ["content-type", "content-length", "host"] {
            assert_eq!(ours.header(header), theirs.header(header), "{header}");
        }
        let ours_signed = verify_signature(ours).unwrap();
        verify_signature(theirs).unwrap();
        for header in [
            "content-length",
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
        ] {
            assert!(ours_signed.iter().any(|h| h == header), "{header} unsigned");
        }
        let scope = |s: &Seen| {
            let auth = s.header("authorization").unwrap();
            let credential = auth.split(", ").next().unwrap();
            credential.split('/').skip(2).collect::<Vec<_>>().join("/")
        };
        assert_eq!(scope(ours), format!("{REGION}/execute-api/aws4_request"));
    }
    assert_eq!(signed[0].path, "/dev/@connections/Dx4sXe1ZoAMCJvw%3D");
    assert_eq!(
        signed[1].path,
        "/dev/@connections/a%20b%2F..%2Fc%2B%C3%A9%3Fx%3D1%23y"
    );
}

#[tokio::test]
async fn both_gateways_map_api_gateway_answers_alike() {
    for (name, gateway) in gateways().await {
        let (endpoint, seen) = fake_api_gateway().await;
        let post = |id: &'static str| gateway.post(&endpoint, id, Bytes::from_static(b"x"));

        assert_eq!(post("gone").await, Err(PostError::Gone), "{name}");
        assert_eq!(post("busy").await, Err(PostError::Throttled), "{name}");
        assert_eq!(post("broken").await, Err(PostError::Server(500)), "{name}");
        match post("forbidden").await {
            Err(PostError::Forbidden(reason)) => {
                assert!(reason.contains("ForbiddenException"), "{name}: {reason}")
            }
            other => panic!("{name}: {other:?}"),
        }
        match post("huge").await {
            Err(PostError::Rejected {
                status: 413,
                reason,
            }) => {
                assert!(
                    reason.contains("PayloadTooLargeException"),
                    "{name}: {reason}"
                )
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(post("fine").await, Ok(()), "{name}");
        assert_eq!(
            seen.lock().unwrap().len(),
            6,
            "{name}: one call each, no retries of its own"
        );

        let closed = format!("http://127.0.0.1:{}/dev", free_port());
        let error = gateway
            .post(&closed, "x", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, PostError::Transport(_)),
            "{name}: {error:?}"
        );
    }
}

#[tokio::test]
async fn moto_accepts_both_gateways_posts() {
    // moto serves the management API at its root (API Gateway's custom-domain form).
    let endpoint = moto_endpoint();
    for (name, gateway) in gateways().await {
        gateway
            .post(&endpoint, "Dx4sXe1ZoAMCJvw=", Bytes::from_static(b"hello"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[tokio::test]
async fn without_a_region_or_credentials_the_signed_gateway_refuses_to_post() {
    let (endpoint, seen) = fake_api_gateway().await;
    let no_region = aws_config::SdkConfig::builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials()),
        )
        .build();
    let no_credentials = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(REGION))
        .build();
    for (config, expected) in [(no_region, "region"), (no_credentials, "credentials")] {
        let gateway = ManagementGateway::new(&config).unwrap();
        match gateway
            .post(&endpoint, "id", Bytes::from_static(b"x"))
            .await
        {
            Err(PostError::Forbidden(reason)) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing unsigned is sent");
}
