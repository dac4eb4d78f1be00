//! Lots: expiring value. Debits consume lots earliest expiry first (after an optional preferred
//! expiry); refunds, reversals, voids and partial posts give consumed parts back, latest expiry
//! first, so a full give-back is the exact inverse of the consumption.
//!
//! Invariant: an account's lots sum to `lots_total`, and `lots_total <= available` (clamped at
//! zero). New lot value is therefore capped by the room `available - lots_total`: value credited
//! to an account in debt pays the debt before it can expire.

use crate::constants::ACCOUNT_LOTS_MAX;
use crate::types::{Account, Lot, LotPart, Timestamp};

/// Takes up to `amount` from `lots` (sorted by expiry): first from the lot expiring at
/// `preferred`, then earliest first. Returns the parts taken, sorted by expiry.
pub(crate) fn consume(
    account: &mut Account,
    lots: &mut Vec<Lot>,
    amount: u128,
    preferred: Timestamp,
) -> Vec<LotPart> {
    let mut parts = Vec::new();
    let mut remaining = amount.min(account.lots_total);
    if remaining == 0 {
        return parts;
    }
    if !preferred.is_zero() {
        if let Some(lot) = lots.iter_mut().find(|lot| lot.expires_at == preferred) {
            let take = remaining.min(lot.amount);
            lot.amount -= take;
            remaining -= take;
            parts.push(LotPart { expires_at: lot.expires_at, amount: take });
        }
    }
    for lot in lots.iter_mut() {
        if remaining == 0 {
            break;
        }
        if lot.amount == 0 {
            continue;
        }
        let take = remaining.min(lot.amount);
        lot.amount -= take;
        remaining -= take;
        match parts.iter_mut().find(|part| part.expires_at == lot.expires_at) {
            Some(part) => part.amount += take,
            None => parts.push(LotPart { expires_at: lot.expires_at, amount: take }),
        }
    }
    assert_eq!(remaining, 0, "lots_total matches the lots");
    lots.retain(|lot| lot.amount > 0);
    parts.sort_unstable_by_key(|part| part.expires_at);
    let taken: u128 = parts.iter().map(|part| part.amount).sum();
    account.lots_total -= taken;
    parts
}

/// Whether crediting a lot expiring at `expires_at` would need a lot the account cannot have.
pub(crate) fn exceeds_limit(lots: Option<&Vec<Lot>>, expires_at: Timestamp) -> bool {
    let Some(lots) = lots else { return false };
    lots.len() >= ACCOUNT_LOTS_MAX && !lots.iter().any(|lot| lot.expires_at == expires_at)
}

/// Adds up to `amount` to the lot expiring at `expires_at`, capped by the account's room (its
/// balances must already include the credit). Returns what was added. When the account already
/// has `ACCOUNT_LOTS_MAX` lots and none at this expiry, nothing is added: the value stays in the
/// balance without expiring (only reachable when giving lots back; new credits are refused
/// earlier with `LotsExceedLimit`).
pub(crate) fn add(
    account: &mut Account,
    lots: &mut Vec<Lot>,
    expires_at: Timestamp,
    amount: u128,
) -> u128 {
    assert!(!expires_at.is_zero());
    let room = account.balances.available_or_zero().saturating_sub(account.lots_total);
    let added = amount.min(room);
    if added == 0 {
        return 0;
    }
    match lots.binary_search_by_key(&expires_at, |lot| lot.expires_at) {
        Ok(index) => lots[index].amount += added,
        Err(_) if lots.len() >= ACCOUNT_LOTS_MAX => return 0,
        Err(index) => lots.insert(index, Lot { account: account.id, expires_at, amount: added }),
    }
    account.lots_total += added;
    assert!(account.lots_total <= account.balances.available_or_zero());
    added
}

/// Gives back up to `amount` of `parts` (latest expiry first) to `lots`, removing what it gives
/// from `parts`. Returns the parts given back (before any room cap), sorted by expiry.
pub(crate) fn restore(
    account: &mut Account,
    lots: &mut Vec<Lot>,
    parts: &mut Vec<LotPart>,
    amount: u128,
) -> Vec<LotPart> {
    let mut given = Vec::new();
    let mut remaining = amount;
    while remaining > 0 {
        let Some(part) = parts.last_mut() else { break };
        let take = remaining.min(part.amount);
        part.amount -= take;
        remaining -= take;
        given.push(LotPart { expires_at: part.expires_at, amount: take });
        if part.amount == 0 {
            parts.pop();
        }
    }
    for part in &given {
        add(account, lots, part.expires_at, part.amount);
    }
    given.reverse();
    given
}
