//! One ledger node: openraft over our storage and transport, the leader's write batcher, the
//! leader's `Tick` proposals, read barriers (linearizable and bounded-staleness), and cluster
//! membership operations that are safe to re-run after a crash mid-change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ledger_sm::command::Operation;
use ledger_sm::result::Results;
use ledger_sm::state::StateRead;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::impls::BasicNode;
use openraft::{ChangeMembers, Config, ReadPolicy, ServerState, SnapshotPolicy};
use storage::{Kv, Store};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batcher::{self, write_error, Clock, Pending, WriteError};
use crate::network::{Channels, Deadlines, Dialer, Network, Security};
use crate::proto::raft_server::RaftServer;
use crate::proto::ReadIndexRequest;
use crate::service::RaftService;
use crate::{LogStore, RaftHandle, StateMachine, TypeConfig};

/// Entries per append RPC: with entries of at most 16 MiB, an append stays below
/// `service::MESSAGE_BYTES_MAX`.
const APPEND_ENTRIES_MAX: u64 = 8;

/// How far behind the leader's log a learner may be when promoted.
const PROMOTE_LAG_MAX: u64 = 1_000;

/// How a node runs. Times in milliseconds where openraft wants them so.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: u64,
    pub cluster_id: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many applied entries.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, for followers that are briefly behind.
    pub logs_kept_after_snapshot: u64,
    pub deadlines: Deadlines,
    /// Client requests that may wait for the batcher; beyond it, writes answer `Overloaded`.
    pub write_queue: usize,
    /// Raft entries the batcher may have in flight at once.
    pub entries_in_flight: usize,
    /// How often the leader looks for due holds and lots.
    pub tick_interval: Duration,
    /// TLS and the peer secret for calls to peers.
    pub security: Security,
    /// The seed of openraft's random numbers (election timeouts); `None`: a random one. The
    /// simulation sets it so that a seed replays a run exactly.
    pub rng_seed: Option<u64>,
    /// How to reach peers; `None`: TCP. The simulation dials its simulated network.
    pub dialer: Option<Dialer>,
    /// The local address TCP connections to peers are made from; `None`: the system's choice.
    pub peer_source_address: Option<std::net::IpAddr>,
    /// What entries are stamped with: the wall clock, or the simulation's.
    pub clock: Clock,
}

impl NodeConfig {
    /// Defaults for a node on a LAN (heartbeat 100 ms, elections after 1–2 s).
    #[must_use]
    pub fn new(id: u64, cluster_id: u64) -> Self {
        Self {
            id,
            cluster_id,
            heartbeat_ms: 100,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            snapshot_after_entries: 10_000,
            logs_kept_after_snapshot: 1_000,
            deadlines: Deadlines::default(),
            write_queue: 16_384,
            entries_in_flight: 4,
            tick_interval: Duration::from_secs(1),
            security: Security::default(),
            rng_seed: None,
            dialer: None,
            peer_source_address: None,
            clock: Clock::wall(),
        }
    }

    fn raft_config(&self) -> Result<Config, String> {
        let config = Config {
            cluster_name: format!("ledger-{}", self.cluster_id),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            enable_pre_vote: Some(true),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            // An entry is at most one API request (16 MiB) or a merge bounded by the batcher
            // (8 MiB): eight of them stay well inside the internal message limit.
            max_payload_entries: APPEND_ENTRIES_MAX,
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..Config::default()
        };
        config.validate().map_err(|e| e.to_string())
    }
}

