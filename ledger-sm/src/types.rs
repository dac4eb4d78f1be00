//! The ledger's records: identifiers, amounts, assets, accounts, transfers and lots.
//!
//! Commands use zero for "none" in optional id and time fields (fixed layouts, no `Option`
//! padding); stored records keep the same convention so a record is the command plus its outcome.

use crate::constants::SYSTEM_ID_MIN;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl $name {
            pub const ZERO: Self = Self(0);

            #[must_use]
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
        }
    };
}

id_type!(
    /// Chosen by the caller (e.g. a UUIDv7); unique forever.
    AccountId(u128)
);
id_type!(
    /// Chosen by the caller; it is the transfer's idempotency key and unique forever.
    TransferId(u128)
);
id_type!(
    /// An asset: a merchant's points or a currency.
    AssetId(u32)
);
id_type!(
    /// A merchant, as known to the merchant service.
    MerchantId(u64)
);
id_type!(
    /// Nanoseconds since the UNIX epoch, stamped by the leader and made strictly increasing by
    /// the state machine.
    Timestamp(u64)
);
id_type!(
    /// Position of an event in the outbox: gap-free and strictly increasing.
    EventSeq(u64)
);

impl AccountId {
    /// Ids at or above `SYSTEM_ID_MIN` are not the callers' to choose.
    #[must_use]
    pub fn is_reserved(self) -> bool {
        self.0 >= SYSTEM_ID_MIN
    }
}

impl TransferId {
    /// Ids at or above `SYSTEM_ID_MIN` belong to transfers minted by the state machine.
    #[must_use]
    pub fn is_reserved(self) -> bool {
        self.0 >= SYSTEM_ID_MIN
    }

    /// The id of a transfer the state machine mints at `timestamp`. Timestamps are unique, so
    /// these ids are too, and they never collide with caller ids.
    #[must_use]
    pub fn system(timestamp: Timestamp) -> Self {
        Self(SYSTEM_ID_MIN | u128::from(timestamp.0))
    }
}

/// The keyed hash of a gift-card code (HMAC-SHA256 with the cluster secret, computed at the API
/// edge). The code itself never reaches the state machine.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeHash(pub [u8; 32]);

impl CodeHash {
    pub const ZERO: Self = Self([0; 32]);

    #[must_use]
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }
}

impl std::fmt::Debug for CodeHash {
    // Only a prefix: enough to tell hashes apart in a test failure, never a whole lookup key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CodeHash({:02x}{:02x}..)", self.0[0], self.0[1])
    }
}

/// A sync-out sink's name: 1 to 16 bytes of `a-z`, `0-9` and `-`, starting with a letter,
/// zero-padded. Names are configured by the operator (`postgres`, `kafka`, `file`, ...).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SinkId(pub [u8; 16]);

impl SinkId {
    /// The name as an id, or `None` when it breaks the rules above.
    #[must_use]
    pub fn new(name: &str) -> Option<Self> {
        let mut id = [0; 16];
        id.get_mut(..name.len())?.copy_from_slice(name.as_bytes());
        Self(id).is_valid().then_some(Self(id))
    }

    /// Whether the bytes follow the naming rules: what apply checks of a command's id.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        let length = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        let (name, padding) = self.0.split_at(length);
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        name.first().is_some_and(u8::is_ascii_lowercase)
            && name.iter().all(allowed)
            && padding.iter().all(|b| *b == 0)
    }

    /// The name, for display and configuration.
    #[must_use]
    pub fn name(&self) -> &str {
        let length = self.0.iter().position(|b| *b == 0).unwrap_or(16);
        std::str::from_utf8(&self.0[..length]).unwrap_or("?")
    }
}

impl std::fmt::Debug for SinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SinkId({:?})", self.name())
    }
}

/// How far a sync-out sink has taken the outbox: it holds every event below `next`. Replicated,
/// so a new leader's exporter resumes where the old one stopped; the outbox keeps every event
/// from the lowest cursor on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub sink: SinkId,
    pub next: EventSeq,
    /// The raft term of the leader whose exporter moved it last: an exporter of an older term
    /// is refused (`CursorResult::TermStale`).
    pub term: u64,
    /// When it last moved (the batch's timestamp).
    pub updated_at: Timestamp,
}

/// Four balance counters of an account, as returned with every write and stored with every
/// transfer (the balances after it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Balances {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl Balances {
    /// Credits posted minus debits posted and pending, or `None` when that is negative.
    #[must_use]
    pub fn available(&self) -> Option<u128> {
        let debits = self.debits_posted.checked_add(self.debits_pending)?;
        self.credits_posted.checked_sub(debits)
    }

    /// `available` clamped at zero: what lots may add up to at most.
    #[must_use]
    pub fn available_or_zero(&self) -> u128 {
        self.available().unwrap_or(0)
    }
}

