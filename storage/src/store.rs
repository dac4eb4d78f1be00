//! The store: the raft log and the ledger state on one `Kv`, written once for both engines.
//!
//! Every write that precedes an acknowledgement is synced. A failed write poisons the store: it
//! refuses every later write until the process restarts and reopens it (after a failed fsync the
//! page cache may hold data the disk does not, so nothing written after it can be trusted).

use std::sync::atomic::{AtomicBool, Ordering};

use ledger_sm::decode::{decode_exact, Decode};
use ledger_sm::encode::Encode;
use ledger_sm::event::Event;
use ledger_sm::invariants::Records;
use ledger_sm::state::{Effects, Meta, StateRead};
use ledger_sm::types::{
    Account, AccountId, Asset, AssetId, CodeHash, Cursor, EventSeq, FailedTransfer, Lot, Timestamp,
    Transfer, TransferId, TransferState,
};

use crate::error::StorageError;
use crate::frame::{frame, unframe};
use crate::kv::{Kv, Table, WriteBatch};

/// One raft log entry: its index and the raft layer's bytes (term, payload, membership: opaque
/// here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub index: u64,
    pub payload: Vec<u8>,
}

/// Raft metadata kept beside the log, each an opaque value of the raft layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftMeta {
    Vote,
    Committed,
    /// The last purged log id: entries up to it are gone.
    Purged,
}

impl RaftMeta {
    fn key(self) -> &'static [u8] {
        match self {
            Self::Vote => b"vote",
            Self::Committed => b"committed",
            Self::Purged => b"purged",
        }
    }
}

const KEY_CLUSTER_ID: &[u8] = b"cluster_id";
const KEY_META: &[u8] = b"meta";
pub(crate) const KEY_APPLIED: &[u8] = b"applied";

#[derive(Debug)]
pub struct Store<K: Kv> {
    kv: K,
    poisoned: AtomicBool,
    cluster_id: u128,
}

impl<K: Kv> Store<K> {
    /// Opens the store of cluster `cluster_id`: a new store takes the id; an existing one must
    /// already carry it.
    ///
    /// # Errors
    /// `ClusterMismatch` for another cluster's data, or the engine's error.
    pub fn open(kv: K, cluster_id: u128) -> Result<Self, StorageError> {
        assert_ne!(cluster_id, 0, "cluster ids are never zero");
        let store = Self { kv, poisoned: AtomicBool::new(false), cluster_id };
        match store.read_framed(Table::RaftMeta, KEY_CLUSTER_ID)? {
            Some(bytes) => {
                let found = u128::from_le_bytes(bytes.as_slice().try_into().map_err(|_| {
                    StorageError::corrupted(Table::RaftMeta, KEY_CLUSTER_ID, "length")
                })?);
                if found != cluster_id {
                    return Err(StorageError::ClusterMismatch { expected: cluster_id, found });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                put(
                    &mut batch,
                    Table::RaftMeta,
                    KEY_CLUSTER_ID.to_vec(),
                    &cluster_id.to_le_bytes(),
                );
                store.write(batch)?;
            }
        }
        Ok(store)
    }

    #[must_use]
    pub fn cluster_id(&self) -> u128 {
        self.cluster_id
    }

    /// The engine underneath: for tests that damage it and tools that inspect it.
    #[must_use]
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// Whether an earlier write failed.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Every write goes through here: synced, and poisoning on failure.
    pub(crate) fn write(&self, batch: WriteBatch) -> Result<(), StorageError> {
        if self.is_poisoned() {
            return Err(StorageError::Poisoned);
        }
        self.kv.write(batch, true).inspect_err(|_| self.poisoned.store(true, Ordering::Release))
    }

    fn read_framed(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(framed) = self.kv.get(table, key)? else { return Ok(None) };
        Ok(Some(unframe(table, key, &framed)?.to_vec()))
    }

    fn read_record<T: Decode>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StorageError> {
        let Some(payload) = self.read_framed(table, key)? else { return Ok(None) };
        let record = decode_exact(&payload).map_err(|e| StorageError::corrupted(table, key, e))?;
        Ok(Some(record))
    }

    // The raft log.

    /// Appends entries (contiguous, ascending) and syncs before returning.
    ///
    /// # Errors
    /// The engine's error (the store is then poisoned), or `Poisoned`.
    ///
    /// # Panics
    /// If the entries are not contiguous: the raft layer never asks for that.
    pub fn log_append(&self, entries: &[LogEntry]) -> Result<(), StorageError> {
        for pair in entries.windows(2) {
            assert_eq!(pair[0].index + 1, pair[1].index, "appended entries are contiguous");
        }
        let mut batch = WriteBatch::default();
        for entry in entries {
            let key = entry.index.to_be_bytes().to_vec();
            let value = frame(&key, &entry.payload);
            batch.put(Table::RaftLog, key, value);
        }
        self.write(batch)
    }

    /// Entries with `from <= index < to`, verified and checked contiguous.
    ///
    /// # Errors
    /// `Corrupted` for a damaged entry, `LogGap` for a missing one, or the engine's error.
    pub fn log_entries(&self, from: u64, to: u64) -> Result<Vec<LogEntry>, StorageError> {
        let rows = self.kv.range(
            Table::RaftLog,
            &from.to_be_bytes(),
            &to.to_be_bytes(),
            false,
            usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX),
        )?;
        let mut entries = Vec::with_capacity(rows.len());
        for (key, framed) in rows {
            let index = index_of(&key)?;
            let expected = entries.last().map_or(index, |last: &LogEntry| last.index + 1);
            if index != expected {
                return Err(StorageError::LogGap { expected, found: index });
            }
            let payload = unframe(Table::RaftLog, &key, &framed)?.to_vec();
            entries.push(LogEntry { index, payload });
        }
        Ok(entries)
    }

