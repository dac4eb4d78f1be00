//! The ledger's invariants (DESIGN §3.4), checked over a full copy of the records: usable from
//! tests, the simulation and `ledgerctl audit`. Every check recomputes from scratch what apply
//! maintains incrementally, so a bug in the increments shows as a violation here.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::command::Batch;
use crate::constants::ACCOUNT_LOTS_MAX;
use crate::encode::Encode;
use crate::event::{Event, EventKind};
use crate::hash::{self, chain_link, record_hash};
use crate::state::Meta;
use crate::types::{
    Account, AccountFlags, AccountId, AccountKind, Asset, AssetId, Balances, CodeHash, Cursor,
    FailedTransfer, Lot, Transfer, TransferFlags, TransferId, TransferState,
};

/// Everything a store holds, as plain records.
#[derive(Clone, Debug, Default)]
pub struct Records {
    pub meta: Meta,
    pub assets: Vec<Asset>,
    pub accounts: Vec<Account>,
    pub transfers: Vec<Transfer>,
    pub transfers_failed: Vec<FailedTransfer>,
    pub lots: Vec<Lot>,
    pub gift_cards: Vec<(CodeHash, AccountId)>,
    /// The outbox (events from `meta.events_first` on), when the store copied it.
    pub events: Option<Vec<Event>>,
    pub cursors: Vec<Cursor>,
    /// Every batch with its state hash after, when the store kept them: the chain is recomputed.
    pub journal: Option<Vec<(Batch, u128)>>,
}

/// A broken invariant, described for a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(Violation(format!($($message)+)));
        }
    };
}

/// # Errors
/// The first violation found.
pub fn check(records: &Records) -> Result<(), Violation> {
    check_sums(records)?;
    check_accounts(records)?;
    check_transfers(records)?;
    check_lots(records)?;
    check_events(records)?;
    check_cursors(records)?;
    check_hashes(records)?;
    Ok(())
}

/// Per asset, debits equal credits, posted and pending. Sums across accounts can pass u128, so
/// they carry into a high word.
fn check_sums(records: &Records) -> Result<(), Violation> {
    #[derive(Default, Debug, PartialEq, Eq)]
    struct Wide(u128, u128);
    impl Wide {
        fn add(&mut self, value: u128) {
            let (low, carry) = self.0.overflowing_add(value);
            self.0 = low;
            self.1 += u128::from(carry);
        }
    }
    let mut sums: BTreeMap<AssetId, [Wide; 4]> = BTreeMap::new();
    for account in &records.accounts {
        let sum = sums.entry(account.asset).or_default();
        let b = &account.balances;
        sum[0].add(b.debits_posted);
        sum[1].add(b.credits_posted);
        sum[2].add(b.debits_pending);
        sum[3].add(b.credits_pending);
    }
    for (asset, sum) in sums {
        ensure!(sum[0] == sum[1], "asset {asset:?}: posted {:?} != {:?}", sum[0], sum[1]);
        ensure!(sum[2] == sum[3], "asset {asset:?}: pending {:?} != {:?}", sum[2], sum[3]);
    }
    Ok(())
}

/// Limits hold, and every balance equals the sum of the transfers that touched the account: each
/// transfer counted exactly once.
fn check_accounts(records: &Records) -> Result<(), Violation> {
    let assets: FxHashSet<AssetId> = records.assets.iter().map(|asset| asset.id).collect();
    let mut expected = transfer_sums(&records.transfers);
    for account in &records.accounts {
        ensure!(assets.contains(&account.asset), "account {:?}: no asset", account.id);
        let b = &account.balances;
        let sum = expected.remove(&account.id).unwrap_or_default();
        ensure!(*b == sum, "account {:?}: balances {b:?}, transfers sum {sum:?}", account.id);
        let debits = b.debits_posted + b.debits_pending;
        if account.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            // Limits may be set near u128::MAX: saturate, as apply does.
            let max = b
                .credits_posted
                .saturating_add(account.overdraft_limit)
                .saturating_add(account.overdraft_forced);
            ensure!(debits <= max, "account {:?}: debits {debits} over {max}", account.id);
            let excess =
                debits.saturating_sub(b.credits_posted.saturating_add(account.overdraft_limit));
            ensure!(account.overdraft_forced == excess, "account {:?}: forced", account.id);
        } else {
            ensure!(account.overdraft_forced == 0, "account {:?}: forced", account.id);
            ensure!(account.overdraft_limit == 0, "account {:?}: limit", account.id);
        }
        if account.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            let credits = b.credits_posted + b.credits_pending;
            ensure!(credits <= b.debits_posted, "account {:?}: credits over", account.id);
        }
        if account.kind == AccountKind::GiftCard {
            ensure!(b.available().is_some(), "gift card {:?}: below zero", account.id);
            let indexed = records
                .gift_cards
                .iter()
                .any(|(h, id)| *id == account.id && *h == account.code_hash);
            ensure!(indexed, "gift card {:?}: not indexed by its code hash", account.id);
        }
    }
    ensure!(expected.is_empty(), "transfers touch unknown accounts: {:?}", expected.keys());
    Ok(())
}

