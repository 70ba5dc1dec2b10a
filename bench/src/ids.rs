//! Connection ids computed from a member's index, and back.
//!
//! API Gateway's connection ids are 16 characters of standard base64 (11 random bytes, one `=`
//! of padding), e.g. `L0SM9cOFvHcCIhw=`. Ours have the same shape and spread over the same
//! alphabet as evenly, and they sort in index order: member `i` of `n` is the 64-bit number
//! `i * (2^64 / n)` written in base64's characters in byte order (the room index's sort order),
//! then a fixed tag. So the store can page a range of ids between any two bounds, as DynamoDB
//! pages a room between a split part's bounds, without holding a table of ids, and the endpoint
//! maps an id back to its member without one either.

use fanout::domain::connection::CONNECTION_ID_ALPHABET as ALPHABET;

/// The length of every id.
pub const ID_LEN: usize = 16;
/// Sextets holding the number: 10 full ones and 4 bits in the 11th.
const NUMBER_CHARS: usize = 11;
/// The fixed tail of every id (five characters: a tag and the padding); decoding checks it, so
/// foreign ids are refused.
const TAG: &str = "bnch=";

/// The ids of a room of `members`.
#[derive(Debug, Clone, Copy)]
pub struct IdSpace {
    members: u64,
    stride: u64,
}

impl IdSpace {
    pub fn new(members: u64) -> Self {
        let stride = match members {
            0 | 1 => u64::MAX,
            n => u64::MAX / n,
        };
        Self { members, stride }
    }

    pub fn members(&self) -> u64 {
        self.members
    }

    /// The id of member `index`.
    pub fn id_of(&self, index: u64) -> String {
        let value = index.wrapping_mul(self.stride);
        let mut id = String::with_capacity(ID_LEN);
        for sextet in 0..NUMBER_CHARS {
            // 64 bits as 11 sextets, the last holding 4 bits: its top ones.
            let shift = 58 - 6 * sextet as i32;
            let digit = if shift >= 0 {
                (value >> shift) & 63
            } else {
                (value << -shift) & 63
            };
            id.push(ALPHABET[digit as usize] as char);
        }
        id.push_str(TAG);
        id
    }

    /// The index of a member's id, or `None` for any other string.
    pub fn index_of(&self, id: &str) -> Option<u64> {
        if id.len() != ID_LEN || !id.ends_with(TAG) {
            return None;
        }
        let mut value = 0u64;
        for (sextet, byte) in id.bytes().take(NUMBER_CHARS).enumerate() {
            let digit = ALPHABET.iter().position(|&c| c == byte)? as u64;
            let shift = 58 - 6 * sextet as i32;
            if shift >= 0 {
                value |= digit << shift;
            } else if digit & ((1 << -shift) - 1) != 0 {
                return None;
            } else {
                value |= digit >> -shift;
            }
        }
        let index = value / self.stride;
        (value.is_multiple_of(self.stride) && index < self.members).then_some(index)
    }

    /// How many members' ids sort at or before `bound` (any string): where a range that ends
    /// at `bound` ends, or one that starts after it starts.
    pub fn count_through(&self, bound: &str) -> u64 {
        let (mut low, mut high) = (0, self.members);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.id_of(mid).as_str() <= bound {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

/// A stable 64-bit hash of an id (FNV-1a), for the endpoint's choice of gone members.
pub fn hash(id: &str) -> u64 {
    fanout::domain::job::stable_hash(id.as_bytes())
}

/// Whether the member with this id is gone (answers 410), for a given fraction: decided by the
/// id's hash, so the endpoint and the report agree without sharing state.
pub fn is_gone(id: &str, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    // The top 53 bits as a uniform number in [0, 1).
    let unit = (hash(id) >> 11) as f64 / (1u64 << 53) as f64;
    unit < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateway_ids_sort_by_index_and_map_back() {
        for members in [1, 2, 3, 1000, 1_000_000, u64::from(u32::MAX)] {
            let space = IdSpace::new(members);
            let mut previous = String::new();
            for (step, index) in (0..members.min(2_000))
                .chain([members / 2, members - 1])
                .enumerate()
            {
                let id = space.id_of(index);
                assert_eq!(id.len(), ID_LEN, "{id}");
                assert!(id.ends_with('='), "{id}");
                assert!(id.bytes().all(|b| ALPHABET.contains(&b) || b == b'='));
                assert_eq!(space.index_of(&id), Some(index), "{members}: {id}");
                if (step as u64) < members.min(2_000) {
                    assert!(previous < id, "{previous} < {id}");
                    previous = id;
                }
            }
        }
    }

    #[test]
    fn first_characters_spread_over_the_whole_alphabet() {
        let space = IdSpace::new(64_000);
        let mut counts = [0usize; 64];
        for index in 0..64_000 {
            let first = space.id_of(index).as_bytes()[0];
            counts[ALPHABET.iter().position(|&c| c == first).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&n| (990..=1010).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn foreign_ids_are_refused() {
        let space = IdSpace::new(1000);
        for id in [
            "",
            "L0SM9cOFvHcCIhw=",
            "AAAAAAAAAAAAAAA=",
            "not an id at all",
            "abc",
        ] {
            assert_eq!(space.index_of(id), None, "{id}");
        }
        assert_eq!(space.index_of(&IdSpace::new(2000).id_of(1)), None);
    }

    #[test]
    fn counts_through_any_bound() {
        let space = IdSpace::new(100);
        assert_eq!(space.count_through(""), 0);
        assert_eq!(space.count_through("~"), 100);
        assert_eq!(space.count_through(&space.id_of(41)), 42);
        let between = format!("{}x", &space.id_of(41)[..12]);
        assert_eq!(space.count_through(&between), 42);
    }

    #[test]
    fn the_gone_fraction_is_close_to_what_was_asked() {
        let space = IdSpace::new(100_000);
        let gone = (0..100_000)
            .filter(|&i| is_gone(&space.id_of(i), 0.05))
            .count();
        assert!((4_500..5_500).contains(&gone), "{gone}");
        assert_eq!(
            (0..1000).filter(|&i| is_gone(&space.id_of(i), 0.0)).count(),
            0
        );
    }
}
