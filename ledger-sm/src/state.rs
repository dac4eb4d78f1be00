//! The storage boundary. Apply never reads storage: `prefetch` reads through `StateRead` before,
//! apply computes `Effects` from the prefetched records alone, and the store persists the effects
//! after, in one atomic write. This keeps apply pure (and so deterministic and testable) and lets
//! a disk store fetch a whole batch's records at once.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::command::{AccountChange, Batch, Operation};
use crate::constants::TICK_EXPIRIES_MAX;
use crate::event::Event;
use crate::types::{
    Account, AccountId, Asset, AssetId, CodeHash, Cursor, EventSeq, FailedTransfer, Lot, SinkId,
    Timestamp, Transfer, TransferId,
};

/// Ledger-wide counters, stored with every batch's effects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    /// The last timestamp handed out; the next is strictly greater.
    pub timestamp_last: Timestamp,
    /// The sequence number of the next event.
    pub event_seq_next: EventSeq,
    /// The outbox's first event: those below were taken by every sink and compacted away.
    pub events_first: EventSeq,
    pub batches_applied: u64,
    /// See `hash`: the sum of every record's hash.
    pub state_hash: u128,
    /// See `hash`: the audit chain's latest link.
    pub chain: [u8; 32],
}

/// Reads a store answers. Every method is a point lookup or a bounded range, so a disk store can
/// serve them from an index.
pub trait StateRead {
    type Error: std::fmt::Debug;

    /// # Errors
    /// When the store cannot read (I/O, corruption).
    fn meta(&self) -> Result<Meta, Self::Error>;
    /// # Errors
    /// As `meta`.
    fn asset(&self, id: AssetId) -> Result<Option<Asset>, Self::Error>;
    /// # Errors
    /// As `meta`.
    fn account(&self, id: AccountId) -> Result<Option<Account>, Self::Error>;
    /// # Errors
    /// As `meta`.
    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Self::Error>;
    /// # Errors
    /// As `meta`.
    fn transfer_failed(&self, id: TransferId) -> Result<Option<FailedTransfer>, Self::Error>;
    /// The account's open lots, earliest expiry first.
    /// # Errors
    /// As `meta`.
    fn lots(&self, account: AccountId) -> Result<Vec<Lot>, Self::Error>;
    /// # Errors
    /// As `meta`.
    fn gift_card(&self, code_hash: &CodeHash) -> Result<Option<AccountId>, Self::Error>;
    /// Lots with `expires_at <= now`, earliest first, at most `limit`.
    /// # Errors
    /// As `meta`.
    fn lots_due(&self, now: Timestamp, limit: u32) -> Result<Vec<Lot>, Self::Error>;
    /// Holds whose deadline is `<= now`, earliest first, at most `limit`.
    /// # Errors
    /// As `meta`.
    fn holds_due(&self, now: Timestamp, limit: u32) -> Result<Vec<TransferId>, Self::Error>;
    /// Ids of transfers that touch `account` with timestamps in `[min, max]`, ascending or
    /// descending, at most `limit`.
    /// # Errors
    /// As `meta`.
    fn account_transfers(
        &self,
        account: AccountId,
        range: (Timestamp, Timestamp),
        descending: bool,
        limit: u32,
    ) -> Result<Vec<TransferId>, Self::Error>;
    /// Events from `from` on, at most `limit`.
    /// # Errors
    /// As `meta`.
    fn events(&self, from: EventSeq, limit: u32) -> Result<Vec<Event>, Self::Error>;
    /// Every sync-out cursor, by sink id.
    /// # Errors
    /// As `meta`.
    fn cursors(&self) -> Result<Vec<Cursor>, Self::Error>;
}

/// Everything apply may look at for one batch. Absent keys were looked up and not found.
#[derive(Clone, Debug, Default)]
pub struct Prefetched {
    pub meta: Meta,
    pub assets: FxHashMap<AssetId, Asset>,
    pub accounts: FxHashMap<AccountId, Account>,
    pub transfers: FxHashMap<TransferId, Transfer>,
    pub transfers_failed: FxHashMap<TransferId, FailedTransfer>,
    /// Lots of every prefetched account that has any, earliest expiry first.
    pub lots: FxHashMap<AccountId, Vec<Lot>>,
    pub gift_cards: FxHashMap<CodeHash, AccountId>,
    /// For a tick: what is due, earliest first.
    pub lots_due: Vec<Lot>,
    pub holds_due: Vec<TransferId>,
    /// For cursor commands: every cursor, by sink id.
    pub cursors: Vec<Cursor>,
}

