//! Random workloads over a small id space, for the property tests: few assets and accounts, ~30
//! transfer ids (so retries, conflicting retries and references to holds are frequent), small
//! amounts (so limits bite) with an occasional one near `u128::MAX` (so overflows happen), and a
//! clock that mostly advances but sometimes repeats or goes back.
//!
//! Time-relative fields (a transfer's `expires_at`, the batch's `now`) are generated as offsets,
//! and transfer ids as references ("a fresh id", "the 2nd most recent hold"), made concrete by a
//! `Driver` right before each batch runs, so that most posts name a hold, most refunds an
//! applied transfer, and shrinking keeps a workload meaningful.

use proptest::prelude::*;

use ledger_sm::command::{
    AccountChange, Batch, CursorCommand, GiftCardIssue, NewAccount, NewAsset, NewTransfer,
    Operation,
};
use ledger_sm::constants::NANOS_PER_SECOND;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, EventSeq, MerchantId, SinkId,
    Timestamp, Transfer, TransferCode, TransferFlags, TransferId,
};

use crate::model::Model;

pub const ASSET: AssetId = AssetId(1);
pub const ASSET_2: AssetId = AssetId(2);
pub const SINK: AccountId = AccountId(100);
pub const SINK_2: AccountId = AccountId(200);
/// The clock the workloads start at: 1,000 s.
pub const START: u64 = 1_000 * NANOS_PER_SECOND;

const DMNEC: u16 = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
const CMNED: u16 = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;

pub fn new_account(id: u128, asset: AssetId, kind: AccountKind, flags: u16) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        asset,
        kind,
        flags: AccountFlags(flags),
        overdraft_limit: 0,
        merchant: MerchantId(7),
        external_ref: b"ref".to_vec(),
        metadata: b"meta".to_vec(),
        code_hash: CodeHash::ZERO,
    }
}

pub fn code_hash(n: u8) -> CodeHash {
    let mut hash = [0u8; 32];
    hash[0] = n;
    hash[31] = 0xaa;
    CodeHash(hash)
}

/// Two assets with their sinks and the base accounts: 1 issuance (no flags), 2 and 3 wallets
/// without overdraft (3 with a limit of 5), 4 a funding account (credits must not exceed
/// debits), 5 a settlement account, 6 an operator, 7 an account of the second asset; then
/// non-expiring value for the wallets (transfers 901..=903, outside the workloads' ids).
pub fn setup() -> Vec<Batch> {
    let assets = vec![
        NewAsset { id: ASSET, code: b"PTS".to_vec(), scale: 0, expiry_account: SINK },
        NewAsset { id: ASSET_2, code: b"EUR".to_vec(), scale: 2, expiry_account: SINK_2 },
    ];
    let mut wallet_limit = new_account(3, ASSET, AccountKind::CustomerWallet, DMNEC);
    wallet_limit.overdraft_limit = 5;
    let accounts = vec![
        new_account(1, ASSET, AccountKind::MerchantIssuance, 0),
        new_account(2, ASSET, AccountKind::CustomerWallet, DMNEC),
        wallet_limit,
        new_account(4, ASSET, AccountKind::Operator, CMNED),
        new_account(5, ASSET, AccountKind::MerchantSettlement, 0),
        new_account(6, ASSET, AccountKind::Operator, 0),
        new_account(7, ASSET_2, AccountKind::CustomerWallet, 0),
    ];
    let fund = |id, debit, credit, amount| NewTransfer {
        id: TransferId(id),
        debit_account: AccountId(debit),
        credit_account: AccountId(credit),
        amount,
        asset: ASSET,
        code: Some(TransferCode::Earn),
        ..NewTransfer::default()
    };
    let funding = vec![fund(901, 1, 2, 40), fund(902, 1, 3, 15), fund(903, 4, 6, 30)];
    vec![
        Batch { now: Timestamp(START), operation: Operation::CreateAssets(assets) },
        Batch { now: Timestamp(START), operation: Operation::CreateAccounts(accounts) },
        Batch { now: Timestamp(START), operation: Operation::CreateTransfers(funding) },
    ]
}

