//! The raft crate's tests: openraft's own storage test suite against both storage engines, and
//! ledger batches applied through the state machine adapter, and real openraft nodes over an
//! in-process transport.

mod cluster;
mod ledger;
mod suite;
