//! The server half of the internal gRPC transport: decodes peers' messages and hands them to
//! openraft. A message from another cluster, or one that does not decode, is refused with a
//! status and never reaches raft.

use std::sync::Arc;

use futures_util::StreamExt;
use openraft::raft::AppendEntriesResponse;
use storage::Kv;
use tonic::{Request, Response, Status, Streaming};

use crate::node::{Contact, Node};
use crate::proto::{RaftMessage, ReadIndexReply, ReadIndexRequest, SnapshotChunk};
use openraft::async_runtime::WatchReceiver;

use crate::{wire, RaftHandle, SnapshotData, TypeConfig, Vote};

/// Largest internal message: an append of many full batches.
pub const MESSAGE_BYTES_MAX: usize = 256 << 20;

/// Largest snapshot a node accepts in one transfer (it is assembled in memory).
pub const SNAPSHOT_BYTES_MAX: u64 = 4 << 30;

#[derive(Debug)]
pub struct RaftService<K: Kv + 'static> {
    raft: RaftHandle<K>,
    cluster_id: u64,
    contact: Arc<Contact>,
}

impl<K: Kv + 'static> RaftService<K> {
    pub(crate) fn new(raft: RaftHandle<K>, cluster_id: u64, contact: Arc<Contact>) -> Self {
        Self { raft, cluster_id, contact }
    }

    fn check_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        if cluster_id == self.cluster_id {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "peer belongs to cluster {cluster_id}, this node to cluster {}",
                self.cluster_id
            )))
        }
    }

    /// openraft asserts what a snapshot's metadata claims against the vote and the local
    /// commit; a peer's claim that breaks them is refused here, never turned into a panic.
    fn check_snapshot_meta(&self, vote: &Vote, meta: &wire::SnapshotMeta) -> Result<(), Status> {
        let Some(last) = meta.last_log_id else { return Ok(()) };
        if last.leader_id > vote.leader_id {
            return Err(Status::invalid_argument("snapshot from a term after the sender's vote"));
        }
        let committed = self.raft.metrics().borrow_watched().local_committed;
        if let Some(committed) = committed {
            if last > committed && last.index <= committed.index {
                return Err(Status::invalid_argument(
                    "snapshot's log id contradicts this node's committed log",
                ));
            }
        }
        Ok(())
    }

    fn payload(&self, request: Request<RaftMessage>) -> Result<Vec<u8>, Status> {
        let message = request.into_inner();
        self.check_cluster(message.cluster_id)?;
        Ok(message.payload)
    }
}

fn invalid(error: &std::io::Error) -> Status {
    Status::invalid_argument(error.to_string())
}

fn unavailable(error: impl std::fmt::Display) -> Status {
    Status::unavailable(error.to_string())
}

fn reply(cluster_id: u64, payload: Vec<u8>) -> Response<RaftMessage> {
    Response::new(RaftMessage { cluster_id, payload })
}

#[tonic::async_trait]
impl<K: Kv + 'static> crate::proto::raft_server::Raft for RaftService<K> {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = wire::append_request_decode(&self.payload(request)?).map_err(|e| invalid(&e))?;
        let commit = rpc.leader_commit.map_or(0, |l| l.index);
        let sent = tokio::time::Instant::now(); // The leader was alive at least until now.
        let response = self.raft.append_entries(rpc).await.map_err(unavailable)?;
        if matches!(
            response,
            AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
        ) {
            self.contact.heard(sent, commit);
        }
        Ok(reply(self.cluster_id, wire::append_response_bytes(&response)))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = wire::vote_request_decode(&self.payload(request)?).map_err(|e| invalid(&e))?;
        let response = self.raft.vote(rpc).await.map_err(unavailable)?;
        Ok(reply(self.cluster_id, wire::vote_response_bytes(&response)))
    }

    async fn pre_vote(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = wire::vote_request_decode(&self.payload(request)?).map_err(|e| invalid(&e))?;
        let response = self.raft.pre_vote(rpc).await.map_err(unavailable)?;
        Ok(reply(self.cluster_id, wire::vote_response_bytes(&response)))
    }

    async fn transfer_leader(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc =
            wire::transfer_request_decode(&self.payload(request)?).map_err(|e| invalid(&e))?;
        let response = self.raft.handle_transfer_leader(rpc).await.map_err(unavailable)?;
        Ok(reply(self.cluster_id, wire::transfer_response_bytes(&response)))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftMessage>, Status> {
        let mut stream = request.into_inner();
        let mut header = None;
        let mut chunks = Vec::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            self.check_cluster(chunk.cluster_id)?;
            if header.is_none() {
                let decoded =
                    wire::snapshot_header_decode(&chunk.header).map_err(|e| invalid(&e))?;
                header = Some(decoded);
            } else if !chunk.header.is_empty() {
                return Err(Status::invalid_argument("snapshot header after the first chunk"));
            }
            bytes += chunk.data.len() as u64;
            if bytes > SNAPSHOT_BYTES_MAX {
                return Err(Status::resource_exhausted("snapshot larger than this node accepts"));
            }
            if !chunk.data.is_empty() {
                chunks.push(chunk.data);
            }
        }
        let (vote, meta) =
            header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        self.check_snapshot_meta(&vote, &meta)?;
        // openraft treats a failed install as a storage failure and stops the node: refuse a
        // damaged transfer here instead, and the leader sends it again.
        storage::snapshot::verify_chunks(&chunks)
            .map_err(|e| Status::data_loss(format!("snapshot refused: {e}")))?;
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> {
            meta,
            snapshot: SnapshotData(chunks),
        };
        let response =
            self.raft.install_full_snapshot(vote, snapshot).await.map_err(unavailable)?;
        Ok(reply(self.cluster_id, wire::snapshot_response_bytes(&response)))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexReply>, Status> {
        self.check_cluster(request.into_inner().cluster_id)?;
        let index = Node::<K>::leader_read_index(&self.raft).await.map_err(unavailable)?;
        Ok(Response::new(ReadIndexReply { index }))
    }
}
