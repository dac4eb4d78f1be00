//! Goal: our log store and state machine satisfy openraft's storage contract on RocksDB and on
//! memory. Method: openraft's `testing::log::Suite`, which exercises log state, vote, committed,
//! append, truncate, purge, membership tracking and snapshots against a fresh store per test.

use std::sync::Arc;

use openraft::testing::log::{StoreBuilder, Suite};
use raft::{LogStore, StateMachine, TypeConfig};
use storage::{MemKv, RocksKv, RocksOptions, Store};

const CLUSTER: u128 = 42;

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore<MemKv>, StateMachine<MemKv>, ()> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<((), LogStore<MemKv>, StateMachine<MemKv>), openraft::StorageError<TypeConfig>>
    {
        let store = Arc::new(Store::open(MemKv::default(), CLUSTER).expect("memory store"));
        Ok(((), LogStore::new(Arc::clone(&store)), StateMachine::new(store)))
    }
}

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore<RocksKv>, StateMachine<RocksKv>, tempfile::TempDir>
    for RocksBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (tempfile::TempDir, LogStore<RocksKv>, StateMachine<RocksKv>),
        openraft::StorageError<TypeConfig>,
    > {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = RocksOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 4 << 20 };
        let kv = RocksKv::open(&dir.path().join("db"), options).expect("rocksdb");
        let store = Arc::new(Store::open(kv, CLUSTER).expect("rocks store"));
        Ok((dir, LogStore::new(Arc::clone(&store)), StateMachine::new(store)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_memory() {
    raft::seeded(1, Suite::test_all(MemBuilder)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_suite_on_rocksdb() {
    raft::seeded(2, Suite::test_all(RocksBuilder)).await.unwrap();
}
