//! `Job::parse` on any UTF-8: never panics, and a job it accepts survives the round trip the
//! worker puts it through (serialized for a hand-off, parsed again by the next run) unchanged,
//! and renders in both delivery modes.

#![no_main]

use fanout::domain::{DeliveryMode, Job};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    let Ok(job) = Job::parse(body) else {
        return;
    };
    let json = job.to_json();
    let again = Job::parse(&json).expect("a parsed job, serialized, parses again");
    assert_eq!(again.to_json(), json, "the round trip changes the job");
    assert_eq!(
        again.payload.get(),
        job.payload.get(),
        "the payload changes"
    );
    let _ = job.to_queue_body();
    let _ = job.progress_key();
    let _ = job.child_hop("c");
    for mode in [DeliveryMode::Envelope, DeliveryMode::Raw] {
        let _ = job.render(mode);
    }
    let frame = job.render(DeliveryMode::Envelope);
    assert!(
        serde_json::from_slice::<&serde_json::value::RawValue>(&frame).is_ok(),
        "the delivered frame is not JSON"
    );
});
