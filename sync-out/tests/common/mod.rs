//! What the sync-out tests share: a `Ledger` that applies batches to a real store itself, one
//! at a time, as raft would, and `Node`s — views of who leads it, so that a deposed leader and
//! a new one can export side by side.

#![allow(dead_code)] // Each test file uses its own part.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use ledger_sm::command::{Batch, CursorCommand, NewAccount, NewAsset, NewTransfer, Operation};
use ledger_sm::result::{CursorResult, Results};
use ledger_sm::state::{prefetch, StateRead};
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferId,
};
use storage::{MemKv, Store};
use sync_out::Leadership;

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
