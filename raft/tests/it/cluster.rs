//! Real openraft nodes on our storage, over an in-process transport that can cut nodes off.
//! Goal: writes through the leader reach every replica with identical state; a leader cut off
//! is replaced and no acknowledged transfer is lost or applied twice (retries with the same ids
//! answer `Exists`); a node that comes back catches up; a node added after the log was purged
//! catches up by snapshot. Waits are on openraft's metrics; the only sleep is a client's bounded
//! retry backoff while an election runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledger_sm::command::{Batch, NewTransfer, Operation};
use ledger_sm::result::{Results, TransferResult};
use ledger_sm::state::StateRead;
use ledger_sm::types::{AccountId, AssetId, Timestamp, TransferCode, TransferId};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::impls::BasicNode;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{Config, Raft, RaftNetworkV2, SnapshotPolicy};
use raft::{LedgerRequest, LedgerResponse, LogStore, SnapshotData, StateMachine, TypeConfig};
use storage::{MemKv, Store};

type Node = Raft<TypeConfig, StateMachine<MemKv>>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
type Vote = raft::Vote;

/// Every node of the test cluster, and which are cut off.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Node>>>,
    stores: Arc<Mutex<BTreeMap<u64, Arc<Store<MemKv>>>>>,
    isolated: Arc<Mutex<BTreeSet<u64>>>,
}

impl Router {
    /// The target node, if both ends are connected.
    fn reach(&self, source: u64, target: u64) -> Result<Node, Unreachable<TypeConfig>> {
        let isolated = self.isolated.lock().unwrap();
        if isolated.contains(&source) || isolated.contains(&target) {
            return Err(Unreachable::from_string(format!("{source} -> {target} cut")));
        }
        let nodes = self.nodes.lock().unwrap();
        nodes.get(&target).cloned().ok_or_else(|| Unreachable::from_string("no such node"))
    }

    async fn start(&self, id: u64) -> Node {
        let store = Arc::new(Store::open(MemKv::default(), 7).unwrap());
        let config = Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(20),
            max_in_snapshot_log_to_keep: 0,
            ..Config::default()
        };
        let network = Network { router: self.clone(), source: id, target: 0 };
        let node = raft::seeded(
            id,
            Raft::new(
                id,
                Arc::new(config.validate().unwrap()),
                network,
                LogStore::new(Arc::clone(&store)),
                StateMachine::new(Arc::clone(&store)),
            ),
        )
        .await
        .unwrap();
        self.nodes.lock().unwrap().insert(id, node.clone());
        self.stores.lock().unwrap().insert(id, store);
        node
    }

    fn node(&self, id: u64) -> Node {
        self.nodes.lock().unwrap()[&id].clone()
    }

    fn store(&self, id: u64) -> Arc<Store<MemKv>> {
        Arc::clone(&self.stores.lock().unwrap()[&id])
    }
}

/// A client to one target; also the factory of clients, as each node's network.
struct Network {
    router: Router,
    source: u64,
    target: u64,
}

fn unreachable<E: std::error::Error + 'static>(error: &E) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(error))
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Network;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Network {
        Network { router: self.router.clone(), source: self.source, target }
    }
}