    /// The first and last entries still in the log.
    ///
    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn log_bounds(&self) -> Result<Option<(LogEntry, LogEntry)>, StorageError> {
        let ends = |descending| self.kv.range(Table::RaftLog, &[], &[0xff; 9], descending, 1);
        let (Some((first_key, first)), Some((last_key, last))) =
            (ends(false)?.pop(), ends(true)?.pop())
        else {
            return Ok(None);
        };
        let entry = |key: &[u8], framed: &[u8]| -> Result<LogEntry, StorageError> {
            let payload = unframe(Table::RaftLog, key, framed)?.to_vec();
            Ok(LogEntry { index: index_of(key)?, payload })
        };
        Ok(Some((entry(&first_key, &first)?, entry(&last_key, &last)?)))
    }

    /// Deletes entries from `index` on (a conflicting suffix), synced.
    ///
    /// # Errors
    /// The engine's error, or `Poisoned`.
    pub fn log_truncate(&self, index: u64) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range(Table::RaftLog, index.to_be_bytes().to_vec(), vec![0xff; 9]);
        self.write(batch)
    }

    /// Deletes entries up to and including `index` and records `purged` (the raft layer's id of
    /// that entry) in the same atomic write.
    ///
    /// # Errors
    /// The engine's error, or `Poisoned`.
    pub fn log_purge(&self, index: u64, purged: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        let to = index.checked_add(1).expect("log index below u64::MAX");
        batch.delete_range(Table::RaftLog, Vec::new(), to.to_be_bytes().to_vec());
        put(&mut batch, Table::RaftMeta, RaftMeta::Purged.key().to_vec(), purged);
        self.write(batch)
    }

    /// # Errors
    /// The engine's error, or `Poisoned`.
    pub fn raft_meta_save(&self, key: RaftMeta, value: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        put(&mut batch, Table::RaftMeta, key.key().to_vec(), value);
        self.write(batch)
    }

    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn raft_meta(&self, key: RaftMeta) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_framed(Table::RaftMeta, key.key())
    }

    // The state machine.

    /// Persists one batch's effects and the applied marker (the raft layer's last applied log id
    /// and membership) in one atomic, synced write.
    ///
    /// # Errors
    /// The engine's error (the store is then poisoned), or `Poisoned`.
    pub fn persist(&self, effects: &Effects, applied: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        effects_batch(&mut batch, effects);
        put(&mut batch, Table::StateMeta, KEY_APPLIED.to_vec(), applied);
        self.write(batch)
    }

    /// Persists the applied marker alone, for entries that carry no ledger batch (blank entries,
    /// membership changes).
    ///
    /// # Errors
    /// The engine's error, or `Poisoned`.
    pub fn persist_applied(&self, applied: &[u8]) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        put(&mut batch, Table::StateMeta, KEY_APPLIED.to_vec(), applied);
        self.write(batch)
    }

    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn applied(&self) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_framed(Table::StateMeta, KEY_APPLIED)
    }

    /// Accounts with ids from `from` on, ascending, at most `limit`: a bounded scan for
    /// reconciling read models range by range.
    ///
    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn accounts_from(
        &self,
        from: AccountId,
        limit: usize,
    ) -> Result<Vec<Account>, StorageError> {
        let rows = self.kv.range(Table::Accounts, &account_key(from), &[0xff; 17], false, limit)?;
        rows.into_iter()
            .map(|(key, framed)| {
                let payload = unframe(Table::Accounts, &key, &framed)?;
                decode_exact(payload).map_err(|e| StorageError::corrupted(Table::Accounts, &key, e))
            })
            .collect()
    }

    /// Every state record, for `invariants::check` and audits. Reads the whole state: for tests
    /// and offline tools, not for a serving node's hot path.
    ///
    /// # Errors
    /// `Corrupted` or the engine's error.
    pub fn records(&self) -> Result<Records, StorageError> {
        let all = |table| self.kv.range(table, &[], &[0xff; 64], false, usize::MAX);
        let decode_all = |table| -> Result<Vec<Vec<u8>>, StorageError> {
            all(table)?
                .into_iter()
                .map(|(key, framed)| Ok(unframe(table, &key, &framed)?.to_vec()))
                .collect()
        };
        fn records_of<T: Decode>(
            table: Table,
            payloads: Vec<Vec<u8>>,
        ) -> Result<Vec<T>, StorageError> {
            payloads
                .iter()
                .map(|p| decode_exact(p).map_err(|e| StorageError::corrupted(table, &[], e)))
                .collect()
        }
        let gift_cards = decode_all(Table::GiftCards)?;
        let gift_card_keys = all(Table::GiftCards)?;
        let gift_cards = gift_card_keys
            .iter()
            .zip(gift_cards)
            .map(|((key, _), value)| {
                let hash = key.as_slice().try_into().map(CodeHash);
                let account = value.as_slice().try_into().map(u128::from_be_bytes);
                match (hash, account) {
                    (Ok(hash), Ok(account)) => Ok((hash, AccountId(account))),
                    _ => Err(StorageError::corrupted(Table::GiftCards, key, "length")),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Records {
            meta: self.meta()?,
            assets: records_of(Table::Assets, decode_all(Table::Assets)?)?,
            accounts: records_of(Table::Accounts, decode_all(Table::Accounts)?)?,
            transfers: records_of(Table::Transfers, decode_all(Table::Transfers)?)?,
            transfers_failed: records_of(
                Table::TransfersFailed,
                decode_all(Table::TransfersFailed)?,
            )?,
            lots: records_of(Table::Lots, decode_all(Table::Lots)?)?,
            gift_cards,
            events: Some(records_of(Table::Events, decode_all(Table::Events)?)?),
            cursors: records_of(Table::Cursors, decode_all(Table::Cursors)?)?,
            journal: None,
        })
    }
}

fn index_of(key: &[u8]) -> Result<u64, StorageError> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| StorageError::corrupted(Table::RaftLog, key, "key length"))?;
    Ok(u64::from_be_bytes(bytes))
}

