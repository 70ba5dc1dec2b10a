//! Connection ids computed from a member's index, and back.
//!
//! API Gateway's connection ids are 16 characters of standard base64 (11 bytes, one `=` of
//! padding), e.g. `L0SM9cOFvHcCIhw=`. Ours have the same shape: 8 bytes of a bijective mix of the
//! index (so they look random and hash well) and a fixed 3-byte tag. Both the store and the
//! endpoint map an id back to its index without holding a table of ids, so neither keeps N ids in
//! memory.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The fixed tail of every id; decoding checks it, so foreign ids are refused.
const TAG: [u8; 3] = [0x08, 0x88, 0x70];
/// The length of every id.
pub const ID_LEN: usize = 16;

const C1: u64 = 0xff51_afd7_ed55_8ccd;
const C2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// The id of member `index`.
pub fn id_of(index: u64) -> String {
    let mut bytes = [0u8; 11];
    bytes[..8].copy_from_slice(&mix(index).to_be_bytes());
    bytes[8..].copy_from_slice(&TAG);
    STANDARD.encode(bytes)
}

/// The index of an id made by [`id_of`], or `None` for any other string.
pub fn index_of(id: &str) -> Option<u64> {
    if id.len() != ID_LEN {
        return None;
    }
    let mut bytes = [0u8; 12];
    let len = STANDARD.decode_slice(id, &mut bytes).ok()?;
    if len != 11 || bytes[8..11] != TAG {
        return None;
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    Some(unmix(u64::from_be_bytes(word)))
}

/// A stable 64-bit hash of an id (FNV-1a), for the endpoint's choice of gone members.
pub fn hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
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

/// MurmurHash3's 64-bit finalizer: a bijection on `u64`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(C1);
    x ^= x >> 33;
    x = x.wrapping_mul(C2);
    x ^= x >> 33;
    x
}

fn unmix(mut x: u64) -> u64 {
    // `x ^= x >> 33` is its own inverse (the shift is at least half the width).
    x ^= x >> 33;
    x = x.wrapping_mul(inverse(C2));
    x ^= x >> 33;
    x = x.wrapping_mul(inverse(C1));
    x ^= x >> 33;
    x
}

/// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
const fn inverse(odd: u64) -> u64 {
    let mut inv = odd;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inv)));
        i += 1;
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_api_gateway_ids_and_map_back_to_their_index() {
        for index in (0..10_000).chain([999_999, 1_000_000, u64::from(u32::MAX), u64::MAX]) {
            let id = id_of(index);
            assert_eq!(id.len(), ID_LEN, "{id}");
            assert!(id.ends_with('='), "{id}");
            assert_eq!(index_of(&id), Some(index), "{id}");
        }
        assert_ne!(id_of(1), id_of(2));
    }

    #[test]
    fn foreign_ids_are_refused() {
        for id in [
            "",
            "L0SM9cOFvHcCIhw=",
            "AAAAAAAAAAAAAAA=",
            "not an id at all",
            "abc",
        ] {
            assert_eq!(index_of(id), None, "{id}");
        }
    }

    #[test]
    fn the_gone_fraction_is_close_to_what_was_asked() {
        let gone = (0..100_000).filter(|&i| is_gone(&id_of(i), 0.05)).count();
        assert!((4_500..5_500).contains(&gone), "{gone}");
        assert_eq!((0..1000).filter(|&i| is_gone(&id_of(i), 0.0)).count(), 0);
    }
}