/// Each account's balances as the sum of the transfers that touched it.
fn transfer_sums(transfers: &[Transfer]) -> FxHashMap<AccountId, Balances> {
    let mut expected: FxHashMap<AccountId, Balances> = FxHashMap::default();
    for t in transfers {
        let pending = t.flags.has(TransferFlags::PENDING);
        let (debit, credit) = if t.flags.has(TransferFlags::VOID_PENDING) {
            (0, 0)
        } else if pending && t.state == TransferState::Pending {
            (t.amount, t.amount)
        } else if pending {
            (0, 0) // A resolved hold counts through its post (or not at all).
        } else {
            (t.amount, t.amount)
        };
        let d = expected.entry(t.debit_account).or_default();
        if pending {
            d.debits_pending += debit
        } else {
            d.debits_posted += debit
        }
        let c = expected.entry(t.credit_account).or_default();
        if pending {
            c.credits_pending += credit
        } else {
            c.credits_posted += credit
        }
    }
    expected
}

/// Holds resolve at most once; reversals never exceed what they reverse; timestamps are unique.
fn check_transfers(records: &Records) -> Result<(), Violation> {
    let by_id: FxHashMap<TransferId, &Transfer> =
        records.transfers.iter().map(|t| (t.id, t)).collect();
    ensure!(by_id.len() == records.transfers.len(), "duplicate transfer ids");
    let mut resolutions: FxHashMap<TransferId, u32> = FxHashMap::default();
    let mut reversed: FxHashMap<TransferId, u128> = FxHashMap::default();
    let mut timestamps = FxHashSet::default();
    for t in &records.transfers {
        ensure!(timestamps.insert(t.timestamp), "transfer {:?}: timestamp reused", t.id);
        ensure!(t.timestamp <= records.meta.timestamp_last, "transfer {:?}: future", t.id);
        ensure!(t.amount_reversed <= t.amount, "transfer {:?}: over-reversed", t.id);
        if t.flags.resolves_pending() {
            *resolutions.entry(t.pending_id).or_default() += 1;
            let hold = by_id.get(&t.pending_id);
            ensure!(hold.is_some_and(|h| h.amount >= t.amount), "transfer {:?}: hold", t.id);
        }
        if t.code.is_reversal() {
            *reversed.entry(t.reverses).or_default() += t.amount;
        }
    }
    for t in &records.transfers {
        let count = resolutions.get(&t.id).copied().unwrap_or(0);
        if t.flags.has(TransferFlags::PENDING) {
            let expected = u32::from(t.state != TransferState::Pending);
            ensure!(count == expected, "hold {:?}: resolved {count} times", t.id);
        } else {
            ensure!(count == 0, "transfer {:?}: resolved but not a hold", t.id);
        }
        let total = reversed.get(&t.id).copied().unwrap_or(0);
        ensure!(total == t.amount_reversed, "transfer {:?}: reversed {total}", t.id);
    }
    for failed in &records.transfers_failed {
        ensure!(!by_id.contains_key(&failed.transfer.id), "failed id also applied");
    }
    Ok(())
}

/// Lots add up to `lots_total`, never exceed what is available, and are never empty.
fn check_lots(records: &Records) -> Result<(), Violation> {
    let mut totals: FxHashMap<AccountId, (u128, usize)> = FxHashMap::default();
    for lot in &records.lots {
        ensure!(lot.amount > 0, "lot {lot:?}: empty");
        let total = totals.entry(lot.account).or_default();
        total.0 += lot.amount;
        total.1 += 1;
    }
    for account in &records.accounts {
        let (total, count) = totals.remove(&account.id).unwrap_or_default();
        ensure!(total == account.lots_total, "account {:?}: lots {total}", account.id);
        ensure!(count <= ACCOUNT_LOTS_MAX, "account {:?}: {count} lots", account.id);
        let available = account.balances.available_or_zero();
        ensure!(total <= available, "account {:?}: lots {total} > {available}", account.id);
    }
    ensure!(totals.is_empty(), "lots of unknown accounts");
    Ok(())
}

