//! The working state of one `apply`: prefetched records, a journal of what changed (for effects
//! and the state hash), and an undo log that exists only inside a linked chain.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::command::Batch;
use crate::encode::Encode;
use crate::event::{Event, EventKind};
use crate::hash::{self, chain_link, record_hash};
use crate::state::{Effects, Meta, Prefetched};
use crate::types::{
    Account, AccountId, Asset, AssetId, CodeHash, Cursor, EventSeq, FailedTransfer, Lot, SinkId,
    Timestamp, Transfer, TransferId,
};

pub(crate) struct Context {
    pub(crate) now: Timestamp,
    pub(crate) meta: Meta,
    pub(crate) assets: FxHashMap<AssetId, Asset>,
    pub(crate) accounts: FxHashMap<AccountId, Account>,
    /// Transfers read by prefetch; new ones live in the journal.
    transfers: FxHashMap<TransferId, Transfer>,
    pub(crate) transfers_failed: FxHashMap<TransferId, FailedTransfer>,
    /// Accounts without an entry have no lots.
    pub(crate) lots: FxHashMap<AccountId, Vec<Lot>>,
    pub(crate) gift_cards: FxHashMap<CodeHash, AccountId>,
    pub(crate) lots_due: Vec<Lot>,
    pub(crate) holds_due: Vec<TransferId>,
    /// Every cursor, for cursor commands (never inside linked chains).
    pub(crate) cursors: BTreeMap<SinkId, Cursor>,
    journal: Journal,
    /// `Some` inside a linked chain: the previous value of every record the chain changed.
    undo: Option<Vec<Undo>>,
    scratch: Vec<u8>,
}

/// Every record changed so far, in first-change order, with its state-hash contribution before
/// the batch (zero for a new record).
#[derive(Default)]
struct Journal {
    assets: Vec<AssetId>,
    accounts: Vec<(AccountId, u128)>,
    accounts_seen: FxHashSet<AccountId>,
    /// New transfers in timestamp order, moved whole into the effects.
    transfers_inserted: Vec<Transfer>,
    transfers_inserted_index: FxHashMap<TransferId, u32>,
    transfers_updated: Vec<(TransferId, u128)>,
    /// Prefetched transfers already journaled as updated.
    transfers_seen: FxHashSet<TransferId>,
    transfers_failed: Vec<TransferId>,
    lots: Vec<(AccountId, Vec<Lot>)>,
    lots_seen: FxHashSet<AccountId>,
    gift_cards: Vec<CodeHash>,
    events: Vec<Event>,
    cursors: Vec<(SinkId, u128)>,
}

enum Undo {
    Account(AccountId, Option<Account>),
    /// A changed transfer's previous value; new transfers are undone by truncation.
    Transfer(TransferId, Transfer),
    TransferFailed(TransferId),
    Lots(AccountId, Option<Vec<Lot>>),
    GiftCard(CodeHash),
}

/// Where a linked chain started: the lengths to truncate back to.
pub(crate) struct Checkpoint {
    meta: Meta,
    accounts: usize,
    transfers_inserted: usize,
    transfers_updated: usize,
    transfers_failed: usize,
    lots: usize,
    gift_cards: usize,
    events: usize,
}

impl Context {
    /// A context for a batch of `events` events: sized up front, since growing tables of large
    /// records by doubling costs more than the work itself.
    pub(crate) fn new(prefetched: Prefetched, now: Timestamp, events: usize) -> Self {
        let touched = prefetched.accounts.len() + events;
        let journal = Journal {
            accounts: Vec::with_capacity(touched),
            accounts_seen: FxHashSet::with_capacity_and_hasher(touched, Default::default()),
            transfers_inserted: Vec::with_capacity(events),
            transfers_inserted_index: FxHashMap::with_capacity_and_hasher(
                events,
                Default::default(),
            ),
            transfers_seen: FxHashSet::with_capacity_and_hasher(events, Default::default()),
            events: Vec::with_capacity(events),
            ..Journal::default()
        };
        Self {
            now,
            meta: prefetched.meta,
            assets: prefetched.assets,
            accounts: prefetched.accounts,
            transfers: prefetched.transfers,
            transfers_failed: prefetched.transfers_failed,
            lots: prefetched.lots,
            gift_cards: prefetched.gift_cards,
            lots_due: prefetched.lots_due,
            holds_due: prefetched.holds_due,
            cursors: prefetched.cursors.into_iter().map(|cursor| (cursor.sink, cursor)).collect(),
            journal,
            undo: None,
            scratch: Vec::with_capacity(512),
        }
    }

