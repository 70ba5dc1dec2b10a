//! A backend's announcement: the job sendmessage would write, from the operator instead of a
//! client.

use crate::backend::OpsError;
use fanout::domain::frame::MAX_FRAME_BYTES;
use fanout::domain::{DeliveryMode, Job, Target, now_epoch_millis};
use serde_json::value::RawValue;

/// The job for `data` (JSON text) to `target`: a fresh UUID v7 id, no sender (frames carry no
/// `from`), `sentAt` now, no endpoint (the worker posts to its own `MANAGEMENT_ENDPOINT`).
/// Refused, before anything is sent, when `data` is not JSON or is `null` (as sendmessage
/// refuses it), or when the delivered frame would exceed API Gateway's 128 KB (the worker would
/// park it).
pub fn announcement(target: Target, data: &str) -> Result<Job, OpsError> {
    let payload = RawValue::from_string(data.trim().to_owned())
        .map_err(|error| OpsError::Usage(format!("--data is not JSON: {error}")))?;
    if payload.get() == "null" {
        return Err(OpsError::Usage(
            "--data is null: a message needs data (sendmessage refuses null too)".into(),
        ));
    }
    let job = Job::message(target, payload, None, None, now_epoch_millis());
    let frame = job.render(DeliveryMode::Envelope).len();
    if frame > MAX_FRAME_BYTES {
        return Err(OpsError::Usage(format!(
            "the delivered frame would be {frame} bytes; API Gateway posts at most \
             {MAX_FRAME_BYTES}: send less --data"
        )));
    }
    let body = job
        .to_queue_body()
        .map_err(|error| OpsError::Usage(error.to_string()))?;
    // What the worker will read: a job it accepts.
    Job::parse(&body).map_err(|error| OpsError::Usage(format!("not a valid job: {error}")))
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

    #[test]
    fn an_announcement_is_a_job_the_worker_accepts() {
        let room = RoomName::parse("ops").unwrap();
        let job = announcement(
            Target::Room(room.clone()),
            r#" {"text":"maintenance at 5"} "#,
        )
        .unwrap();
        assert_eq!(job.target, Target::Room(room));
        assert_eq!(job.payload.get(), r#"{"text":"maintenance at 5"}"#);
        assert_eq!(
            (job.sender.as_deref(), job.endpoint.as_deref()),
            (None, None)
        );
        assert_eq!(uuid::Uuid::parse_str(&job.id).unwrap().get_version_num(), 7);
        assert!((now_epoch_millis() - job.sent_at).abs() < 60_000);
        let body: serde_json::Value = serde_json::from_str(&job.to_json()).unwrap();
        assert_eq!(body["v"], 1);
        assert!(body.get("sender").is_none() && body.get("endpoint").is_none());

        let other = announcement(Target::All, "1").unwrap();
        assert_ne!(other.id, job.id, "a fresh id each time");
        assert_eq!(other.target, Target::All);
    }

    #[test]
    fn bad_data_is_refused_before_anything_is_sent() {
        for (data, says) in [
            ("", "not JSON"),
            ("{", "not JSON"),
            ("null", "null"),
            ("hello", "not JSON"),
        ] {
            let error = announcement(Target::All, data).unwrap_err().to_string();
            assert!(error.contains(says), "{data}: {error}");
        }
        let huge = format!("\"{}\"", "x".repeat(MAX_FRAME_BYTES));
        let error = announcement(Target::All, &huge).unwrap_err().to_string();
        assert!(
            error.contains("128") || error.contains("at most"),
            "{error}"
        );
    }
}
