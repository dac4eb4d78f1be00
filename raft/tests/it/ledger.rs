//! Ledger entries through the adapters: batches applied by the state machine match the reference
//! state, survive a reopen, travel by snapshot to a store on the other engine, and damaged
//! encodings are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream;
use ledger_sm::command::{Batch, NewAccount, NewAsset, NewTransfer, Operation};
use ledger_sm::mem::MemState;
use ledger_sm::state::StateRead;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferId,
};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::impls::BasicNode;
use openraft::storage::{RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, RaftLogReader};
use raft::{codec, Entry, LedgerRequest, LogId, LogStore, Membership, StateMachine};
use storage::{MemKv, RocksKv, RocksOptions, Store};

fn log_id(term: u64, index: u64) -> LogId {
    LogId { leader_id: LeaderId { term, node_id: 1 }, index }
}

pub fn batches() -> Vec<Batch> {
    let at = |s: u64| Timestamp(s * 1_000_000_000);
    let account = |id: u128, kind, flags| NewAccount {
        id: AccountId(id),
        asset: AssetId(1),
        kind,
        flags: AccountFlags(flags),
        overdraft_limit: 0,
        merchant: MerchantId(1),
        external_ref: Vec::new(),
        metadata: Vec::new(),
        code_hash: CodeHash::ZERO,
    };
    let asset =
        NewAsset { id: AssetId(1), code: b"PTS".to_vec(), scale: 0, expiry_account: AccountId(9) };
    let d = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let accounts = vec![
        account(1, AccountKind::MerchantIssuance, 0),
        account(2, AccountKind::CustomerWallet, d),
        account(3, AccountKind::MerchantSettlement, 0),
    ];
    let transfer = |id: u128, debit: u128, credit: u128, amount: u128, code| NewTransfer {
        id: TransferId(id),
        debit_account: AccountId(debit),
        credit_account: AccountId(credit),
        amount,
        asset: AssetId(1),
        code: Some(code),
        ..NewTransfer::default()
    };
    let transfers = vec![
        transfer(10, 1, 2, 100, TransferCode::Earn),
        transfer(11, 2, 3, 30, TransferCode::Burn),
        transfer(12, 2, 3, 500, TransferCode::Burn), // Refused: exceeds credits.
    ];
    vec![
        Batch { now: at(1), operation: Operation::CreateAssets(vec![asset]) },
        Batch { now: at(2), operation: Operation::CreateAccounts(accounts) },
        Batch { now: at(3), operation: Operation::CreateTransfers(transfers) },
    ]
}

fn entries() -> Vec<Entry> {
    let members = Membership::new(
        vec![[1, 2, 3].into()],
        (1..=3)
            .map(|id| (id, BasicNode { addr: format!("127.0.0.1:700{id}") }))
            .collect::<BTreeMap<_, _>>(),
    )
    .unwrap();
    let mut entries = vec![
        Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank },
        Entry { log_id: log_id(1, 2), payload: EntryPayload::Membership(members) },
    ];
    for (offset, batch) in batches().into_iter().enumerate() {
        let payload = EntryPayload::Normal(LedgerRequest(batch));
        entries.push(Entry { log_id: log_id(1, 3 + offset as u64), payload });
    }
    entries
}

async fn apply_all<K: storage::Kv + 'static>(machine: &mut StateMachine<K>, entries: Vec<Entry>) {
    let items = entries.into_iter().map(|entry| Ok((entry, None)));
    machine.apply(stream::iter(items)).await.unwrap();
}

/// Goal: ledger entries appended to the log and applied through the state machine give the same
/// state as the reference, and the log and applied state survive a reopen of RocksDB.
#[tokio::test]
async fn ledger_entries_apply_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 4 << 20 };
    let mut reference = MemState::default();
    batches().iter().for_each(|batch| drop(reference.execute(batch)));
    {
        let store = Arc::new(Store::open(RocksKv::open(dir.path(), options).unwrap(), 5).unwrap());
        let mut log = LogStore::new(Arc::clone(&store));
        let mut machine = StateMachine::new(Arc::clone(&store));
        for entry in entries() {
            log.append([entry], openraft::storage::IOFlushed::noop()).await.unwrap();
        }
        apply_all(&mut machine, entries()).await;
    }
    let store = Arc::new(Store::open(RocksKv::open(dir.path(), options).unwrap(), 5).unwrap());
    let mut log = LogStore::new(Arc::clone(&store));
    let mut machine = StateMachine::new(Arc::clone(&store));
    assert_eq!(log.try_get_log_entries(1..6).await.unwrap(), entries());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 5)));
    let (applied, membership) = machine.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 5)));
    assert_eq!(*membership.log_id(), Some(log_id(1, 2)));
    assert_eq!(store.meta().unwrap(), reference.meta());
    assert_eq!(store.account(AccountId(2)).unwrap(), reference.account(AccountId(2)).unwrap());
    ledger_sm::invariants::check(&store.records().unwrap()).unwrap();
}

/// Goal: a snapshot of real ledger state built on RocksDB installs on a memory store with equal
/// state and applied log id.
#[tokio::test]
async fn snapshot_moves_ledger_state_across_engines() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 4 << 20 };
    let source = Arc::new(Store::open(RocksKv::open(dir.path(), options).unwrap(), 5).unwrap());
    let mut machine = StateMachine::new(Arc::clone(&source));
    apply_all(&mut machine, entries()).await;
    let snapshot = machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 5)));

    let target = Arc::new(Store::open(MemKv::default(), 5).unwrap());
    let mut follower = StateMachine::new(Arc::clone(&target));
    follower.install_snapshot(&snapshot.meta, snapshot.snapshot.clone()).await.unwrap();
    assert_eq!(follower.applied_state().await.unwrap().0, Some(log_id(1, 5)));
    assert_eq!(target.meta().unwrap(), source.meta().unwrap());
    ledger_sm::invariants::check(&target.records().unwrap()).unwrap();

    let mut wrong_meta = snapshot.meta.clone();
    wrong_meta.last_log_id = Some(log_id(1, 4));
    let error = follower.install_snapshot(&wrong_meta, snapshot.snapshot).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

/// Goal: every encoding round-trips, and damaged or truncated bytes are an `InvalidData` error,
/// never a panic.
#[test]
fn codec_round_trips_and_refuses_damage() {
    for entry in entries() {
        let bytes = codec::entry_bytes(&entry);
        assert_eq!(codec::entry_decode(&bytes).unwrap(), entry);
        for cut in 0..bytes.len() {
            assert!(codec::entry_decode(&bytes[..cut]).is_err());
        }
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0xff;
            let _ = codec::entry_decode(&damaged); // Any answer but a panic.
        }
    }
    let vote = raft::Vote { leader_id: LeaderId { term: 7, node_id: 3 }, committed: true };
    assert_eq!(codec::vote_decode(&codec::vote_bytes(&vote)).unwrap(), vote);
    assert!(codec::vote_decode(&[0; 16]).is_err());
    let error = codec::log_id_decode(&[1, 2, 3]).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}