/// Fresh transfer ids cycle through 1..=IDS, so late in a workload fresh requests collide with
/// old ones; raw ids are drawn from 1..=RAW_IDS.
pub const IDS: u128 = 48;
const RAW_IDS: u128 = 30;

fn account_id() -> impl Strategy<Value = AccountId> {
    prop_oneof![
        6 => Just(AccountId(1)),
        6 => Just(AccountId(2)),
        3 => Just(AccountId(3)),
        2 => Just(AccountId(4)),
        2 => Just(AccountId(5)),
        1 => Just(AccountId(6)),
        1 => Just(AccountId(7)),
        3 => (10u128..=12).prop_map(AccountId),
        1 => prop_oneof![Just(0u128), Just(8), Just(100)].prop_map(AccountId),
    ]
}

/// Debit and credit accounts, nearly always different.
fn account_pair() -> impl Strategy<Value = (AccountId, AccountId)> {
    (account_id(), account_id(), 0u8..20).prop_map(|(debit, credit, same)| {
        if debit == credit && same > 0 {
            (debit, AccountId(if debit.0 == 2 { 1 } else { 2 }))
        } else {
            (debit, credit)
        }
    })
}

fn gift_card_id() -> impl Strategy<Value = AccountId> {
    prop_oneof![6 => (10u128..=12).prop_map(AccountId), 1 => account_id()]
}

/// Zero-able accounts for posts, voids and reversals (which inherit them).
fn inherited_account() -> impl Strategy<Value = AccountId> {
    prop_oneof![6 => Just(AccountId(0)), 1 => account_id()]
}

/// How a request names a transfer; resolved when the workload is materialized, against the
/// ids requested so far.
#[derive(Clone, Copy, Debug)]
pub enum IdRef {
    /// The next id of the cycle 1..=IDS.
    Fresh,
    /// The k-th most recent id of the right kind: any request for an id, a hold for a
    /// `pending_id`, a non-hold for `reverses`.
    Recent(u8),
    /// Exactly this id: zero, reserved, or arbitrary.
    Raw(TransferId),
}

fn raw_id() -> impl Strategy<Value = IdRef> {
    prop_oneof![
        3 => (1u128..=RAW_IDS).prop_map(|id| IdRef::Raw(TransferId(id))),
        1 => Just(IdRef::Raw(TransferId(0))),
        1 => Just(IdRef::Raw(TransferId((1 << 127) | 5))),
    ]
}

fn own_id() -> impl Strategy<Value = IdRef> {
    prop_oneof![16 => Just(IdRef::Fresh), 3 => (0u8..6).prop_map(IdRef::Recent), 1 => raw_id()]
}

fn reference() -> impl Strategy<Value = IdRef> {
    prop_oneof![12 => (0u8..4).prop_map(IdRef::Recent), 1 => Just(IdRef::Fresh), 1 => raw_id()]
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        40 => 1u128..=20,
        1 => Just(0u128),
        1 => u128::MAX - 20..=u128::MAX,
        1 => Just(u128::MAX / 2 + 1),
    ]
}

fn resolve_amount() -> impl Strategy<Value = u128> {
    prop_oneof![4 => Just(0u128), 3 => 1u128..=20]
}

fn user_code() -> impl Strategy<Value = Option<TransferCode>> {
    prop_oneof![
        24 => prop::sample::select(vec![
            TransferCode::Earn,
            TransferCode::Burn,
            TransferCode::Load,
            TransferCode::Redeem,
            TransferCode::Adjustment,
            TransferCode::Transfer,
        ]).prop_map(Some),
        1 => Just(None),
        1 => prop::sample::select(vec![
            TransferCode::Expiry,
            TransferCode::Clear,
            TransferCode::HoldTimeout,
            TransferCode::Refund,
        ]).prop_map(Some),
    ]
}

/// Expiry offsets in seconds from the batch's `now`; `i8::MIN` means none.
fn expires_in() -> impl Strategy<Value = i8> {
    prop_oneof![5 => Just(i8::MIN), 4 => 1i8..=6, 1 => -2i8..=0]
}

