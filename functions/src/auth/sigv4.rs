//! SigV4 checked as API Gateway checks an IAM-authorized request: the signature recomputed over
//! the headers the request says it signed, as they arrived, with the caller's secret. The
//! deployed publish route leaves this to API Gateway (`AWS_IAM`); the local stack and the tests
//! use it to hold requests to the same rule.

use aws_credential_types::Credentials;
use aws_sdk_apigatewaymanagement::primitives::{DateTime, DateTimeFormat};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// How far a request's `x-amz-date` may be from the receiver's clock: AWS's window.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// What a received request carries that its signature covers.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path and query as sent.
    pub path_and_query: &'a str,
    /// Header names in lower case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Received<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Who signed, once the signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub access_key_id: String,
    pub region: String,
    pub service: String,
    /// The headers the signature covers.
    pub signed_headers: Vec<String>,
}

/// Checks `request`'s SigV4 signature with `secret`, the secret of the access key it names,
/// at `now`. The message says what is wrong, for the caller's 403.
pub fn verify(
    request: &Received<'_>,
    expected_access_key_id: &str,
    secret: &str,
    now: SystemTime,
) -> Result<Signer, String> {
    let authorization = request
        .header("authorization")
        .ok_or("missing Authorization header: sign the request with SigV4")?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .ok_or(format!("the Authorization header has no {name}"))
    };
    let scope: Vec<&str> = field("Credential")?.split('/').collect();
    let [access_key_id, _date, region, service, "aws4_request"] = scope[..] else {
        return Err(
            "the Authorization header's Credential is not KEY/DATE/REGION/SERVICE/aws4_request"
                .into(),
        );
    };
    if access_key_id != expected_access_key_id {
        return Err(format!("the access key {access_key_id:?} is not allowed"));
    }
    let signed: Vec<String> = field("SignedHeaders")?
        .split(';')
        .map(str::to_owned)
        .collect();
    if !signed.iter().any(|name| name == "host") {
        return Err("the signature does not cover the host header".into());
    }
    let amz_date = request
        .header("x-amz-date")
        .ok_or("missing x-amz-date header")?;
    let time = parse_amz_date(amz_date)?;
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_CLOCK_SKEW {
        return Err(format!(
            "the request was signed at {amz_date}, more than {} minutes from now",
            MAX_CLOCK_SKEW.as_secs() / 60
        ));
    }
    // The signer adds x-amz-date and the session token itself, from the time and identity.
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|name| !matches!(name.as_str(), "x-amz-date" | "x-amz-security-token"))
        .map(|name| {
            let value = request
                .header(name)
                .ok_or(format!("the signed header {name} is missing"))?;
            Ok((name.as_str(), value))
        })
        .collect::<Result<_, String>>()?;
    let host = request.header("host").ok_or("missing host header")?;
    let token = request.header("x-amz-security-token").map(str::to_owned);
    let identity: Identity =
        Credentials::new(access_key_id, secret, token, None, "received").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = format!("http://{host}{}", request.path_and_query);
    let signable = SignableRequest::new(
        request.method,
        uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| format!("the request cannot be canonicalized: {e}"))?;
    let expected = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .signature()
        .to_owned();
    if field("Signature")? != expected {
        return Err(
            "the signature does not match: check the secret key and the signing method".into(),
        );
    }
    Ok(Signer {
        access_key_id: access_key_id.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed,
    })
}

/// `20261129T143000Z` as a time.
pub fn parse_amz_date(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("x-amz-date {text:?} is not YYYYMMDDTHHMMSSZ");
    if text.len() != 16 || !text.is_ascii() {
        return Err(bad());
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let time = DateTime::from_str(&iso, DateTimeFormat::DateTime).map_err(|_| bad())?;
    SystemTime::try_from(time).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs a request as a backend's SDK would.
    fn signed(secret: &str, time: SystemTime, body: &[u8]) -> Vec<(String, String)> {
        let identity: Identity = Credentials::new("AKID", secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("execute-api")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let mut headers = vec![
            ("host".to_owned(), "api.example:8080".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ];
        let request = SignableRequest::new(
            "POST",
            "http://api.example:8080/publish",
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_ascii_lowercase(), value.to_owned()));
        }
        headers
    }

    fn check(headers: &[(String, String)], body: &[u8], now: SystemTime) -> Result<Signer, String> {
        let request = Received {
            method: "POST",
            path_and_query: "/publish",
            headers,
            body,
        };
        verify(&request, "AKID", "secret", now)
    }

    #[test]
    fn a_request_signed_with_the_secret_passes_and_any_change_fails() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let body = br#"{"room":"a","data":1}"#;
        let headers = signed("secret", now, body);
        let signer = check(&headers, body, now + Duration::from_secs(60)).unwrap();
        assert_eq!(
            (signer.region.as_str(), signer.service.as_str()),
            ("eu-west-1", "execute-api")
        );
        assert!(signer.signed_headers.contains(&"content-type".to_owned()));

        let says = |result: Result<Signer, String>, what: &str| {
            let error = result.unwrap_err();
            assert!(error.contains(what), "{what}: {error}");
        };
        says(check(&headers, b"{}", now), "does not match");
        says(
            check(&signed("other", now, body), body, now),
            "does not match",
        );
        says(
            check(&headers, body, now + Duration::from_secs(16 * 60)),
            "minutes",
        );
        says(check(&[], body, now), "missing Authorization");
        let mut changed = headers.clone();
        changed[1].1 = "text/plain".into();
        says(check(&changed, body, now), "does not match");
        let renamed: Vec<_> = headers
            .iter()
            .map(|(n, v)| (n.clone(), v.replace("AKID/", "OTHER/")))
            .collect();
        says(check(&renamed, body, now), "not allowed");
        let undated: Vec<_> = headers
            .iter()
            .filter(|(n, _)| n != "x-amz-date")
            .cloned()
            .collect();
        says(check(&undated, body, now), "x-amz-date");
    }

    #[test]
    fn amz_dates_are_read_in_utc() {
        assert_eq!(
            parse_amz_date("20261129T143000Z").unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_962_600)
        );
        assert!(parse_amz_date("2026-11-29").is_err());
        assert!(parse_amz_date("20261329T143000Z").is_err());
    }
}