    /// The next timestamp: at least the leader's `now`, strictly after the last one.
    pub(crate) fn timestamp_next(&mut self) -> Timestamp {
        let next = self.meta.timestamp_last.0.checked_add(1).expect("timestamps exhausted");
        let timestamp = Timestamp(next.max(self.now.0));
        assert!(timestamp > self.meta.timestamp_last);
        self.meta.timestamp_last = timestamp;
        timestamp
    }

    pub(crate) fn emit(&mut self, timestamp: Timestamp, kind: EventKind) {
        let seq = self.meta.event_seq_next;
        self.meta.event_seq_next = EventSeq(seq.0 + 1);
        self.journal.events.push(Event { seq, timestamp, kind });
    }

    /// Sets (`Some`) or drops (`None`) a sink's cursor.
    pub(crate) fn cursor_set(&mut self, sink: SinkId, cursor: Option<Cursor>) {
        assert!(self.undo.is_none(), "cursors are not moved inside linked chains");
        assert!(cursor.is_none_or(|c| c.sink == sink));
        if !self.journal.cursors.iter().any(|(seen, _)| *seen == sink) {
            let before = self.cursors.get(&sink);
            let hash = before.map_or(0, |c| record_hash(hash::TAG_CURSOR, c, &mut self.scratch));
            self.journal.cursors.push((sink, hash));
        }
        match cursor {
            Some(cursor) => drop(self.cursors.insert(sink, cursor)),
            None => drop(self.cursors.remove(&sink)),
        }
    }

    pub(crate) fn asset_insert(&mut self, asset: Asset) {
        assert!(self.undo.is_none(), "assets are not created inside linked chains");
        let id = asset.id;
        let previous = self.assets.insert(id, asset);
        assert!(previous.is_none());
        self.journal.assets.push(id);
    }

