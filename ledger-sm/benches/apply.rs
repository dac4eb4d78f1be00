//! In-memory apply throughput on one core, in the shape of `tigerbeetle benchmark`: 10,000
//! accounts, batches of 8,190 single-phase transfers between random accounts.
//!
//! - `apply_only`: the pure state machine on an already-prefetched batch (what a replica spends
//!   per batch on top of storage).
//! - `execute_mem`: prefetch from, apply, and persist to the in-memory store.
//! - `apply_with_lots`: as `apply_only`, but every transfer is an earn with an expiry into a
//!   no-overdraft wallet or a burn that consumes lots.
//!
//! Run: `cargo bench -p ledger-sm --bench apply`.

use divan::counter::ItemsCount;
use divan::Bencher;
use ledger_sm::command::{Batch, NewAccount, NewAsset, NewTransfer, Operation};
use ledger_sm::constants::{BATCH_EVENTS_MAX, NANOS_PER_SECOND};
use ledger_sm::mem::MemState;
use ledger_sm::result::Results;
use ledger_sm::state::prefetch;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferId,
};

const ACCOUNTS: u128 = 10_000;
const BATCH: usize = BATCH_EVENTS_MAX as usize;

fn main() {
    divan::main();
}

/// A splitmix64 generator: deterministic inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u128) -> u128 {
        u128::from(self.next()) % bound
    }
}

fn ledger(flags: u16) -> MemState {
    let mut state = MemState::default();
    let asset = NewAsset {
        id: AssetId(1),
        code: b"PTS".to_vec(),
        scale: 0,
        expiry_account: AccountId(u128::from(u32::MAX)),
    };
    let now = Timestamp(NANOS_PER_SECOND);
    state.execute(&Batch { now, operation: Operation::CreateAssets(vec![asset]) });
    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    for chunk in ids.chunks(BATCH) {
        let accounts = chunk
            .iter()
            .map(|id| NewAccount {
                id: AccountId(*id),
                asset: AssetId(1),
                kind: AccountKind::CustomerWallet,
                flags: AccountFlags(if *id == 1 { 0 } else { flags }),
                overdraft_limit: 0,
                merchant: MerchantId(1),
                external_ref: Vec::new(),
                metadata: Vec::new(),
                code_hash: CodeHash::ZERO,
            })
            .collect();
        let results = state.execute(&Batch { now, operation: Operation::CreateAccounts(accounts) });
        assert!(matches!(results, Results::CreateAccounts(_)));
    }
    state
}

fn transfers(rng: &mut Rng, first_id: u128, lots: bool) -> Vec<NewTransfer> {
    (0..BATCH as u128)
        .map(|i| {
            let debit = 1 + rng.below(ACCOUNTS);
            let mut credit = 1 + rng.below(ACCOUNTS - 1);
            if credit >= debit {
                credit += 1;
            }
            let mut transfer = NewTransfer {
                id: TransferId(first_id + i),
                debit_account: AccountId(debit),
                credit_account: AccountId(credit),
                amount: 1 + rng.below(10),
                asset: AssetId(1),
                code: Some(TransferCode::Transfer),
                ..NewTransfer::default()
            };
            if lots {
                // Half earns from the issuer (account 1) with an expiry, half burns to it.
                if i % 2 == 0 {
                    transfer.debit_account = AccountId(1);
                    transfer.expires_at =
                        Timestamp((1_000_000 + rng.next() % 64) * NANOS_PER_SECOND);
                    transfer.code = Some(TransferCode::Earn);
                    transfer.amount = 100;
                } else {
                    transfer.credit_account = AccountId(1);
                    transfer.code = Some(TransferCode::Burn);
                }
            }
            transfer
        })
        .collect()
}

#[divan::bench(sample_count = 20)]
fn apply_only(bencher: Bencher) {
    let state = ledger(0);
    let mut rng = Rng(1);
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            let batch = Batch {
                now: Timestamp(2 * NANOS_PER_SECOND),
                operation: Operation::CreateTransfers(transfers(&mut rng, 1, false)),
            };
            let prefetched = prefetch(&state, &batch).unwrap();
            (prefetched, batch)
        })
        .bench_local_values(|(prefetched, batch)| ledger_sm::apply(prefetched, &batch));
}

#[divan::bench(sample_count = 20)]
fn execute_mem(bencher: Bencher) {
    let mut state = ledger(0);
    let mut rng = Rng(2);
    let mut next_id = 1;
    let mut now = 2;
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            now += 1;
            next_id += BATCH as u128;
            Batch {
                now: Timestamp(now * NANOS_PER_SECOND),
                operation: Operation::CreateTransfers(transfers(&mut rng, next_id, false)),
            }
        })
        .bench_local_values(|batch| state.execute(&batch));
}

#[divan::bench(sample_count = 20)]
fn apply_with_lots(bencher: Bencher) {
    let mut state = ledger(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    let mut rng = Rng(3);
    // Warm up: every wallet holds a few lots.
    for round in 0..4u64 {
        let mut earns = transfers(&mut rng, 1 + u128::from(round) * BATCH as u128, true);
        earns.iter_mut().for_each(|t| {
            t.debit_account = AccountId(1);
            t.expires_at = Timestamp((1_000_000 + round) * NANOS_PER_SECOND);
            t.code = Some(TransferCode::Earn);
            t.amount = 100;
        });
        let now = Timestamp((2 + round) * NANOS_PER_SECOND);
        state.execute(&Batch { now, operation: Operation::CreateTransfers(earns) });
    }
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            let batch = Batch {
                now: Timestamp(10 * NANOS_PER_SECOND),
                operation: Operation::CreateTransfers(transfers(&mut rng, 1 << 40, true)),
            };
            let prefetched = prefetch(&state, &batch).unwrap();
            (prefetched, batch)
        })
        .bench_local_values(|(prefetched, batch)| ledger_sm::apply(prefetched, &batch));
}