fn put(batch: &mut WriteBatch, table: Table, key: Vec<u8>, payload: &[u8]) {
    let value = frame(&key, payload);
    batch.put(table, key, value);
}

fn put_record<T: Encode>(batch: &mut WriteBatch, table: Table, key: Vec<u8>, record: &T) {
    let mut payload = Vec::with_capacity(256);
    record.encode(&mut payload);
    put(batch, table, key, &payload);
}

/// The smallest key after every key that starts with `prefix` (keys of one table have one
/// length, so a longer run of 0xff bounds an all-0xff prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 64]
}

// Keys: big-endian, so byte order is numeric order.
fn account_key(id: AccountId) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}
fn transfer_key(id: TransferId) -> Vec<u8> {
    id.0.to_be_bytes().to_vec()
}
fn lot_key(account: AccountId, expires_at: Timestamp) -> Vec<u8> {
    [&account.0.to_be_bytes()[..], &expires_at.0.to_be_bytes()].concat()
}
fn lot_due_key(expires_at: Timestamp, account: AccountId) -> Vec<u8> {
    [&expires_at.0.to_be_bytes()[..], &account.0.to_be_bytes()].concat()
}
fn hold_due_key(deadline: Timestamp, id: TransferId) -> Vec<u8> {
    [&deadline.0.to_be_bytes()[..], &id.0.to_be_bytes()].concat()
}
fn account_transfer_key(account: AccountId, timestamp: Timestamp, id: TransferId) -> Vec<u8> {
    [&account.0.to_be_bytes()[..], &timestamp.0.to_be_bytes(), &id.0.to_be_bytes()].concat()
}

