//! Reads: lookups by id, an account's transfers and balance history by timestamp range (paged),
//! open lots, gift cards by code hash, and the outbox. All bounded by `QUERY_LIMIT_MAX`.
//!
//! Paging: ask for `[timestamp_min, timestamp_max]`; when a page comes back full, ask again from
//! the last timestamp seen plus one (ascending) or minus one (descending).

use crate::constants::QUERY_LIMIT_MAX;
use crate::event::{Event, EventKind};
use crate::state::StateRead;
use crate::types::{
    Account, AccountId, Balances, CodeHash, EventSeq, Lot, Timestamp, Transfer, TransferId,
};

/// Why a read was refused: the caller's mistake, or the store's failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError<E> {
    LimitMustNotBeZero,
    LimitTooLarge,
    TooManyIds,
    /// `timestamp_min` is after `timestamp_max`.
    TimestampRangeInvalid,
    AccountIdMustNotBeZero,
    Store(E),
}

impl<E: std::fmt::Debug> std::fmt::Display for QueryError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LimitMustNotBeZero => write!(f, "limit must not be zero"),
            Self::LimitTooLarge => write!(f, "limit exceeds {QUERY_LIMIT_MAX}"),
            Self::TooManyIds => write!(f, "more than {QUERY_LIMIT_MAX} ids"),
            Self::TimestampRangeInvalid => write!(f, "timestamp_min is after timestamp_max"),
            Self::AccountIdMustNotBeZero => write!(f, "account id must not be zero"),
            Self::Store(error) => write!(f, "store: {error:?}"),
        }
    }
}

/// Which of an account's transfers to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountFilter {
    pub account: AccountId,
    pub timestamp_min: Timestamp,
    /// Zero: no upper bound.
    pub timestamp_max: Timestamp,
    pub limit: u32,
    /// Newest first.
    pub descending: bool,
}

/// The account's balances right after one transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceEntry {
    pub transfer: TransferId,
    pub timestamp: Timestamp,
    pub balances: Balances,
}

/// # Errors
/// `TooManyIds`, or the store's error.
pub fn lookup_accounts<S: StateRead>(
    store: &S,
    ids: &[AccountId],
) -> Result<Vec<Option<Account>>, QueryError<S::Error>> {
    check_ids(ids.len())?;
    ids.iter().map(|id| store.account(*id).map_err(QueryError::Store)).collect()
}

/// # Errors
/// `TooManyIds`, or the store's error.
pub fn lookup_transfers<S: StateRead>(
    store: &S,
    ids: &[TransferId],
) -> Result<Vec<Option<Transfer>>, QueryError<S::Error>> {
    check_ids(ids.len())?;
    ids.iter().map(|id| store.transfer(*id).map_err(QueryError::Store)).collect()
}

/// # Errors
/// A malformed filter, or the store's error.
pub fn account_transfers<S: StateRead>(
    store: &S,
    filter: &AccountFilter,
) -> Result<Vec<Transfer>, QueryError<S::Error>> {
    let range = check_filter(filter)?;
    let ids = store
        .account_transfers(filter.account, range, filter.descending, filter.limit)
        .map_err(QueryError::Store)?;
    assert!(ids.len() <= filter.limit as usize);
    ids.iter()
        .map(|id| {
            let transfer = store.transfer(*id).map_err(QueryError::Store)?;
            Ok(transfer.expect("indexed transfers exist"))
        })
        .collect()
}

/// The account's balances after each of its transfers in the filter's range.
///
/// # Errors
/// A malformed filter, or the store's error.
pub fn balance_history<S: StateRead>(
    store: &S,
    filter: &AccountFilter,
) -> Result<Vec<BalanceEntry>, QueryError<S::Error>> {
    let transfers = account_transfers(store, filter)?;
    Ok(transfers
        .iter()
        .map(|transfer| {
            let balances = if transfer.debit_account == filter.account {
                transfer.debit_balances
            } else {
                assert_eq!(transfer.credit_account, filter.account);
                transfer.credit_balances
            };
            BalanceEntry { transfer: transfer.id, timestamp: transfer.timestamp, balances }
        })
        .collect())
}

/// The account's open lots, earliest expiry first.
///
/// # Errors
/// A zero id, or the store's error.
pub fn account_lots<S: StateRead>(
    store: &S,
    account: AccountId,
) -> Result<Vec<Lot>, QueryError<S::Error>> {
    if account.is_zero() {
        return Err(QueryError::AccountIdMustNotBeZero);
    }
    store.lots(account).map_err(QueryError::Store)
}

/// # Errors
/// The store's error.
pub fn gift_card<S: StateRead>(
    store: &S,
    code_hash: &CodeHash,
) -> Result<Option<Account>, QueryError<S::Error>> {
    let Some(id) = store.gift_card(code_hash).map_err(QueryError::Store)? else {
        return Ok(None);
    };
    store.account(id).map_err(QueryError::Store)
}

/// An event with the transfer it is about: what an exporter sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub event: Event,
    /// For transfer events: the transfer, with both accounts' balances right after it.
    pub transfer: Option<Transfer>,
    /// For `AccountCreated`: the account as it is now (its immutable fields are as created;
    /// its personal fields are empty once erased, its status and limits as last changed).
    pub account: Option<Account>,
}

/// The outbox from `from` on, each transfer event joined with its transfer.
///
/// # Errors
/// A bad limit, or the store's error.
pub fn events<S: StateRead>(
    store: &S,
    from: EventSeq,
    limit: u32,
) -> Result<Vec<EventRecord>, QueryError<S::Error>> {
    check_limit(limit)?;
    let events = store.events(from, limit).map_err(QueryError::Store)?;
    events
        .into_iter()
        .map(|event| {
            let transfer = match event.kind.transfer() {
                Some(id) => {
                    let transfer = store.transfer(id).map_err(QueryError::Store)?;
                    Some(transfer.expect("events name applied transfers"))
                }
                None => None,
            };
            let account = match event.kind {
                EventKind::AccountCreated(id) => {
                    let account = store.account(id).map_err(QueryError::Store)?;
                    Some(account.expect("events name created accounts"))
                }
                _ => None,
            };
            Ok(EventRecord { event, transfer, account })
        })
        .collect()
}

fn check_ids<E>(count: usize) -> Result<(), QueryError<E>> {
    if count > QUERY_LIMIT_MAX as usize {
        return Err(QueryError::TooManyIds);
    }
    Ok(())
}

fn check_limit<E>(limit: u32) -> Result<(), QueryError<E>> {
    if limit == 0 {
        return Err(QueryError::LimitMustNotBeZero);
    }
    if limit > QUERY_LIMIT_MAX {
        return Err(QueryError::LimitTooLarge);
    }
    Ok(())
}

fn check_filter<E>(filter: &AccountFilter) -> Result<(Timestamp, Timestamp), QueryError<E>> {
    if filter.account.is_zero() {
        return Err(QueryError::AccountIdMustNotBeZero);
    }
    check_limit(filter.limit)?;
    let max =
        if filter.timestamp_max.is_zero() { Timestamp(u64::MAX) } else { filter.timestamp_max };
    if filter.timestamp_min > max {
        return Err(QueryError::TimestampRangeInvalid);
    }
    Ok((filter.timestamp_min, max))
}