    fn account_touch(&mut self, id: AccountId) {
        let current = self.accounts.get(&id);
        if self.journal.accounts_seen.insert(id) {
            let before =
                current.map_or(0, |a| record_hash(hash::TAG_ACCOUNT, a, &mut self.scratch));
            self.journal.accounts.push((id, before));
        }
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Account(id, current.cloned()));
        }
    }

    pub(crate) fn account_insert(&mut self, account: Account) {
        assert!(!self.accounts.contains_key(&account.id));
        self.account_touch(account.id);
        self.accounts.insert(account.id, account);
    }

    /// The account, journaled as changed.
    pub(crate) fn account_mut(&mut self, id: AccountId) -> &mut Account {
        assert!(self.accounts.contains_key(&id));
        self.account_touch(id);
        self.accounts.get_mut(&id).expect("checked above")
    }

    /// The applied transfer with this id, whether prefetched or new in this batch.
    pub(crate) fn transfer(&self, id: TransferId) -> Option<&Transfer> {
        match self.journal.transfers_inserted_index.get(&id) {
            Some(index) => Some(&self.journal.transfers_inserted[*index as usize]),
            None => self.transfers.get(&id),
        }
    }

    /// Whether the id is taken, by an applied or a refused transfer.
    pub(crate) fn transfer_id_used(&self, id: TransferId) -> bool {
        self.transfer(id).is_some() || self.transfers_failed.contains_key(&id)
    }

    pub(crate) fn transfer_insert(&mut self, transfer: Transfer) {
        assert!(!self.transfer_id_used(transfer.id));
        let id = transfer.id;
        let index = u32::try_from(self.journal.transfers_inserted.len()).expect("bounded batch");
        self.journal.transfers_inserted_index.insert(id, index);
        self.journal.transfers_inserted.push(transfer);
    }

    /// The applied transfer, journaled as changed.
    pub(crate) fn transfer_mut(&mut self, id: TransferId) -> &mut Transfer {
        if let Some(index) = self.journal.transfers_inserted_index.get(&id) {
            // New in this batch: its hash is taken once, in `finish`.
            let transfer = &mut self.journal.transfers_inserted[*index as usize];
            if let Some(undo) = &mut self.undo {
                undo.push(Undo::Transfer(id, transfer.clone()));
            }
            return transfer;
        }
        let current = self.transfers.get(&id).expect("transfer prefetched");
        if self.journal.transfers_seen.insert(id) {
            let before = record_hash(hash::TAG_TRANSFER, current, &mut self.scratch);
            self.journal.transfers_updated.push((id, before));
        }
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Transfer(id, current.clone()));
        }
        self.transfers.get_mut(&id).expect("checked above")
    }

    pub(crate) fn transfer_failed_insert(&mut self, failed: FailedTransfer) {
        assert!(self.transfer(failed.transfer.id).is_none());
        let id = failed.transfer.id;
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::TransferFailed(id));
        }
        let previous = self.transfers_failed.insert(id, failed);
        assert!(previous.is_none());
        self.journal.transfers_failed.push(id);
    }

    /// The account's lots (earliest expiry first), journaled as changed.
    pub(crate) fn lots_mut(&mut self, account: AccountId) -> &mut Vec<Lot> {
        let current = self.lots.get(&account);
        if self.journal.lots_seen.insert(account) {
            self.journal.lots.push((account, current.cloned().unwrap_or_default()));
        }
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::Lots(account, current.cloned()));
        }
        self.lots.entry(account).or_default()
    }

    pub(crate) fn gift_card_insert(&mut self, code_hash: CodeHash, account: AccountId) {
        let previous = self.gift_cards.insert(code_hash, account);
        assert!(previous.is_none());
        if let Some(undo) = &mut self.undo {
            undo.push(Undo::GiftCard(code_hash));
        }
        self.journal.gift_cards.push(code_hash);
    }

    pub(crate) fn chain_begin(&mut self) -> Checkpoint {
        assert!(self.undo.is_none(), "chains do not nest");
        self.undo = Some(Vec::new());
        Checkpoint {
            meta: self.meta,
            accounts: self.journal.accounts.len(),
            transfers_inserted: self.journal.transfers_inserted.len(),
            transfers_updated: self.journal.transfers_updated.len(),
            transfers_failed: self.journal.transfers_failed.len(),
            lots: self.journal.lots.len(),
            gift_cards: self.journal.gift_cards.len(),
            events: self.journal.events.len(),
        }
    }

    pub(crate) fn chain_commit(&mut self) {
        assert!(self.undo.take().is_some());
    }

    pub(crate) fn chain_rollback(&mut self, checkpoint: Checkpoint) {
        let undo = self.undo.take().expect("inside a chain");
        for entry in undo.into_iter().rev() {
            match entry {
                Undo::Account(id, Some(account)) => drop(self.accounts.insert(id, account)),
                Undo::Account(id, None) => drop(self.accounts.remove(&id)),
                Undo::Transfer(id, transfer) => {
                    match self.journal.transfers_inserted_index.get(&id) {
                        Some(index) => self.journal.transfers_inserted[*index as usize] = transfer,
                        None => drop(self.transfers.insert(id, transfer)),
                    }
                }
                Undo::TransferFailed(id) => drop(self.transfers_failed.remove(&id)),
                Undo::Lots(id, Some(lots)) => drop(self.lots.insert(id, lots)),
                Undo::Lots(id, None) => drop(self.lots.remove(&id)),
                Undo::GiftCard(hash) => drop(self.gift_cards.remove(&hash)),
            }
        }
        let journal = &mut self.journal;
        for (id, _) in journal.accounts.drain(checkpoint.accounts..) {
            journal.accounts_seen.remove(&id);
        }
        for transfer in journal.transfers_inserted.drain(checkpoint.transfers_inserted..) {
            journal.transfers_inserted_index.remove(&transfer.id);
        }
        for (id, _) in journal.transfers_updated.drain(checkpoint.transfers_updated..) {
            journal.transfers_seen.remove(&id);
        }
        journal.transfers_failed.truncate(checkpoint.transfers_failed);
        for (id, _) in journal.lots.drain(checkpoint.lots..) {
            journal.lots_seen.remove(&id);
        }
        journal.gift_cards.truncate(checkpoint.gift_cards);
        journal.events.truncate(checkpoint.events);
        self.meta = checkpoint.meta;
    }

    /// Turns the journal into effects, with the state hash and the chain link brought forward.
    pub(crate) fn finish(mut self, batch: &Batch) -> Effects {
        assert!(self.undo.is_none());
        let scratch = &mut self.scratch;
        let mut state_hash = self.meta.state_hash;
        let journal = &self.journal;
        let mut effects = Effects {
            assets: Vec::with_capacity(journal.assets.len()),
            accounts: Vec::with_capacity(journal.accounts.len()),
            transfers_updated: Vec::with_capacity(journal.transfers_updated.len()),
            transfers_failed: Vec::with_capacity(journal.transfers_failed.len()),
            ..Effects::default()
        };
        for id in &self.journal.assets {
            let asset = self.assets.remove(id).expect("journaled asset");
            state_hash = state_hash.wrapping_add(record_hash(hash::TAG_ASSET, &asset, scratch));
            effects.assets.push(asset);
        }
        for (id, before) in &self.journal.accounts {
            let account = self.accounts.remove(id).expect("journaled account");
            let after = record_hash(hash::TAG_ACCOUNT, &account, scratch);
            state_hash = state_hash.wrapping_sub(*before).wrapping_add(after);
            effects.accounts.push(account);
        }
        for transfer in &self.journal.transfers_inserted {
            state_hash =
                state_hash.wrapping_add(record_hash(hash::TAG_TRANSFER, transfer, scratch));
        }
        effects.transfers_inserted = std::mem::take(&mut self.journal.transfers_inserted);
        for (id, before) in &self.journal.transfers_updated {
            let transfer = self.transfers.remove(id).expect("journaled transfer");
            let after = record_hash(hash::TAG_TRANSFER, &transfer, scratch);
            state_hash = state_hash.wrapping_sub(*before).wrapping_add(after);
            effects.transfers_updated.push(transfer);
        }
        for id in &self.journal.transfers_failed {
            let failed = self.transfers_failed.remove(id).expect("journaled failure");
            let hash = record_hash(hash::TAG_TRANSFER_FAILED, &failed, scratch);
            state_hash = state_hash.wrapping_add(hash);
            effects.transfers_failed.push(failed);
        }
        for (account, before) in &self.journal.lots {
            let after = self.lots.remove(account).unwrap_or_default();
            state_hash = lots_diff(before, &after, state_hash, &mut effects.lots, scratch);
        }
        for code_hash in &self.journal.gift_cards {
            effects.gift_cards.push((*code_hash, self.gift_cards[code_hash]));
        }
        effects.events = self.journal.events;
        for (sink, before) in &self.journal.cursors {
            let after = self.cursors.get(sink).copied();
            let hash = after.map_or(0, |c| record_hash(hash::TAG_CURSOR, &c, scratch));
            state_hash = state_hash.wrapping_sub(*before).wrapping_add(hash);
            effects.cursors.push((*sink, after));
        }
        // The outbox keeps every event some sink has yet to take; with no sink, all of them.
        let first = self.meta.events_first;
        if let Some(lowest) = self.cursors.values().map(|c| c.next).min() {
            if !self.journal.cursors.is_empty() && lowest > first {
                assert!(lowest <= self.meta.event_seq_next);
                effects.events_purged = (first, lowest);
                self.meta.events_first = lowest;
            }
        }
        let mut batch_bytes = std::mem::take(scratch);
        batch_bytes.clear();
        batch.encode(&mut batch_bytes);
        self.meta.state_hash = state_hash;
        self.meta.batches_applied += 1;
        self.meta.chain = chain_link(&self.meta.chain, &batch_bytes, state_hash);
        effects.meta = self.meta;
        effects
    }
}

/// Lots changed between `before` and `after` (both sorted by expiry): pushes each change (zero
/// amount for a removed lot) and returns the state hash brought forward.
fn lots_diff(
    before: &[Lot],
    after: &[Lot],
    mut state_hash: u128,
    changes: &mut Vec<Lot>,
    scratch: &mut Vec<u8>,
) -> u128 {
    debug_assert!(before.windows(2).all(|w| w[0].expires_at < w[1].expires_at));
    debug_assert!(after.windows(2).all(|w| w[0].expires_at < w[1].expires_at));
    for lot in before {
        if !after.contains(lot) {
            state_hash = state_hash.wrapping_sub(record_hash(hash::TAG_LOT, lot, scratch));
            if !after.iter().any(|a| a.expires_at == lot.expires_at) {
                changes.push(Lot { amount: 0, ..*lot });
            }
        }
    }
    for lot in after {
        assert!(lot.amount > 0, "empty lots are removed");
        if !before.contains(lot) {
            state_hash = state_hash.wrapping_add(record_hash(hash::TAG_LOT, lot, scratch));
            changes.push(*lot);
        }
    }
    state_hash
}