/// The write batch for one batch's effects, indexes derived from the records.
fn effects_batch(batch: &mut WriteBatch, effects: &Effects) {
    for asset in &effects.assets {
        put_record(batch, Table::Assets, asset.id.0.to_be_bytes().to_vec(), asset);
    }
    for account in &effects.accounts {
        put_record(batch, Table::Accounts, account_key(account.id), account);
    }
    for (code_hash, account) in &effects.gift_cards {
        put(batch, Table::GiftCards, code_hash.0.to_vec(), &account.0.to_be_bytes());
    }
    for transfer in &effects.transfers_inserted {
        put_record(batch, Table::Transfers, transfer_key(transfer.id), transfer);
        for account in [transfer.debit_account, transfer.credit_account] {
            let key = account_transfer_key(account, transfer.timestamp, transfer.id);
            batch.put(Table::AccountTransfers, key, Vec::new());
        }
        if let (Some(deadline), TransferState::Pending) = (transfer.hold_deadline(), transfer.state)
        {
            batch.put(Table::HoldsDue, hold_due_key(deadline, transfer.id), Vec::new());
        }
    }
    for transfer in &effects.transfers_updated {
        put_record(batch, Table::Transfers, transfer_key(transfer.id), transfer);
        if let Some(deadline) = transfer.hold_deadline() {
            if transfer.state != TransferState::Pending {
                batch.delete(Table::HoldsDue, hold_due_key(deadline, transfer.id));
            }
        }
    }
    for failed in &effects.transfers_failed {
        put_record(batch, Table::TransfersFailed, transfer_key(failed.transfer.id), failed);
    }
    for lot in &effects.lots {
        let key = lot_key(lot.account, lot.expires_at);
        let due = lot_due_key(lot.expires_at, lot.account);
        if lot.amount == 0 {
            batch.delete(Table::Lots, key);
            batch.delete(Table::LotsDue, due);
        } else {
            put_record(batch, Table::Lots, key, lot);
            batch.put(Table::LotsDue, due, Vec::new());
        }
    }
    let (purged_from, purged_to) = effects.events_purged;
    if purged_from < purged_to {
        let (from, to) = (purged_from.0.to_be_bytes(), purged_to.0.to_be_bytes());
        batch.delete_range(Table::Events, from.to_vec(), to.to_vec());
    }
    for event in &effects.events {
        put_record(batch, Table::Events, event.seq.0.to_be_bytes().to_vec(), event);
    }
    for (sink, cursor) in &effects.cursors {
        match cursor {
            Some(cursor) => put_record(batch, Table::Cursors, sink.0.to_vec(), cursor),
            None => batch.delete(Table::Cursors, sink.0.to_vec()),
        }
    }
    put_record(batch, Table::StateMeta, KEY_META.to_vec(), &effects.meta);
}

impl<K: Kv> StateRead for Store<K> {
    type Error = StorageError;

    fn meta(&self) -> Result<Meta, StorageError> {
        Ok(self.read_record(Table::StateMeta, KEY_META)?.unwrap_or_default())
    }

