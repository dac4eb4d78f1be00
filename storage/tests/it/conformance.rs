//! Behaviours both engines must share: each generic check runs on memory and on RocksDB.

use ledger_sm::command::Batch;
use ledger_sm::invariants::Records;
use ledger_sm::mem::MemState;
use ledger_sm::query::{self, AccountFilter};
use ledger_sm::state::{prefetch, StateRead};
use ledger_sm::types::{AccountId, EventSeq, Timestamp};
use storage::kv::WriteBatch;
use storage::{Kv, LogEntry, MemKv, RaftMeta, RocksKv, RocksOptions, StorageError, Store, Table};

use crate::workload::{self, Rng};

pub const CLUSTER: u128 = 0x1ed6e7;

pub fn small_options() -> RocksOptions {
    RocksOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 4 << 20 }
}

fn mem() -> Store<MemKv> {
    Store::open(MemKv::default(), CLUSTER).unwrap()
}

fn rocks(dir: &tempfile::TempDir) -> Store<RocksKv> {
    Store::open(RocksKv::open(dir.path(), small_options()).unwrap(), CLUSTER).unwrap()
}

macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn mem() {
                super::$name(&super::mem());
            }
            #[test]
            fn rocks() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(&super::rocks(&dir));
            }
        }
    )*};
}

on_both_engines!(
    log_lifecycle,
    raft_meta,
    state_matches_reference,
    damaged_values_are_refused,
    snapshot_round_trip,
);

fn entry(index: u64) -> LogEntry {
    LogEntry { index, payload: format!("entry {index}").into_bytes() }
}

/// Goal: append, read back, truncate a conflicting suffix and purge a prefix, as raft does.
fn log_lifecycle<K: Kv>(store: &Store<K>) {
    assert_eq!(store.log_bounds().unwrap(), None);
    let entries: Vec<LogEntry> = (1..=10).map(entry).collect();
    store.log_append(&entries[..4]).unwrap();
    store.log_append(&entries[4..]).unwrap();
    assert_eq!(store.log_entries(1, 11).unwrap(), entries);
    assert_eq!(store.log_entries(3, 6).unwrap(), entries[2..5]);
    assert_eq!(store.log_entries(20, 30).unwrap(), []);
    store.log_truncate(8).unwrap();
    assert_eq!(store.log_bounds().unwrap(), Some((entry(1), entry(7))));
    let replacement = LogEntry { index: 8, payload: b"new leader's entry".to_vec() };
    store.log_append(std::slice::from_ref(&replacement)).unwrap();
    store.log_purge(3, b"purged at 3").unwrap();
    assert_eq!(store.log_bounds().unwrap(), Some((entry(4), replacement.clone())));
    assert_eq!(store.raft_meta(RaftMeta::Purged).unwrap().unwrap(), b"purged at 3");
    assert_eq!(store.log_entries(1, 9).unwrap().first(), Some(&entry(4)));
}

/// Goal: vote and committed survive as written, and are overwritten by later saves.
fn raft_meta<K: Kv>(store: &Store<K>) {
    assert_eq!(store.raft_meta(RaftMeta::Vote).unwrap(), None);
    store.raft_meta_save(RaftMeta::Vote, b"term 1 node 2").unwrap();
    store.raft_meta_save(RaftMeta::Vote, b"term 2 node 3").unwrap();
    store.raft_meta_save(RaftMeta::Committed, b"index 9").unwrap();
    assert_eq!(store.raft_meta(RaftMeta::Vote).unwrap().unwrap(), b"term 2 node 3");
    assert_eq!(store.raft_meta(RaftMeta::Committed).unwrap().unwrap(), b"index 9");
}

/// Applies `batch` through the store as a node does: prefetch from it, apply, persist.
pub fn execute<K: Kv>(
    store: &Store<K>,
    batch: &Batch,
    applied: &[u8],
) -> ledger_sm::result::Results {
    let prefetched = prefetch(store, batch).unwrap();
    let applied_batch = ledger_sm::apply(prefetched, batch);
    store.persist(&applied_batch.effects, applied).unwrap();
    applied_batch.results
}

