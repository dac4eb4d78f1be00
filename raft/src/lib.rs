//! Replication: the openraft type configuration of the ledger and the adapters that let
//! openraft drive `storage` (the raft log) and `ledger-sm` (the state machine).
//!
//! It is the only crate that names `openraft::`, so an openraft upgrade touches this crate alone;
//! openraft's values reach storage only through `codec`, our own stable encoding, never through
//! openraft's serde layout, and messages between nodes only through `wire`, built on `codec`.
//! `node` runs one member: raft over the gRPC transport (`network` and `service`), the leader's
//! write batcher (`batcher`), `Tick` proposals, read barriers and membership operations
//! (see `docs/ARCHITECTURE.md`).
//!
//! One raft entry carries one ledger `Batch`, so an entry's effects and its applied log id are
//! persisted in one atomic write.

mod batcher;
pub mod codec;
pub mod log_store;
pub mod network;
pub mod node;
pub mod service;
pub mod state_machine;
pub mod wire;

/// The internal service's generated code.
#[allow(clippy::pedantic, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("localplus.raft.v1");
}

use ledger_sm::command::Batch;
use ledger_sm::result::Results;

pub use batcher::{Clock, WriteError, WriteStats, ENTRY_EVENTS_BUCKETS};
pub use log_store::LogStore;
pub use node::{AdminError, Consistency, Member, Node, NodeConfig, Status};
pub use state_machine::{SnapshotData, StateMachine};

/// What a raft entry carries: one ledger batch, stamped by the leader.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerRequest(pub Batch);

/// openraft logs entries with `Debug` at its debug and trace levels: print what `Display`
/// prints, never account references, metadata or code hashes.
impl std::fmt::Debug for LedgerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LedgerRequest({self})")
    }
}

impl std::fmt::Display for LedgerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids and amounts only, never personal fields or code hashes: this reaches logs.
        write!(f, "batch of {} at {}", self.0.operation.len(), self.0.now.0)
    }
}

/// What applying an entry answers: the batch's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerResponse(pub Results);

impl std::fmt::Display for LedgerResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} results", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// The ledger's raft types: node ids are `u64`, nodes carry their address.
    pub TypeConfig:
        D = LedgerRequest,
        R = LedgerResponse,
        NodeId = u64,
        Node = openraft::impls::BasicNode,
        AsyncRuntime = Runtime,
);

/// Tokio, with openraft's random numbers (election timeouts, tick phases) drawn from a seed
/// that each task inherits from the one that spawned it. Every raft instance must start inside
/// `seeded`: a node takes a random seed, the simulation a seed of its own.
pub type Runtime =
    openraft_rt::deterministic_rng::DeterministicRng<openraft_rt_tokio::TokioRuntime>;

/// Runs `future` (which starts raft instances) with openraft's random numbers drawn from `seed`.
pub fn seeded<F: std::future::Future>(
    seed: u64,
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    Runtime::scope(seed, future)
}

pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, openraft::impls::BasicNode>;

/// A raft instance of the ledger over storage engine `K`.
pub type RaftHandle<K> = openraft::Raft<TypeConfig, StateMachine<K>>;