/// What a membership or leadership operation may fail with. Each says what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    NotLeader(Option<(u64, String)>),
    /// The request contradicts the cluster as it is (names the difference).
    Conflict(String),
    /// The node named is not a member.
    UnknownNode(u64),
    /// The change would leave fewer reachable voters than a quorum.
    WouldLoseQuorum(String),
    /// The request is malformed (says how).
    Invalid(String),
    Unavailable(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotLeader(leader) => WriteError::NotLeader(leader.clone()).fmt(f),
            Self::Conflict(why) => write!(f, "conflict: {why}"),
            Self::UnknownNode(id) => write!(f, "node {id} is not a member of this cluster"),
            Self::WouldLoseQuorum(why) => write!(f, "refused, it would lose quorum: {why}"),
            Self::Invalid(why) => write!(f, "invalid request: {why}"),
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for AdminError {
    fn from(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Self {
        match write_error(&error) {
            WriteError::NotLeader(leader) => Self::NotLeader(leader),
            _ => match error {
                // Another change still committing, or a new leader's first entry not yet
                // committed: both pass on their own; retry.
                RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    e @ (ChangeMembershipError::InProgress(_)
                    | ChangeMembershipError::UncommittedLeaderLog(_)),
                )) => Self::Unavailable(e.to_string()),
                RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                    Self::Conflict(e.to_string())
                }
                other => Self::Unavailable(other.to_string()),
            },
        }
    }
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Sees every write acknowledged before the read began (read index through the leader).
    Linearizable,
    /// May be served by this replica if it heard from the leader within `max` and has applied
    /// what the leader had committed then; otherwise falls back to `Linearizable`.
    BoundedStaleness { max: Duration },
}

/// When this node last heard from a leader, and the commit index it was told.
#[derive(Debug, Default)]
pub(crate) struct Contact(Mutex<Option<(Instant, u64)>>);

impl Contact {
    /// The leader was heard at `at` (taken before the append ran), with commit index `commit`.
    pub(crate) fn heard(&self, at: Instant, commit: u64) {
        let mut contact = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (last_at, last_commit) = contact.unwrap_or((at, 0));
        *contact = Some((last_at.max(at), last_commit.max(commit)));
    }

    fn within(&self, max: Duration) -> Option<u64> {
        let contact = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        contact.filter(|(at, _)| at.elapsed() <= max).map(|(_, commit)| commit)
    }
}

/// A member as the status reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub address: String,
    pub voter: bool,
    /// On the leader: the last log index known replicated to this member.
    pub matched: Option<u64>,
    /// On the leader: milliseconds since this member last acknowledged the leader.
    pub last_ack_ms: Option<u64>,
}

/// One node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub cluster_id: u64,
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub snapshot: Option<u64>,
    pub purged: Option<u64>,
    pub members: Vec<Member>,
    /// Whether the last membership change is committed (no joint configuration pending).
    pub membership_settled: bool,
    pub state_hash: u128,
}

/// A running node. Cheap to clone; every clone drives the same node.
#[derive(Debug)]
pub struct Node<K: Kv + 'static> {
    inner: Arc<Inner<K>>,
}

impl<K: Kv + 'static> Clone for Node<K> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

#[derive(Debug)]
struct Inner<K: Kv + 'static> {
    config: NodeConfig,
    raft: RaftHandle<K>,
    store: Arc<Store<K>>,
    channels: Channels,
    contact: Arc<Contact>,
    writes: mpsc::Sender<Pending>,
    stats: Arc<batcher::WriteStats>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One membership change at a time: each checks the membership it changes.
    admin: tokio::sync::Mutex<()>,
    /// Why the node halted itself, once it has (`halt`).
    halted: tokio::sync::watch::Sender<Option<String>>,
}

