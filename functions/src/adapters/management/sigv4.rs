//! SigV4 for the one request the worker sends in bulk, `POST {stage}/@connections/{id}`, with
//! the signing key kept for the day instead of derived again for every post.
//!
//! `aws_sigv4::http_request::sign` is general: it canonicalizes any request, and derives the
//! signing key (four HMACs) each time. For this request it cost about a seventh of the worker's
//! CPU (docs/benchmarks.md). Here the canonical request has a fixed shape (the five headers the
//! request carries, no query), the signing key comes from `aws_sigv4`'s own
//! `generate_signing_key` once per day, region and credentials, and the signature from its
//! `calculate_signature`. A path that needs normalizing (dot or empty segments, which no
//! API Gateway id makes) is left to `aws_sigv4`'s general signer. The tests hold the result to
//! that signer's, byte for byte, over random ids, bodies, times and credentials.

use aws_credential_types::Credentials;
use aws_sdk_apigatewaymanagement::primitives::{DateTime, DateTimeFormat};
use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use aws_smithy_http::label::{EncodingStrategy, fmt_string};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// API Gateway's signing name for the management API.
pub(super) const SIGNING_NAME: &str = "execute-api";
/// The SDK's content type for a blob payload.
pub(super) const OCTET_STREAM: &str = "application/octet-stream";

/// The headers a signed post carries beyond its own.
pub(super) struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

pub(super) struct Signer {
    region: String,
    key: Mutex<Option<DayKey>>,
}

/// A signing key and what it was derived from.
struct DayKey {
    date: String,
    access_key_id: String,
    secret: String,
    key: Vec<u8>,
}

impl Signer {
    pub(super) fn new(region: String) -> Self {
        Self {
            region,
            key: Mutex::new(None),
        }
    }

    pub(super) fn region(&self) -> &str {
        &self.region
    }

    /// The signature of `POST host path` with `body` at `now`, or `None` if the path is one
    /// the general signer must normalize first. `path` is as sent (already escaped).
    pub(super) fn sign(
        &self,
        credentials: &Credentials,
        now: SystemTime,
        host: &str,
        path: &str,
        body: &[u8],
    ) -> Option<Signature> {
        if !path.starts_with('/') || path.contains("//") || path.contains('.') {
            return None;
        }
        let amz_date = amz_date(now);
        let date = &amz_date[..8];
        let token = credentials.session_token();
        let signed_headers = if token.is_some() {
            "content-length;content-type;host;x-amz-date;x-amz-security-token"
        } else {
            "content-length;content-type;host;x-amz-date"
        };
        // The path escaped again (SigV4's double encoding for every service but S3).
        let mut canonical = String::with_capacity(512);
        let _ = write!(
            canonical,
            "POST\n{}\n\ncontent-length:{}\ncontent-type:{OCTET_STREAM}\nhost:{host}\nx-amz-date:{amz_date}\n",
            fmt_string(path, EncodingStrategy::Greedy),
            body.len(),
        );
        if let Some(token) = token {
            // As sent, as the general signer signs it.
            let _ = writeln!(canonical, "x-amz-security-token:{token}");
        }
        let _ = write!(canonical, "\n{signed_headers}\n{}", sha256_hex(body));
        let scope = format!("{date}/{}/{SIGNING_NAME}/aws4_request", self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let signature = self.with_key(credentials, now, date, |key| {
            calculate_signature(key, string_to_sign.as_bytes())
        });
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );
        Some(Signature {
            amz_date,
            authorization,
        })
    }

