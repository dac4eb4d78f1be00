//! Snapshots: the state machine's tables as a checksummed, chunked stream read from a
//! point-in-time view, and an install that replaces the state atomically.
//!
//! Chunk: `frame(b"snapshot" || seq, payload)` with payload
//! `[version u8][seq u32][kind u8][body]`. A rows chunk's body is rows
//! `[table u8][key len u32][key][value len u32][value]`; the end chunk's body is
//! `[row count u64][BLAKE3 of every rows body, in order]`. Install verifies every frame, the
//! sequence, the count and the digest before it deletes anything.
//!
//! Each row's value keeps its own frame (`frame`), and both ends check it: a node whose disk
//! damaged a row fails to build a snapshot (`Corrupted`, so it stops) rather than hand the
//! damage to the nodes it would seed, and an install refuses a stream carrying such a row.

use crate::error::StorageError;
use crate::frame::{frame, unframe};
use crate::kv::{Kv, Table, WriteBatch};
use crate::store::Store;

/// Target size of one chunk: big enough to stream efficiently, small enough for one message.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// The largest snapshot an install accepts: install stages the whole state in one atomic write
/// batch, so this bounds the memory it takes.
pub const SNAPSHOT_INSTALL_BYTES_MAX: usize = 4 << 30;

const SNAPSHOT_VERSION: u8 = 1;
const KIND_ROWS: u8 = 1;
const KIND_END: u8 = 2;
/// Rows read from the view at a time.
const ROWS_PER_READ: usize = 4_096;
/// Keys of every table are shorter than this, so it bounds a whole-table range.
const KEY_END: [u8; 64] = [0xff; 64];

fn chunk_key(seq: u32) -> Vec<u8> {
    [&b"snapshot"[..], &seq.to_be_bytes()].concat()
}

fn table_tag(table: Table) -> u8 {
    let index = Table::ALL.iter().position(|t| *t == table).expect("a table");
    u8::try_from(index).expect("few tables")
}

/// Produces the chunks of a snapshot from a point-in-time view.
#[derive(Debug)]
pub struct SnapshotReader<V: Kv> {
    view: V,
    table: usize,
    cursor: Vec<u8>,
    seq: u32,
    rows: u64,
    digest: blake3::Hasher,
    finished: bool,
}

impl<V: Kv> SnapshotReader<V> {
    /// The applied marker as of the snapshot's point in time: what the snapshot's metadata
    /// must say.
    ///
    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn applied(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(framed) = self.view.get(Table::StateMeta, crate::store::KEY_APPLIED)? else {
            return Ok(None);
        };
        Ok(Some(unframe(Table::StateMeta, crate::store::KEY_APPLIED, &framed)?.to_vec()))
    }

    fn rows_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        let mut body = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES + 4_096);
        while body.len() < SNAPSHOT_CHUNK_BYTES && self.table < Table::STATE.len() {
            let table = Table::STATE[self.table];
            let rows = self.view.range(table, &self.cursor, &KEY_END, false, ROWS_PER_READ)?;
            if rows.len() < ROWS_PER_READ {
                self.table += 1;
                self.cursor.clear();
            } else if let Some((last, _)) = rows.last() {
                // The next read starts right after the last key.
                self.cursor = [last.as_slice(), &[0]].concat();
            }
            for (key, value) in rows {
                // Never ship a damaged row: a new replica would take it as its own state.
                check_row(table, &key, &value)?;
                body.push(table_tag(table));
                body.extend_from_slice(
                    &u32::try_from(key.len()).expect("short keys").to_le_bytes(),
                );
                body.extend_from_slice(&key);
                let len = u32::try_from(value.len())
                    .map_err(|_| StorageError::corrupted(table, &key, "value longer than 4 GiB"))?;
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(&value);
                self.rows += 1;
            }
        }
        if body.is_empty() {
            return Ok(None);
        }
        self.digest.update(&body);
        Ok(Some(self.chunk(KIND_ROWS, &body)))
    }

    fn chunk(&mut self, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(6 + body.len());
        payload.push(SNAPSHOT_VERSION);
        payload.extend_from_slice(&self.seq.to_le_bytes());
        payload.push(kind);
        payload.extend_from_slice(body);
        let chunk = frame(&chunk_key(self.seq), &payload);
        self.seq += 1;
        chunk
    }
}

