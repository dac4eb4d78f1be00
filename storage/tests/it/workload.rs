//! A seeded workload of ledger batches touching every table: assets, accounts, gift cards,
//! earns with expiry, burns, holds with timeouts, posts, voids, refunds, refusals and ticks.

use ledger_sm::command::{
    AccountChange, Batch, CursorCommand, GiftCardIssue, NewAccount, NewAsset, NewTransfer,
    Operation,
};
use ledger_sm::constants::NANOS_PER_SECOND;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, EventSeq, MerchantId, SinkId,
    Timestamp, TransferCode, TransferFlags, TransferId,
};

/// splitmix64: deterministic and dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const WALLETS: u64 = 8;

fn account(id: u128, kind: AccountKind, flags: u16) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        asset: AssetId(1),
        kind,
        flags: AccountFlags(flags),
        overdraft_limit: 0,
        merchant: MerchantId(7),
        external_ref: format!("ref-{id}").into_bytes(),
        metadata: Vec::new(),
        code_hash: CodeHash::ZERO,
    }
}

/// The set-up batches: an asset, an issuer (1), a merchant (2), wallets 10.., a gift card.
pub fn setup() -> Vec<Batch> {
    let d = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let mut accounts = vec![
        account(1, AccountKind::MerchantIssuance, 0),
        account(2, AccountKind::MerchantSettlement, 0),
    ];
    accounts
        .extend((0..WALLETS).map(|i| account(10 + u128::from(i), AccountKind::CustomerWallet, d)));
    let card = NewAccount { code_hash: CodeHash([9; 32]), ..account(50, AccountKind::GiftCard, d) };
    let issue = GiftCardIssue {
        account: card,
        load_transfer_id: TransferId(1 << 100),
        load_from: AccountId(1),
        load_amount: 500,
    };
    let asset =
        NewAsset { id: AssetId(1), code: b"PTS".to_vec(), scale: 0, expiry_account: AccountId(3) };
    let at = |s: u64| Timestamp(s * NANOS_PER_SECOND);
    vec![
        Batch { now: at(1), operation: Operation::CreateAssets(vec![asset]) },
        Batch { now: at(1), operation: Operation::CreateAccounts(accounts) },
        Batch { now: at(1), operation: Operation::IssueGiftCards(vec![issue]) },
        Batch {
            now: at(1),
            operation: Operation::ChangeAccounts(vec![AccountChange::ActivateGiftCard {
                account: AccountId(50),
            }]),
        },
    ]
}

/// Batch number `n` (from 1) of the seeded workload, at `n + 1` seconds.
pub fn batch(rng: &mut Rng, n: u64) -> Batch {
    let now = Timestamp((n + 1) * NANOS_PER_SECOND);
    if n % 7 == 0 {
        return Batch { now, operation: Operation::Tick };
    }
    if n % 11 == 0 {
        // Two sinks taking the outbox at different paces (sometimes past its end: refused),
        // one forgotten now and then: cursors move and events are compacted.
        let postgres = SinkId::new("postgres").expect("a sink name");
        let kafka = SinkId::new("kafka").expect("a sink name");
        let commands = if n % 77 == 0 {
            vec![CursorCommand::Forget { sink: kafka }]
        } else {
            vec![
                CursorCommand::Advance { sink: postgres, next: EventSeq(n * 4), term: 1 },
                CursorCommand::Advance { sink: kafka, next: EventSeq(n * 2), term: 1 },
            ]
        };
        return Batch { now, operation: Operation::Cursors(commands) };
    }
    let transfers = (0..1 + rng.below(12)).map(|i| transfer(rng, n, i)).collect();
    Batch { now, operation: Operation::CreateTransfers(transfers) }
}

fn transfer(rng: &mut Rng, n: u64, i: u64) -> NewTransfer {
    let id = TransferId(u128::from(n) << 32 | u128::from(i + 1));
    let wallet = AccountId(10 + u128::from(rng.below(WALLETS)));
    // Refer back to an earlier batch's transfer (it may not exist or not fit: refusals are part
    // of the workload).
    let earlier = TransferId(u128::from(rng.below(n.max(1))) << 32 | u128::from(1 + rng.below(6)));
    let base = NewTransfer { id, asset: AssetId(1), ..NewTransfer::default() };
    match rng.below(8) {
        0 | 1 => NewTransfer {
            debit_account: AccountId(1),
            credit_account: wallet,
            amount: u128::from(1 + rng.below(50)),
            code: Some(TransferCode::Earn),
            expires_at: Timestamp((n + 2 + rng.below(20)) * NANOS_PER_SECOND),
            ..base
        },
        2 | 3 => NewTransfer {
            debit_account: wallet,
            credit_account: AccountId(2),
            amount: u128::from(1 + rng.below(40)),
            code: Some(TransferCode::Burn),
            ..base
        },
        4 => NewTransfer {
            debit_account: wallet,
            credit_account: AccountId(2),
            amount: u128::from(1 + rng.below(20)),
            code: Some(TransferCode::Burn),
            flags: TransferFlags(TransferFlags::PENDING),
            timeout: 1 + u32::try_from(rng.below(10)).unwrap(),
            ..base
        },
        5 => NewTransfer {
            flags: TransferFlags(if rng.below(2) == 0 {
                TransferFlags::POST_PENDING
            } else {
                TransferFlags::VOID_PENDING
            }),
            pending_id: earlier,
            ..base
        },
        6 => NewTransfer { code: Some(TransferCode::Refund), reverses: earlier, ..base },
        _ => NewTransfer {
            debit_account: AccountId(50),
            credit_account: AccountId(2),
            amount: u128::from(1 + rng.below(100)),
            code: Some(TransferCode::Redeem),
            ..base
        },
    }
}
