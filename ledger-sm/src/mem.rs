//! The in-memory store: the reference implementation of `StateRead` and of persisting
//! `Effects`, for tests, benchmarks and tools. Indexes are ordered maps, like the disk store's
//! key ranges.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use rustc_hash::FxHashMap;

use crate::apply::apply;
use crate::command::Batch;
use crate::encode::Encode;
use crate::event::Event;
use crate::result::Results;
use crate::state::{prefetch, Effects, Meta, StateRead};
use crate::types::{
    Account, AccountId, Asset, AssetId, CodeHash, Cursor, EventSeq, FailedTransfer, Lot, SinkId,
    Timestamp, Transfer, TransferId, TransferState,
};

#[derive(Clone, Debug, Default)]
pub struct MemState {
    meta: Meta,
    assets: BTreeMap<AssetId, Asset>,
    accounts: FxHashMap<AccountId, Account>,
    transfers: FxHashMap<TransferId, Transfer>,
    transfers_failed: FxHashMap<TransferId, FailedTransfer>,
    lots: BTreeMap<(AccountId, Timestamp), Lot>,
    lots_due: BTreeSet<(Timestamp, AccountId)>,
    holds_due: BTreeSet<(Timestamp, TransferId)>,
    gift_cards: FxHashMap<CodeHash, AccountId>,
    account_transfers: BTreeSet<(AccountId, Timestamp, TransferId)>,
    /// The outbox: events from `meta.events_first` on.
    events: Vec<Event>,
    cursors: BTreeMap<SinkId, Cursor>,
    /// Every applied batch with the state hash after it, when kept (`with_journal`): what an
    /// auditor replays to recompute the chain.
    journal: Option<Vec<(Batch, u128)>>,
}

impl MemState {
    /// A store that also keeps every applied batch, so `invariants::check` can recompute the
    /// audit chain.
    #[must_use]
    pub fn with_journal() -> Self {
        Self { journal: Some(Vec::new()), ..Self::default() }
    }

    /// Prefetch, apply, persist: one batch end to end.
    pub fn execute(&mut self, batch: &Batch) -> Results {
        let prefetched = match prefetch(self, batch) {
            Ok(prefetched) => prefetched,
            Err(never) => match never {},
        };
        let applied = apply(prefetched, batch);
        let chained = applied.effects.meta.batches_applied > self.meta.batches_applied;
        if let (Some(journal), true) = (&mut self.journal, chained) {
            journal.push((batch.clone(), applied.effects.meta.state_hash));
        }
        self.persist(applied.effects);
        applied.results
    }

    /// Writes effects, maintaining the indexes.
    pub fn persist(&mut self, effects: Effects) {
        assert!(effects.meta.batches_applied >= self.meta.batches_applied);
        for asset in effects.assets {
            self.assets.insert(asset.id, asset);
        }
        for account in effects.accounts {
            self.accounts.insert(account.id, account);
        }
        for (code_hash, account) in effects.gift_cards {
            let previous = self.gift_cards.insert(code_hash, account);
            assert!(previous.is_none());
        }
        for transfer in effects.transfers_inserted {
            self.account_transfers.insert((
                transfer.debit_account,
                transfer.timestamp,
                transfer.id,
            ));
            self.account_transfers.insert((
                transfer.credit_account,
                transfer.timestamp,
                transfer.id,
            ));
            if let Some(deadline) = transfer.hold_deadline() {
                if transfer.state == TransferState::Pending {
                    self.holds_due.insert((deadline, transfer.id));
                }
            }
            let previous = self.transfers.insert(transfer.id, transfer);
            assert!(previous.is_none());
        }
        for transfer in effects.transfers_updated {
            if let Some(deadline) = transfer.hold_deadline() {
                if transfer.state != TransferState::Pending {
                    self.holds_due.remove(&(deadline, transfer.id));
                }
            }
            let previous = self.transfers.insert(transfer.id, transfer);
            assert!(previous.is_some());
        }
        for failed in effects.transfers_failed {
            self.transfers_failed.insert(failed.transfer.id, failed);
        }
        for lot in effects.lots {
            let key = (lot.account, lot.expires_at);
            if lot.amount == 0 {
                self.lots.remove(&key);
                self.lots_due.remove(&(lot.expires_at, lot.account));
            } else {
                self.lots.insert(key, lot);
                self.lots_due.insert((lot.expires_at, lot.account));
            }
        }
        self.persist_outbox(effects.events_purged, effects.events, effects.meta.events_first);
        for (sink, cursor) in effects.cursors {
            match cursor {
                Some(cursor) => drop(self.cursors.insert(sink, cursor)),
                None => drop(self.cursors.remove(&sink)),
            }
        }
        self.meta = effects.meta;
    }

    /// Drops the compacted events, then appends the new ones.
    fn persist_outbox(
        &mut self,
        purged: (EventSeq, EventSeq),
        events: Vec<Event>,
        first: EventSeq,
    ) {
        let (purged_from, purged_to) = purged;
        assert!(purged_from <= purged_to);
        if purged_from < purged_to {
            assert_eq!(purged_from, self.meta.events_first);
            assert!(purged_to <= self.meta.event_seq_next);
            self.events.drain(..usize::try_from(purged_to.0 - purged_from.0).expect("in memory"));
        }
        for event in events {
            let stored = first.0 + self.events.len() as u64;
            assert_eq!(event.seq.0, stored, "events are gap-free");
            self.events.push(event);
        }
    }