fn linked() -> impl Strategy<Value = u16> {
    prop_oneof![9 => Just(0u16), 1 => Just(TransferFlags::LINKED)]
}

/// A transfer request whose ids and expiry are still relative.
#[derive(Clone, Copy, Debug)]
pub struct TransferSeed {
    pub transfer: NewTransfer,
    pub id: IdRef,
    /// The hold a post or void resolves, or the transfer a reversal reverses.
    pub reference: Option<IdRef>,
    /// Seconds from the batch's clock; `i8::MIN`: none.
    pub expires_in: i8,
}

fn plain() -> impl Strategy<Value = TransferSeed> {
    let flags = prop_oneof![
        8 => Just(0u16),
        5 => Just(TransferFlags::PENDING),
        2 => Just(TransferFlags::BALANCING_DEBIT),
        1 => Just(TransferFlags::BALANCING_CREDIT),
        1 => Just(TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT),
        1 => Just(TransferFlags::PENDING | TransferFlags::BALANCING_DEBIT),
    ];
    let timeout = prop_oneof![3 => Just(0u32), 2 => 1u32..=4];
    let asset = prop_oneof![20 => Just(ASSET), 1 => Just(ASSET_2), 1 => Just(AssetId(0))];
    let ends = (account_pair(), amount(), asset);
    (own_id(), ends, user_code(), flags, linked(), timeout, expires_in(), 0u128..=1).prop_map(
        |(id, ((debit, credit), amount, asset), code, flags, link, timeout, expires_in, ud)| {
            let pending = flags & TransferFlags::PENDING != 0;
            TransferSeed {
                transfer: NewTransfer {
                    debit_account: debit,
                    credit_account: credit,
                    amount,
                    asset,
                    code,
                    flags: TransferFlags(flags | link),
                    timeout: if pending { timeout } else { 0 },
                    user_data_128: ud,
                    ..NewTransfer::default()
                },
                id,
                reference: None,
                expires_in,
            }
        },
    )
}

fn resolve() -> impl Strategy<Value = TransferSeed> {
    let flag = prop_oneof![Just(TransferFlags::POST_PENDING), Just(TransferFlags::VOID_PENDING)];
    let code = prop_oneof![6 => Just(None), 1 => user_code()];
    (own_id(), reference(), flag, resolve_amount(), inherited_account(), code, linked()).prop_map(
        |(id, pending, flag, amount, debit, code, link)| TransferSeed {
            transfer: NewTransfer {
                debit_account: debit,
                amount,
                code,
                flags: TransferFlags(flag | link),
                ..NewTransfer::default()
            },
            id,
            reference: Some(pending),
            expires_in: i8::MIN,
        },
    )
}

fn reversal() -> impl Strategy<Value = TransferSeed> {
    let code = prop_oneof![Just(TransferCode::Reversal), Just(TransferCode::Refund)];
    let force = prop_oneof![4 => Just(0u16), 1 => Just(TransferFlags::FORCE)];
    (own_id(), reference(), code, resolve_amount(), inherited_account(), force, linked()).prop_map(
        |(id, reverses, code, amount, credit, force, link)| TransferSeed {
            transfer: NewTransfer {
                credit_account: credit,
                amount,
                code: Some(code),
                flags: TransferFlags(force | link),
                ..NewTransfer::default()
            },
            id,
            reference: Some(reverses),
            expires_in: i8::MIN,
        },
    )
}

/// Requests with odd fields: reserved or conflicting flags, stray pending ids, reverses or
/// timeouts.
fn odd() -> impl Strategy<Value = TransferSeed> {
    (plain(), any::<u16>(), 1u128..=RAW_IDS, 0u32..=2).prop_map(
        |(mut seed, flags, other, timeout)| {
            let t = &mut seed.transfer;
            match flags % 5 {
                0 => t.flags = TransferFlags(flags & (TransferFlags::ALL | 0x180)),
                1 => t.pending_id = TransferId(other),
                2 => t.reverses = TransferId(other),
                3 => t.timeout = timeout,
                _ => t.flags = TransferFlags(t.flags.0 | TransferFlags::FORCE),
            }
            seed
        },
    )
}