impl<K: Kv + 'static> Node<K> {
    /// Starts a node over `store` (opened with the same cluster id).
    ///
    /// # Errors
    /// An invalid configuration, or storage that cannot be read.
    pub async fn start(config: NodeConfig, store: Arc<Store<K>>) -> Result<Self, String> {
        let raft_config = Arc::new(config.raft_config()?);
        let channels = Channels::secured(config.deadlines, config.security.clone())?
            .with_dialer(config.dialer.clone())
            .with_source_address(config.peer_source_address);
        let network = Network::new(config.id, config.cluster_id, channels.clone());
        let seed = config.rng_seed.unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        });
        let raft = crate::seeded(
            seed,
            openraft::Raft::new(
                config.id,
                raft_config,
                network,
                LogStore::new(Arc::clone(&store)),
                StateMachine::new(Arc::clone(&store)),
            ),
        )
        .await
        .map_err(|e| format!("raft failed to start: {e}"))?;
        let (writes, queue) = mpsc::channel(config.write_queue.max(1));
        let stats = Arc::new(batcher::WriteStats::default());
        let batcher = tokio::spawn(batcher::run(
            raft.clone(),
            queue,
            config.entries_in_flight,
            Arc::clone(&stats),
            config.clock.clone(),
        ));
        let inner = Arc::new(Inner {
            config,
            raft,
            store,
            channels,
            contact: Arc::default(),
            writes,
            stats,
            tasks: Mutex::new(vec![batcher]),
            admin: tokio::sync::Mutex::new(()),
            halted: tokio::sync::watch::Sender::new(None),
        });
        let ticker = tokio::spawn(tick_loop(Arc::downgrade(&inner)));
        inner.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(ticker);
        Ok(Self { inner })
    }

    #[must_use]
    pub fn id(&self) -> u64 {
        self.inner.config.id
    }

    /// The store, for reads after a `read_barrier`.
    #[must_use]
    pub fn store(&self) -> &Arc<Store<K>> {
        &self.inner.store
    }

    /// The channels to peers (with this node's TLS), for other clients of peers to share.
    #[must_use]
    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    /// The internal raft service, to mount on this node's gRPC server.
    #[must_use]
    pub fn raft_service(&self) -> RaftServer<RaftService<K>> {
        let service = RaftService::new(
            self.inner.raft.clone(),
            self.inner.config.cluster_id,
            Arc::clone(&self.inner.contact),
        );
        RaftServer::new(service)
            .max_decoding_message_size(crate::service::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(crate::service::MESSAGE_BYTES_MAX)
    }

    /// The leader as this node knows it: id and address.
    #[must_use]
    pub fn leader(&self) -> Option<(u64, String)> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    fn not_leader(&self) -> Option<(u64, String)> {
        self.leader().filter(|(id, _)| *id != self.id())
    }

    /// What the batcher proposed since the node started.
    #[must_use]
    pub fn write_stats(&self) -> &batcher::WriteStats {
        &self.inner.stats
    }

    /// Client writes waiting for the batcher now.
    #[must_use]
    pub fn write_queue_depth(&self) -> usize {
        self.inner.writes.max_capacity() - self.inner.writes.capacity()
    }

    /// Applies `operation` through the leader's batcher. Only the leader takes writes; other
    /// nodes answer `NotLeader` with the leader's address (the `api` layer forwards there).
    ///
    /// # Errors
    /// `WriteError`: not the leader, the queue is full, or raft is unavailable.
    pub async fn write(&self, operation: Operation) -> Result<Results, WriteError> {
        if !self.inner.raft.is_leader() {
            return Err(WriteError::NotLeader(self.not_leader()));
        }
        let (reply, answer) = oneshot::channel();
        self.inner.writes.try_send(Pending { operation, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => WriteError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable("shutting down".into()),
        })?;
        answer.await.map_err(|_| WriteError::Unavailable("the batcher stopped".into()))?
    }

    /// Waits until a read of this node's store is as fresh as `consistency` asks.
    ///
    /// # Errors
    /// No leader to confirm the read with, or the leader did not answer in time.
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), WriteError> {
        if let Consistency::BoundedStaleness { max } = consistency {
            // A leader is fresh only while a quorum keeps acknowledging it: a leader cut off
            // in a minority must not serve old data for ever.
            let acked = self.inner.raft.metrics().borrow_watched().last_quorum_acked;
            let fresh = acked.is_some_and(|at| openraft::Instant::elapsed(&*at) <= max);
            if self.inner.raft.is_leader() && fresh {
                return Ok(());
            }
            if let Some(commit) = self.inner.contact.within(max) {
                return self.wait_applied(commit).await;
            }
        }
        if self.inner.raft.is_leader() {
            // Confirms leadership with a quorum, then waits until the read index is applied.
            return self
                .inner
                .raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map(|_| ())
                .map_err(|e| WriteError::Unavailable(e.to_string()));
        }
        let index = self.remote_read_index().await?;
        self.wait_applied(index).await
    }

    async fn remote_read_index(&self) -> Result<u64, WriteError> {
        let (_, address) = self.not_leader().ok_or(WriteError::NotLeader(None))?;
        let mut client =
            self.inner.channels.raft_client(&address).map_err(WriteError::Unavailable)?;
        let mut request =
            tonic::Request::new(ReadIndexRequest { cluster_id: self.inner.config.cluster_id });
        request.set_timeout(self.inner.config.deadlines.rpc);
        let reply = client.read_index(request).await.map_err(|status| {
            WriteError::Unavailable(format!("read index: {}", status.message()))
        })?;
        Ok(reply.into_inner().index)
    }

    async fn wait_applied(&self, index: u64) -> Result<(), WriteError> {
        if index == 0 {
            return Ok(());
        }
        self.inner
            .raft
            .wait(Some(self.inner.config.deadlines.rpc))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| WriteError::Unavailable(format!("replica did not catch up: {e}")))
    }

    /// The leader's read index, for a follower's linearizable read.
    pub(crate) async fn leader_read_index(raft: &RaftHandle<K>) -> Result<u64, String> {
        let read =
            raft.ensure_linearizable(ReadPolicy::ReadIndex).await.map_err(|e| e.to_string())?;
        Ok(read.index())
    }

    /// This node's view of the cluster.
    ///
    /// # Errors
    /// The store's metadata cannot be read.
    pub fn status(&self) -> Result<Status, String> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let heartbeat = metrics.heartbeat.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                address: node.addr.clone(),
                voter: voters.contains(id),
                matched: replication.get(id).and_then(|m| m.as_ref().map(|l| l.index)),
                last_ack_ms: heartbeat
                    .get(id)
                    .and_then(|at| at.as_ref().map(|at| millis(openraft::Instant::elapsed(&**at)))),
            })
            .collect();
        let state_hash = self.inner.store.meta().map_err(|e| e.to_string())?.state_hash;
        Ok(Status {
            id: self.id(),
            cluster_id: self.inner.config.cluster_id,
            role: role_name(metrics.state).to_owned(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            committed: metrics.cluster_committed.map(|l| l.index),
            applied: metrics.last_applied.map(|l| l.index),
            snapshot: metrics.snapshot.map(|l| l.index),
            purged: metrics.purged.map(|l| l.index),
            members,
            membership_settled: metrics.membership_config == metrics.committed_membership_config
                && membership.get_joint_config().len() == 1,
            state_hash,
        })
    }

    /// Resolves when raft has stopped by itself — a storage write or fsync that failed, data
    /// that failed its checksum, a panic in its core — with what stopped it. Such a node can
    /// no longer serve: its process should exit and be restarted, re-reading only what reached
    /// the disk (an fsync that failed is never retried; its write may be gone).
    pub async fn stopped(&self) -> String {
        let mut halted = self.inner.halted.subscribe();
        tokio::select! {
            reason = self.raft_stopped() => reason,
            halted = halted.wait_for(Option::is_some) => match halted.as_deref() {
                Ok(Some(reason)) => reason.clone(),
                _ => "halted".to_owned(),
            },
        }
    }

    /// Stops this node for good: it found its own data damaged (a checksum that failed on a
    /// read). Raft stops, so the node neither votes nor replicates from damaged data; `stopped`
    /// resolves with `reason`. The node must be replaced (removed, wiped, added back).
    pub fn halt(&self, reason: String) {
        let first = self.inner.halted.send_if_modified(|halted| {
            let first = halted.is_none();
            if first {
                *halted = Some(reason.clone());
            }
            first
        });
        if first {
            tracing::error!(%reason, "halting: this node's data is damaged; replace the node");
            let node = self.clone();
            tokio::spawn(async move { node.shutdown().await });
        }
    }

    async fn raft_stopped(&self) -> String {
        let mut metrics = self.inner.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_watched().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return match &metrics.borrow_watched().running_state {
                    Err(fatal) => fatal.to_string(),
                    Ok(()) => "raft stopped".to_owned(),
                };
            }
        }
    }

    /// Stops raft and the node's tasks. The store stays open for its owner to drop.
    pub async fn shutdown(&self) {
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in &tasks {
            task.abort();
        }
        let _ = self.inner.raft.shutdown().await;
    }

    pub(crate) fn raft(&self) -> &RaftHandle<K> {
        &self.inner.raft
    }

    pub(crate) fn leader_check(&self) -> Result<(), AdminError> {
        if self.inner.raft.is_leader() {
            Ok(())
        } else {
            Err(AdminError::NotLeader(self.not_leader()))
        }
    }

    pub(crate) fn election_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.election_timeout_max_ms)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The leader proposes `Tick` when a hold or a lot is due; followers do nothing.