    /// Runs `f` with the day's signing key, derived again when the day or the credentials
    /// changed.
    fn with_key<T>(
        &self,
        credentials: &Credentials,
        now: SystemTime,
        date: &str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let mut cached = self.key.lock().unwrap_or_else(|p| p.into_inner());
        let current = cached.as_ref().is_some_and(|key| {
            key.date == date
                && key.access_key_id == credentials.access_key_id()
                && key.secret == credentials.secret_access_key()
        });
        if !current {
            let key = generate_signing_key(
                credentials.secret_access_key(),
                now,
                &self.region,
                SIGNING_NAME,
            );
            *cached = Some(DayKey {
                date: date.to_owned(),
                access_key_id: credentials.access_key_id().to_owned(),
                secret: credentials.secret_access_key().to_owned(),
                key: key.as_ref().to_vec(),
            });
        }
        f(&cached.as_ref().expect("just set").key)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `20261129T143000Z`: the request's time to the second, in UTC.
fn amz_date(now: SystemTime) -> String {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let iso = DateTime::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX))
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_default();
    iso.chars().filter(|c| !matches!(c, '-' | ':')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    use proptest::prelude::*;
    use std::time::Duration;

    /// The Authorization header `aws_sigv4`'s general signer makes for the same request.
    fn reference(
        credentials: &Credentials,
        region: &str,
        now: SystemTime,
        url: &str,
        body: &[u8],
    ) -> String {
        let identity: Identity = credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SIGNING_NAME)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let length = body.len().to_string();
        let headers = [
            ("content-type", OCTET_STREAM),
            ("content-length", length.as_str()),
        ];
        let request =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let (headers, _) = instructions.into_parts();
        headers
            .into_iter()
            .find(|header| header.name() == "authorization")
            .map(|header| header.value().to_owned())
            .unwrap()
    }

    fn credentials(token: Option<String>, secret: &str) -> Credentials {
        Credentials::new("AKIDEXAMPLE", secret, token, None, "test")
    }

    #[test]
    fn signs_as_the_general_signer_does_for_an_api_gateway_id() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_780_800);
        let signer = Signer::new("eu-west-1".into());
        for token in [None, Some("session-token".to_owned())] {
            let creds = credentials(token, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            let path = "/prod/@connections/Dx4sXe1ZoAMCJvw%3D";
            let host = "abc123.execute-api.eu-west-1.amazonaws.com";
            let signed = signer.sign(&creds, now, host, path, b"{\"a\":1}").unwrap();
            assert_eq!(signed.amz_date, "20261127T120000Z");
            let url = format!("https://{host}{path}");
            assert_eq!(
                signed.authorization,
                reference(&creds, "eu-west-1", now, &url, b"{\"a\":1}")
            );
        }
    }

    #[test]
    fn a_path_to_normalize_is_left_to_the_general_signer() {
        let signer = Signer::new("eu-west-1".into());
        let creds = credentials(None, "secret");
        for path in ["/prod/@connections/..", "/a//b", "relative"] {
            assert!(
                signer
                    .sign(&creds, SystemTime::now(), "h", path, b"")
                    .is_none()
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any id (escaped as the gateway escapes it), body, time, port, region and
        /// credentials: the same Authorization header as the general signer's, including
        /// across a day boundary with the key kept.
        #[test]
        fn signs_byte_for_byte_as_the_general_signer(
            id in "[^.]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..300),
            seconds in 1_600_000_000u64..2_000_000_000,
            // Not http's default: the gateway leaves it out of `host` (`signed::host_header`)
            // before it asks this signer, as the general signer does from the URL.
            port in proptest::option::of((1u16..65_535).prop_filter("not 80", |port| *port != 80)),
            region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
            token in proptest::option::of("[A-Za-z0-9+/=]{1,60}"),
            secret in "[A-Za-z0-9+/]{40}",
        ) {
            let signer = Signer::new(region.clone());
            let creds = credentials(token, &secret);
            let path = format!(
                "/stage/@connections/{}",
                fmt_string(&id, EncodingStrategy::Default)
            );
            let host = match port {
                Some(port) => format!("127.0.0.1:{port}"),
                None => "example.execute-api.eu-west-1.amazonaws.com".to_owned(),
            };
            let url = format!("http://{host}{path}");
            for now in [seconds, seconds + 86_400].map(|s| UNIX_EPOCH + Duration::from_secs(s)) {
                let signed = signer.sign(&creds, now, &host, &path, &body).unwrap();
                prop_assert_eq!(signed.authorization, reference(&creds, &region, now, &url, &body));
            }
        }
    }
}
