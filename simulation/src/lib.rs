//! Deterministic simulation of Local-Plus Ledger clusters, and the checkers that judge what
//! clients saw (DESIGN §7).
//!
//! What is here:
//! - `sim`: the seeded simulation — real nodes on turmoil's network in one thread under a
//!   fault schedule the seed picks, replayable (`ledger-sim`);
//! - `checker`: a linearizability checker over a recorded history of calls (Wing & Gong's
//!   search with Lowe's memoization of visited configurations), for any sequential `Model`;
//! - `bank`: the sequential model of a few ledger accounts (transfers with idempotent ids and
//!   recorded refusals, balance reads) the checker judges histories against, whole or one
//!   account at a time;
//! - `chaos`: three real `ledgerd` processes under SIGKILL, SIGSTOP and a fault-injecting TCP
//!   proxy between them while clients write, retry and read; their history is judged by the
//!   checker and the nodes must converge.
//!
//! What it is not: a proof for unbounded histories. The search is exponential in the number of
//! calls that overlap in time; `SearchOptions::configurations_max` bounds it, and a history
//! that exhausts the bound is `Verdict::Undecided`, never "linearizable".

pub mod bank;
pub mod chaos;
pub mod checker;
pub mod ledger;
pub mod rng;
pub mod sim;