async fn tick_loop<K: Kv + 'static>(node: std::sync::Weak<Inner<K>>) {
    let interval = match node.upgrade() {
        Some(inner) => inner.config.tick_interval,
        None => return,
    };
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let Some(inner) = node.upgrade() else { return };
        let node = Node { inner };
        // A tick expires a bounded number per entry; keep going while more are due.
        while node.inner.raft.is_leader() && due(node.store(), &node.inner.config.clock) {
            match node.write(Operation::Tick).await {
                Ok(Results::Tick(outcome)) if outcome.more_due => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::debug!(%error, "tick not applied; retrying at the next interval");
                    break;
                }
            }
        }
    }
}

fn due<K: Kv>(store: &Store<K>, clock: &Clock) -> bool {
    let now = clock.now();
    let holds = store.holds_due(now, 1).map(|due| !due.is_empty());
    let lots = store.lots_due(now, 1).map(|due| !due.is_empty());
    matches!(holds, Ok(true)) || matches!(lots, Ok(true))
}

impl<K: Kv + 'static> Node<K> {
    /// Initializes a new cluster with `members` (id → address) as its voters. Re-running it
    /// with the same members is a no-op; with different ones, a `Conflict`.
    ///
    /// # Errors
    /// `AdminError` as above, or `Invalid` for no members.
    pub async fn initialize(&self, members: BTreeMap<u64, String>) -> Result<(), AdminError> {
        if members.is_empty() || members.contains_key(&0) {
            return Err(AdminError::Invalid("members must be non-empty, with non-zero ids".into()));
        }
        let raft = self.raft();
        if raft.is_initialized().await.map_err(|e| AdminError::Unavailable(e.to_string()))? {
            let status = self.status().map_err(AdminError::Unavailable)?;
            let voters: BTreeMap<u64, String> = status
                .members
                .iter()
                .filter(|m| m.voter)
                .map(|m| (m.id, m.address.clone()))
                .collect();
            return if voters == members {
                Ok(())
            } else {
                Err(AdminError::Conflict(format!("already initialized with voters {voters:?}")))
            };
        }
        let nodes: BTreeMap<u64, BasicNode> =
            members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
        match raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(e @ InitializeError::NotAllowed(_))) => {
                Err(AdminError::Conflict(e.to_string()))
            }
            Err(RaftError::APIError(e @ InitializeError::NotInMembers(_))) => {
                Err(AdminError::Invalid(e.to_string()))
            }
            Err(e) => Err(AdminError::Unavailable(e.to_string())),
        }
    }

    /// Adds a learner, waiting until it has caught up. Re-running it for the same node and
    /// address is a no-op.
    ///
    /// # Errors
    /// Not the leader; the id is a member with another address.
    pub async fn add_learner(&self, id: u64, address: String) -> Result<(), AdminError> {
        if id == 0 || address.is_empty() {
            return Err(AdminError::Invalid("a node needs a non-zero id and an address".into()));
        }
        let _one_at_a_time = self.inner.admin.lock().await;
        self.leader_check()?;
        let status = self.status().map_err(AdminError::Unavailable)?;
        if let Some(member) = status.members.iter().find(|m| m.id == id) {
            if member.address != address {
                return Err(AdminError::Conflict(format!(
                    "node {id} is a member at {}, not {address}",
                    member.address
                )));
            }
            // Known already: make sure it caught up, as a fresh add would have.
        }
        let added = self.raft().add_learner(id, BasicNode { addr: address }, true);
        match tokio::time::timeout(self.inner.config.deadlines.snapshot, added).await {
            Ok(added) => added.map(|_| ()).map_err(AdminError::from),
            Err(_) => Err(AdminError::Unavailable(format!(
                "node {id} was added as a learner but has not caught up yet; re-run to wait"
            ))),
        }
    }

    /// Makes a learner a voter. Re-running it for a voter is a no-op.
    ///
    /// # Errors
    /// Not the leader; the node is not a member.
    pub async fn promote(&self, id: u64) -> Result<(), AdminError> {
        let _one_at_a_time = self.inner.admin.lock().await;
        self.leader_check()?;
        let status = self.status().map_err(AdminError::Unavailable)?;
        let member =
            status.members.iter().find(|m| m.id == id).ok_or(AdminError::UnknownNode(id))?;
        if member.voter && status.membership_settled {
            return Ok(());
        }
        if !member.voter {
            self.check_caught_up(&status, member)?;
        }
        let ids = BTreeSet::from([id]);
        self.raft().change_membership(ChangeMembers::AddVoterIds(ids), false).await?;
        Ok(())
    }

    /// Removes a member (voter or learner). Re-running it for a node already gone is a no-op.
    /// Refuses to remove the leader (transfer leadership first), the last voter, or a voter
    /// whose removal leaves fewer voters in contact with the leader than a quorum of the rest.
    ///
    /// # Errors
    /// As above.
    pub async fn remove(&self, id: u64) -> Result<(), AdminError> {
        let _one_at_a_time = self.inner.admin.lock().await;
        self.leader_check()?;
        let status = self.status().map_err(AdminError::Unavailable)?;
        let Some(member) = status.members.iter().find(|m| m.id == id) else {
            return Ok(());
        };
        if id == self.id() {
            return Err(AdminError::Conflict(format!(
                "node {id} leads; transfer leadership to another voter first"
            )));
        }
        let change = if member.voter {
            self.check_quorum_without(&status, id)?;
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft().change_membership(change, false).await?;
        Ok(())
    }

    /// A learner about to vote must be answering and close behind: from the joint config on,
    /// a voter that cannot answer counts against the quorum.
    fn check_caught_up(&self, status: &Status, member: &Member) -> Result<(), AdminError> {
        let fresh = self.election_timeout().as_millis();
        let answering = member.last_ack_ms.is_some_and(|ms| u128::from(ms) <= fresh);
        let last = status.last_log_index.unwrap_or(0);
        let behind = last.saturating_sub(member.matched.unwrap_or(0));
        if answering && behind <= PROMOTE_LAG_MAX {
            return Ok(());
        }
        Err(AdminError::Unavailable(format!(
            "node {} is not caught up ({behind} entries behind; last answer {:?} ms ago); \
             wait and re-run",
            member.id, member.last_ack_ms
        )))
    }

    fn check_quorum_without(&self, status: &Status, removed: u64) -> Result<(), AdminError> {
        let fresh = self.election_timeout();
        let remaining: Vec<&Member> =
            status.members.iter().filter(|m| m.voter && m.id != removed).collect();
        if remaining.is_empty() {
            return Err(AdminError::WouldLoseQuorum(format!("node {removed} is the last voter")));
        }
        let in_contact = remaining
            .iter()
            .filter(|m| {
                m.id == self.id()
                    || m.last_ack_ms.is_some_and(|ms| u128::from(ms) <= fresh.as_millis())
            })
            .count();
        let quorum = remaining.len() / 2 + 1;
        if in_contact < quorum {
            return Err(AdminError::WouldLoseQuorum(format!(
                "only {in_contact} of the {} remaining voters answer the leader; {quorum} needed",
                remaining.len()
            )));
        }
        Ok(())
    }

    /// Hands leadership to voter `to` and waits until it leads. A no-op if it leads already.
    ///
    /// # Errors
    /// Not the leader; `to` is not a voter; it did not take over in time.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), AdminError> {
        let status = self.status().map_err(AdminError::Unavailable)?;
        if status.leader == Some(to) {
            return Ok(());
        }
        self.leader_check()?;
        let member =
            status.members.iter().find(|m| m.id == to).ok_or(AdminError::UnknownNode(to))?;
        if !member.voter {
            return Err(AdminError::Invalid(format!("node {to} is a learner; promote it first")));
        }
        let raft = self.raft();
        raft.trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        raft.wait(Some(self.election_timeout() * 3))
            .metrics(|m| m.current_leader == Some(to), "leadership transferred")
            .await
            .map_err(|e| AdminError::Unavailable(format!("node {to} did not take over: {e}")))?;
        Ok(())
    }

    /// Builds a snapshot of everything applied so far and waits for it; returns its log index.
    ///
    /// # Errors
    /// Raft stopped, or the snapshot did not complete in time.
    pub async fn snapshot(&self) -> Result<u64, AdminError> {
        let raft = self.raft();
        let applied = raft.metrics().borrow_watched().last_applied.map_or(0, |l| l.index);
        raft.trigger().snapshot().await.map_err(|e| AdminError::Unavailable(e.to_string()))?;
        let metrics = raft
            .wait(Some(self.inner.config.deadlines.snapshot))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied) || applied == 0,
                "snapshot built",
            )
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        Ok(metrics.snapshot.map_or(0, |s| s.index))
    }
}

/// `ServerState` as an operator reads it.
#[must_use]
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