impl RaftNetworkV2<TypeConfig> for Network {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let node = self.router.reach(self.source, self.target).map_err(RPCError::Unreachable)?;
        node.append_entries(rpc).await.map_err(|e| unreachable(&e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let node = self.router.reach(self.source, self.target).map_err(RPCError::Unreachable)?;
        node.vote(rpc).await.map_err(|e| unreachable(&e))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let node = self.router.reach(self.source, self.target).map_err(RPCError::Unreachable)?;
        node.pre_vote(rpc).await.map_err(|e| unreachable(&e))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let node = self.router.reach(self.source, self.target)?;
        node.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let node = self.router.reach(self.source, self.target).map_err(RPCError::Unreachable)?;
        node.handle_transfer_leader(req).await.map_err(|e| unreachable(&e))
    }
}

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

fn earn(id: u128, now: u64) -> Batch {
    let transfer = NewTransfer {
        id: TransferId(id),
        debit_account: AccountId(1),
        credit_account: AccountId(2),
        amount: 5,
        asset: AssetId(1),
        code: Some(TransferCode::Earn),
        ..NewTransfer::default()
    };
    Batch {
        now: Timestamp(now * 1_000_000_000),
        operation: Operation::CreateTransfers(vec![transfer]),
    }
}

/// Writes through whichever node leads now, retrying on another node when the leader changes.
/// Returns the results and the entry's log index.
async fn write(router: &Router, members: &[u64], batch: &Batch) -> (Results, u64) {
    for _ in 0..50 {
        for id in members {
            let node = router.node(*id);
            if node.current_leader().await != Some(*id) {
                continue;
            }
            if let Ok(response) = node.client_write(LedgerRequest(batch.clone())).await {
                let LedgerResponse(results) = response.data;
                return (results, response.log_id.index);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // Back off while an election runs.
    }
    panic!("no leader accepted the write");
}

fn transfer_result(results: &Results) -> TransferResult {
    match results {
        Results::CreateTransfers(outcomes) => outcomes[0].result,
        other => panic!("{other:?}"),
    }
}

async fn wait_applied(router: &Router, members: &[u64], index: u64) {
    for id in members {
        router.node(*id).wait(WAIT).applied_index_at_least(Some(index), "catch up").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let router = Router::default();
    for id in 1..=3 {
        router.start(id).await;
    }
    let members: BTreeMap<u64, BasicNode> =
        (1..=3).map(|id| (id, BasicNode { addr: format!("node-{id}") })).collect();
    router.node(1).initialize(members).await.unwrap();
    router.node(1).wait(WAIT).current_leader(1, "node 1 leads").await.unwrap();

    for batch in crate::ledger::batches() {
        write(&router, &[1, 2, 3], &batch).await;
    }
    let mut index = 0;
    for n in 0..30u128 {
        let results;
        (results, index) =
            write(&router, &[1, 2, 3], &earn(100 + n, 10 + u64::try_from(n).unwrap())).await;
        assert_eq!(transfer_result(&results), TransferResult::Ok);
    }
    // Metrics can lag the store, so wait on the last write's own log index, on every node.
    wait_applied(&router, &[1, 2, 3], index).await;
    let hash = |id| router.store(id).meta().unwrap().state_hash;
    assert_eq!(hash(1), hash(2));
    assert_eq!(hash(1), hash(3));

    // Cut the leader off: the others elect a new one; retries of acknowledged transfers answer
    // `Exists`, new ones apply once.
    router.isolated.lock().unwrap().insert(1);
    let elected = |m: &openraft::RaftMetrics<TypeConfig>| matches!(m.current_leader, Some(2 | 3));
    let metrics = router.node(2).wait(WAIT).metrics(elected, "2 or 3 elected").await.unwrap();
    let leader = metrics.current_leader.unwrap();
    let (retry, _) = write(&router, &[2, 3], &earn(100, 100)).await;
    assert_eq!(transfer_result(&retry), TransferResult::Exists);
    for n in 30..60u128 {
        let results;
        (results, index) =
            write(&router, &[2, 3], &earn(100 + n, 100 + u64::try_from(n).unwrap())).await;
        assert_eq!(transfer_result(&results), TransferResult::Ok);
    }

    // The old leader comes back and catches up; a fourth node joins after the log was purged
    // behind snapshots and catches up by snapshot.
    router.isolated.lock().unwrap().clear();
    let purged = |m: &openraft::RaftMetrics<TypeConfig>| m.purged.is_some_and(|p| p.index > 1);
    router.node(leader).wait(WAIT).metrics(purged, "leader purged its log").await.unwrap();
    router.start(4).await;
    router.node(leader).add_learner(4, BasicNode { addr: "node-4".into() }, true).await.unwrap();
    wait_applied(&router, &[1, 2, 3, 4], index).await;
    // Entry 1 was purged everywhere before node 4 joined: only a snapshot can have brought it.
    assert!(router.store(4).log_entries(1, 2).unwrap().is_empty());
    assert!(router.node(4).metrics().borrow_watched().snapshot.is_some());
    for id in 1..=4 {
        assert_eq!(hash(id), hash(leader), "node {id} diverged");
        let wallet = router.store(id).account(AccountId(2)).unwrap().unwrap();
        assert_eq!(wallet.balances.credits_posted, 100 + 60 * 5, "node {id}: each earn once");
        ledger_sm::invariants::check(&router.store(id).records().unwrap()).unwrap();
    }
    for id in 1..=4 {
        router.node(id).shutdown().await.unwrap();
    }
}
