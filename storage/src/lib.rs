//! Durable storage for a ledger node: the raft log (entries, vote, committed, purged) and the
//! ledger state machine's tables, in one RocksDB per node, plus an in-memory twin with injected
//! faults for tests and the simulation.
//!
//! It is *not* the state machine (`ledger-sm` decides what to write) and not raft (entries and
//! raft metadata are opaque bytes here). Only `rocks` names `rocksdb::`.
//!
//! Guarantees: every write is an atomic batch, synced before it returns; every value is framed
//! with a CRC32 over its key and payload and verified on read; a failed write poisons the store
//! until restart; a data directory carries its cluster id and refuses another cluster.

pub mod error;
pub mod frame;
pub mod kv;
pub mod mem;
pub mod rocks;
pub mod snapshot;
pub mod store;

pub use error::StorageError;
pub use kv::{Kv, Table};
pub use mem::MemKv;
pub use rocks::{RocksKv, RocksOptions};
pub use snapshot::SnapshotReader;
pub use store::{LogEntry, RaftMeta, Store};