/// Goal: the store answers every `StateRead` exactly as the reference in-memory state does, and
/// the ledger's invariants hold over its records. Method: a seeded workload through both.
fn state_matches_reference<K: Kv>(store: &Store<K>) {
    let mut reference = MemState::default();
    let mut rng = Rng(7);
    let mut batches = workload::setup();
    batches.extend((1..=60).map(|n| workload::batch(&mut rng, n)));
    for (n, batch) in batches.iter().enumerate() {
        let expected = reference.execute(batch);
        let results = execute(store, batch, format!("applied {n}").as_bytes());
        assert_eq!(results, expected, "batch {n}");
    }
    assert_eq!(store.meta().unwrap(), reference.meta());
    assert_eq!(
        store.applied().unwrap().unwrap(),
        format!("applied {}", batches.len() - 1).as_bytes()
    );
    let records = store.records().unwrap();
    ledger_sm::invariants::check(&records).unwrap();
    let mut accounts = records.accounts.clone();
    let mut expected: Vec<_> = reference.accounts().cloned().collect();
    accounts.sort_by_key(|a| a.id);
    expected.sort_by_key(|a| a.id);
    assert_eq!(accounts, expected);
    assert_eq!(records.transfers.len(), reference.transfers().count());
    assert_eq!(records.lots.len(), reference.all_lots().count());
    for id in (10..18).map(AccountId) {
        assert_eq!(store.lots(id).unwrap(), reference.lots(id).unwrap());
        for descending in [false, true] {
            let filter = AccountFilter {
                account: id,
                timestamp_min: Timestamp::ZERO,
                timestamp_max: Timestamp::ZERO,
                limit: 7,
                descending,
            };
            assert_eq!(
                query::account_transfers(store, &filter).unwrap(),
                query::account_transfers(&reference, &filter).unwrap()
            );
        }
    }
    let far = Timestamp(u64::MAX / 2);
    assert_eq!(store.holds_due(far, 1000).unwrap(), reference.holds_due(far, 1000).unwrap());
    assert_eq!(store.lots_due(far, 1000).unwrap(), reference.lots_due(far, 1000).unwrap());
    assert_eq!(store.events(EventSeq(5), 50).unwrap(), reference.events(EventSeq(5), 50).unwrap());
    // The workload's cursors compacted part of the outbox: what is left matches, from its start.
    let first = store.meta().unwrap().events_first;
    assert!(first > EventSeq(0), "the workload compacts the outbox");
    assert_eq!(
        store.events(EventSeq(0), 8190).unwrap(),
        reference.events(EventSeq(0), 8190).unwrap()
    );
    assert_eq!(store.events(EventSeq(0), 1).unwrap()[0].seq, first);
    assert_eq!(store.cursors().unwrap(), reference.cursors().unwrap());
    assert!(!store.cursors().unwrap().is_empty());
    assert_eq!(
        query::gift_card(store, &ledger_sm::types::CodeHash([9; 32])).unwrap(),
        query::gift_card(&reference, &ledger_sm::types::CodeHash([9; 32])).unwrap()
    );
}

/// Goal: a value damaged on disk (a flipped bit, a value under the wrong key, a truncated frame)
/// is reported as corruption and never returned. Method: write raw bytes under the framing.
fn damaged_values_are_refused<K: Kv>(store: &Store<K>) {
    store.log_append(&[entry(1), entry(2), entry(3)]).unwrap();
    let moved = store.kv().get(Table::RaftLog, &1u64.to_be_bytes()).unwrap().unwrap();
    let mut flipped = store.kv().get(Table::RaftLog, &3u64.to_be_bytes()).unwrap().unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    let mut batch = WriteBatch::default();
    batch.put(Table::RaftLog, 2u64.to_be_bytes().to_vec(), moved);
    batch.put(Table::RaftLog, 3u64.to_be_bytes().to_vec(), flipped);
    batch.put(Table::RaftMeta, b"vote".to_vec(), vec![1, 2]);
    store.kv().write(batch, true).unwrap();
    assert_eq!(store.log_entries(1, 2).unwrap(), [entry(1)]);
    for index in [2, 3] {
        let error = store.log_entries(index, index + 1).unwrap_err();
        assert!(matches!(error, StorageError::Corrupted { table: "raft_log", .. }), "{error}");
    }
    let error = store.raft_meta(RaftMeta::Vote).unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { table: "raft_meta", .. }), "{error}");
}

/// Goal: a data directory refuses another cluster, on both engines.
#[test]
fn cluster_id_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    drop(rocks(&dir));
    let reopened = RocksKv::open(dir.path(), small_options()).unwrap();
    let error = Store::open(reopened, CLUSTER + 1).unwrap_err();
    assert_eq!(error, StorageError::ClusterMismatch { expected: CLUSTER + 1, found: CLUSTER });
    let store = mem();
    let error = Store::open(store.kv().crash(false), 99).unwrap_err();
    assert_eq!(error, StorageError::ClusterMismatch { expected: 99, found: CLUSTER });
}

/// Goal: after a failed fsync the store refuses every write, even once the disk recovers, and a
/// crash loses the unsynced write but keeps every acknowledged one.
#[test]
fn failed_sync_poisons_and_crash_keeps_acknowledged() {
    let store = mem();
    store.log_append(&[entry(1), entry(2)]).unwrap();
    store.kv().fail_syncs(1);
    assert!(matches!(store.log_append(&[entry(3)]), Err(StorageError::Io(_))));
    assert!(store.is_poisoned());
    assert_eq!(store.log_append(&[entry(3)]), Err(StorageError::Poisoned));
    assert_eq!(store.raft_meta_save(RaftMeta::Vote, b"v"), Err(StorageError::Poisoned));
    let restarted = Store::open(store.kv().crash(false), CLUSTER).unwrap();
    assert!(!restarted.is_poisoned());
    assert_eq!(restarted.log_bounds().unwrap(), Some((entry(1), entry(2))));
    restarted.log_append(&[entry(3)]).unwrap();
    assert_eq!(restarted.log_entries(1, 4).unwrap(), [entry(1), entry(2), entry(3)]);
}

