//! What the sync-out tests share: a `Ledger` that applies batches to a real store itself, one
//! at a time, as raft would, and `Node`s — views of who leads it, so that a deposed leader and
//! a new one can export side by side.

#![allow(dead_code)] // Each test file uses its own part.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_sm::command::{
    AccountChange, Batch, CursorCommand, NewAccount, NewAsset, NewTransfer, Operation,
};
use ledger_sm::result::{CursorResult, Results};
use ledger_sm::state::{prefetch, StateRead};
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferFlags, TransferId,
};
use storage::{MemKv, Store};
use sync_out::{ExporterConfig, Leadership};

/// The replicated state and its clock (nanoseconds; each batch moves it 1 ms).
pub struct Ledger {
    pub store: Arc<Store<MemKv>>,
    pub clock: Mutex<u64>,
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Self::starting_at(0)
    }

    pub fn starting_at(nanos: u64) -> Arc<Self> {
        let store = Arc::new(Store::open(MemKv::default(), 1).unwrap());
        Arc::new(Self { store, clock: Mutex::new(nanos) })
    }

    pub fn execute(&self, operation: Operation) -> Results {
        let mut clock = self.clock.lock().unwrap();
        *clock += 1_000_000;
        let batch = Batch { now: Timestamp(*clock), operation };
        let applied = ledger_sm::apply(prefetch(&*self.store, &batch).unwrap(), &batch);
        self.store.persist(&applied.effects, b"applied").unwrap();
        applied.results
    }

    pub fn events_next(&self) -> u64 {
        self.store.meta().unwrap().event_seq_next.0
    }

    /// Asset 1 (expiring into account 3) and accounts 1 (the merchant's issuance) and 3.
    pub fn setup(&self) {
        let asset = NewAsset {
            id: AssetId(1),
            code: b"PTS".to_vec(),
            scale: 0,
            expiry_account: AccountId(3),
        };
        self.execute(Operation::CreateAssets(vec![asset]));
        self.create(&[(1, AccountKind::MerchantIssuance), (3, AccountKind::ExpirySink)]);
    }

    /// Accounts of asset 1, each with personal fields (erasable).
    pub fn create(&self, accounts: &[(u128, AccountKind)]) {
        let accounts = accounts
            .iter()
            .map(|&(id, kind)| NewAccount {
                id: AccountId(id),
                asset: AssetId(1),
                kind,
                flags: AccountFlags(0),
                overdraft_limit: 0,
                merchant: MerchantId(7),
                external_ref: format!("customer-{id}").into_bytes(),
                metadata: vec![1, 2, 3],
                code_hash: CodeHash::ZERO,
            })
            .collect();
        self.execute(Operation::CreateAccounts(accounts));
    }

    /// `count` earns of 1 into account 2, with ids from `first`.
    pub fn earn(&self, first: u128, count: u128) {
        let transfers = (first..first + count)
            .map(|id| NewTransfer {
                id: TransferId(id),
                debit_account: AccountId(1),
                credit_account: AccountId(2),
                amount: 1,
                asset: AssetId(1),
                code: Some(TransferCode::Earn),
                ..NewTransfer::default()
            })
            .collect();
        self.execute(Operation::CreateTransfers(transfers));
    }

    /// One step of a mixed workload over wallets 100..100+wallets: earns, burns, holds and
    /// their posts and voids, freezes, erasures, new wallets. Deterministic in `step`.
    pub fn step(&self, step: u64, wallets: &mut u128) {
        let mix = step.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        let wallet = 100 + u128::from(mix) % (*wallets).max(1);
        let id = u128::from(step) * 10 + 1_000_000;
        let transfer = |id, debit, credit, amount, flags, pending_id| NewTransfer {
            id: TransferId(id),
            debit_account: AccountId(debit),
            credit_account: AccountId(credit),
            amount,
            asset: AssetId(1),
            code: Some(if debit == 1 { TransferCode::Earn } else { TransferCode::Burn }),
            flags: TransferFlags(flags),
            pending_id: TransferId(pending_id),
            ..NewTransfer::default()
        };
        let operation = match step % 10 {
            0 => {
                *wallets += 3;
                let new = (*wallets - 3..*wallets).map(|i| (100 + i, AccountKind::CustomerWallet));
                self.create(&new.collect::<Vec<_>>());
                return;
            }
            1..=4 => Operation::CreateTransfers(vec![
                transfer(id, 1, wallet, 10 + u128::from(mix % 50), 0, 0),
                transfer(id + 1, 1, wallet + 1, 5, 0, 0),
            ]),
            5 => Operation::CreateTransfers(vec![transfer(id, wallet, 1, 3, 0, 0)]),
            6 => Operation::CreateTransfers(vec![transfer(
                id,
                wallet,
                1,
                2,
                TransferFlags::PENDING,
                0,
            )]),
            7 => {
                let hold = id - 10;
                let flags = if mix % 2 == 0 {
                    TransferFlags::POST_PENDING
                } else {
                    TransferFlags::VOID_PENDING
                };
                Operation::CreateTransfers(vec![transfer(id, 0, 0, 0, flags, hold)])
            }
            8 if mix % 7 == 0 => Operation::Erase(vec![AccountId(wallet)]),
            8 => Operation::ChangeAccounts(vec![AccountChange::Freeze {
                account: AccountId(wallet),
            }]),
            _ => Operation::ChangeAccounts(vec![AccountChange::Unfreeze {
                account: AccountId(100 + u128::from(mix >> 3) % *wallets),
            }]),
        };
        self.execute(operation);
    }

    /// A node that believes it leads in `term` (0: it does not lead).
    pub fn node(self: &Arc<Self>, term: u64) -> Arc<Node> {
        Arc::new(Node { ledger: Arc::clone(self), term: AtomicU64::new(term) })
    }
}

/// One node's view of leadership over the shared ledger.
pub struct Node {
    pub ledger: Arc<Ledger>,
    pub term: AtomicU64,
}

impl Leadership for Node {
    fn leading(&self) -> Option<u64> {
        Some(self.term.load(SeqCst)).filter(|term| *term > 0)
    }

    async fn confirm(&self, term: u64) -> bool {
        self.leading() == Some(term)
    }

    async fn propose(&self, commands: Vec<CursorCommand>) -> Result<Vec<CursorResult>, String> {
        if self.leading().is_none() {
            return Err("not the leader".into());
        }
        match self.ledger.execute(Operation::Cursors(commands)) {
            Results::Cursors(results) => Ok(results),
            other => Err(format!("{other:?}")),
        }
    }
}

/// Small batches and quick retries, so that faults land mid-export.
pub fn config() -> ExporterConfig {
    ExporterConfig {
        batch_events: 64,
        poll: Duration::from_millis(5),
        advance_every: Duration::from_millis(20),
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(200),
    }
}

/// Polls `done` every 10 ms for up to 30 s.
pub async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..3000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
