//! Per-event results. A refused event is data, not an error. Within each enum the variants are
//! in precedence order: when several apply, the first one listed is reported.

use crate::types::{AccountBalances, AccountStatus, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CreateAssetResult {
    Ok,
    IdMustNotBeZero,
    CodeMustNotBeEmpty,
    CodeTooLong,
    CodeMustBeAscii,
    ScaleTooLarge,
    ExpiryAccountIdMustNotBeZero,
    ExpiryAccountIdReserved,
    Exists,
    ExistsWithDifferentCode,
    ExistsWithDifferentScale,
    ExistsWithDifferentExpiryAccount,
    ExpiryAccountExists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CreateAccountResult {
    Ok,
    LinkedEventFailed,
    LinkedEventChainOpen,
    IdMustNotBeZero,
    IdReserved,
    FlagsReserved,
    FlagsAreMutuallyExclusive,
    KindReserved,
    OverdraftLimitRequiresDebitsMustNotExceedCredits,
    ExternalRefTooLong,
    MetadataTooLong,
    CodeHashRequired,
    CodeHashOnlyForGiftCards,
    AssetMustNotBeZero,
    Exists,
    ExistsWithDifferentAsset,
    ExistsWithDifferentKind,
    ExistsWithDifferentMerchant,
    ExistsWithDifferentExternalRef,
    ExistsWithDifferentMetadata,
    ExistsWithDifferentCodeHash,
    AssetNotFound,
    CodeHashExists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransferResult {
    Ok,
    LinkedEventFailed,
    LinkedEventChainOpen,
    IdMustNotBeZero,
    IdReserved,
    FlagsReserved,
    FlagsAreMutuallyExclusive,
    CodeMustNotBeZero,
    CodeReserved,
    ForceRequiresReversal,
    PendingIdMustNotBeZero,
    PendingIdMustBeZero,
    PendingIdMustBeDifferent,
    ReversesMustNotBeZero,
    ReversesMustBeZero,
    ReversesMustBeDifferent,
    TimeoutReservedForPendingTransfer,
    ExpiresAtNotAllowed,
    DebitAccountIdMustNotBeZero,
    CreditAccountIdMustNotBeZero,
    AccountsMustBeDifferent,
    AssetMustNotBeZero,
    AmountMustNotBeZero,
    ExistsWithDifferentFlags,
    ExistsWithDifferentPendingId,
    ExistsWithDifferentReverses,
    ExistsWithDifferentTimeout,
    ExistsWithDifferentExpiresAt,
    ExistsWithDifferentDebitAccountId,
    ExistsWithDifferentCreditAccountId,
    ExistsWithDifferentAmount,
    ExistsWithDifferentAsset,
    ExistsWithDifferentCode,
    ExistsWithDifferentUserData128,
    ExistsWithDifferentUserData64,
    ExistsWithDifferentUserData32,
    Exists,
    PendingTransferNotFound,
    PendingTransferNotPending,
    PendingTransferHasDifferentDebitAccountId,
    PendingTransferHasDifferentCreditAccountId,
    PendingTransferHasDifferentAsset,
    PendingTransferAlreadyPosted,
    PendingTransferAlreadyVoided,
    PendingTransferExpired,
    ExceedsPendingTransferAmount,
    PendingTransferHasDifferentAmount,
    ReversedTransferNotFound,
    ReversedTransferNotReversible,
    ReversalHasDifferentDebitAccountId,
    ReversalHasDifferentCreditAccountId,
    ReversalHasDifferentAsset,
    ExceedsReversibleAmount,
    DebitAccountNotFound,
    CreditAccountNotFound,
    AccountsMustHaveTheSameAsset,
    TransferMustHaveTheSameAssetAsAccounts,
    DebitAccountNotActive,
    CreditAccountNotActive,
    ExpiresAtMustBeInTheFuture,
    OverflowsDebitsPending,
    OverflowsCreditsPending,
    OverflowsDebitsPosted,
    OverflowsCreditsPosted,
    OverflowsDebits,
    OverflowsCredits,
    ExceedsCredits,
    ExceedsDebits,
    LotsExceedLimit,
}

impl TransferResult {
    /// Refusals that are kept under the transfer's id, so that the id stays used. Everything
    /// refused after the id itself was found valid, except the echo of a linked chain's failure.
    #[must_use]
    pub fn is_recorded(self) -> bool {
        !matches!(
            self,
            Self::Ok
                | Self::LinkedEventFailed
                | Self::LinkedEventChainOpen
                | Self::IdMustNotBeZero
                | Self::IdReserved
                | Self::Exists
        ) && !self.is_exists_with_different()
    }

    #[must_use]
    pub fn is_exists_with_different(self) -> bool {
        self >= Self::ExistsWithDifferentFlags && self <= Self::ExistsWithDifferentUserData32
    }
}

impl TransferResult {
    /// Every code, in declaration (and precedence) order: `ALL[code as usize] == code`.
    pub const ALL: [Self; 69] = [
        Self::Ok,
        Self::LinkedEventFailed,
        Self::LinkedEventChainOpen,
        Self::IdMustNotBeZero,
        Self::IdReserved,
        Self::FlagsReserved,
        Self::FlagsAreMutuallyExclusive,
        Self::CodeMustNotBeZero,
        Self::CodeReserved,
        Self::ForceRequiresReversal,
        Self::PendingIdMustNotBeZero,
        Self::PendingIdMustBeZero,
        Self::PendingIdMustBeDifferent,
        Self::ReversesMustNotBeZero,
        Self::ReversesMustBeZero,
        Self::ReversesMustBeDifferent,
        Self::TimeoutReservedForPendingTransfer,
        Self::ExpiresAtNotAllowed,
        Self::DebitAccountIdMustNotBeZero,
        Self::CreditAccountIdMustNotBeZero,
        Self::AccountsMustBeDifferent,
        Self::AssetMustNotBeZero,
        Self::AmountMustNotBeZero,
        Self::ExistsWithDifferentFlags,
        Self::ExistsWithDifferentPendingId,
        Self::ExistsWithDifferentReverses,
        Self::ExistsWithDifferentTimeout,
        Self::ExistsWithDifferentExpiresAt,
        Self::ExistsWithDifferentDebitAccountId,
        Self::ExistsWithDifferentCreditAccountId,
        Self::ExistsWithDifferentAmount,
        Self::ExistsWithDifferentAsset,
        Self::ExistsWithDifferentCode,
        Self::ExistsWithDifferentUserData128,
        Self::ExistsWithDifferentUserData64,
        Self::ExistsWithDifferentUserData32,
        Self::Exists,
        Self::PendingTransferNotFound,
        Self::PendingTransferNotPending,
        Self::PendingTransferHasDifferentDebitAccountId,
        Self::PendingTransferHasDifferentCreditAccountId,
        Self::PendingTransferHasDifferentAsset,
        Self::PendingTransferAlreadyPosted,
        Self::PendingTransferAlreadyVoided,
        Self::PendingTransferExpired,
        Self::ExceedsPendingTransferAmount,
        Self::PendingTransferHasDifferentAmount,
        Self::ReversedTransferNotFound,
        Self::ReversedTransferNotReversible,
        Self::ReversalHasDifferentDebitAccountId,
        Self::ReversalHasDifferentCreditAccountId,
        Self::ReversalHasDifferentAsset,
        Self::ExceedsReversibleAmount,
        Self::DebitAccountNotFound,
        Self::CreditAccountNotFound,
        Self::AccountsMustHaveTheSameAsset,
        Self::TransferMustHaveTheSameAssetAsAccounts,
        Self::DebitAccountNotActive,
        Self::CreditAccountNotActive,
        Self::ExpiresAtMustBeInTheFuture,
        Self::OverflowsDebitsPending,
        Self::OverflowsCreditsPending,
        Self::OverflowsDebitsPosted,
        Self::OverflowsCreditsPosted,
        Self::OverflowsDebits,
        Self::OverflowsCredits,
        Self::ExceedsCredits,
        Self::ExceedsDebits,
        Self::LotsExceedLimit,
    ];
}

/// The answer to one transfer: its result and the balances of both accounts after it (for
/// `Ok` and `Exists`, as the transfer left them; for a refusal, as they stand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransferOutcome {
    pub result: TransferResult,
    /// The transfer's timestamp when it was applied (now or originally); zero when refused.
    pub timestamp: Timestamp,
    /// What moved: the amount of a balancing transfer or a post may differ from the request.
    pub amount: u128,
    pub debit: Option<AccountBalances>,
    pub credit: Option<AccountBalances>,
}

/// The answer to one account creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountOutcome {
    pub result: CreateAccountResult,
    pub timestamp: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeAccountResult {
    Ok,
    IdMustNotBeZero,
    AccountNotFound,
    /// Expiry sinks are system accounts and take no changes.
    AccountIsExpirySink,
    /// Freeze, unfreeze and close are for ledger accounts; gift cards are blocked and deactivated.
    AccountIsGiftCard,
    AccountNotGiftCard,
    /// The change does not apply to an account in this status (e.g. unfreeze of a closed one).
    StatusForbids,
    FlagsReserved,
    FlagsAreMutuallyExclusive,
    OverdraftLimitRequiresDebitsMustNotExceedCredits,
    /// Lowering the limit or adding a flag would put the current balances out of bounds.
    BalancesViolateChange,
    /// Close and deactivate wait for every hold to be posted or voided.
    PendingNotZero,
    /// Close wants every posted balance at zero.
    BalanceNotZero,
    TransferIdMustNotBeZero,
    TransferIdReserved,
    TransferExists,
    MerchantAccountNotFound,
    MerchantAccountMustBeDifferent,
    MerchantAccountHasDifferentAsset,
    MerchantAccountNotActive,
    OverflowsCredits,
    ExceedsDebits,
}

/// The answer to one account change, with the account's status and balances after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChangeAccountOutcome {
    pub result: ChangeAccountResult,
    pub status: Option<AccountStatus>,
    pub balances: Option<AccountBalances>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IssueGiftCardResult {
    Ok,
    /// The account to issue is not of kind `GiftCard`.
    KindMustBeGiftCard,
    /// The card could not be created: the reason.
    Account(CreateAccountResult),
    /// The load was refused (and so the card was not created either): the reason.
    Load(TransferResult),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IssueGiftCardOutcome {
    pub result: IssueGiftCardResult,
    pub balances: Option<AccountBalances>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EraseResult {
    /// Erased now, or already erased before (a retry).
    Ok,
    IdMustNotBeZero,
    AccountNotFound,
}

/// What a tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TickOutcome {
    pub lots_expired: u32,
    pub holds_expired: u32,
    /// More was due than one tick handles; the next tick continues.
    pub more_due: bool,
}

/// The result of one cursor command, in precedence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CursorResult {
    /// Moved or forgotten now, or already so (a retry).
    Ok,
    /// The sink id breaks the naming rules (`SinkId::is_valid`).
    SinkInvalid,
    /// `next` is past the last event: a sink cannot hold events that do not exist yet.
    CursorBeyondEvents,
    /// `next` is below the outbox's first event: those were compacted away already.
    CursorBelowOutbox,
    /// The cursor's term is newer: a deposed leader's exporter is fenced off.
    TermStale,
    /// The cursor is already past `next`; cursors never move back.
    CursorBehind,
}

/// One result per event of the batch, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Results {
    CreateAssets(Vec<CreateAssetResult>),
    CreateAccounts(Vec<AccountOutcome>),
    CreateTransfers(Vec<TransferOutcome>),
    ChangeAccounts(Vec<ChangeAccountOutcome>),
    IssueGiftCards(Vec<IssueGiftCardOutcome>),
    Erase(Vec<EraseResult>),
    Tick(TickOutcome),
    Cursors(Vec<CursorResult>),
    /// The batch as a whole was refused (too many events, or empty); nothing was applied.
    BatchRefused(BatchRefusal),
}

impl Results {
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::CreateAssets(r) => r.len(),
            Self::CreateAccounts(r) => r.len(),
            Self::CreateTransfers(r) => r.len(),
            Self::ChangeAccounts(r) => r.len(),
            Self::IssueGiftCards(r) => r.len(),
            Self::Erase(r) => r.len(),
            Self::Tick(_) => 1,
            Self::Cursors(r) => r.len(),
            Self::BatchRefused(_) => 0,
        }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchRefusal {
    Empty,
    TooManyEvents,
}
