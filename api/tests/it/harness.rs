//! A cluster of in-process nodes, each a full `api::server` over RocksDB in a temporary
//! directory, talking real gRPC on loopback. Nodes stop gracefully and restart on the same
//! port and data directory. Waits poll the Admin status with a deadline; nothing sleeps for a
//! fixed time to let something happen.
//!
//! A cluster may be secured (`Cluster::secured`): its nodes check bearer tokens and the peer
//! secret, and optionally serve TLS with mutual TLS from a CA generated into the cluster's
//! directory. The harness's own calls (`ledger`, `admin`, the waits) then carry an operator
//! token with every scope and the test client's certificate, so tests written for an open
//! cluster run unchanged on a secured one; `ledger_as` and `admin_as` call with other tokens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::auth::{Auth, TokenEntry};
use api::convert::pb_u128;
use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use api::proto::ledger::ledger_client::LedgerClient;
use api::tls::TlsFiles;
use raft::NodeConfig;
use storage::{RocksKv, RocksOptions, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

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
    /// `None`: an open cluster (no tokens, no TLS).
    pub security: Option<Secured>,
    /// What every node exports (nothing by default).
    pub sync_out: api::sync_out::SyncOutConfig,
}

/// A secured cluster's credentials, as its nodes check them and the harness presents them.
#[derive(Clone, Debug)]
pub struct Secured {
    pub auth: Arc<Auth>,
    pub peer_secret: String,
    /// A token with every scope, for the harness's own calls.
    pub operator: String,
    pub tls: Option<Pki>,
}

/// Whether a secured cluster serves TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// TLS, and every client and peer must present a certificate the cluster's CA signed.
    Mutual,
}

/// The TLS material of a cluster: one CA signs the nodes' certificate (SANs 127.0.0.1 and
/// localhost, for both server and client use) and a test client's certificate.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The nodes' files, as `ledgerd` would be configured (client CA set: mutual TLS).
    pub node: TlsFiles,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
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

/// A token entry for `Cluster::secured`.
pub fn token(name: &str, secret: &str, scopes: &[&str]) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        hash: api::auth::hash_secret(secret),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_at: None,
        rate_per_second: None,
        burst: None,
    }
}

impl Cluster {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            addresses: BTreeMap::new(),
            running: BTreeMap::new(),
            security: None,
            sync_out: api::sync_out::SyncOutConfig::default(),
        }
    }

    /// A cluster whose nodes take only `tokens` (and the harness's operator token) and the
    /// peer secret; with `Tls::Mutual`, TLS and client certificates too.
    pub fn secured(mut tokens: Vec<TokenEntry>, tls: Tls) -> Self {
        let mut cluster = Self::new();
        let operator = "lpt_harness_operator_0123456789".to_owned();
        tokens.push(token("operator", &operator, &["ledger:read", "ledger:write", "admin"]));
        let peer_secret = "lpt_harness_peer_secret_0123456789".to_owned();
        let auth = Arc::new(Auth::new(&tokens, &peer_secret).unwrap());
        let tls = (tls == Tls::Mutual).then(|| Pki::generate(cluster.dir.path()));
        cluster.security = Some(Secured { auth, peer_secret, operator, tls });
        cluster
    }

    /// The token the harness's own calls carry.
    pub fn operator(&self) -> Option<&str> {
        self.security.as_ref().map(|s| s.operator.as_str())
    }

    pub fn pki(&self) -> Option<&Pki> {
        self.security.as_ref().and_then(|s| s.tls.as_ref())
    }

    /// A channel to node `id` as the test client: over TLS with its certificate on a TLS
    /// cluster.
    pub fn channel(&self, id: u64) -> Channel {
        match self.pki() {
            None => plain_channel(&self.address(id)),
            Some(pki) => tls_channel(&self.address(id), pki.client_tls(true)),
        }
    }

    /// The node's side of `security`: what `api::server::run` and raft's channels take.
    fn node_security(&self, config: &mut NodeConfig) -> api::server::Security {
        let Some(secured) = &self.security else { return api::server::Security::default() };
        config.security.peer_secret = Some(secured.peer_secret.clone());
        let tls = secured.tls.as_ref().map(|pki| {
            config.security.tls = Some(pki.node.client_config().unwrap());
            pki.node.server_config().unwrap()
        });
        api::server::Security { auth: Arc::clone(&secured.auth), tls }
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
        let mut config = config(id);
        let security = self.node_security(&mut config);
        let task = tokio::spawn(api::server::run(
            config,
            store,
            listener,
            security,
            self.sync_out.clone(),
            shutdown,
        ));
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

impl Pki {
    /// A CA, the nodes' certificate and a client's, as PEM files in `dir`.
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa};
        use rcgen::{Issuer, KeyPair, KeyUsagePurpose};
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let mut ca = CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_key = KeyPair::generate().unwrap();
        let ca_path = write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |name: &str, sans: Vec<String>| {
            let mut params = CertificateParams::new(sans).unwrap();
            params.extended_key_usages =
                vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            let cert_path = write(&format!("{name}.pem"), cert.pem());
            (cert_path, write(&format!("{name}-key.pem"), key.serialize_pem()))
        };
        let (cert, key) = leaf("node", vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf("client", vec!["test-client".into()]);
        let node = TlsFiles { cert, key, ca: ca_path.clone(), client_ca: Some(ca_path) };
        Self { node, client_cert, client_key }
    }

    /// The test client's TLS for tonic: the CA, and with `identity` its certificate.
    pub fn client_tls(&self, identity: bool) -> ClientTlsConfig {
        let ca = Certificate::from_pem(std::fs::read(&self.node.ca).unwrap());
        let tls = ClientTlsConfig::new().ca_certificate(ca);
        if !identity {
            return tls;
        }
        let cert = std::fs::read(&self.client_cert).unwrap();
        tls.identity(Identity::from_pem(cert, std::fs::read(&self.client_key).unwrap()))
    }

    /// The test client's TLS for rustls (the REST client): the CA, and with `identity` its
    /// certificate; ALPN offers `alpn` only.
    pub fn rustls_client(&self, identity: bool, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.node.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = if identity {
            let certs = CertificateDer::pem_file_iter(&self.client_cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&self.client_key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }
}

/// Adds `authorization: Bearer <token>` to every call; without a token, nothing.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|t| format!("Bearer {t}").parse().unwrap()))
    }
}

