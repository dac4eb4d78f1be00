//! The Local-Plus ledger state machine: assets, accounts, transfers (single-phase, holds,
//! linked chains, balancing, reversals), expiring lots, gift cards, time and erasure.
//!
//! It is pure and deterministic: no I/O, clocks, randomness, threads or async, and no iteration
//! over hash maps in anything that decides an outcome. The same batches applied to the same
//! state give byte-identical effects on every node. Time arrives inside commands.
//!
//! It is *not* a store: `state::prefetch` reads the records a batch needs through `StateRead`,
//! `apply` turns them into results and `Effects`, and the store persists the effects. `mem` is
//! the in-memory store used by tests and benchmarks; the disk store lives in the `storage` crate.
//!
//! Limits are in `constants`: at most `BATCH_EVENTS_MAX` events per batch, `ACCOUNT_LOTS_MAX`
//! open lots per account, `TICK_EXPIRIES_MAX` expiries per tick, `QUERY_LIMIT_MAX` rows per read.

pub mod apply;
pub mod command;
pub mod constants;
pub mod decode;
pub mod encode;
pub mod event;
pub mod hash;
pub mod invariants;
pub mod mem;
pub mod query;
pub mod result;
pub mod state;
pub mod types;

pub use apply::{apply, Applied};
