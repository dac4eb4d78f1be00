//! A cluster of in-process nodes, each a full `api::server` over RocksDB in a temporary
//! directory, talking real gRPC on loopback. Nodes stop gracefully and restart on the same
//! port and data directory. Waits poll the Admin status with a deadline; nothing sleeps for a
//! fixed time to let something happen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::convert::pb_u128;
use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use api::proto::ledger::ledger_client::LedgerClient;
use raft::NodeConfig;
use storage::{RocksKv, RocksOptions, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const WAIT: Duration = Duration::from_secs(30);
pub const CLUSTER_ID: u64 = 11;

pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), String>>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addresses: BTreeMap<u64, SocketAddr>,
    pub running: BTreeMap<u64, Running>,
}

fn config(id: u64) -> NodeConfig {
    let mut config = NodeConfig::new(id, CLUSTER_ID);
    config.heartbeat_ms = 50;
    config.election_timeout_min_ms = 400;
    config.election_timeout_max_ms = 800;
    config.snapshot_after_entries = 20;
    config.logs_kept_after_snapshot = 0;
    config.tick_interval = Duration::from_millis(100);
    config
}

fn open(path: &Path) -> Arc<Store<RocksKv>> {
    // A node that just stopped may still be releasing the directory's lock.
    let deadline = Instant::now() + WAIT;
    loop {
        match RocksKv::open(path, RocksOptions::default()) {
            Ok(kv) => return Arc::new(Store::open(kv, u128::from(CLUSTER_ID)).unwrap()),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("cannot reopen {}: {error}", path.display()),
        }
    }
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            addresses: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }

    /// Starts node `id` (on its old port and data if it ran before).
    pub async fn start(&mut self, id: u64) {
        let address =
            self.addresses.get(&id).copied().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        self.addresses.insert(id, listener.local_addr().unwrap());
        let store = open(&self.dir.path().join(format!("node-{id}")));
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(api::server::run(config(id), store, listener, shutdown));
        self.running.insert(id, Running { stop, task });
    }

    /// Stops node `id` gracefully and waits until it has.
    pub async fn stop(&mut self, id: u64) {
        let running = self.running.remove(&id).expect("node runs");
        let _ = running.stop.send(());
        running.task.await.unwrap().unwrap();
    }

    pub async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    pub fn address(&self, id: u64) -> String {
        self.addresses[&id].to_string()
    }

    pub fn members(&self, ids: &[u64]) -> BTreeMap<u64, String> {
        ids.iter().map(|id| (*id, self.address(*id))).collect()
    }
}

pub async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy()
}

pub async fn ledger(cluster: &Cluster, id: u64) -> LedgerClient<Channel> {
    LedgerClient::new(channel(&cluster.address(id)).await)
}

pub async fn admin(cluster: &Cluster, id: u64) -> AdminClient<Channel> {
    AdminClient::new(channel(&cluster.address(id)).await)
}

pub async fn status(cluster: &Cluster, id: u64) -> Result<pb::StatusReply, tonic::Status> {
    admin(cluster, id).await.status(pb::StatusRequest {}).await.map(tonic::Response::into_inner)
}

/// Polls `id`'s status until `done` holds; panics after `WAIT` with the last status.
pub async fn wait_status(
    cluster: &Cluster,
    id: u64,
    what: &str,
    done: impl Fn(&pb::StatusReply) -> bool,
) -> pb::StatusReply {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status(cluster, id).await;
        if let Ok(status) = &status {
            if done(status) {
                return status.clone();
            }
        }
        assert!(Instant::now() < deadline, "node {id}: {what}: gave up at {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader, as node `id` sees it once one is elected.
pub async fn leader(cluster: &Cluster, id: u64) -> u64 {
    wait_status(cluster, id, "a leader", |s| s.leader.is_some()).await.leader.unwrap()
}

/// Waits until every node in `ids` applied at least `index`; returns their state hashes.
pub async fn caught_up(cluster: &Cluster, ids: &[u64], index: u64) -> Vec<String> {
    let mut hashes = Vec::new();
    for id in ids {
        let status =
            wait_status(cluster, *id, "catch up", |s| s.applied.is_some_and(|a| a >= index)).await;
        hashes.push(status.state_hash);
    }
    hashes
}

/// Retries a write while the cluster answers UNAVAILABLE (an election), until `WAIT`.
pub async fn transfers(
    cluster: &Cluster,
    via: u64,
    transfers: Vec<pb::NewTransfer>,
) -> Vec<pb::TransferResult> {
    let request = pb::CreateTransfersRequest { transfers };
    let deadline = Instant::now() + WAIT;
    loop {
        match ledger(cluster, via).await.create_transfers(request.clone()).await {
            Ok(reply) => return reply.into_inner().results,
            Err(status)
                if status.code() == tonic::Code::Unavailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("write via node {via}: {status:?}"),
        }
    }
}

pub fn earn(id: u128, to: u128, amount: u128) -> pb::NewTransfer {
    pb::NewTransfer {
        id: pb_u128(id),
        debit_account: pb_u128(MERCHANT),
        credit_account: pb_u128(to),
        amount: pb_u128(amount),
        asset: 1,
        code: pb::TransferCode::Earn as i32,
        ..pb::NewTransfer::default()
    }
}

pub const MERCHANT: u128 = 100;
pub const WALLET: u128 = 200;

/// An asset, a merchant issuance account and a wallet, through node `via`.
pub async fn setup_ledger(cluster: &Cluster, via: u64) {
    let mut client = ledger(cluster, via).await;
    let asset = pb::NewAsset { id: 1, code: "PTS".into(), scale: 0, expiry_account: pb_u128(900) };
    let reply = client
        .create_assets(pb::CreateAssetsRequest { assets: vec![asset] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.results, vec!["ok"]);
    // Personal fields, for erasure to clear.
    let account = |id, kind: pb::AccountKind| pb::NewAccount {
        id: pb_u128(id),
        asset: 1,
        kind: kind as i32,
        external_ref: format!("customer-{id}").into_bytes(),
        metadata: b"{\"tier\":\"gold\"}".to_vec(),
        ..pb::NewAccount::default()
    };
    let accounts = vec![
        account(MERCHANT, pb::AccountKind::MerchantIssuance),
        account(WALLET, pb::AccountKind::CustomerWallet),
    ];
    let reply =
        client.create_accounts(pb::CreateAccountsRequest { accounts }).await.unwrap().into_inner();
    assert!(reply.results.iter().all(|r| r.result == "ok"), "{reply:?}");
}

/// The wallet's posted credits, read through node `via` with `max_staleness_ms`.
pub async fn wallet_credits(cluster: &Cluster, via: u64, max_staleness_ms: u32) -> u128 {
    let request = pb::LookupAccountsRequest {
        ids: vec![pb_u128(WALLET).unwrap()],
        consistency: Some(pb::ReadConsistency { max_staleness_ms }),
    };
    let reply = ledger(cluster, via).await.lookup_accounts(request).await.unwrap().into_inner();
    let balances = reply.accounts[0].balances.unwrap();
    api::convert::u128_of(balances.credits_posted.as_ref())
}
