//! A damaged row stays where it was found: the snapshot that would copy it is not built, and a
//! stream that carries one is not installed.

use super::*;
use crate::MemKv;

const KEY: [u8; 16] = 7u128.to_be_bytes();

/// A store holding one framed account row.
fn store_with_a_row() -> Store<MemKv> {
    let store = Store::open(MemKv::default(), 1).unwrap();
    let mut batch = WriteBatch::default();
    batch.put(Table::Accounts, KEY.to_vec(), frame(&KEY, b"an account"));
    store.write(batch).unwrap();
    store
}

/// Goal: a node whose disk damaged a row cannot seed another node with it. Method: the row's
/// snapshot builds while the row is intact; after one bit flips, building fails with
/// `Corrupted`, naming the table and the reason.
#[test]
fn a_damaged_row_is_never_shipped() {
    let store = store_with_a_row();
    let chunks: Vec<Vec<u8>> = store.snapshot().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(chunks.len(), 2, "a rows chunk and the end chunk");
    assert!(store.kv().corrupt(Table::Accounts, &KEY));
    let built: Result<Vec<Vec<u8>>, StorageError> = store.snapshot().unwrap().collect();
    match built {
        Err(StorageError::Corrupted { table, reason, .. }) => {
            assert_eq!(table, Table::Accounts.name());
            assert_eq!(reason, "checksum mismatch");
        }
        other => panic!("a damaged row was shipped: {other:?}"),
    }
}

/// Goal: an install checks each row's own frame, not only the stream's. Method: a stream whose
/// chunk frames, count and digest are all right but whose one row's value was damaged before
/// it was framed into the chunk is refused, and the target keeps its state.
#[test]
fn a_stream_with_a_damaged_row_is_refused() {
    let source = Store::open(MemKv::default(), 1).unwrap();
    let mut reader = source.snapshot().unwrap();
    let mut value = frame(&KEY, b"an account");
    *value.last_mut().unwrap() ^= 0x10;
    let mut body = vec![table_tag(Table::Accounts)];
    body.extend_from_slice(&u32::try_from(KEY.len()).unwrap().to_le_bytes());
    body.extend_from_slice(&KEY);
    body.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
    body.extend_from_slice(&value);
    let rows = reader.chunk(KIND_ROWS, &body);
    let mut end = 1u64.to_le_bytes().to_vec();
    end.extend_from_slice(blake3::hash(&body).as_bytes());
    let end = reader.chunk(KIND_END, &end);

    let target = store_with_a_row();
    let error = target.install_snapshot(&[rows, end]).unwrap_err();
    match &error {
        StorageError::SnapshotInvalid(reason) => {
            assert!(reason.contains("a damaged row"), "{reason}")
        }
        other => panic!("a stream with a damaged row was installed: {other}"),
    }
    let kept = target.kv().get(Table::Accounts, &KEY).unwrap().unwrap();
    assert_eq!(unframe(Table::Accounts, &KEY, &kept).unwrap(), b"an account");
}
