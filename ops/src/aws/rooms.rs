//! Connections by room, from one Scan of the connections table.

use super::errors::unavailable;
use crate::backend::{OpsError, Rooms, sort_rooms};
use crate::progress::Progress;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Connections by room: one Scan of `table`, reading only each connection's `rooms` (a
/// connection in several rooms counts in each; one in none, in none).
pub(super) async fn scan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    progress: &Progress,
) -> Result<Rooms, OpsError> {
    // DescribeTable's count is refreshed about every 6 hours: a guide for the bar only.
    let estimate = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable(&format!("could not describe the table {table}"), &e))?
        .table
        .and_then(|t| t.item_count)
        .and_then(|count| u64::try_from(count).ok())
        .filter(|count| *count > 0);
    let bar = progress.bar("scanning connections", estimate);
    let mut members: HashMap<String, u64> = HashMap::new();
    let mut connections = 0u64;
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .projection_expression("#rooms")
            .expression_attribute_names("#rooms", "rooms")
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable(&format!("could not scan the table {table}"), &e))?;
        for item in page.items() {
            connections += 1;
            if let Some(AttributeValue::Ss(rooms)) = item.get("rooms") {
                for room in rooms {
                    *members.entry(room.clone()).or_default() += 1;
                }
            }
        }
        bar.inc(page.items().len() as u64);
        if bar.length().is_some_and(|length| bar.position() > length) {
            bar.set_length(bar.position());
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }
    bar.finish_and_clear();
    Ok(Rooms {
        connections,
        rooms: sort_rooms(members),
    })
}
