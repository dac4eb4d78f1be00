//! One node's life on its simulated host: open what the last crash left on its disk (or a blank
//! one when the operator replaced it), start raft and the services, serve until turmoil crashes
//! the host. A node whose raft stops by itself (an fsync that failed, data that failed its
//! checksum) stops serving and says so, as `ledgerd` exits; the driver plays its supervisor.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use raft::node::{Node, NodeConfig};
use storage::mem::MemKv;
use storage::Store;

use super::net::{clock, dialer, incoming};
use super::{host_name, World, CLUSTER_ID, PORT};

pub(super) async fn node_main(host: usize, world: Rc<World>) -> turmoil::Result {
    let boot = {
        let mut boots = world.boots.borrow_mut();
        boots[host] += 1;
        boots[host]
    };
    let store = match open(host, &world) {
        Ok(store) => store,
        Err(reason) => return stopped(host, reason, &world).await,
    };
    let id = world.ids.borrow()[host];
    let mut config = NodeConfig::new(id, CLUSTER_ID);
    config.heartbeat_ms = 50;
    config.election_timeout_min_ms = 300;
    config.election_timeout_max_ms = 600;
    config.snapshot_after_entries = 64;
    config.logs_kept_after_snapshot = 16;
    config.deadlines.connect = Duration::from_millis(500);
    config.deadlines.rpc = Duration::from_secs(1);
    config.deadlines.snapshot = Duration::from_secs(4);
    config.tick_interval = Duration::from_millis(200);
    config.rng_seed = Some(world.seed ^ (id << 48) ^ boot);
    config.dialer = Some(dialer());
    config.clock = clock();
    let node = match Node::start(config, store).await {
        Ok(node) => node,
        Err(reason) => return stopped(host, reason, &world).await,
    };
    // Bound only once the node runs: a node that failed to start must refuse connections, not
    // let them queue unanswered.
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    if host == 0 && boot == 1 {
        let ids = world.ids.borrow().clone();
        let members = ids
            .iter()
            .enumerate()
            .map(|(n, id)| (*id, format!("{}:{PORT}", host_name(n))))
            .collect();
        node.initialize(members).await.map_err(|e| format!("{e:?}"))?;
    }
    let serving = api::server::serve_connections(
        node.clone(),
        api::server::Security::default(),
        incoming(listener),
        std::future::pending(),
    );
    tokio::select! {
        served = serving => served?,
        reason = node.stopped() => {
            node.shutdown().await;
            return stopped(host, reason, &world).await;
        }
    }
    Ok(())
}

/// The store this boot starts from: what the disk kept through the crash (torn, when the driver
/// said so), or a blank disk after a replacement.
fn open(host: usize, world: &World) -> Result<Arc<Store<MemKv>>, String> {
    let wipe = std::mem::take(&mut world.wipe.borrow_mut()[host]);
    let tear = std::mem::take(&mut world.tear.borrow_mut()[host]);
    let mut stores = world.stores.borrow_mut();
    let mut unopened = world.unopened.borrow_mut();
    let kv = match (stores[host].take(), unopened[host].take()) {
        _ if wipe => MemKv::default(),
        (Some(old), _) => old.kv().crash(tear),
        (None, Some(disk)) => disk,
        (None, None) => MemKv::default(),
    };
    if world.planted == Some(super::PlantedBug::LyingFsync) {
        kv.lie_about_syncs();
    }
    // A copy of the disk, for the next boot should this one fail to open it.
    let disk = kv.crash(false);
    match Store::open(kv, u128::from(CLUSTER_ID)) {
        Ok(store) => {
            let store = Arc::new(store);
            stores[host] = Some(Arc::clone(&store));
            Ok(store)
        }
        Err(e) => {
            unopened[host] = Some(disk);
            Err(format!("the store did not open: {e}"))
        }
    }
}

/// The node stopped by itself: say why, then stay down until the supervisor restarts the host.
async fn stopped(host: usize, reason: String, world: &World) -> turmoil::Result {
    world.stopped.borrow_mut().push((host, reason));
    std::future::pending().await
}