impl tonic::service::Interceptor for Bearer {
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

/// A channel whose calls carry a bearer token (or none).
pub type Authed = InterceptedService<Channel, Bearer>;

pub fn authed(channel: Channel, token: Option<&str>) -> Authed {
    InterceptedService::new(channel, Bearer::new(token))
}

/// A plaintext channel to `address`.
pub fn plain_channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy()
}

/// A TLS channel to `address` (`127.0.0.1:port`, which the nodes' certificate names).
pub fn tls_channel(address: &str, tls: ClientTlsConfig) -> Channel {
    Channel::from_shared(format!("https://{address}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy()
}

pub async fn channel(address: &str) -> Channel {
    plain_channel(address)
}

/// The Ledger service of node `id`, called with the harness's operator token (if any).
pub async fn ledger(cluster: &Cluster, id: u64) -> LedgerClient<Authed> {
    ledger_as(cluster, id, cluster.operator())
}

pub async fn admin(cluster: &Cluster, id: u64) -> AdminClient<Authed> {
    admin_as(cluster, id, cluster.operator())
}

/// The Ledger service of node `id`, called with `token` (or no credentials).
pub fn ledger_as(cluster: &Cluster, id: u64, token: Option<&str>) -> LedgerClient<Authed> {
    LedgerClient::new(authed(cluster.channel(id), token))
        .max_decoding_message_size(api::MESSAGE_BYTES_MAX)
        .max_encoding_message_size(api::MESSAGE_BYTES_MAX)
}

pub fn admin_as(cluster: &Cluster, id: u64, token: Option<&str>) -> AdminClient<Authed> {
    AdminClient::new(authed(cluster.channel(id), token))
}

/// Starts nodes `ids`, forms a cluster of them and waits until each knows the leader;
/// returns the leader.
pub async fn form(cluster: &mut Cluster, ids: &[u64]) -> u64 {
    for id in ids {
        cluster.start(*id).await;
    }
    let request = pb::InitializeRequest { members: cluster.members(ids).into_iter().collect() };
    admin(cluster, ids[0]).await.initialize(request).await.unwrap();
    let first = leader(cluster, ids[0]).await;
    for id in ids {
        wait_status(cluster, *id, "the leader", |s| s.leader == Some(first)).await;
    }
    first
}

/// The last log index of node `id`.
pub async fn last_log_index(cluster: &Cluster, id: u64) -> u64 {
    status(cluster, id).await.unwrap().last_log_index.unwrap_or(0)
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