/// Reads every record `batch` may touch.
///
/// # Errors
/// When the store cannot read.
pub fn prefetch<S: StateRead>(store: &S, batch: &Batch) -> Result<Prefetched, S::Error> {
    let mut keys = Keys::default();
    let mut prefetched = Prefetched { meta: store.meta()?, ..Prefetched::default() };
    match &batch.operation {
        Operation::CreateAssets(assets) => {
            for asset in assets {
                keys.asset(asset.id);
                keys.account(asset.expiry_account);
            }
        }
        Operation::CreateAccounts(accounts) => {
            for account in accounts {
                keys.account(account.id);
                keys.asset(account.asset);
                keys.code_hash(account.code_hash);
            }
        }
        Operation::CreateTransfers(transfers) => {
            for transfer in transfers {
                keys.transfer(transfer.id);
                keys.transfer(transfer.pending_id);
                keys.transfer(transfer.reverses);
                keys.account(transfer.debit_account);
                keys.account(transfer.credit_account);
            }
        }
        Operation::ChangeAccounts(changes) => {
            for change in changes {
                keys.account(change.account());
                if let AccountChange::DeactivateGiftCard { transfer_id, merchant_account, .. } =
                    change
                {
                    keys.transfer(*transfer_id);
                    keys.account(*merchant_account);
                }
            }
        }
        Operation::IssueGiftCards(issues) => {
            for issue in issues {
                keys.account(issue.account.id);
                keys.asset(issue.account.asset);
                keys.code_hash(issue.account.code_hash);
                keys.transfer(issue.load_transfer_id);
                keys.account(issue.load_from);
            }
        }
        Operation::Erase(ids) => ids.iter().for_each(|id| keys.account(*id)),
        Operation::Cursors(_) => prefetched.cursors = store.cursors()?,
        Operation::Tick => {
            prefetched.lots_due = store.lots_due(batch.time(), TICK_EXPIRIES_MAX)?;
            prefetched.holds_due = store.holds_due(batch.time(), TICK_EXPIRIES_MAX)?;
            prefetched.lots_due.iter().for_each(|lot| keys.account(lot.account));
            prefetched.holds_due.iter().for_each(|id| keys.transfer(*id));
        }
    }
    prefetch_keys(store, keys, &mut prefetched)?;
    Ok(prefetched)
}

#[derive(Default)]
struct Keys {
    assets: Vec<AssetId>,
    accounts: Vec<AccountId>,
    transfers: Vec<TransferId>,
    code_hashes: Vec<CodeHash>,
}

impl Keys {
    fn asset(&mut self, id: AssetId) {
        if !id.is_zero() {
            self.assets.push(id);
        }
    }
    fn account(&mut self, id: AccountId) {
        if !id.is_zero() {
            self.accounts.push(id);
        }
    }
    fn transfer(&mut self, id: TransferId) {
        if !id.is_zero() {
            self.transfers.push(id);
        }
    }
    fn code_hash(&mut self, hash: CodeHash) {
        if !hash.is_zero() {
            self.code_hashes.push(hash);
        }
    }
}

/// Second-order keys follow first-order ones: a post names a hold, the hold names accounts; an
/// account names its asset (for the expiry sink) and its lots.
fn prefetch_keys<S: StateRead>(
    store: &S,
    mut keys: Keys,
    prefetched: &mut Prefetched,
) -> Result<(), S::Error> {
    let mut seen_transfers = FxHashSet::default();
    for id in std::mem::take(&mut keys.transfers) {
        if !seen_transfers.insert(id) {
            continue;
        }
        if let Some(transfer) = store.transfer(id)? {
            keys.account(transfer.debit_account);
            keys.account(transfer.credit_account);
            prefetched.transfers.insert(id, transfer);
        } else if let Some(failed) = store.transfer_failed(id)? {
            prefetched.transfers_failed.insert(id, failed);
        }
    }
    for hash in keys.code_hashes {
        if let Some(account) = store.gift_card(&hash)? {
            prefetched.gift_cards.insert(hash, account);
        }
    }
    for id in keys.accounts {
        if let Some(asset) = prefetch_account(store, id, prefetched)? {
            keys.assets.push(asset);
        }
    }
    for id in keys.assets {
        if prefetched.assets.contains_key(&id) {
            continue;
        }
        if let Some(asset) = store.asset(id)? {
            // A tick credits expired lots to the asset's expiry account.
            prefetch_account(store, asset.expiry_account, prefetched)?;
            prefetched.assets.insert(id, asset);
        }
    }
    Ok(())
}

/// Reads the account and its lots, if not read yet; returns its asset when newly read.
fn prefetch_account<S: StateRead>(
    store: &S,
    id: AccountId,
    prefetched: &mut Prefetched,
) -> Result<Option<AssetId>, S::Error> {
    if prefetched.accounts.contains_key(&id) {
        return Ok(None);
    }
    let Some(account) = store.account(id)? else {
        return Ok(None);
    };
    if account.lots_total > 0 {
        prefetched.lots.insert(id, store.lots(id)?);
    }
    let asset = account.asset;
    prefetched.accounts.insert(id, account);
    Ok(Some(asset))
}

/// What applying a batch changes, for the store to write in one atomic batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub assets: Vec<Asset>,
    /// Created or changed accounts, final values, each once.
    pub accounts: Vec<Account>,
    /// New transfers, in timestamp order.
    pub transfers_inserted: Vec<Transfer>,
    /// Existing transfers whose state, reversed amount or consumed lots changed; final values.
    pub transfers_updated: Vec<Transfer>,
    pub transfers_failed: Vec<FailedTransfer>,
    /// Lots whose amount changed; an amount of zero deletes the lot.
    pub lots: Vec<Lot>,
    pub gift_cards: Vec<(CodeHash, AccountId)>,
    pub events: Vec<Event>,
    /// Cursors moved (final values) and forgotten (`None`), each once.
    pub cursors: Vec<(SinkId, Option<Cursor>)>,
    /// Events compacted out of the outbox: `meta.events_first` before and after.
    pub events_purged: (EventSeq, EventSeq),
    pub meta: Meta,
}
