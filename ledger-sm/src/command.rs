//! What callers ask of the ledger: a batch is one operation over up to `BATCH_EVENTS_MAX` events,
//! stamped with the leader's clock.

use crate::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, EventSeq, MerchantId, SinkId,
    Timestamp, TransferCode, TransferFlags, TransferId,
};

/// One raft proposal's worth of work: the leader's time and one operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch {
    /// The leader's clock when it proposed the batch. Timestamps are at least this and strictly
    /// increasing across the ledger; a `Tick` expires what is due at `now`.
    pub now: Timestamp,
    pub operation: Operation,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateAssets(Vec<NewAsset>),
    CreateAccounts(Vec<NewAccount>),
    CreateTransfers(Vec<NewTransfer>),
    ChangeAccounts(Vec<AccountChange>),
    IssueGiftCards(Vec<GiftCardIssue>),
    /// GDPR erasure of the accounts' personal fields; amounts stay.
    Erase(Vec<AccountId>),
    /// Expire lots and holds that are due at `Batch::now`.
    Tick,
    /// Move or forget sync-out cursors; events below every cursor leave the outbox.
    Cursors(Vec<CursorCommand>),
}

impl Batch {
    /// `now`, clamped to `TIMESTAMP_NOW_MAX`: what prefetch and apply use as the time.
    #[must_use]
    pub fn time(&self) -> Timestamp {
        Timestamp(self.now.0.min(crate::constants::TIMESTAMP_NOW_MAX))
    }
}

impl Operation {
    /// Events in the batch: what `BATCH_EVENTS_MAX` bounds.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::CreateAssets(events) => events.len(),
            Self::CreateAccounts(events) => events.len(),
            Self::CreateTransfers(events) => events.len(),
            Self::ChangeAccounts(events) => events.len(),
            Self::IssueGiftCards(events) => events.len(),
            Self::Erase(events) => events.len(),
            Self::Tick => 1,
            Self::Cursors(events) => events.len(),
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NewAsset {
    pub id: AssetId,
    pub code: Vec<u8>,
    pub scale: u8,
    /// Id for the asset's expiry sink, created with it.
    pub expiry_account: AccountId,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NewAccount {
    pub id: AccountId,
    pub asset: AssetId,
    pub kind: AccountKind,
    pub flags: AccountFlags,
    pub overdraft_limit: u128,
    pub merchant: MerchantId,
    pub external_ref: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Gift cards only (and then required).
    pub code_hash: CodeHash,
}

/// A transfer request. Zero means "none" for `pending_id`, `reverses`, `timeout` and
/// `expires_at`; posts, voids and reversals may leave the accounts and asset zero to inherit
/// them from the transfer they refer to, and an amount of zero to mean "all of it".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NewTransfer {
    pub id: TransferId,
    pub debit_account: AccountId,
    pub credit_account: AccountId,
    pub amount: u128,
    pub asset: AssetId,
    pub code: Option<TransferCode>,
    pub flags: TransferFlags,
    pub pending_id: TransferId,
    pub reverses: TransferId,
    pub timeout: u32,
    pub expires_at: Timestamp,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
}

/// A change to an existing account. Repeating a change that already holds is a no-op `Ok`, so
/// retries are safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountChange {
    Freeze {
        account: AccountId,
    },
    Unfreeze {
        account: AccountId,
    },
    /// Only with all four balances at zero.
    Close {
        account: AccountId,
    },
    SetOverdraftLimit {
        account: AccountId,
        overdraft_limit: u128,
    },
    /// Replace the balance-limit flags; refused if the current balances would violate them.
    SetFlags {
        account: AccountId,
        flags: AccountFlags,
    },
    ActivateGiftCard {
        account: AccountId,
    },
    BlockGiftCard {
        account: AccountId,
    },
    UnblockGiftCard {
        account: AccountId,
    },
    /// Clear the card's remaining value to `merchant_account` with transfer `transfer_id`, then
    /// deactivate it for good. Refused while holds are open.
    DeactivateGiftCard {
        account: AccountId,
        transfer_id: TransferId,
        merchant_account: AccountId,
    },
}

impl AccountChange {
    #[must_use]
    pub fn account(&self) -> AccountId {
        match *self {
            Self::Freeze { account }
            | Self::Unfreeze { account }
            | Self::Close { account }
            | Self::SetOverdraftLimit { account, .. }
            | Self::SetFlags { account, .. }
            | Self::ActivateGiftCard { account }
            | Self::BlockGiftCard { account }
            | Self::UnblockGiftCard { account }
            | Self::DeactivateGiftCard { account, .. } => account,
        }
    }
}

/// Issue a gift card (kind `GiftCard`, status pending) and optionally load it, atomically.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GiftCardIssue {
    pub account: NewAccount,
    /// Zero: issue without a load. Otherwise a `Load` transfer of `load_amount` from
    /// `load_from` into the card.
    pub load_transfer_id: TransferId,
    pub load_from: AccountId,
    pub load_amount: u128,
}

impl GiftCardIssue {
    /// The load as a transfer request, when there is one.
    #[must_use]
    pub fn load(&self) -> Option<NewTransfer> {
        if self.load_transfer_id.is_zero() {
            return None;
        }
        Some(NewTransfer {
            id: self.load_transfer_id,
            debit_account: self.load_from,
            credit_account: self.account.id,
            amount: self.load_amount,
            asset: self.account.asset,
            code: Some(TransferCode::Load),
            ..NewTransfer::default()
        })
    }
}

/// What a sync-out exporter tells the ledger about a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CursorCommand {
    /// The sink holds every event below `next`. `term` is the raft term of the leader whose
    /// exporter says so. Repeating an advance is a no-op `Ok`; moving back is refused.
    Advance { sink: SinkId, next: EventSeq, term: u64 },
    /// The sink is no longer configured: its cursor is dropped and stops holding events in the
    /// outbox. Forgetting an unknown sink is a no-op `Ok`.
    Forget { sink: SinkId },
}

impl CursorCommand {
    #[must_use]
    pub fn sink(&self) -> SinkId {
        match *self {
            Self::Advance { sink, .. } | Self::Forget { sink } => sink,
        }
    }
}
