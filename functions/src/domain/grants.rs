//! Room grants: the rooms a token lets its holder join, from its `rooms` claim.
//!
//! The claim is a list of entries. An entry is either a room name (`general`), which grants
//! exactly that room, or a prefix followed by `*` (`team-42:*`), which grants every room whose
//! name starts with the prefix, the prefix itself included (`team-42:` is a valid room name).
//! `*` alone is the empty prefix: it grants every room. That is deliberate: the token is signed
//! by the issuer, who is trusted to say "any room" for an operator or a service, and the
//! alternative (a separate "admin" claim) would be a second mechanism for the same thing.
//!
//! An entry that is neither (empty, a `*` anywhere but at the end, characters outside the room
//! alphabet, longer than a room name) makes the whole claim invalid: the token is refused rather
//! than partly honoured, so that an issuer's mistake shows at once instead of as a room that
//! mysteriously cannot be joined.

use super::room::{InvalidRoom, RoomName};
use std::fmt;

/// One entry of a `rooms` claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Exactly this room.
    Room(RoomName),
    /// Every room whose name starts with this prefix; the empty prefix (`*`) is every room.
    Prefix(String),
}

impl Grant {
    /// Parses one entry of the claim.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.is_empty() {
            return Err("an entry is empty; name a room, or a prefix ending in *".into());
        }
        let Some(prefix) = entry.strip_suffix('*') else {
            return RoomName::parse(entry)
                .map(Grant::Room)
                .map_err(|reason| match reason {
                    InvalidRoom::BadCharacter('*') => {
                        "* is only allowed at the end of an entry (a prefix)".into()
                    }
                    other => other.to_string(),
                });
        };
        if prefix.is_empty() {
            return Ok(Grant::Prefix(String::new()));
        }
        match RoomName::parse(prefix) {
            Ok(_) => Ok(Grant::Prefix(prefix.to_owned())),
            Err(InvalidRoom::BadCharacter('*')) => {
                Err("* is only allowed once, at the end of an entry (a prefix)".into())
            }
            Err(reason) => Err(format!("the prefix is invalid: {reason}")),
        }
    }

    pub fn allows(&self, room: &RoomName) -> bool {
        match self {
            Grant::Room(name) => name == room,
            Grant::Prefix(prefix) => room.as_str().starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::Room(name) => write!(f, "{name}"),
            Grant::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The rooms a token grants. Empty (no `rooms` claim, or `[]`) grants no room at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomGrants {
    grants: Vec<Grant>,
}

/// Why a `rooms` claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGrants {
    /// A list this long is a mistake or an attack; prefixes say the same in one entry.
    #[error("the rooms claim has {0} entries; the limit is {limit}", limit = RoomGrants::MAX_ENTRIES)]
    TooMany(usize),
    #[error("rooms entry {index} ({entry}) is invalid: {reason}")]
    Entry {
        index: usize,
        /// The entry, quoted and shortened to a loggable length.
        entry: String,
        reason: String,
    },
}

impl RoomGrants {
    /// The most entries a claim may have. A room name is at most 64 characters, and prefixes
    /// cover families of rooms, so a longer list is a mistake (or an attempt to make every
    /// `$connect` scan thousands of entries).
    pub const MAX_ENTRIES: usize = 100;

    /// Parses the claim's entries, refusing the whole claim for one bad entry.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidGrants> {
        let mut grants = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            if index >= Self::MAX_ENTRIES {
                // Count the rest without parsing them, for the message.
                return Err(InvalidGrants::TooMany(index + 1));
            }
            let grant = Grant::parse(entry).map_err(|reason| InvalidGrants::Entry {
                index,
                entry: shorten(entry),
                reason,
            })?;
            grants.push(grant);
        }
        Ok(Self { grants })
    }

    /// Grants nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether any entry grants `room`.
    pub fn allows(&self, room: &RoomName) -> bool {
        self.grants.iter().any(|grant| grant.allows(room))
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
}

/// The entries separated by spaces (no entry can contain one): how the authorizer passes them
/// on in its context, which holds only strings, numbers and booleans.
impl fmt::Display for RoomGrants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, grant) in self.grants.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{grant}")?;
        }
        Ok(())
    }
}

