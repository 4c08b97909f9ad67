//! The optional cost of a node id: S/Kademlia's static puzzle (Baumgart and Mies, 2007).
//!
//! A [`NodeId`] is derived from a key ([`NodeId::from_public_key`]), so a node cannot pick
//! its id, but it can make as many keys as it likes. Where the puzzle is required, an id
//! counts only if **SHA-256 of its 16 bytes** begins with at least `d` zero bits (its
//! [`difficulty`]): each key then costs its maker 2^`d` key generations on average, and
//! checking one costs a single hash. The hash is of the id, not the id itself, so that ids
//! that meet the puzzle are still spread evenly over the id space (docs/protocol.md §4.2).
//!
//! The puzzle is off by default (`d` = 0, which every id meets). A bootstrap server that
//! requires it refuses a `Register` below it with [`ErrorCode::ID_BELOW_DIFFICULTY`] and announces
//! it in [`Limits::id_difficulty`]; a node that requires it ignores records, floods,
//! lookups and offers of ids below it.
//!
//! [`ErrorCode::ID_BELOW_DIFFICULTY`]: crate::ErrorCode::ID_BELOW_DIFFICULTY
//! [`Limits::id_difficulty`]: crate::Limits::id_difficulty

use sha2::{Digest, Sha256};

use crate::NodeId;

/// The highest difficulty an implementation of this crate asks for or mines: 2^24 (some
/// 17 million) key generations on average, minutes of one core (computed from the 15–35 µs
/// per key measured in docs/benchmarks.md §14.5). Each further bit doubles it.
pub const MAX_DIFFICULTY: u32 = 24;

/// The difficulty of `id`: the number of leading zero bits of SHA-256 of its 16 bytes
/// (0 to 256, most significant bit of byte 0 first).
pub fn difficulty(id: &NodeId) -> u32 {
    let hash = Sha256::digest(id.as_bytes());
    let mut zeros = 0;
    for byte in hash {
        zeros += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    zeros
}

/// Whether `id` meets difficulty `required`: always for 0 (the puzzle is off; no hash is
/// computed), else whether [`difficulty`] is at least `required`.
pub fn meets(id: &NodeId, required: u32) -> bool {
    required == 0 || difficulty(id) >= required
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Keypair;

    #[test]
    fn difficulty_counts_leading_zero_bits_of_the_hash_of_the_id() {
        // The NodeId of docs/protocol.md §4.2: SHA-256 of its 16 bytes is
        // 71 d0 … (0b0111_0001): one leading zero bit.
        let id: NodeId = "21fe31df-a154-8261-a26b-f854046fd227".parse().unwrap();
        assert_eq!(
            Sha256::digest(id.as_bytes())[0],
            0x71,
            "the hash of the doc example"
        );
        assert_eq!(difficulty(&id), 1);
        assert!(meets(&id, 0));
        assert!(meets(&id, 1));
        assert!(!meets(&id, 2));
    }

    #[test]
    fn zero_is_met_by_every_id() {
        for b in [0u8, 1, 0x80, 0xff] {
            assert!(meets(&NodeId::from_bytes([b; 16]), 0));
        }
    }

    #[test]
    fn difficulty_looks_past_whole_zero_bytes() {
        // Search ids until one's hash starts with a zero byte (1 in 256 on average): its
        // difficulty is 8 plus the zeros of the next byte, whatever they are.
        let (id, hash) = (0u32..)
            .map(|n| {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&n.to_be_bytes());
                let id = NodeId::from_bytes(b);
                (id, Sha256::digest(id.as_bytes()))
            })
            .find(|(_, h)| h[0] == 0)
            .unwrap();
        assert_eq!(difficulty(&id), 8 + hash[1].leading_zeros());
        assert!(meets(&id, 8));
    }

    #[test]
    fn mined_keys_meet_the_difficulty_and_fresh_ones_mostly_do_not() {
        for d in [1, 4, 8] {
            let key = Keypair::generate_with_difficulty(d).unwrap();
            assert!(difficulty(&key.node_id()) >= d, "d = {d}");
            assert!(meets(&key.node_id(), d));
        }
        // A fresh key meets 8 bits with probability 1/256: of 64, most do not.
        let below = (0..64)
            .filter(|_| !meets(&Keypair::generate().node_id(), 8))
            .count();
        assert!(below > 48, "{below} of 64 fresh keys below 8 bits");
    }

    #[test]
    fn mining_above_the_cap_is_refused() {
        let err = Keypair::generate_with_difficulty(MAX_DIFFICULTY + 1).unwrap_err();
        assert!(err.to_string().contains("at most 24"), "{err}");
    }
}
