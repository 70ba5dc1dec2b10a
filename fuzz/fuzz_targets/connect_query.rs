//! Room names: `RoomName::parse` on any UTF-8, and the `$connect` handler with the input as the
//! `room` parameter and as a whole query string (decoded as API Gateway decodes it, repeated
//! keys included). Never a panic; 200 and the connection stored in the room, or 400 with a
//! reason and nothing stored; valid exactly when the name matches `[A-Za-z0-9_.:-]{1,64}`.

#![no_main]

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use fanout::adapters::memory::MemoryStore;
use fanout::domain::RoomName;
use fanout::handlers::connect::{self, ConnectConfig};
use fanout::ports::ConnectionStore;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::time::SystemTime;

const CONNECTION: &str = "Dx4sXe1ZoAMCJvw=";

fn documented(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

fn connect(params: HashMap<String, Vec<String>>) {
    let expected = match params.get("room").and_then(|values| values.first()) {
        None => Some(RoomName::DEFAULT.to_owned()),
        // Empty: no room.
        Some(name) if name.is_empty() => Some(String::new()),
        Some(name) => documented(name).then(|| name.clone()),
    };
    let mut request = ApiGatewayWebsocketProxyRequest::default();
    request.request_context.connection_id = Some(CONNECTION.into());
    request.query_string_parameters = params.clone().into();
    request.multi_value_query_string_parameters = params.into();
    let store = MemoryStore::new();
    let response = futures::executor::block_on(connect::handle(
        &store,
        &ConnectConfig::default(),
        request,
        SystemTime::now(),
    ));
    let stored = futures::executor::block_on(store.get(CONNECTION)).unwrap();
    match (response.status_code, expected) {
        (200, Some(room)) => {
            let rooms: Vec<String> = stored
                .expect("stored")
                .rooms
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect();
            let expected: Vec<String> = Some(room).filter(|r| !r.is_empty()).into_iter().collect();
            assert_eq!(rooms, expected);
        }
        (400, None) => {
            let Some(Body::Text(reason)) = &response.body else {
                panic!("400 without a reason");
            };
            assert!(reason.starts_with("invalid room: "), "{reason}");
            assert!(stored.is_none() && store.is_empty());
        }
        (status, expected) => panic!("status {status}, expected {expected:?}"),
    }
}

fuzz_target!(|input: &str| {
    let parsed = RoomName::parse(input);
    assert_eq!(parsed.is_ok(), documented(input), "{input:?}: {parsed:?}");
    if let Ok(room) = &parsed {
        assert_eq!(room.as_str(), input);
    }
    connect(HashMap::from([("room".to_owned(), vec![input.to_owned()])]));
    let mut params: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in form_urlencoded::parse(input.as_bytes()) {
        params
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    connect(params);
});