/// An account's balances with its id, as returned in replies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountBalances {
    pub account: AccountId,
    pub balances: Balances,
}

/// An asset, created once, never changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Asset {
    pub id: AssetId,
    /// `PTS-M42`, `EUR`: ASCII, at most `ASSET_CODE_BYTES_MAX` bytes.
    pub code: Vec<u8>,
    /// Decimal places of one unit: 0 for points, 2 for euros.
    pub scale: u8,
    /// The sink that receives expired lots; created together with the asset.
    pub expiry_account: AccountId,
    pub timestamp: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AccountKind {
    CustomerWallet = 1,
    GiftCard = 2,
    MerchantIssuance = 3,
    MerchantSettlement = 4,
    /// Created with its asset only; receives expired lots.
    ExpirySink = 5,
    Operator = 6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AccountStatus {
    Active = 1,
    Frozen = 2,
    /// Terminal; only with zero balances.
    Closed = 3,
    /// A gift card issued but not activated: it may be loaded, not spent.
    Pending = 4,
    /// A gift card stopped (lost, fraud): no movements until unblocked.
    Blocked = 5,
    /// A gift card whose value went back to the merchant. Terminal.
    Deactivated = 6,
}

/// Account flags. `LINKED` is a command flag (chains creation) and is never stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AccountFlags(pub u16);

impl AccountFlags {
    pub const LINKED: u16 = 1 << 0;
    /// No overdraft: debits (posted + pending) never exceed credits posted plus the overdraft
    /// limit.
    pub const DEBITS_MUST_NOT_EXCEED_CREDITS: u16 = 1 << 1;
    /// The mirror image, for accounts that may only be debited into (e.g. a funding source).
    pub const CREDITS_MUST_NOT_EXCEED_DEBITS: u16 = 1 << 2;
    /// Every defined bit; anything else is `FlagsReserved`.
    pub const ALL: u16 =
        Self::LINKED | Self::DEBITS_MUST_NOT_EXCEED_CREDITS | Self::CREDITS_MUST_NOT_EXCEED_DEBITS;

    #[must_use]
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The flags as stored: without the command-only `LINKED`.
    #[must_use]
    pub fn stored(self) -> Self {
        Self(self.0 & !Self::LINKED)
    }
}

/// An account and its balances.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    pub id: AccountId,
    pub asset: AssetId,
    pub kind: AccountKind,
    pub flags: AccountFlags,
    pub status: AccountStatus,
    /// With `DEBITS_MUST_NOT_EXCEED_CREDITS`: how far below zero the account may go (the floor is
    /// its negation). Changeable by `AccountChange::SetOverdraftLimit`.
    pub overdraft_limit: u128,
    /// How far a forced reversal took the account past its limit; shrinks as credits arrive and
    /// never grows except by force. Zero for nearly every account.
    pub overdraft_forced: u128,
    /// Sum of the account's open lots: the part of its balance that expires. Zero means no lots,
    /// so most accounts never read the lot table.
    pub lots_total: u128,
    pub merchant: MerchantId,
    /// Pseudonymous reference (never a name or card number); cleared by erasure.
    pub external_ref: Vec<u8>,
    /// Small metadata; cleared by erasure.
    pub metadata: Vec<u8>,
    /// Gift cards only: the keyed hash of the card code.
    pub code_hash: CodeHash,
    pub erased: bool,
    pub timestamp: Timestamp,
    pub balances: Balances,
}

impl Account {
    /// Debits (posted + pending) the account may carry before a debit is refused, or `None` when
    /// it has no limit.
    #[must_use]
    pub fn debits_max(&self) -> Option<u128> {
        if !self.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            return None;
        }
        Some(
            self.balances
                .credits_posted
                .saturating_add(self.overdraft_limit)
                .saturating_add(self.overdraft_forced),
        )
    }

    /// Credits (posted + pending) the account may carry, or `None` when it has no limit.
    #[must_use]
    pub fn credits_max(&self) -> Option<u128> {
        if !self.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            return None;
        }
        Some(self.balances.debits_posted)
    }

    #[must_use]
    pub fn account_balances(&self) -> AccountBalances {
        AccountBalances { account: self.id, balances: self.balances }
    }
}

