//! Room names: what a client may ask for in `?room=`.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A validated room name: `[A-Za-z0-9_.:-]{1,64}`.
///
/// Validation lives in the type so that a `RoomName` anywhere in the system (a job read from the
/// queue included) is known to be well formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(String);

/// Why a room name was refused; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRoom {
    #[error("room name is empty; use 1 to 64 characters from A-Z a-z 0-9 _ . : -")]
    Empty,
    #[error("room name is {0} characters long; the limit is 64")]
    TooLong(usize),
    #[error("room name contains {0:?}; allowed characters are A-Z a-z 0-9 _ . : -")]
    BadCharacter(char),
}

impl RoomName {
    /// The room a connection joins when it names none.
    pub const DEFAULT: &'static str = "lobby";
    pub const MAX_LEN: usize = 64;

    pub fn parse(name: &str) -> Result<Self, InvalidRoom> {
        if name.is_empty() {
            return Err(InvalidRoom::Empty);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
        {
            return Err(InvalidRoom::BadCharacter(bad));
        }
        // Only ASCII passed the check above, so bytes == characters.
        if name.len() > Self::MAX_LEN {
            return Err(InvalidRoom::TooLong(name.len()));
        }
        Ok(Self(name.to_owned()))
    }

    /// The room `?room=` joins at `$connect`: absent, the lobby (as clients of one room
    /// expect); empty, none (a client that joins its rooms later); else the name, if it parses.
    pub fn at_connect(query: Option<&str>) -> Result<Option<Self>, InvalidRoom> {
        match query {
            None => Ok(Some(Self::lobby())),
            Some("") => Ok(None),
            Some(name) => Self::parse(name).map(Some),
        }
    }

    pub fn lobby() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        RoomName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        let name = "Az09_.:-";
        assert_eq!(RoomName::parse(name).unwrap().as_str(), name);
        assert!(RoomName::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        assert_eq!(RoomName::parse(""), Err(InvalidRoom::Empty));
        assert_eq!(
            RoomName::parse(&"a".repeat(65)),
            Err(InvalidRoom::TooLong(65))
        );
        assert_eq!(RoomName::parse("a b"), Err(InvalidRoom::BadCharacter(' ')));
        assert_eq!(RoomName::parse("café"), Err(InvalidRoom::BadCharacter('é')));
        assert_eq!(RoomName::parse("a/b"), Err(InvalidRoom::BadCharacter('/')));
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<RoomName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<RoomName>("\"not ok\"").is_err());
    }
}
