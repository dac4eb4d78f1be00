//! Every stored value is framed: a CRC32 over the key and the payload, then the payload. A flipped
//! bit, a torn write or a value written under the wrong key is caught on read, never applied.

use crate::error::StorageError;
use crate::kv::Table;

pub const FRAME_HEADER_BYTES: usize = 4;

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

#[must_use]
pub fn frame(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    framed.extend_from_slice(&checksum(key, payload).to_le_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// The payload of a framed value, verified.
///
/// # Errors
/// `Corrupted` when the value is too short or its checksum does not match.
pub fn unframe<'a>(table: Table, key: &[u8], framed: &'a [u8]) -> Result<&'a [u8], StorageError> {
    let Some((header, payload)) = framed.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(StorageError::corrupted(table, key, "shorter than its frame header"));
    };
    if u32::from_le_bytes(*header) != checksum(key, payload) {
        return Err(StorageError::corrupted(table, key, "checksum mismatch"));
    }
    Ok(payload)
}