fn transfer() -> impl Strategy<Value = TransferSeed> {
    prop_oneof![12 => plain(), 5 => resolve(), 4 => reversal(), 1 => odd()]
}

/// An operation whose time-relative fields and transfer ids are still relative.
#[derive(Clone, Debug)]
pub enum OpSeed {
    Transfers(Vec<TransferSeed>),
    Accounts(Vec<NewAccount>),
    Assets(Vec<NewAsset>),
    Changes(Vec<AccountChange>),
    Issues(Vec<GiftCardIssue>),
    Erase(Vec<AccountId>),
    Tick,
    Cursors(Vec<CursorSeed>),
    /// The operation of the k-th most recent batch again, verbatim: a client's blind retry.
    Repeat(u8),
}

fn new_account_seed() -> impl Strategy<Value = NewAccount> {
    let kind = prop::sample::select(vec![
        AccountKind::CustomerWallet,
        AccountKind::MerchantIssuance,
        AccountKind::MerchantSettlement,
        AccountKind::Operator,
        AccountKind::GiftCard,
        AccountKind::ExpirySink,
    ]);
    let flags = prop_oneof![4 => Just(0u16), 3 => Just(DMNEC), 2 => Just(CMNED), 1 => 0u16..16];
    (1u128..=12, kind, flags, 0u128..=3, 0u8..=2, 0u8..=3, linked()).prop_map(
        |(id, kind, flags, limit, variant, hash, link)| {
            let mut account = new_account(id, ASSET, kind, flags | link);
            account.overdraft_limit = if flags == DMNEC { limit } else { 0 };
            match variant {
                1 => account.merchant = MerchantId(8),
                2 => account.metadata = b"other".to_vec(),
                _ => {}
            }
            if kind == AccountKind::GiftCard && hash > 0 {
                account.code_hash = code_hash(hash);
            }
            account
        },
    )
}

fn change() -> impl Strategy<Value = AccountChange> {
    let limit = prop_oneof![3 => 0u128..=6, 1 => Just(u128::MAX)];
    let flags = prop_oneof![Just(0u16), Just(DMNEC), Just(CMNED), 0u16..16];
    prop_oneof![
        3 => account_id().prop_map(|account| AccountChange::Freeze { account }),
        2 => account_id().prop_map(|account| AccountChange::Unfreeze { account }),
        1 => account_id().prop_map(|account| AccountChange::Close { account }),
        2 => (account_id(), limit).prop_map(|(account, overdraft_limit)| {
            AccountChange::SetOverdraftLimit { account, overdraft_limit }
        }),
        2 => (account_id(), flags).prop_map(|(account, flags)| {
            AccountChange::SetFlags { account, flags: AccountFlags(flags) }
        }),
        3 => gift_card_id().prop_map(|account| AccountChange::ActivateGiftCard { account }),
        2 => gift_card_id().prop_map(|account| AccountChange::BlockGiftCard { account }),
        2 => gift_card_id().prop_map(|account| AccountChange::UnblockGiftCard { account }),
        2 => (gift_card_id(), 1u128..=IDS + 3, account_id()).prop_map(
            |(account, transfer_id, merchant_account)| AccountChange::DeactivateGiftCard {
                account,
                transfer_id: TransferId(transfer_id),
                merchant_account,
            }
        ),
    ]
}

fn issue() -> impl Strategy<Value = GiftCardIssue> {
    let kind = prop_oneof![10 => Just(AccountKind::GiftCard), 1 => Just(AccountKind::Operator)];
    let load_id = prop_oneof![
        1 => Just(TransferId(0)),
        3 => (1u128..=IDS + 3).prop_map(TransferId),
        1 => Just(TransferId(1 << 127)),
    ];
    let from = prop_oneof![4 => Just(AccountId(1)), 1 => account_id()];
    (10u128..=12, kind, 1u8..=3, load_id, from, amount(), 0u8..=4).prop_map(
        |(id, kind, hash, load_transfer_id, load_from, load_amount, variant)| {
            let mut account = new_account(id, ASSET, kind, 0);
            account.code_hash = code_hash(hash);
            match variant {
                1 => account.flags = AccountFlags(DMNEC),
                2 => account.merchant = MerchantId(9),
                3 => account.flags = AccountFlags(AccountFlags::LINKED),
                _ => {}
            }
            GiftCardIssue { account, load_transfer_id, load_from, load_amount }
        },
    )
}

