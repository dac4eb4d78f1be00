//! Sync-out: committed events leave the ledger for other systems, each exactly once in effect.
//!
//! The outbox is the state machine's event table (the raft log commits an event with the
//! change it describes). On the leader, one [`Exporter`] per configured [`Sink`] reads the
//! outbox after the sink's position, delivers events in order, and records how far the sink
//! got as a replicated cursor (`Operation::Cursors`), so that a new leader resumes where the
//! old one stopped and the outbox can drop what every sink holds. A sink that keeps its own
//! position transactionally (a database row written with the data) says where to resume;
//! the others resume at the replicated cursor and may see an event again, which the event's
//! sequence number lets them drop. ADR 0016.
//!
//! Dependencies point down only: this crate reads `storage` and `ledger-sm`; proposing a
//! cursor goes through [`Leadership`], which the `api` crate implements over the raft node.

mod exporter;
pub mod file;
pub mod kafka;
pub mod payload;
pub mod postgres;
mod sink;

pub use exporter::{sink_id, Exporter, ExporterConfig, Leadership, SinkStatus};
pub use sink::{Sink, SinkError};
