//! The `Admin` gRPC service: status, membership, leadership and snapshots. Membership calls
//! run on the leader; a follower refuses them with FAILED_PRECONDITION and the leader's
//! address in `x-ledger-leader` (ledgerctl follows it).

use std::sync::Arc;
use std::time::Duration;

use ledger_sm::state::StateRead;
use raft::{AdminError, Node};
use storage::Kv;
use tonic::{Request, Response, Status};

use crate::ledger_service::LEADER;
use crate::proto::ledger as pb;
use crate::sync_out::{SyncOut, POSTGRES_SINK};

#[derive(Debug)]
pub struct AdminService<K: Kv + 'static> {
    node: Node<K>,
    sync_out: Arc<SyncOut>,
}

impl<K: Kv + 'static> AdminService<K> {
    #[must_use]
    pub fn new(node: Node<K>, sync_out: Arc<SyncOut>) -> Self {
        Self { node, sync_out }
    }

    fn status(&self) -> Result<pb::StatusReply, Status> {
        let status = self.node.status().map_err(Status::internal)?;
        Ok(status_reply(&status))
    }

    fn membership_reply(&self) -> Result<Response<pb::MembershipReply>, Status> {
        Ok(Response::new(pb::MembershipReply { status: Some(self.status()?) }))
    }
}

#[must_use]
pub fn status_reply(status: &raft::Status) -> pb::StatusReply {
    pb::StatusReply {
        id: status.id,
        cluster_id: status.cluster_id,
        role: status.role.clone(),
        term: status.term,
        leader: status.leader,
        last_log_index: status.last_log_index,
        committed: status.committed,
        applied: status.applied,
        snapshot: status.snapshot,
        purged: status.purged,
        members: status
            .members
            .iter()
            .map(|m| pb::Member {
                id: m.id,
                address: m.address.clone(),
                voter: m.voter,
                matched: m.matched,
                last_ack_ms: m.last_ack_ms,
            })
            .collect(),
        membership_settled: status.membership_settled,
        state_hash: format!("{:032x}", status.state_hash),
    }
}

/// The gRPC status of a refused admin call.
#[must_use]
pub fn admin_status(error: &AdminError) -> Status {
    let message = error.to_string();
    let mut status = match error {
        AdminError::NotLeader(Some(_))
        | AdminError::Conflict(_)
        | AdminError::WouldLoseQuorum(_) => Status::failed_precondition(message),
        // No leader yet (an election): retry.
        AdminError::NotLeader(None) => Status::unavailable(message),
        AdminError::UnknownNode(_) => Status::not_found(message),
        AdminError::Invalid(_) => Status::invalid_argument(message),
        AdminError::Unavailable(_) => Status::unavailable(message),
    };
    if let AdminError::NotLeader(Some((_, address))) = error {
        if let Ok(value) = address.parse() {
            status.metadata_mut().insert(LEADER, value);
        }
    }
    status
}

#[tonic::async_trait]
impl<K: Kv + 'static> pb::admin_server::Admin for AdminService<K> {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        Ok(Response::new(self.status()?))
    }

    async fn initialize(
        &self,
        request: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeReply>, Status> {
        let members = request.into_inner().members.into_iter().collect();
        self.node.initialize(members).await.map_err(|e| admin_status(&e))?;
        Ok(Response::new(pb::InitializeReply {}))
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let request = request.into_inner();
        self.node.add_learner(request.id, request.address).await.map_err(|e| admin_status(&e))?;
        self.membership_reply()
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.node.promote(request.into_inner().id).await.map_err(|e| admin_status(&e))?;
        self.membership_reply()
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.node.remove(request.into_inner().id).await.map_err(|e| admin_status(&e))?;
        self.membership_reply()
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        self.node.transfer_leader(request.into_inner().to).await.map_err(|e| admin_status(&e))?;
        self.membership_reply()
    }

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotReply>, Status> {
        let index = self.node.snapshot().await.map_err(|e| admin_status(&e))?;
        Ok(Response::new(pb::SnapshotReply { index }))
    }

    async fn sync_out_status(
        &self,
        _request: Request<pb::SyncOutStatusRequest>,
    ) -> Result<Response<pb::SyncOutStatusReply>, Status> {
        let store = self.node.store();
        let meta = store.meta().map_err(|e| Status::internal(e.to_string()))?;
        let cursors = store.cursors().map_err(|e| Status::internal(e.to_string()))?;
        let sinks = self.sync_out.statuses().into_iter().map(|s| pb::SinkStatus {
            sink: s.sink,
            active: s.active,
            delivered: s.delivered,
            lag_events: s.lag_events,
            lag_ms: s.lag_ms,
            delivered_total: s.delivered_total,
            errors_total: s.errors_total,
            last_error: s.last_error.unwrap_or_default(),
        });
        let cursors = cursors.iter().map(|c| pb::Cursor {
            sink: c.sink.name().to_owned(),
            next: c.next.0,
            term: c.term,
        });
        Ok(Response::new(pb::SyncOutStatusReply {
            sinks: sinks.collect(),
            cursors: cursors.collect(),
            outbox_first: meta.events_first.0,
            outbox_next: meta.event_seq_next.0,
            outbox_high_water: self.sync_out.high_water(),
        }))
    }

    async fn sync_out_reconcile(
        &self,
        request: Request<pb::SyncOutReconcileRequest>,
    ) -> Result<Response<pb::SyncOutReconcileReply>, Status> {
        let request = request.into_inner();
        let Some(config) = self.sync_out.postgres() else {
            return Err(Status::failed_precondition("this node has no PostgreSQL sink configured"));
        };
        let range = if request.range == 0 { 1024 } else { request.range.min(8190) };
        let settle =
            Duration::from_millis(if request.settle_ms == 0 { 10_000 } else { request.settle_ms });
        let mut client = sync_out::postgres::connect(config).await.map_err(Status::unavailable)?;
        let report = sync_out::postgres::reconcile::reconcile(
            self.node.store(),
            &mut client,
            POSTGRES_SINK,
            range,
            settle,
        )
        .await
        .map_err(Status::unavailable)?;
        let differences = report.differences.iter().map(|d| {
            serde_json::to_string(d).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        });
        Ok(Response::new(pb::SyncOutReconcileReply {
            accounts: report.accounts,
            ranges: report.ranges,
            ranges_read: report.ranges_read,
            position: report.position,
            settled: report.settled,
            differences: differences.collect(),
        }))
    }
}
