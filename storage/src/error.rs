//! What can go wrong in storage, as a caller can branch on it.

/// A storage failure. `Io` and `Corrupted` come from the disk; `Poisoned` from an earlier failed
/// write (after which nothing is written until restart); `ClusterMismatch` from opening another
/// cluster's data directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("i/o: {0}")]
    Io(String),
    #[error("corrupted {table} record {key}: {reason}")]
    Corrupted { table: &'static str, key: String, reason: String },
    #[error("store poisoned by an earlier failed write: restart the node")]
    Poisoned,
    #[error("data directory belongs to cluster {found:032x}, not {expected:032x}")]
    ClusterMismatch { expected: u128, found: u128 },
    #[error("snapshot refused: {0}")]
    SnapshotInvalid(String),
    #[error("raft log gap: expected index {expected}, found {found}")]
    LogGap { expected: u64, found: u64 },
}

impl StorageError {
    pub(crate) fn corrupted(table: crate::kv::Table, key: &[u8], reason: impl ToString) -> Self {
        let key = key.iter().map(|byte| format!("{byte:02x}")).collect();
        Self::Corrupted { table: table.name(), key, reason: reason.to_string() }
    }
}
