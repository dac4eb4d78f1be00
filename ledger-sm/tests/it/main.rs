//! The crate's single integration-test binary: an independent reference model of the ledger
//! semantics (`docs/ledger-semantics.md`) and the tests that hold the state machine to it.

mod exhaustive;
mod gen;
mod harness;
mod model;
mod props;
mod scenarios;