/// Goal: a torn write (half a batch on disk, its last value cut) is detected on read, never
/// applied. Method: fail the sync of a multi-entry append, crash with tearing, read the log.
#[test]
fn torn_write_is_detected() {
    let store = mem();
    store.log_append(&[entry(1)]).unwrap();
    store.kv().fail_syncs(1);
    let batch: Vec<LogEntry> = (2..=5).map(entry).collect();
    assert!(store.log_append(&batch).is_err());
    let restarted = Store::open(store.kv().crash(true), CLUSTER).unwrap();
    // Half the batch reached the disk: entry 2 intact (unacknowledged, harmless to raft), entry 3
    // cut short, entries 4 and 5 never written.
    assert_eq!(restarted.log_entries(1, 3).unwrap(), [entry(1), entry(2)]);
    let error = restarted.log_entries(3, 4).unwrap_err();
    assert!(matches!(error, StorageError::Corrupted { table: "raft_log", .. }), "{error}");
    assert!(restarted.log_entries(4, 6).unwrap().is_empty());
}

/// Goal: a byte flipped inside RocksDB's files on disk is detected, never returned as data.
/// Method: write entries, flush to a table file, flip bytes at several offsets of its data
/// region, reopen and read everything: each read fails or returns exactly what was written, and
/// at least one flip is caught.
#[test]
fn on_disk_corruption_is_detected() {
    let entries: Vec<LogEntry> = (1..=200).map(entry).collect();
    let mut caught = 0;
    for offset_percent in [5, 10, 20, 30] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = rocks(&dir);
            store.log_append(&entries).unwrap();
            store.kv().flush().unwrap();
        }
        let table_file = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sst"))
            .max_by_key(|path| std::fs::metadata(path).unwrap().len())
            .expect("a flushed table file");
        let mut bytes = std::fs::read(&table_file).unwrap();
        let offset = bytes.len() * offset_percent / 100;
        bytes[offset] ^= 0x5a;
        std::fs::write(&table_file, bytes).unwrap();
        let outcome = RocksKv::open(dir.path(), small_options())
            .and_then(|kv| Store::open(kv, CLUSTER))
            .and_then(|store| store.log_entries(1, 201));
        match outcome {
            Ok(read) => {
                assert_eq!(read, entries, "a flip at {offset_percent}% changed data silently")
            }
            Err(_) => caught += 1,
        }
    }
    assert!(caught > 0, "no flip in the data region was detected");
}

/// Runs the seeded workload's set-up and `batches` more batches through `store`.
fn populate<K: Kv>(store: &Store<K>, seed: u64, batches: u64) {
    let mut rng = Rng(seed);
    let mut all = workload::setup();
    all.extend((1..=batches).map(|n| workload::batch(&mut rng, n)));
    for batch in &all {
        execute(store, batch, b"applied");
    }
}

/// Goal: a snapshot is a point-in-time copy of the state (writes after it are not in it), it
/// installs into a fresh store of either engine with identical records, and a damaged,
/// reordered or truncated stream is refused without touching the target's state.
fn snapshot_round_trip<K: Kv>(source: &Store<K>) {
    populate(source, 11, 40);
    let expected = source.records().unwrap();
    let reader = source.snapshot().unwrap();
    let more = Batch {
        now: Timestamp(10_000 * 1_000_000_000),
        operation: ledger_sm::command::Operation::Tick,
    };
    execute(source, &more, b"after the snapshot");
    let chunks: Vec<Vec<u8>> = reader.collect::<Result<_, _>>().unwrap();
    assert!(chunks.len() >= 2, "rows and an end chunk");

    let dir = tempfile::tempdir().unwrap();
    check_installed(&mem(), &chunks, &expected);
    check_installed(&rocks(&dir), &chunks, &expected);

    let target = mem();
    populate(&target, 99, 5);
    let before = target.records().unwrap().meta;
    let mut flipped = chunks.clone();
    flipped[0][10] ^= 1;
    let mut reordered = chunks.clone();
    reordered.swap(0, 1);
    let truncated = chunks[..chunks.len() - 1].to_vec();
    for damaged in [flipped, reordered, truncated, Vec::new()] {
        let error = target.install_snapshot(&damaged).unwrap_err();
        assert!(matches!(error, StorageError::SnapshotInvalid(_)), "{error}");
        assert_eq!(target.records().unwrap().meta, before, "a refused install changed state");
    }
}

/// Installs `chunks` into `target` (which holds other state first) and compares with `expected`.
fn check_installed<T: Kv>(target: &Store<T>, chunks: &[Vec<u8>], expected: &Records) {
    populate(target, 99, 5); // Old state, to be replaced whole.
    target.install_snapshot(chunks).unwrap();
    let installed = target.records().unwrap();
    assert_eq!(installed.meta, expected.meta);
    assert_eq!(installed.accounts.len(), expected.accounts.len());
    assert_eq!(installed.transfers.len(), expected.transfers.len());
    assert_eq!(installed.lots.len(), expected.lots.len());
    assert_eq!(installed.events, expected.events);
    assert_eq!(target.applied().unwrap().unwrap(), b"applied");
    ledger_sm::invariants::check(&installed).unwrap();
}
