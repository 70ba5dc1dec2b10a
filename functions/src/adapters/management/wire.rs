//! What both gateways share with API Gateway: the path of a connection and what each status
//! means to the engine.

use crate::ports::PostError;

/// What the engine does about an answer, by HTTP status as API Gateway documents them:
/// 410 GoneException, 429 LimitExceededException, 403 ForbiddenException, 5xx, other 4xx.
/// `reason` is only read for the answers that carry one to an operator.
pub(super) fn classify(status: u16, reason: impl FnOnce() -> String) -> PostError {
    match status {
        410 => PostError::Gone,
        429 => PostError::Throttled,
        403 => PostError::Forbidden(reason()),
        500.. => PostError::Server(status),
        _ => PostError::Rejected {
            status,
            reason: reason(),
        },
    }
}

/// The path of a connection under an endpoint (`https://{domain}/{stage}`), its id escaped as
/// the SDK escapes an HTTP label (API Gateway's ids end in `=`).
pub(super) fn connection_url(endpoint: &str, connection_id: &str) -> String {
    let id = aws_smithy_http::label::fmt_string(
        connection_id,
        aws_smithy_http::label::EncodingStrategy::Default,
    );
    format!("{}/@connections/{id}", endpoint.trim_end_matches('/'))
}
