//! The key-value engine under the store: ordered tables, point reads, bounded ranges, and atomic
//! write batches that are durable on return when synced. Two engines implement it: RocksDB
//! (`rocks`) and memory with injected faults (`mem`). Everything above it — keys, framing,
//! indexes, the ledger tables — is written once, in `store`.

use crate::error::StorageError;

/// Key-value pairs in key order (or reverse key order), as ranges return them.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The tables (RocksDB column families).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Raft log entries by index.
    RaftLog,
    /// Vote, committed, purged, cluster id.
    RaftMeta,
    /// The state machine's `Meta` and applied marker, written with every batch's effects.
    StateMeta,
    Assets,
    Accounts,
    Transfers,
    TransfersFailed,
    /// (account, expires_at) -> lot.
    Lots,
    /// Code hash -> gift card account.
    GiftCards,
    /// (account, timestamp, transfer) -> (): an account's transfers in time order.
    AccountTransfers,
    /// (deadline, transfer) -> (): holds with a timeout, by deadline.
    HoldsDue,
    /// (expires_at, account) -> (): lots by expiry.
    LotsDue,
    /// Event sequence -> event: the outbox.
    Events,
    /// Sink id -> sync-out cursor.
    Cursors,
}

impl Table {
    /// In the order of their snapshot tags: append only.
    pub const ALL: [Self; 14] = [
        Self::RaftLog,
        Self::RaftMeta,
        Self::StateMeta,
        Self::Assets,
        Self::Accounts,
        Self::Transfers,
        Self::TransfersFailed,
        Self::Lots,
        Self::GiftCards,
        Self::AccountTransfers,
        Self::HoldsDue,
        Self::LotsDue,
        Self::Events,
        Self::Cursors,
    ];

    /// The tables a snapshot carries: the state machine's, not raft's.
    pub const STATE: [Self; 12] = [
        Self::StateMeta,
        Self::Assets,
        Self::Accounts,
        Self::Transfers,
        Self::TransfersFailed,
        Self::Lots,
        Self::GiftCards,
        Self::AccountTransfers,
        Self::HoldsDue,
        Self::LotsDue,
        Self::Events,
        Self::Cursors,
    ];

    /// An index table: its keys are the data and its values are empty; every other table's
    /// values are framed (`frame`).
    #[must_use]
    pub fn is_index(self) -> bool {
        matches!(self, Self::AccountTransfers | Self::HoldsDue | Self::LotsDue)
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RaftLog => "raft_log",
            Self::RaftMeta => "raft_meta",
            Self::StateMeta => "state_meta",
            Self::Assets => "assets",
            Self::Accounts => "accounts",
            Self::Transfers => "transfers",
            Self::TransfersFailed => "transfers_failed",
            Self::Lots => "lots",
            Self::GiftCards => "gift_cards",
            Self::AccountTransfers => "account_transfers",
            Self::HoldsDue => "holds_due",
            Self::LotsDue => "lots_due",
            Self::Events => "events",
            Self::Cursors => "cursors",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
    /// Deletes keys in `[from, to)`.
    DeleteRange(Table, Vec<u8>, Vec<u8>),
}

/// Operations applied together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<Op>,
}

impl WriteBatch {
    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.ops.push(Op::Put(table, key.into(), value));
    }

    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(table, key.into()));
    }

    pub fn delete_range(&mut self, table: Table, from: Vec<u8>, to: Vec<u8>) {
        self.ops.push(Op::DeleteRange(table, from, to));
    }
}

/// A key-value engine. Reads see every completed write; a synced write is durable when `write`
/// returns; a batch is atomic, also across a crash.
pub trait Kv: Send + Sync {
    /// A point-in-time copy to read a snapshot from while writes go on.
    type View: Kv;

    /// # Errors
    /// When the engine cannot make the copy.
    fn view(&self) -> Result<Self::View, StorageError>;

    /// # Errors
    /// When the engine cannot read.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Entries with `from <= key < to`, ascending (or descending), at most `limit`.
    ///
    /// # Errors
    /// When the engine cannot read.
    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
        descending: bool,
        limit: usize,
    ) -> Result<Rows, StorageError>;

    /// Applies `batch` atomically; with `sync`, durably (fsync) before returning.
    ///
    /// # Errors
    /// When the write or its sync fails; the batch may then be applied in memory but not durable.
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError>;

    /// The engine's own estimates of its sizes in bytes, by name (for metrics); none by default.
    fn sizes(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
