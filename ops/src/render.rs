//! What a command prints: JSON for scripts (`--json`), aligned tables for people.

use crate::backend::{
    DeadLetter, DeadLetters, Kicked, Published, Redrive, RoomCount, Rooms, Status,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Status(Status),
    Rooms(Rooms),
    DeadLetters(DeadLetters),
    DeadLetter(DeadLetter),
    Redrive(Redrive),
    Published(Published),
    Kicked(Kicked),
}

impl Output {
    /// JSON (`--json`) or tables, ending with a newline.
    pub fn render(&self, json: bool) -> String {
        if json {
            let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "null".into());
            text.push('\n');
            return text;
        }
        match self {
            Output::Status(status) => status_text(status),
            Output::Rooms(rooms) => rooms_text(rooms),
            Output::DeadLetters(list) => dead_letters_text(list),
            Output::DeadLetter(letter) => dead_letter_text(letter),
            Output::Redrive(redrive) => redrive_text(redrive),
            Output::Published(published) => match (published.offset, &published.epoch) {
                (Some(offset), Some(epoch)) => format!(
                    "published {} to {} at offset {offset} (epoch {epoch})\n",
                    published.id, published.target
                ),
                _ => format!("published {} to {}\n", published.id, published.target),
            },
            Output::Kicked(kicked) => format!("closed {}\n", kicked.connection_id),
        }
    }
}

/// Columns padded to their widest cell; `right[i]` aligns column `i` right (numbers).
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == columns;
            if right.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An age for people: `850ms`, `12s`, `3m 20s`, `2h 5m`.
