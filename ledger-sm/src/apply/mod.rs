//! `apply`: a batch and its prefetched records in, results and effects out. Pure.
//!
//! Work happens on a `Context` that owns the prefetched records and journals every change, so
//! that `finish` can emit each changed record once, update the state hash in O(changes), and a
//! linked chain can be rolled back exactly.

mod account;
mod context;
mod cursor;
mod lots;
mod tick;
mod transfer;

use crate::command::{Batch, Operation};
use crate::constants::BATCH_EVENTS_MAX;
use crate::result::{BatchRefusal, Results};
use crate::state::{Effects, Prefetched};

pub(crate) use context::Context;

/// The outcome of applying one batch.
#[derive(Clone, Debug)]
pub struct Applied {
    pub results: Results,
    pub effects: Effects,
}

/// Applies `batch` to the records in `prefetched` (as read by `state::prefetch` for this very
/// batch). Deterministic: the same inputs give byte-identical outputs on every node.
///
/// # Panics
/// Only on a broken invariant (a bug): never on bad input, which gets a result code.
#[must_use]
pub fn apply(prefetched: Prefetched, batch: &Batch) -> Applied {
    let meta_before = prefetched.meta;
    let events = batch.operation.len();
    if events > BATCH_EVENTS_MAX as usize || events == 0 {
        let refusal = if events == 0 { BatchRefusal::Empty } else { BatchRefusal::TooManyEvents };
        // A refused batch changes nothing, not even the counters: it is as if never proposed.
        let effects = Effects { meta: meta_before, ..Effects::default() };
        return Applied { results: Results::BatchRefused(refusal), effects };
    }
    let mut context = Context::new(prefetched, batch.time(), events);
    let results = match &batch.operation {
        Operation::CreateAssets(assets) => Results::CreateAssets(context.create_assets(assets)),
        Operation::CreateAccounts(accounts) => {
            Results::CreateAccounts(context.create_accounts(accounts))
        }
        Operation::CreateTransfers(transfers) => {
            Results::CreateTransfers(context.create_transfers(transfers))
        }
        Operation::ChangeAccounts(changes) => {
            Results::ChangeAccounts(changes.iter().map(|c| context.change_account(c)).collect())
        }
        Operation::IssueGiftCards(issues) => {
            Results::IssueGiftCards(issues.iter().map(|i| context.issue_gift_card(i)).collect())
        }
        Operation::Erase(ids) => Results::Erase(ids.iter().map(|id| context.erase(*id)).collect()),
        Operation::Tick => Results::Tick(context.tick()),
        Operation::Cursors(commands) => {
            Results::Cursors(commands.iter().map(|c| context.cursor(c)).collect())
        }
    };
    assert_eq!(results.len(), events); // One result per event.
    let effects = context.finish(batch);
    assert_eq!(effects.meta.batches_applied, meta_before.batches_applied + 1);
    assert_eq!(
        effects.meta.event_seq_next.0,
        meta_before.event_seq_next.0 + effects.events.len() as u64
    ); // Gap-free events.
    Applied { results, effects }
}

/// Runs `events` through `one`, honouring linked chains: a chain (events flagged linked, closed
/// by the first unflagged one) applies all or nothing. Inside a chain a failure rolls back the
/// members before it; they answer `failed`, the culprit its own result, and the members after
/// it `failed` without being tried. A chain still open at the end of the batch fails as a whole,
/// its last member answering `open`.
pub(crate) fn apply_linked<E, R: Copy>(
    context: &mut Context,
    events: &[E],
    linked: impl Fn(&E) -> bool,
    mut one: impl FnMut(&mut Context, &E, bool) -> R,
    succeeded: impl Fn(&R) -> bool,
    failed: R,
    open: R,
) -> Vec<R> {
    let mut results = Vec::with_capacity(events.len());
    let mut index = 0;
    while index < events.len() {
        if !linked(&events[index]) {
            results.push(one(context, &events[index], false));
            index += 1;
            continue;
        }
        let mut last = index;
        while last < events.len() && linked(&events[last]) {
            last += 1;
        }
        if last == events.len() {
            results.extend(std::iter::repeat_n(failed, last - index - 1));
            results.push(open);
            break;
        }
        let checkpoint = context.chain_begin();
        let mut culprit = None;
        for (offset, event) in events[index..=last].iter().enumerate() {
            let result = one(context, event, true);
            if !succeeded(&result) {
                culprit = Some((index + offset, result));
                break;
            }
            results.push(result);
        }
        if let Some((position, result)) = culprit {
            context.chain_rollback(checkpoint);
            results.truncate(index);
            results.extend(std::iter::repeat_n(failed, position - index));
            results.push(result);
            results.extend(std::iter::repeat_n(failed, last - position));
        } else {
            context.chain_commit();
        }
        assert_eq!(results.len(), last + 1);
        index = last + 1;
    }
    assert_eq!(results.len(), events.len());
    results
}

#[cfg(test)]
mod tests;
