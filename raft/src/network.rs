//! The client half of the internal gRPC transport: openraft's `RaftNetworkV2` over tonic.
//! One channel per peer address, cached and shared by every client of this node (tonic
//! channels multiplex and reconnect by themselves); every RPC carries a deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::impls::BasicNode;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::RaftNetworkV2;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::proto::raft_client::RaftClient;
use crate::proto::{RaftMessage, SnapshotChunk};
use crate::{wire, SnapshotData, TypeConfig, Vote};

type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// Deadlines of the internal RPCs.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    pub connect: Duration,
    /// Ceiling of one append, vote or transfer RPC (openraft's own, shorter TTL wins).
    pub rpc: Duration,
    /// Ceiling of one whole snapshot transfer.
    pub snapshot: Duration,
    /// How often a peer connection is probed with an HTTP/2 ping, and how long an unanswered
    /// ping may wait before the connection is closed and redialed. A link that dropped bytes
    /// can leave a connection open but stalled; every RPC on it would time out, and a leader
    /// whose acknowledgements are stuck that way has no quorum, until this notices.
    pub keepalive: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(1),
            rpc: Duration::from_secs(5),
            snapshot: Duration::from_secs(600),
            keepalive: Duration::from_secs(2),
        }
    }
}

/// How a node proves itself to its peers and checks them: TLS (the peers' CA, and this node's
/// certificate for mutual TLS) and the cluster's peer secret, sent as a bearer token on every
/// internal RPC.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub tls: Option<ClientTlsConfig>,
    pub peer_secret: Option<String>,
}

/// Turns a peer's endpoint (address, TLS, timeouts set) into a channel. Without one a node
/// dials TCP; the simulation dials its simulated network.
#[derive(Clone)]
pub struct Dialer(pub Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>);

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

/// Channels to peers by address, shared by every client of one node.
#[derive(Clone, Debug)]
pub struct Channels {
    deadlines: Deadlines,
    tls: Option<ClientTlsConfig>,
    peer: PeerAuth,
    cache: Arc<Mutex<HashMap<String, Channel>>>,
    dialer: Option<Dialer>,
    /// The local address connections to peers are made from; `None`: the system's choice.
    source: Option<std::net::IpAddr>,
}

/// Adds the peer secret to an internal RPC.
#[derive(Clone, Debug, Default)]
pub struct PeerAuth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for PeerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A client of a peer's raft service, carrying the peer secret.
pub type PeerRaftClient = RaftClient<InterceptedService<Channel, PeerAuth>>;

impl Channels {
    #[must_use]
    pub fn new(deadlines: Deadlines) -> Self {
        Self::secured(deadlines, Security::default()).expect("no secret, nothing to refuse")
    }

    /// # Errors
    /// The peer secret cannot be a header value.
    pub fn secured(deadlines: Deadlines, security: Security) -> Result<Self, String> {
        let peer = match security.peer_secret {
            Some(secret) => PeerAuth(Some(
                format!("Bearer {secret}")
                    .parse()
                    .map_err(|_| "peer secret: only visible ASCII characters".to_owned())?,
            )),
            None => PeerAuth(None),
        };
        Ok(Self {
            deadlines,
            tls: security.tls,
            peer,
            cache: Arc::default(),
            dialer: None,
            source: None,
        })
    }

    /// These channels, dialing with `dialer` instead of TCP.
    #[must_use]
    pub fn with_dialer(self, dialer: Option<Dialer>) -> Self {
        Self { dialer, ..self }
    }

    /// These channels, connecting from the local address `source` (when set).
    #[must_use]
    pub fn with_source_address(self, source: Option<std::net::IpAddr>) -> Self {
        Self { source, ..self }
    }

    /// A raft client of the peer at `address`.
    ///
    /// # Errors
    /// As `channel`.
    pub fn raft_client(&self, address: &str) -> Result<PeerRaftClient, String> {
        let channel = self.channel(address)?;
        Ok(RaftClient::with_interceptor(channel, self.peer.clone()))
    }

    #[must_use]
    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    /// The cached channel to `address` (`host:port`), created lazily: connecting happens on
    /// first use, and a peer that is down costs nothing until then.
    ///
    /// # Errors
    /// A message for an address that is not a valid URI authority.
    pub fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = cache.get(address) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| format!("peer address {address:?}: {e}"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| format!("peer address {address:?}: TLS: {e}"))?;
        }
        let endpoint = endpoint
            .connect_timeout(self.deadlines.connect)
            .local_address(self.source)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(self.deadlines.keepalive)
            .keep_alive_timeout(self.deadlines.keepalive)
            .keep_alive_while_idle(true);
        let channel = match &self.dialer {
            Some(Dialer(dial)) => dial(endpoint),
            None => endpoint.connect_lazy(),
        };
        cache.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// openraft's network factory: one client per target node.