fn check_events(records: &Records) -> Result<(), Violation> {
    let Some(events) = &records.events else {
        return Ok(());
    };
    let first = records.meta.events_first.0;
    for (index, event) in events.iter().enumerate() {
        let seq = first + index as u64;
        ensure!(event.seq.0 == seq, "event {seq}: seq {:?}", event.seq);
    }
    ensure!(records.meta.event_seq_next.0 == first + events.len() as u64, "event_seq_next");
    let transfers: FxHashMap<TransferId, &Transfer> =
        records.transfers.iter().map(|t| (t.id, t)).collect();
    let mut transfer_events = 0;
    for event in events {
        let Some(id) = event.kind.transfer() else { continue };
        transfer_events += 1;
        let transfer = transfers.get(&id);
        ensure!(transfer.is_some_and(|t| t.timestamp == event.timestamp), "event {event:?}");
        let flags = transfer.expect("checked above").flags;
        let consistent = match event.kind {
            EventKind::HoldCreated(_) => flags.has(TransferFlags::PENDING),
            EventKind::HoldPosted(_) => flags.has(TransferFlags::POST_PENDING),
            EventKind::HoldVoided(_) | EventKind::HoldExpired(_) => {
                flags.has(TransferFlags::VOID_PENDING)
            }
            _ => !flags.has(TransferFlags::PENDING) && !flags.resolves_pending(),
        };
        ensure!(consistent, "event {event:?}: kind does not match its transfer");
    }
    if first == 0 {
        ensure!(transfer_events == transfers.len(), "every transfer has exactly one event");
    }
    for pair in events.windows(2) {
        ensure!(pair[0].timestamp <= pair[1].timestamp, "events out of time order");
    }
    Ok(())
}

/// Cursors lie inside the outbox, and the outbox starts at the lowest of them (with none left,
/// where the last one forgotten left it).
fn check_cursors(records: &Records) -> Result<(), Violation> {
    let meta = &records.meta;
    ensure!(meta.events_first <= meta.event_seq_next, "outbox starts past its end");
    for (index, cursor) in records.cursors.iter().enumerate() {
        ensure!(cursor.sink.is_valid(), "cursor {index}: sink id {:?}", cursor.sink);
        ensure!(
            meta.events_first <= cursor.next && cursor.next <= meta.event_seq_next,
            "cursor {:?} at {:?} outside the outbox",
            cursor.sink,
            cursor.next
        );
    }
    let mut sinks: Vec<_> = records.cursors.iter().map(|c| c.sink).collect();
    sinks.sort_unstable();
    sinks.dedup();
    ensure!(sinks.len() == records.cursors.len(), "two cursors for one sink");
    if let Some(lowest) = records.cursors.iter().map(|c| c.next).min() {
        ensure!(meta.events_first == lowest, "the outbox does not start at the lowest cursor");
    }
    Ok(())
}

/// The state hash recomputed from every record, and the chain recomputed from the journal.
fn check_hashes(records: &Records) -> Result<(), Violation> {
    let mut scratch = Vec::new();
    let mut sum = 0u128;
    for asset in &records.assets {
        sum = sum.wrapping_add(record_hash(hash::TAG_ASSET, asset, &mut scratch));
    }
    for account in &records.accounts {
        sum = sum.wrapping_add(record_hash(hash::TAG_ACCOUNT, account, &mut scratch));
    }
    for transfer in &records.transfers {
        sum = sum.wrapping_add(record_hash(hash::TAG_TRANSFER, transfer, &mut scratch));
    }
    for failed in &records.transfers_failed {
        sum = sum.wrapping_add(record_hash(hash::TAG_TRANSFER_FAILED, failed, &mut scratch));
    }
    for lot in &records.lots {
        sum = sum.wrapping_add(record_hash(hash::TAG_LOT, lot, &mut scratch));
    }
    for cursor in &records.cursors {
        sum = sum.wrapping_add(record_hash(hash::TAG_CURSOR, cursor, &mut scratch));
    }
    ensure!(sum == records.meta.state_hash, "state hash: stored differs from recomputed");
    if let Some(journal) = &records.journal {
        let mut link = [0u8; 32];
        for (batch, state_hash) in journal {
            scratch.clear();
            batch.encode(&mut scratch);
            link = chain_link(&link, &scratch, *state_hash);
        }
        ensure!(link == records.meta.chain, "audit chain: recomputed link differs");
    }
    Ok(())
}
