//! The state hash and the audit chain.
//!
//! The state hash is the wrapping sum of a 128-bit hash of every record (asset, account,
//! transfer, refused transfer, lot, sync-out cursor). A sum updates in O(1) per changed record
//! (subtract the old record's hash, add the new one's) and depends only on the set of records,
//! never on the order they were written in: two nodes with equal state have equal hashes. It
//! detects divergence and accidents, not a forger (xxh3 is not collision-resistant).
//!
//! The chain is the tamper-evident trail: each batch links BLAKE3 over the previous link, the
//! batch's canonical bytes and the state hash after it. Rewriting a past batch changes every later
//! link.

use crate::encode::Encode;

/// A record's contribution to the state hash. `tag` keeps equal bytes of different tables apart.
#[must_use]
pub fn record_hash<T: Encode>(tag: u8, record: &T, scratch: &mut Vec<u8>) -> u128 {
    scratch.clear();
    scratch.push(tag);
    record.encode(scratch);
    xxhash_rust::xxh3::xxh3_128(scratch)
}

pub const TAG_ASSET: u8 = 1;
pub const TAG_ACCOUNT: u8 = 2;
pub const TAG_TRANSFER: u8 = 3;
pub const TAG_TRANSFER_FAILED: u8 = 4;
pub const TAG_LOT: u8 = 5;
pub const TAG_CURSOR: u8 = 6;

/// The next link of the audit chain.
#[must_use]
pub fn chain_link(previous: &[u8; 32], batch_bytes: &[u8], state_hash: u128) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(previous);
    hasher.update(&(batch_bytes.len() as u64).to_le_bytes());
    hasher.update(batch_bytes);
    hasher.update(&state_hash.to_le_bytes());
    *hasher.finalize().as_bytes()
}
