//! Events: what applying a batch tells the outside world, in a gap-free sequence. They live in
//! the state machine (the raft log is the outbox) until every sink has acknowledged them.
//!
//! An event names the record it is about rather than copying it: the transfer record already
//! holds everything a transfer event carries (its fields, its timestamp, and both accounts'
//! balances right after it), so storing it twice would double the writes of the hot path.
//! `query::events` joins each event with its transfer for exporters.

use crate::types::{
    AccountFlags, AccountId, AccountStatus, AssetId, EventSeq, Timestamp, TransferId,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub seq: EventSeq,
    pub timestamp: Timestamp,
    pub kind: EventKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    AssetCreated(AssetId),
    AccountCreated(AccountId),
    /// A single-phase transfer, including reversals, refunds and gift-card clears.
    TransferPosted(TransferId),
    HoldCreated(TransferId),
    /// The post; its `pending_id` names the hold.
    HoldPosted(TransferId),
    /// The void; its `pending_id` names the hold.
    HoldVoided(TransferId),
    /// The hold's timeout passed: a system void, whose `pending_id` names the hold.
    HoldExpired(TransferId),
    /// A lot reached its expiry: a system transfer into the asset's expiry account.
    LotExpired(TransferId),
    StatusChanged {
        account: AccountId,
        from: AccountStatus,
        to: AccountStatus,
    },
    /// Flags or overdraft limit changed; the values after the change.
    AccountChanged {
        account: AccountId,
        flags: AccountFlags,
        overdraft_limit: u128,
    },
    /// Personal fields dropped; read models must drop theirs.
    Erased(AccountId),
}

impl EventKind {
    /// The transfer a transfer event is about.
    #[must_use]
    pub fn transfer(&self) -> Option<TransferId> {
        match *self {
            Self::TransferPosted(id)
            | Self::HoldCreated(id)
            | Self::HoldPosted(id)
            | Self::HoldVoided(id)
            | Self::HoldExpired(id)
            | Self::LotExpired(id) => Some(id),
            _ => None,
        }
    }

    /// The account an account event is about.
    #[must_use]
    pub fn account(&self) -> Option<AccountId> {
        match *self {
            Self::AccountCreated(id)
            | Self::StatusChanged { account: id, .. }
            | Self::AccountChanged { account: id, .. }
            | Self::Erased(id) => Some(id),
            _ => None,
        }
    }
}