/// What a transfer is for. Codes with rules: `Reversal` and `Refund` need `reverses`; `Expiry`
/// and `Clear` are minted by the state machine only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum TransferCode {
    Earn = 1,
    Burn = 2,
    Load = 3,
    Redeem = 4,
    Refund = 5,
    Reversal = 6,
    Adjustment = 7,
    Transfer = 8,
    /// A lot expired into the asset's expiry account (system).
    Expiry = 9,
    /// A deactivated gift card's remaining value returned to the merchant (system).
    Clear = 10,
    /// A hold whose timeout passed was voided (system).
    HoldTimeout = 11,
}

impl TransferCode {
    #[must_use]
    pub fn is_reversal(self) -> bool {
        matches!(self, Self::Reversal | Self::Refund)
    }

    #[must_use]
    pub fn is_system(self) -> bool {
        matches!(self, Self::Expiry | Self::Clear | Self::HoldTimeout)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TransferFlags(pub u16);

impl TransferFlags {
    /// This transfer and the next succeed or fail together.
    pub const LINKED: u16 = 1 << 0;
    /// A hold: moves the amount into the pending balances.
    pub const PENDING: u16 = 1 << 1;
    /// Posts (captures) up to the held amount of `pending_id`.
    pub const POST_PENDING: u16 = 1 << 2;
    /// Releases the hold `pending_id`.
    pub const VOID_PENDING: u16 = 1 << 3;
    /// Move at most what the debit account has available ("burn all").
    pub const BALANCING_DEBIT: u16 = 1 << 4;
    /// Move at most what the credit account may still receive.
    pub const BALANCING_CREDIT: u16 = 1 << 5;
    /// Operator override: a reversal or refund that may take the account below its floor.
    pub const FORCE: u16 = 1 << 6;
    pub const ALL: u16 = Self::LINKED
        | Self::PENDING
        | Self::POST_PENDING
        | Self::VOID_PENDING
        | Self::BALANCING_DEBIT
        | Self::BALANCING_CREDIT
        | Self::FORCE;

    #[must_use]
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// Post or void: the transfer resolves a hold.
    #[must_use]
    pub fn resolves_pending(self) -> bool {
        self.has(Self::POST_PENDING | Self::VOID_PENDING)
    }
}

/// Where a transfer stands. Holds move from `Pending` to exactly one of the last three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TransferState {
    /// Applied once and for all: single-phase transfers, posts and voids.
    Final = 1,
    Pending = 2,
    Posted = 3,
    Voided = 4,
    Expired = 5,
}

/// Part of a lot that a debit consumed: what a refund or reversal gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LotPart {
    pub expires_at: Timestamp,
    pub amount: u128,
}

/// Earned value that expires: all credits to one account with the same expiry share one lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lot {
    pub account: AccountId,
    pub expires_at: Timestamp,
    pub amount: u128,
}

/// A transfer as stored: the command's fields, its timestamp, its state and the balances of
/// both accounts right after it. It doubles as the idempotency record and as the payload of its
/// event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub id: TransferId,
    pub debit_account: AccountId,
    pub credit_account: AccountId,
    /// What moved: for balancing transfers, possibly less than requested.
    pub amount: u128,
    pub asset: AssetId,
    pub code: TransferCode,
    pub flags: TransferFlags,
    pub pending_id: TransferId,
    pub reverses: TransferId,
    /// Seconds a hold lives before a tick voids it; zero is "until posted or voided".
    pub timeout: u32,
    /// Credited value expires at this time (zero: never).
    pub expires_at: Timestamp,
    pub user_data_128: u128,
    pub user_data_64: u64,
    pub user_data_32: u32,
    pub timestamp: Timestamp,
    pub state: TransferState,
    /// Total reversed or refunded so far; never more than `amount`.
    pub amount_reversed: u128,
    /// Lots consumed from the debit account and not yet given back, earliest expiry first.
    pub lots_consumed: Vec<LotPart>,
    pub debit_balances: Balances,
    pub credit_balances: Balances,
}

impl Transfer {
    /// When a tick voids this hold; `None` when it never times out.
    #[must_use]
    pub fn hold_deadline(&self) -> Option<Timestamp> {
        if self.timeout == 0 || !self.flags.has(TransferFlags::PENDING) {
            return None;
        }
        let nanos = u64::from(self.timeout) * crate::constants::NANOS_PER_SECOND;
        // See the compile-time check next to `TIMESTAMP_NOW_MAX`.
        Some(Timestamp(self.timestamp.0.checked_add(nanos).expect("deadlines fit u64")))
    }
}

/// A transfer that was refused, kept so that its id stays used: a retry gets the same answer
/// instead of succeeding later under changed balances.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FailedTransfer {
    pub transfer: crate::command::NewTransfer,
    pub result: crate::result::TransferResult,
    pub timestamp: Timestamp,
}
