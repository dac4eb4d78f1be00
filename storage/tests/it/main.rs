//! The storage conformance suite: every behaviour runs against both engines (RocksDB in a
//! temporary directory, and memory), plus crash, corruption and poisoning tests per engine, and a
//! real process killed with SIGKILL mid-write.

mod conformance;
mod crash;
mod workload;