impl<V: Kv> Iterator for SnapshotReader<V> {
    type Item = Result<Vec<u8>, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.rows_chunk() {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => {
                self.finished = true;
                let mut body = self.rows.to_le_bytes().to_vec();
                body.extend_from_slice(self.digest.finalize().as_bytes());
                Some(Ok(self.chunk(KIND_END, &body)))
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

impl<K: Kv> Store<K> {
    /// A snapshot of the state as of now; writes may go on while it is read.
    ///
    /// # Errors
    /// When the engine cannot make a point-in-time view.
    pub fn snapshot(&self) -> Result<SnapshotReader<K::View>, StorageError> {
        Ok(SnapshotReader {
            view: self.kv().view()?,
            table: 0,
            cursor: Vec::new(),
            seq: 0,
            rows: 0,
            digest: blake3::Hasher::new(),
            finished: false,
        })
    }

    /// Replaces the whole state machine state (tables, meta, applied marker) with the snapshot's,
    /// in one atomic, synced write. Nothing changes unless every chunk verifies.
    ///
    /// # Errors
    /// `SnapshotInvalid` for a damaged, reordered, truncated or oversized stream; the engine's
    /// error (then the store is poisoned); `Poisoned`.
    pub fn install_snapshot(&self, chunks: &[Vec<u8>]) -> Result<(), StorageError> {
        let rows = verify(chunks)?;
        let mut batch = WriteBatch::default();
        for table in Table::STATE {
            batch.delete_range(table, Vec::new(), KEY_END.to_vec());
        }
        for (table, key, value) in rows {
            batch.put(table, key, value);
        }
        self.write(batch)
    }
}

/// One row of a state table: table, key, value.
type Row = (Table, Vec<u8>, Vec<u8>);

fn invalid(reason: impl Into<String>) -> StorageError {
    StorageError::SnapshotInvalid(reason.into())
}

/// Checks a received snapshot stream (chunk checksums, the end chunk's BLAKE3 over all rows)
/// without installing it, so a damaged transfer is refused before it reaches raft.
///
/// # Errors
/// `Corrupt` for a damaged or incomplete stream.
pub fn verify_chunks(chunks: &[Vec<u8>]) -> Result<(), StorageError> {
    verify(chunks).map(|_| ())
}

/// Every row of a verified stream.
fn verify(chunks: &[Vec<u8>]) -> Result<Vec<Row>, StorageError> {
    let total: usize = chunks.iter().map(Vec::len).sum();
    if total > SNAPSHOT_INSTALL_BYTES_MAX {
        return Err(invalid(format!("{total} bytes exceed {SNAPSHOT_INSTALL_BYTES_MAX}")));
    }
    let mut digest = blake3::Hasher::new();
    let mut rows = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let seq = u32::try_from(index).map_err(|_| invalid("too many chunks"))?;
        let payload = unframe(Table::StateMeta, &chunk_key(seq), chunk)
            .map_err(|_| invalid(format!("chunk {seq}: checksum mismatch or out of order")))?;
        let (header, body) = payload.split_at_checked(6).ok_or_else(|| invalid("short chunk"))?;
        if header[0] != SNAPSHOT_VERSION {
            return Err(invalid(format!("chunk {seq}: version {}", header[0])));
        }
        let last = index + 1 == chunks.len();
        match (header[5], last) {
            (KIND_ROWS, false) => {
                digest.update(body);
                parse_rows(body, &mut rows)?;
            }
            (KIND_END, true) => {
                let (count, hash) = body.split_at_checked(8).ok_or_else(|| invalid("short end"))?;
                let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
                if count != rows.len() as u64 || hash != digest.finalize().as_bytes() {
                    return Err(invalid("row count or digest does not match the rows"));
                }
                return Ok(rows);
            }
            (KIND_END, false) => return Err(invalid(format!("chunk {seq}: end before the last"))),
            _ => return Err(invalid(format!("chunk {seq}: unexpected kind {}", header[5]))),
        }
    }
    Err(invalid("stream ends without its end chunk"))
}

/// A stored row as written: an index row's value empty, any other's framed and intact.
fn check_row(table: Table, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
    match table.is_index() {
        true if value.is_empty() => Ok(()),
        true => Err(StorageError::corrupted(table, key, "an index row with a value")),
        false => unframe(table, key, value).map(|_| ()),
    }
}

fn parse_rows(
    mut body: &[u8],
    rows: &mut Vec<(Table, Vec<u8>, Vec<u8>)>,
) -> Result<(), StorageError> {
    fn take<'a>(body: &mut &'a [u8], len: usize) -> Result<&'a [u8], StorageError> {
        let (head, tail) = body.split_at_checked(len).ok_or_else(|| invalid("truncated row"))?;
        *body = tail;
        Ok(head)
    }
    fn length(body: &mut &[u8]) -> Result<usize, StorageError> {
        let bytes = take(body, 4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")) as usize)
    }
    while !body.is_empty() {
        let tag = usize::from(take(&mut body, 1)?[0]);
        let table = *Table::ALL.get(tag).ok_or_else(|| invalid("unknown table"))?;
        if !Table::STATE.contains(&table) {
            return Err(invalid(format!("table {} is not state", table.name())));
        }
        let key_len = length(&mut body)?;
        let key = take(&mut body, key_len)?.to_vec();
        let value_len = length(&mut body)?;
        let value = take(&mut body, value_len)?.to_vec();
        if let Err(damaged) = check_row(table, &key, &value) {
            return Err(invalid(format!("a damaged row: {damaged}")));
        }
        rows.push((table, key, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
