//! One node's gRPC server: the internal raft service, `Ledger`, `Admin` and gRPC health, on one
//! address (the address peers know the node by, so a follower can forward to the leader's
//! `Ledger` at the same address raft uses).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use raft::network::{Channels, Deadlines};
use raft::{Node, NodeConfig};
use storage::{Kv, Store};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::admin_service::AdminService;
use crate::ledger_service::LedgerService;
use crate::proto::ledger::admin_server::AdminServer;
use crate::proto::ledger::ledger_server::LedgerServer;

/// How long a stopping node lets calls in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Starts raft over `store` and serves every service on `listener` until `shutdown` resolves;
/// then stops accepting, finishes calls in flight, and stops raft.
///
/// # Errors
/// Raft failed to start, or the server failed.
pub async fn run<K: Kv + 'static>(
    config: NodeConfig,
    store: Arc<Store<K>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let deadlines = config.deadlines;
    let node = Node::start(config, store).await?;
    // Calls in flight get `SHUTDOWN_GRACE` to finish; then raft stops whatever still waits.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let served = tokio::select! {
        served = serve(node.clone(), deadlines, listener, shutdown) => served,
        () = async {
            let _ = stopped.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("calls still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
            Ok(())
        }
    };
    node.shutdown().await;
    served
}

/// Serves `node` on `listener` until `shutdown` resolves.
///
/// # Errors
/// The server failed.
pub async fn serve<K: Kv + 'static>(
    node: Node<K>,
    deadlines: Deadlines,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<LedgerService<K>>>().await;
    let ledger = LedgerServer::new(LedgerService::new(node.clone(), Channels::new(deadlines)))
        .max_decoding_message_size(crate::MESSAGE_BYTES_MAX)
        .max_encoding_message_size(crate::MESSAGE_BYTES_MAX);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(node.raft_service())
        .add_service(ledger)
        .add_service(AdminServer::new(AdminService::new(node)))
        .add_service(health_service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| format!("server failed: {e}"))
}
