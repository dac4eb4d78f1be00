//! The ledger write path on RocksDB, one core: prefetch a batch's records from the store, apply
//! it, and persist its effects in one synced (fsync) write. Shape of `tigerbeetle benchmark`:
//! 10,000 accounts, batches of 8,190 single-phase transfers between random accounts.
//!
//! Run: `cargo bench -p storage --bench persist`. The data directory is under the system
//! temporary directory (`TMPDIR` to move it to another disk).

use divan::counter::ItemsCount;
use divan::Bencher;
use ledger_sm::command::{Batch, NewAccount, NewAsset, NewTransfer, Operation};
use ledger_sm::constants::{BATCH_EVENTS_MAX, NANOS_PER_SECOND};
use ledger_sm::state::prefetch;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferId,
};
use storage::{Kv, RocksKv, RocksOptions, Store};

const ACCOUNTS: u128 = 10_000;
const BATCH: usize = BATCH_EVENTS_MAX as usize;

fn main() {
    divan::main();
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u128) -> u128 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        u128::from(z ^ (z >> 31)) % bound
    }
}

fn execute<K: Kv>(store: &Store<K>, batch: &Batch) {
    let prefetched = prefetch(store, batch).expect("prefetch");
    let applied = ledger_sm::apply(prefetched, batch);
    store.persist(&applied.effects, b"bench").expect("persist");
}

fn setup<K: Kv>(store: &Store<K>) {
    let now = Timestamp(NANOS_PER_SECOND);
    let asset = NewAsset {
        id: AssetId(1),
        code: b"PTS".to_vec(),
        scale: 0,
        expiry_account: AccountId(u128::from(u32::MAX)),
    };
    execute(store, &Batch { now, operation: Operation::CreateAssets(vec![asset]) });
    let ids: Vec<u128> = (1..=ACCOUNTS).collect();
    for chunk in ids.chunks(BATCH) {
        let accounts = chunk
            .iter()
            .map(|id| NewAccount {
                id: AccountId(*id),
                asset: AssetId(1),
                kind: AccountKind::CustomerWallet,
                flags: AccountFlags::default(),
                overdraft_limit: 0,
                merchant: MerchantId(1),
                external_ref: Vec::new(),
                metadata: Vec::new(),
                code_hash: CodeHash::ZERO,
            })
            .collect();
        execute(store, &Batch { now, operation: Operation::CreateAccounts(accounts) });
    }
}

fn transfers(rng: &mut Rng, first_id: u128) -> Vec<NewTransfer> {
    (0..BATCH as u128)
        .map(|i| {
            let debit = 1 + rng.below(ACCOUNTS);
            let mut credit = 1 + rng.below(ACCOUNTS - 1);
            if credit >= debit {
                credit += 1;
            }
            NewTransfer {
                id: TransferId(first_id + i),
                debit_account: AccountId(debit),
                credit_account: AccountId(credit),
                amount: 1 + rng.below(10),
                asset: AssetId(1),
                code: Some(TransferCode::Transfer),
                ..NewTransfer::default()
            }
        })
        .collect()
}

#[divan::bench(sample_count = 15)]
fn rocksdb_fsync(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kv = RocksKv::open(dir.path(), RocksOptions::default()).expect("rocksdb");
    let store = Store::open(kv, 1).expect("store");
    setup(&store);
    let mut rng = Rng(5);
    let mut next_id = 1;
    let mut now = 2;
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| {
            now += 1;
            next_id += BATCH as u128;
            Batch {
                now: Timestamp(now * NANOS_PER_SECOND),
                operation: Operation::CreateTransfers(transfers(&mut rng, next_id)),
            }
        })
        .bench_local_values(|batch| execute(&store, &batch));
}