pub fn age(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0 => format!("{ms}ms"),
        1..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// Epoch ms as RFC 3339 (UTC, seconds).
pub fn when(epoch_ms: Option<u64>) -> String {
    match epoch_ms {
        Some(ms) => {
            humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                .to_string()
        }
        None => "-".into(),
    }
}

/// At most `max` characters of `text` on one line, `…` where cut.
fn cut(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if acts_on_the_terminal(c) { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn rooms_table(rooms: &[RoomCount]) -> String {
    let rows: Vec<Vec<String>> = rooms
        .iter()
        .map(|room| vec![room.room.clone(), thousands(room.members)])
        .collect();
    table(&["ROOM", "MEMBERS"], &rows, &[false, true])
}

fn status_text(status: &Status) -> String {
    let queue = &status.queue;
    let mut rows = vec![
        vec!["queue: ready".into(), thousands(queue.ready)],
        vec!["queue: in flight".into(), thousands(queue.in_flight)],
        vec!["queue: delayed".into(), thousands(queue.delayed)],
        vec![
            "queue: oldest job".into(),
            queue.oldest_age_ms.map_or_else(|| "-".into(), age),
        ],
        vec!["dead-letter queue".into(), thousands(queue.dead)],
        vec!["connections".into(), thousands(status.connections)],
    ];
    if let Some(open) = status.open_sockets {
        rows.push(vec!["open sockets".into(), thousands(open)]);
    }
    let mut out = table(&["WHAT", "NOW"], &rows, &[false, true]);
    out.push('\n');
    if status.rooms.is_empty() {
        out.push_str("no rooms\n");
    } else {
        out.push_str(&rooms_table(&status.rooms));
    }
    for note in &status.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    out
}

fn rooms_text(rooms: &Rooms) -> String {
    let mut out = if rooms.rooms.is_empty() {
        "no rooms\n".to_owned()
    } else {
        rooms_table(&rooms.rooms)
    };
    let _ = writeln!(
        out,
        "\n{} connections in {} rooms",
        thousands(rooms.connections),
        thousands(rooms.rooms.len() as u64)
    );
    out
}

fn dead_letters_text(list: &DeadLetters) -> String {
    if list.messages.is_empty() {
        return format!(
            "the dead-letter queue is empty{}\n",
            if list.total > 0 {
                format!(
                    " of visible messages ({} in it are being read elsewhere)",
                    list.total
                )
            } else {
                String::new()
            }
        );
    }
    let rows: Vec<Vec<String>> = list
        .messages
        .iter()
        .map(|letter| {
            vec![
                escaped(&letter.id, false),
                when(letter.parked_at_ms),
                cut(letter.reason.as_deref().unwrap_or("(moved by SQS)"), 60),
                cut(&letter.body, 40),
            ]
        })
        .collect();
    let mut out = table(&["ID", "PARKED", "REASON", "BODY"], &rows, &[]);
    let _ = writeln!(
        out,
        "\n{} shown of {} (wsfanout dlq show ID for one whole)",
        list.messages.len(),
        list.total
    );
    out
}

fn dead_letter_text(letter: &DeadLetter) -> String {
    // A pretty-printed JSON body's line breaks are its own (serde escapes those in strings).
    let body = serde_json::from_str::<serde_json::Value>(&letter.body)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .map_or_else(|| escaped(&letter.body, false), |json| escaped(&json, true));
    format!(
        "id:      {}\nparked:  {}\nreason:  {}\nbody:\n{}\n",
        escaped(&letter.id, false),
        when(letter.parked_at_ms),
        escaped(
            letter
                .reason
                .as_deref()
                .unwrap_or("(none: SQS moved it after maxReceiveCount receives)"),
            false
        ),
        body
    )
}

/// Control characters, and the bidirectional overrides that reorder what is shown: a message
/// body is anyone's text, and printed raw these could rewrite the screen or forge lines.
fn acts_on_the_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with what [`acts_on_the_terminal`] escaped (`\u{1b}`), line breaks too unless kept.
fn escaped(text: &str, keep_line_breaks: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if acts_on_the_terminal(c) && !(keep_line_breaks && c == '\n') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn redrive_text(redrive: &Redrive) -> String {
    let mut out = format!(
        "moved {} back to the fan-out queue",
        thousands(redrive.moved)
    );
    if let Some(remaining) = redrive.remaining {
        let _ = write!(
            out,
            "; {} left in the dead-letter queue",
            thousands(remaining)
        );
    }
    let _ = write!(out, " ({})", redrive.method);
    if let Some(status) = &redrive.task_status
        && status != "COMPLETED"
    {
        let _ = write!(
            out,
            "\nthe move task is {status}: it goes on in SQS (wsfanout status to follow it)"
        );
    }
    if !redrive.not_jobs.is_empty() {
        let _ = write!(
            out,
            "\nleft in the dead-letter queue, not jobs a worker would run ({}):",
            redrive.not_jobs.len()
        );
        for letter in &redrive.not_jobs {
            let _ = write!(out, "\n  {}", escaped(letter, false));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::QueueStatus;

    #[test]
    fn a_dead_letter_cannot_drive_the_terminal() {
        let hostile = "\u{1b}[2J\u{202e}evil\nid:      forged";
        let letter = DeadLetter {
            id: hostile.into(),
            parked_at_ms: None,
            reason: Some(hostile.into()),
            body: hostile.into(),
        };
        let json_body = DeadLetter {
            body: serde_json::json!({ "text": hostile }).to_string(),
            ..letter.clone()
        };
        for shown in [dead_letter_text(&letter), dead_letter_text(&json_body)] {
            assert!(
                !shown.contains('\u{1b}') && !shown.contains('\u{202e}'),
                "{shown}"
            );
            assert_eq!(shown.matches("\nid:").count(), 0, "{shown}");
        }
        let list = DeadLetters {
            messages: vec![letter],
            total: 1,
        };
        let table = dead_letters_text(&list);
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{202e}'),
            "{table}"
        );
    }

    #[test]
    fn tables_align_their_columns() {
        let text = table(
            &["ROOM", "MEMBERS"],
            &[
                vec!["lobby".into(), "1,200".into()],
                vec!["a".into(), "3".into()],
            ],
            &[false, true],
        );
        assert_eq!(text, "ROOM   MEMBERS\nlobby    1,200\na            3\n");
    }

    #[test]
    fn numbers_ages_and_times_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_400), "12s");
        assert_eq!(age(200_000), "3m 20s");
        assert_eq!(age(7_500_000), "2h 5m");
        assert_eq!(when(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(cut("a\nb", 10), "a b");
        assert_eq!(cut("abcdef", 4), "abc…");
    }

    #[test]
    fn status_prints_for_people_and_for_scripts() {
        let status = Status {
            queue: QueueStatus {
                ready: 3,
                in_flight: 1,
                delayed: 0,
                dead: 2,
                oldest_age_ms: Some(12_000),
            },
            connections: 1500,
            open_sockets: None,
            rooms: vec![RoomCount {
                room: "lobby".into(),
                members: 1200,
            }],
            notes: vec!["why".into()],
        };
        let people = Output::Status(status.clone()).render(false);
        assert!(people.contains("queue: oldest job    12s"), "{people}");
        assert!(people.contains("lobby    1,200"), "{people}");
        assert!(people.contains("note: why"), "{people}");
        let json: serde_json::Value =
            serde_json::from_str(&Output::Status(status).render(true)).unwrap();
        assert_eq!(json["queue"]["inFlight"], 1);
        assert_eq!(json["queue"]["oldestAgeMs"], 12_000);
        assert_eq!(json["rooms"][0]["members"], 1200);
        assert!(json.get("openSockets").is_none());
    }
}