#[derive(Clone, Debug)]
pub struct Network {
    source: u64,
    cluster_id: u64,
    channels: Channels,
}

impl Network {
    #[must_use]
    pub fn new(source: u64, cluster_id: u64, channels: Channels) -> Self {
        Self { source, cluster_id, channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        let client = self.channels.raft_client(&node.addr);
        PeerClient {
            source: self.source,
            target,
            cluster_id: self.cluster_id,
            deadlines: self.channels.deadlines(),
            client,
        }
    }
}

/// The client of one peer.
#[derive(Debug)]
pub struct PeerClient {
    source: u64,
    target: u64,
    cluster_id: u64,
    deadlines: Deadlines,
    /// An invalid address fails every RPC to this peer as unreachable.
    client: Result<PeerRaftClient, String>,
}

fn unreachable(error: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::from_string(error.to_string())
}

impl PeerClient {
    fn request(&self, payload: Vec<u8>, option: &RPCOption) -> tonic::Request<RaftMessage> {
        let mut request = tonic::Request::new(RaftMessage { cluster_id: self.cluster_id, payload });
        request.set_timeout(option.hard_ttl().min(self.deadlines.rpc));
        request
    }

    fn client(&self) -> Result<PeerRaftClient, Unreachable<TypeConfig>> {
        self.client.clone().map_err(unreachable)
    }

    /// Maps a failed call: a missed deadline is a timeout, anything else makes the peer
    /// unreachable for now (openraft backs off and retries).
    fn failed(
        &self,
        status: &tonic::Status,
        action: openraft::network::RPCTypes,
        ttl: Duration,
    ) -> RPCError<TypeConfig> {
        if status.code() == tonic::Code::DeadlineExceeded {
            return RPCError::Timeout(Timeout {
                action,
                id: self.source,
                target: self.target,
                timeout: ttl,
            });
        }
        RPCError::Unreachable(unreachable(format!("node {}: {status}", self.target)))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = self.request(wire::append_request_bytes(&rpc), &option);
        let reply = self.client()?.append_entries(request).await.map_err(|status| {
            self.failed(&status, openraft::network::RPCTypes::AppendEntries, option.hard_ttl())
        })?;
        wire::append_response_decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = self.request(wire::vote_request_bytes(&rpc), &option);
        let reply = self.client()?.vote(request).await.map_err(|status| {
            self.failed(&status, openraft::network::RPCTypes::Vote, option.hard_ttl())
        })?;
        wire::vote_response_decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = self.request(wire::vote_request_bytes(&rpc), &option);
        let reply = self.client()?.pre_vote(request).await.map_err(|status| {
            self.failed(&status, openraft::network::RPCTypes::Vote, option.hard_ttl())
        })?;
        wire::vote_response_decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let header = wire::snapshot_header_bytes(&vote, &snapshot.meta);
        let cluster_id = self.cluster_id;
        let mut chunks: Vec<SnapshotChunk> = snapshot
            .snapshot
            .0
            .into_iter()
            .map(|data| SnapshotChunk { cluster_id, header: Vec::new(), data })
            .collect();
        match chunks.first_mut() {
            Some(first) => first.header = header,
            None => chunks.push(SnapshotChunk { cluster_id, header, data: Vec::new() }),
        }
        let mut request = tonic::Request::new(tokio_stream::iter(chunks));
        request.set_timeout(self.deadlines.snapshot);
        let mut client = self.client()?;
        let reply = tokio::select! {
            reply = client.install_snapshot(request) => reply,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        let reply =
            reply.map_err(|status| StreamingError::Unreachable(unreachable(status.to_string())))?;
        wire::snapshot_response_decode(&reply.into_inner().payload)
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let request = self.request(wire::transfer_request_bytes(&req), &option);
        let reply = self.client()?.transfer_leader(request).await.map_err(|status| {
            self.failed(&status, openraft::network::RPCTypes::TransferLeader, option.hard_ttl())
        })?;
        wire::transfer_response_decode(&reply.into_inner().payload)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))
    }
}