/// An entry quoted for a message, at most 80 characters of it.
fn shorten(entry: &str) -> String {
    const KEEP: usize = 80;
    match entry.char_indices().nth(KEEP) {
        None => format!("{entry:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &entry[..cut], entry.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn grants(entries: &[&str]) -> RoomGrants {
        RoomGrants::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn an_exact_name_grants_that_room_only() {
        let grants = grants(&["general", "ops"]);
        assert!(grants.allows(&room("general")));
        assert!(grants.allows(&room("ops")));
        assert!(!grants.allows(&room("generally")));
        assert!(!grants.allows(&room("gen")));
        assert!(!grants.allows(&room("lobby")));
    }

    #[test]
    fn a_prefix_grants_every_room_that_starts_with_it() {
        let grants = grants(&["team-42:*"]);
        assert!(grants.allows(&room("team-42:chat")));
        assert!(
            grants.allows(&room("team-42:")),
            "the prefix itself is a room"
        );
        assert!(!grants.allows(&room("team-421:chat")));
        assert!(!grants.allows(&room("team-42")));
        assert!(
            !grants.allows(&room("TEAM-42:chat")),
            "names are case-sensitive"
        );
    }

    #[test]
    fn a_star_alone_grants_every_room() {
        let grants = grants(&["*"]);
        for name in ["lobby", "ops", "team-42:chat", &"z".repeat(64)] {
            assert!(grants.allows(&room(name)), "{name}");
        }
    }

    #[test]
    fn no_entries_grant_nothing() {
        assert!(!RoomGrants::none().allows(&room("lobby")));
        assert!(!grants(&[]).allows(&room("lobby")));
    }

    #[test]
    fn refuses_hostile_entries_with_the_index_and_the_reason() {
        for (entries, index, reason) in [
            (vec!["ok", ""], 1, "empty"),
            (vec!["**"], 0, "only allowed once"),
            (vec!["a*b"], 0, "only allowed at the end"),
            (vec!["*a"], 0, "only allowed at the end"),
            (vec!["team 42:*"], 0, "' '"),
            (vec!["café"], 0, "'é'"),
            (vec!["../etc"], 0, "'/'"),
            (vec!["x\u{0}"], 0, "'\\0'"),
        ] {
            match RoomGrants::parse(entries.iter().copied()) {
                Err(InvalidGrants::Entry {
                    index: at,
                    reason: why,
                    ..
                }) => {
                    assert_eq!(at, index, "{entries:?}");
                    assert!(why.contains(reason), "{entries:?}: {why}");
                }
                other => panic!("{entries:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_entries_longer_than_a_room_name() {
        let long = "a".repeat(65);
        let error = RoomGrants::parse([long.as_str()]).unwrap_err();
        assert!(error.to_string().contains("limit is 64"), "{error}");
        let long_prefix = format!("{long}*");
        let error = RoomGrants::parse([long_prefix.as_str()]).unwrap_err();
        assert!(error.to_string().contains("prefix is invalid"), "{error}");
        // A 64-character prefix still fits: it grants the one room of that name.
        let max = format!("{}*", "a".repeat(64));
        assert!(grants(&[&max]).allows(&room(&"a".repeat(64))));
    }

    #[test]
    fn a_huge_entry_is_shortened_in_the_message() {
        let huge = "x y".repeat(100_000);
        let message = RoomGrants::parse([huge.as_str()]).unwrap_err().to_string();
        assert!(message.len() < 300, "{} bytes", message.len());
        assert!(message.contains("300000 bytes"), "{message}");
    }

    #[test]
    fn refuses_a_huge_list_without_reading_all_of_it() {
        let at_limit: Vec<String> = (0..RoomGrants::MAX_ENTRIES)
            .map(|i| format!("r{i}"))
            .collect();
        assert!(RoomGrants::parse(at_limit.iter().map(String::as_str)).is_ok());

        let mut read = 0;
        let endless = std::iter::repeat_with(|| {
            read += 1;
            "room"
        });
        assert_eq!(
            RoomGrants::parse(endless),
            Err(InvalidGrants::TooMany(RoomGrants::MAX_ENTRIES + 1))
        );
        assert_eq!(read, RoomGrants::MAX_ENTRIES + 1);
    }

    #[test]
    fn displays_as_space_separated_entries() {
        assert_eq!(
            grants(&["lobby", "team-42:*", "*"]).to_string(),
            "lobby team-42:* *"
        );
        assert_eq!(RoomGrants::none().to_string(), "");
    }

    /// The grants the docs show (`--rooms '…'` and `"rooms": […]`): every prefix ends with `:`,
    /// since `team*` also grants `teams`.
    #[test]
    fn the_examples_end_their_prefixes_with_a_separator() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut files = vec![
            format!("{root}/README.md"),
            format!("{root}/local/src/options.rs"),
        ];
        for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
            files.push(entry.unwrap().path().display().to_string());
        }
        let mut seen = 0;
        for file in files
            .iter()
            .filter(|file| file.ends_with(".md") || file.ends_with(".rs"))
        {
            let text = std::fs::read_to_string(file).unwrap();
            let flags = text
                .split("--rooms '")
                .skip(1)
                .filter_map(|rest| rest.split_once('\''));
            let claims = text
                .split("\"rooms\": [")
                .skip(1)
                .filter_map(|rest| rest.split_once(']'));
            for (list, _) in flags.chain(claims) {
                for entry in list.split(',').map(|e| e.trim().trim_matches('"')) {
                    if let Some(prefix) = entry.strip_suffix('*') {
                        seen += 1;
                        assert!(
                            prefix.is_empty() || prefix.ends_with(':'),
                            "{file}: the grant {entry:?} should end its prefix with ':'"
                        );
                    }
                }
            }
        }
        assert!(seen >= 3, "only {seen} prefix grants found in {files:?}");
    }
}