fn asset_seed() -> impl Strategy<Value = NewAsset> {
    let code = prop_oneof![
        4 => Just(b"PTS".to_vec()),
        1 => Just(b"EUR".to_vec()),
        1 => Just(Vec::new()),
        1 => Just(b"has space".to_vec()),
        1 => Just(vec![b'X'; 17]),
    ];
    (0u32..=3, code, prop_oneof![Just(0u8), Just(2u8), Just(19u8)], 0u8..=4).prop_map(
        |(id, code, scale, sink)| {
            let expiry_account = match sink {
                0 => AccountId(0),
                1 => AccountId(1 << 127),
                2 => AccountId(2),
                _ => AccountId(300 + u128::from(id)),
            };
            NewAsset { id: AssetId(id), code, scale, expiry_account }
        },
    )
}

/// A cursor command relative to the outbox: which sink (two good names, one bad), how far back
/// from the last event (7: one past it), which term, and whether to forget instead.
#[derive(Clone, Copy, Debug)]
pub struct CursorSeed {
    sink: u8,
    back: u8,
    term: u8,
    forget: bool,
}

fn cursor_seed() -> impl Strategy<Value = CursorSeed> {
    (0u8..3, 0u8..8, 0u8..3, prop::bool::weighted(0.15))
        .prop_map(|(sink, back, term, forget)| CursorSeed { sink, back, term, forget })
}

impl CursorSeed {
    fn command(self, model: &Model) -> CursorCommand {
        let sink = match self.sink {
            0 => SinkId::new("postgres").unwrap(),
            1 => SinkId::new("kafka").unwrap(),
            _ => SinkId(*b"Bad\0\0\0\0\0\0\0\0\0\0\0\0\0"),
        };
        if self.forget {
            return CursorCommand::Forget { sink };
        }
        let last = model.event_seq_next();
        let next =
            if self.back == 7 { last + 1 } else { last.saturating_sub(u64::from(self.back)) };
        CursorCommand::Advance { sink, next: EventSeq(next), term: u64::from(self.term) }
    }
}

pub fn op() -> impl Strategy<Value = OpSeed> {
    prop_oneof![
        50 => prop::collection::vec(transfer(), 1..=5).prop_map(OpSeed::Transfers),
        12 => Just(OpSeed::Tick),
        4 => prop::collection::vec(cursor_seed(), 1..=3).prop_map(OpSeed::Cursors),
        8 => (0u8..4).prop_map(OpSeed::Repeat),
        8 => prop::collection::vec(change(), 1..=3).prop_map(OpSeed::Changes),
        6 => prop::collection::vec(issue(), 1..=2).prop_map(OpSeed::Issues),
        4 => prop::collection::vec(new_account_seed(), 1..=3).prop_map(OpSeed::Accounts),
        2 => prop::collection::vec(account_id(), 1..=2).prop_map(OpSeed::Erase),
        1 => prop::collection::vec(asset_seed(), 1..=2).prop_map(OpSeed::Assets),
        1 => Just(OpSeed::Transfers(Vec::new())),
    ]
}

/// A clock step that sets the clock to `u64::MAX`.
const CLOCK_BROKEN: i64 = i64::MAX;

/// How the clock moves before a batch, in milliseconds: mostly forward, sometimes not at all,
/// sometimes back, very rarely to the end of time.
pub fn clock_step() -> impl Strategy<Value = i64> {
    prop_oneof![
        120 => 0i64..=2_500,
        30 => Just(0i64),
        20 => -3_000i64..0,
        10 => 4_000i64..=8_000,
        // Rarely, a leader clock beyond year 2262: clamped by the state machine.
        1 => Just(CLOCK_BROKEN),
    ]
}