    fn asset(&self, id: AssetId) -> Result<Option<Asset>, StorageError> {
        self.read_record(Table::Assets, &id.0.to_be_bytes())
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, StorageError> {
        self.read_record(Table::Accounts, &account_key(id))
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, StorageError> {
        self.read_record(Table::Transfers, &transfer_key(id))
    }

    fn transfer_failed(&self, id: TransferId) -> Result<Option<FailedTransfer>, StorageError> {
        self.read_record(Table::TransfersFailed, &transfer_key(id))
    }

    fn lots(&self, account: AccountId) -> Result<Vec<Lot>, StorageError> {
        let from = lot_key(account, Timestamp::ZERO);
        let to = prefix_end(&account_key(account));
        let mut lots = Vec::new();
        for (key, framed) in self.kv.range(Table::Lots, &from, &to, false, usize::MAX)? {
            let payload = unframe(Table::Lots, &key, &framed)?;
            lots.push(
                decode_exact(payload).map_err(|e| StorageError::corrupted(Table::Lots, &key, e))?,
            );
        }
        Ok(lots)
    }

    fn gift_card(&self, code_hash: &CodeHash) -> Result<Option<AccountId>, StorageError> {
        let Some(value) = self.read_framed(Table::GiftCards, &code_hash.0)? else {
            return Ok(None);
        };
        let bytes: [u8; 16] = value
            .as_slice()
            .try_into()
            .map_err(|_| StorageError::corrupted(Table::GiftCards, &code_hash.0, "length"))?;
        Ok(Some(AccountId(u128::from_be_bytes(bytes))))
    }

    fn lots_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Lot>, StorageError> {
        let to = lot_due_key(Timestamp(now.0.saturating_add(1)), AccountId::ZERO);
        let rows = self.kv.range(Table::LotsDue, &[], &to, false, limit as usize)?;
        let mut lots = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            let (expires, account) = key.split_at(8);
            let expires = Timestamp(u64::from_be_bytes(
                expires
                    .try_into()
                    .map_err(|_| StorageError::corrupted(Table::LotsDue, &key, "key length"))?,
            ));
            let account = AccountId(u128::from_be_bytes(
                account
                    .try_into()
                    .map_err(|_| StorageError::corrupted(Table::LotsDue, &key, "key length"))?,
            ));
            let lot = self.read_record(Table::Lots, &lot_key(account, expires))?;
            lots.push(lot.ok_or_else(|| StorageError::corrupted(Table::LotsDue, &key, "no lot"))?);
        }
        Ok(lots)
    }

    fn holds_due(&self, now: Timestamp, limit: u32) -> Result<Vec<TransferId>, StorageError> {
        let to = hold_due_key(Timestamp(now.0.saturating_add(1)), TransferId::ZERO);
        let rows = self.kv.range(Table::HoldsDue, &[], &to, false, limit as usize)?;
        rows.iter()
            .map(|(key, _)| {
                let id: [u8; 16] = key
                    .get(8..)
                    .and_then(|id| id.try_into().ok())
                    .ok_or_else(|| StorageError::corrupted(Table::HoldsDue, key, "key length"))?;
                Ok(TransferId(u128::from_be_bytes(id)))
            })
            .collect()
    }

    fn account_transfers(
        &self,
        account: AccountId,
        range: (Timestamp, Timestamp),
        descending: bool,
        limit: u32,
    ) -> Result<Vec<TransferId>, StorageError> {
        let from = account_transfer_key(account, range.0, TransferId::ZERO);
        let to = match range.1 .0.checked_add(1) {
            Some(end) => account_transfer_key(account, Timestamp(end), TransferId::ZERO),
            None => prefix_end(&account_key(account)),
        };
        let rows =
            self.kv.range(Table::AccountTransfers, &from, &to, descending, limit as usize)?;
        rows.iter()
            .map(|(key, _)| {
                let id: [u8; 16] =
                    key.get(24..).and_then(|id| id.try_into().ok()).ok_or_else(|| {
                        StorageError::corrupted(Table::AccountTransfers, key, "key length")
                    })?;
                Ok(TransferId(u128::from_be_bytes(id)))
            })
            .collect()
    }

    fn events(&self, from: EventSeq, limit: u32) -> Result<Vec<Event>, StorageError> {
        let rows = self.kv.range(
            Table::Events,
            &from.0.to_be_bytes(),
            &[0xff; 9],
            false,
            limit as usize,
        )?;
        rows.iter()
            .map(|(key, framed)| {
                let payload = unframe(Table::Events, key, framed)?;
                decode_exact(payload).map_err(|e| StorageError::corrupted(Table::Events, key, e))
            })
            .collect()
    }

    fn cursors(&self) -> Result<Vec<Cursor>, StorageError> {
        let rows = self.kv.range(Table::Cursors, &[], &[0xff; 17], false, usize::MAX)?;
        rows.iter()
            .map(|(key, framed)| {
                let payload = unframe(Table::Cursors, key, framed)?;
                decode_exact(payload).map_err(|e| StorageError::corrupted(Table::Cursors, key, e))
            })
            .collect()
    }
}