    #[must_use]
    pub fn meta(&self) -> Meta {
        self.meta
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    pub fn transfers_failed(&self) -> impl Iterator<Item = &FailedTransfer> {
        self.transfers_failed.values()
    }

    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }

    pub fn all_lots(&self) -> impl Iterator<Item = &Lot> {
        self.lots.values()
    }

    /// The outbox: every event not yet compacted away.
    #[must_use]
    pub fn all_events(&self) -> &[Event] {
        &self.events
    }

    #[must_use]
    pub fn journal(&self) -> Option<&[(Batch, u128)]> {
        self.journal.as_deref()
    }

    #[must_use]
    pub fn gift_card_index(&self) -> &FxHashMap<CodeHash, AccountId> {
        &self.gift_cards
    }

    /// The whole state in canonical bytes (records sorted by key): equal bytes, equal state.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.meta.timestamp_last.0.to_le_bytes());
        out.extend_from_slice(&self.meta.event_seq_next.0.to_le_bytes());
        out.extend_from_slice(&self.meta.events_first.0.to_le_bytes());
        out.extend_from_slice(&self.meta.state_hash.to_le_bytes());
        out.extend_from_slice(&self.meta.chain);
        self.assets.values().for_each(|asset| asset.encode(&mut out));
        let mut accounts: Vec<_> = self.accounts.values().collect();
        accounts.sort_unstable_by_key(|account| account.id);
        accounts.iter().for_each(|account| account.encode(&mut out));
        let mut transfers: Vec<_> = self.transfers.values().collect();
        transfers.sort_unstable_by_key(|transfer| transfer.id);
        transfers.iter().for_each(|transfer| transfer.encode(&mut out));
        let mut failed: Vec<_> = self.transfers_failed.values().collect();
        failed.sort_unstable_by_key(|failed| failed.transfer.id);
        failed.iter().for_each(|failed| failed.encode(&mut out));
        self.lots.values().for_each(|lot| lot.encode(&mut out));
        self.cursors.values().for_each(|cursor| cursor.encode(&mut out));
        out
    }
}

impl StateRead for MemState {
    type Error = Infallible;

    fn meta(&self) -> Result<Meta, Infallible> {
        Ok(self.meta)
    }

    fn asset(&self, id: AssetId) -> Result<Option<Asset>, Infallible> {
        Ok(self.assets.get(&id).cloned())
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, Infallible> {
        Ok(self.accounts.get(&id).cloned())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Infallible> {
        Ok(self.transfers.get(&id).cloned())
    }

    fn transfer_failed(&self, id: TransferId) -> Result<Option<FailedTransfer>, Infallible> {
        Ok(self.transfers_failed.get(&id).cloned())
    }

    fn lots(&self, account: AccountId) -> Result<Vec<Lot>, Infallible> {
        let range = (account, Timestamp::ZERO)..=(account, Timestamp(u64::MAX));
        Ok(self.lots.range(range).map(|(_, lot)| *lot).collect())
    }

    fn gift_card(&self, code_hash: &CodeHash) -> Result<Option<AccountId>, Infallible> {
        Ok(self.gift_cards.get(code_hash).copied())
    }

    fn lots_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Lot>, Infallible> {
        let range = ..=(now, AccountId(u128::MAX));
        Ok(self
            .lots_due
            .range(range)
            .take(limit as usize)
            .map(|(expires_at, account)| self.lots[&(*account, *expires_at)])
            .collect())
    }

    fn holds_due(&self, now: Timestamp, limit: u32) -> Result<Vec<TransferId>, Infallible> {
        let range = ..=(now, TransferId(u128::MAX));
        Ok(self.holds_due.range(range).take(limit as usize).map(|(_, id)| *id).collect())
    }

    fn account_transfers(
        &self,
        account: AccountId,
        range: (Timestamp, Timestamp),
        descending: bool,
        limit: u32,
    ) -> Result<Vec<TransferId>, Infallible> {
        let keys = (account, range.0, TransferId::ZERO)..=(account, range.1, TransferId(u128::MAX));
        let ids = self.account_transfers.range(keys).map(|(_, _, id)| *id);
        Ok(if descending {
            ids.rev().take(limit as usize).collect()
        } else {
            ids.take(limit as usize).collect()
        })
    }

    fn events(&self, from: EventSeq, limit: u32) -> Result<Vec<Event>, Infallible> {
        let offset = from.0.saturating_sub(self.meta.events_first.0);
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.events.len());
        Ok(self.events[start..].iter().take(limit as usize).cloned().collect())
    }

    fn cursors(&self) -> Result<Vec<Cursor>, Infallible> {
        Ok(self.cursors.values().copied().collect())
    }
}

impl MemState {
    /// A full copy of the records, for `invariants::check`.
    #[must_use]
    pub fn records(&self) -> crate::invariants::Records {
        crate::invariants::Records {
            meta: self.meta,
            assets: self.assets.values().cloned().collect(),
            accounts: self.accounts.values().cloned().collect(),
            transfers: self.transfers.values().cloned().collect(),
            transfers_failed: self.transfers_failed.values().cloned().collect(),
            lots: self.lots.values().copied().collect(),
            gift_cards: self.gift_cards.iter().map(|(hash, id)| (*hash, *id)).collect(),
            events: Some(self.events.clone()),
            cursors: self.cursors.values().copied().collect(),
            journal: self.journal.clone(),
        }
    }
}