/// Turns seeds into batches, one at a time, resolving relative ids against the ledger as it
/// stands (the model's records): a post names a hold that exists, a refund a transfer that was
/// applied, a retry an id that was requested.
#[derive(Debug)]
pub struct Driver {
    now: u64,
    next: u128,
    requested: Vec<TransferId>,
    batches: Vec<Batch>,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Self {
        Self { now: START, next: 0, requested: Vec::new(), batches: setup() }
    }

    fn fresh(&mut self) -> TransferId {
        self.next = self.next % IDS + 1;
        TransferId(self.next)
    }

    /// Resolves `id` against `candidates` (most recent last).
    fn resolve(&mut self, id: IdRef, candidates: &[TransferId]) -> TransferId {
        match id {
            IdRef::Raw(id) => id,
            IdRef::Recent(k) if !candidates.is_empty() => {
                candidates[candidates.len() - 1 - usize::from(k) % candidates.len()]
            }
            IdRef::Recent(_) | IdRef::Fresh => self.fresh(),
        }
    }

    fn transfer(&mut self, seed: &TransferSeed, model: &Model) -> NewTransfer {
        let mut t = seed.transfer;
        let requested = self.requested.clone();
        t.id = self.resolve(seed.id, &requested);
        if let Some(reference) = seed.reference {
            let resolves = t.flags.resolves_pending();
            let mut applied: Vec<&Transfer> = model
                .transfers
                .values()
                .filter(|o| !o.id.is_reserved() || !resolves)
                .filter(|o| o.flags.has(TransferFlags::PENDING) == resolves)
                .collect();
            applied.sort_by_key(|o| o.timestamp);
            let candidates: Vec<TransferId> = applied.iter().map(|o| o.id).collect();
            let referenced = self.resolve(reference, &candidates);
            if resolves {
                t.pending_id = referenced;
            } else {
                t.reverses = referenced;
            }
        }
        if seed.expires_in != i8::MIN {
            let offset = i64::from(seed.expires_in) * 1_000_000_000;
            t.expires_at = Timestamp(self.now.saturating_add_signed(offset).max(1));
        }
        self.requested.push(t.id);
        t
    }

    /// The next batch: the clock moves by `step` milliseconds (never below 1 ns), relative
    /// fields are resolved against `model`.
    pub fn batch(&mut self, step: i64, seed: &OpSeed, model: &Model) -> Batch {
        let millis = step.unsigned_abs().saturating_mul(1_000_000);
        self.now = match step {
            CLOCK_BROKEN => u64::MAX,
            0.. => self.now.saturating_add(millis),
            _ => self.now.saturating_sub(millis).max(1),
        };
        let operation = match seed {
            OpSeed::Transfers(seeds) => Operation::CreateTransfers(
                seeds.iter().map(|seed| self.transfer(seed, model)).collect(),
            ),
            OpSeed::Accounts(accounts) => Operation::CreateAccounts(accounts.clone()),
            OpSeed::Assets(assets) => Operation::CreateAssets(assets.clone()),
            OpSeed::Changes(changes) => Operation::ChangeAccounts(changes.clone()),
            OpSeed::Issues(issues) => Operation::IssueGiftCards(issues.clone()),
            OpSeed::Erase(accounts) => Operation::Erase(accounts.clone()),
            OpSeed::Tick => Operation::Tick,
            OpSeed::Cursors(seeds) => {
                Operation::Cursors(seeds.iter().map(|seed| seed.command(model)).collect())
            }
            OpSeed::Repeat(k) => {
                let k = usize::from(*k) % self.batches.len();
                self.batches[self.batches.len() - 1 - k].operation.clone()
            }
        };
        let batch = Batch { now: Timestamp(self.now), operation };
        self.batches.push(batch.clone());
        batch
    }
}

/// A workload: clock steps (milliseconds) and operations, to be run through a `Driver` after
/// `setup()`.
pub fn workload(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<(i64, OpSeed)>> {
    prop::collection::vec((clock_step(), op()), len)
}
