//! The Rust client of the ledger: give it any nodes' addresses, and it finds the leader, keeps
//! deadlines, and retries what may be retried, always with the same ids (every write is
//! idempotent by its ids, so a retry after a lost reply answers `exists` instead of applying
//! twice). Zero transfer ids are filled in once, before the first attempt.
//!
//! `Batcher` gathers single transfers from many tasks into batched requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger_sm::constants::BATCH_EVENTS_MAX;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::convert::{pb_u128, u128_of};
use crate::ledger_service::LEADER;
use crate::proto::ledger as pb;
use crate::proto::ledger::ledger_client::LedgerClient;

/// How a client reaches the cluster.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Nodes to start from (`host:port`); any one that answers will do.
    pub addresses: Vec<String>,
    /// A bearer token, when the cluster asks for one.
    pub token: Option<String>,
    /// TLS (the cluster's CA, and a client certificate for mutual TLS).
    pub tls: Option<ClientTlsConfig>,
    /// Deadline of one attempt.
    pub timeout: Duration,
    /// How long to keep retrying a call that may be retried.
    pub retry_for: Duration,
    pub connect_timeout: Duration,
    /// How to reach a node; `None`: TCP. The simulation dials its simulated network.
    pub dialer: Option<raft::network::Dialer>,
}

impl ClientConfig {
    #[must_use]
    pub fn new(addresses: Vec<String>) -> Self {
        Self {
            addresses,
            token: None,
            tls: None,
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            dialer: None,
        }
    }
}

/// A call that failed for good: refused (the status says why), or still failing when the
/// retry time ran out.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ClientError {
    pub code: Code,
    pub message: String,
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        Self { code: status.code(), message: status.message().to_owned() }
    }
}

/// Adds the bearer token to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Ledger = LedgerClient<InterceptedService<Channel, Bearer>>;

/// A client of one cluster. Cheap to clone; clones share channels and what they learned about
/// the leader.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    bearer: Bearer,
    channels: Mutex<Vec<(String, Channel)>>,
    /// Where writes go: the last leader a node named, else the next address.
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
}

/// A fresh transfer or account id: nanoseconds since the epoch in the high half, random bits
/// in the low half, so ids are unique and roughly ordered by time.
///
/// # Panics
/// When the system's random source fails.
#[must_use]
pub fn new_id() -> u128 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut random = [0_u8; 8];
    getrandom::fill(&mut random).expect("the system's random source works");
    ((nanos & u128::from(u64::MAX)) << 64) | u128::from(u64::from_le_bytes(random))
}

fn fill_id(id: &mut Option<pb::U128>) {
    if u128_of(id.as_ref()) == 0 {
        *id = pb_u128(new_id());
    }
}

/// Whether a failed attempt may be retried as is: the cluster could not take it now, or the
/// outcome is unknown (a retry with the same ids settles it).
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Cancelled
    )
}

impl Client {
    /// # Errors
    /// No addresses, or a token that cannot be a header.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let invalid = |message: String| ClientError { code: Code::InvalidArgument, message };
        if config.addresses.is_empty() {
            return Err(invalid("at least one node address is required".into()));
        }
        let bearer =
            match &config.token {
                Some(token) => Bearer(Some(format!("Bearer {token}").parse().map_err(|_| {
                    invalid("the token has characters a header cannot carry".into())
                })?)),
                None => Bearer(None),
            };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                bearer,
                channels: Mutex::new(Vec::new()),
                leader: Mutex::new(None),
                next: AtomicUsize::new(0),
            }),
        })
    }

    fn channel(&self, address: &str) -> Result<Channel, ClientError> {
        let mut channels = self.inner.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, channel)) = channels.iter().find(|(a, _)| a == address) {
            return Ok(channel.clone());
        }
        let config = &self.inner.config;
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let unusable = |e: &dyn std::fmt::Display| ClientError {
            code: Code::InvalidArgument,
            message: format!("address {address:?}: {e}"),
        };
        let mut endpoint =
            Endpoint::from_shared(format!("{scheme}://{address}")).map_err(|e| unusable(&e))?;
        if let Some(tls) = &config.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| unusable(&e))?;
        }
        let endpoint = endpoint
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = match &config.dialer {
            Some(raft::network::Dialer(dial)) => dial(endpoint),
            None => endpoint.connect_lazy(),
        };
        channels.push((address.to_owned(), channel.clone()));
        Ok(channel)
    }

    /// The address to try next: the leader for writes when known, else round robin.
    fn target(&self, write: bool) -> String {
        if write {
            if let Some(leader) =
                self.inner.leader.lock().unwrap_or_else(PoisonError::into_inner).clone()
            {
                return leader;
            }
        }
        let addresses = &self.inner.config.addresses;
        addresses[self.inner.next.fetch_add(1, Ordering::Relaxed) % addresses.len()].clone()
    }

    fn ledger(&self, address: &str) -> Result<Ledger, ClientError> {
        let channel = self.channel(address)?;
        Ok(LedgerClient::with_interceptor(channel, self.inner.bearer.clone())
            .max_decoding_message_size(crate::MESSAGE_BYTES_MAX)
            .max_encoding_message_size(crate::MESSAGE_BYTES_MAX))
    }

    /// Runs `call` until it succeeds, is refused, or the retry time runs out. `message` is sent
    /// unchanged on every attempt.
    async fn call<Req, Rep, Fut>(
        &self,
        write: bool,
        message: Req,
        call: impl Fn(Ledger, tonic::Request<Req>) -> Fut,
    ) -> Result<Rep, ClientError>
    where
        Req: Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<Rep>, Status>>,
    {
        let deadline = Instant::now() + self.inner.config.retry_for;
        let mut backoff = Duration::from_millis(10);
        let mut redirects = 0;
        loop {
            let address = self.target(write);
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(self.inner.config.timeout);
            let status = match call(self.ledger(&address)?, request).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) => status,
            };
            if !retryable(&status) || Instant::now() >= deadline {
                return Err(status.into());
            }
            let hint =
                status.metadata().get(LEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let told = {
                let mut leader = self.inner.leader.lock().unwrap_or_else(PoisonError::into_inner);
                match hint {
                    // Told where the leader is: go there at once.
                    Some(hint) if hint != address => {
                        *leader = Some(hint);
                        true
                    }
                    _ => {
                        *leader = None;
                        false
                    }
                }
            };
            // Redirects go at once, a few in a row; past that, nodes disagree: wait for them.
            if told && redirects < 3 {
                redirects += 1;
                continue;
            }
            redirects = 0;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// # Errors
    /// The request was refused, or the cluster stayed unavailable.
    pub async fn create_assets(
        &self,
        assets: Vec<pb::NewAsset>,
    ) -> Result<Vec<String>, ClientError> {
        let request = pb::CreateAssetsRequest { assets };
        let reply =
            self.call(true, request, |mut c, r| async move { c.create_assets(r).await }).await?;
        Ok(reply.results)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn create_accounts(
        &self,
        accounts: Vec<pb::NewAccount>,
    ) -> Result<Vec<pb::AccountResult>, ClientError> {
        let request = pb::CreateAccountsRequest { accounts };
        let reply =
            self.call(true, request, |mut c, r| async move { c.create_accounts(r).await }).await?;
        Ok(reply.results)
    }

    /// Creates transfers; a zero id is given a fresh one first (and kept across retries).
    ///
    /// # Errors
    /// As `create_assets`.
    pub async fn create_transfers(
        &self,
        mut transfers: Vec<pb::NewTransfer>,
    ) -> Result<Vec<pb::TransferResult>, ClientError> {
        transfers.iter_mut().for_each(|t| fill_id(&mut t.id));
        let request = pb::CreateTransfersRequest { transfers };
        let reply =
            self.call(true, request, |mut c, r| async move { c.create_transfers(r).await }).await?;
        Ok(reply.results)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn change_accounts(
        &self,
        changes: Vec<pb::AccountChange>,
    ) -> Result<Vec<pb::ChangeAccountResult>, ClientError> {
        let request = pb::ChangeAccountsRequest { changes };
        let reply =
            self.call(true, request, |mut c, r| async move { c.change_accounts(r).await }).await?;
        Ok(reply.results)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn issue_gift_cards(
        &self,
        cards: Vec<pb::GiftCardIssue>,
    ) -> Result<Vec<pb::IssueGiftCardResult>, ClientError> {
        let request = pb::IssueGiftCardsRequest { cards };
        let reply =
            self.call(true, request, |mut c, r| async move { c.issue_gift_cards(r).await }).await?;
        Ok(reply.results)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn erase_accounts(&self, accounts: Vec<u128>) -> Result<Vec<String>, ClientError> {
        let accounts = accounts.into_iter().filter_map(pb_u128).collect();
        let request = pb::EraseAccountsRequest { accounts };
        let reply =
            self.call(true, request, |mut c, r| async move { c.erase_accounts(r).await }).await?;
        Ok(reply.results)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn earn(
        &self,
        mut request: pb::EarnRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.earn(r).await }).await
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn burn(
        &self,
        mut request: pb::BurnRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.burn(r).await }).await
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn hold(
        &self,
        mut request: pb::HoldRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.hold(r).await }).await
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn capture(
        &self,
        mut request: pb::CaptureRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.capture(r).await }).await
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn void(
        &self,
        mut request: pb::VoidRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.void(r).await }).await
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn refund(
        &self,
        mut request: pb::RefundRequest,
    ) -> Result<pb::TransferResult, ClientError> {
        fill_id(&mut request.id);
        self.call(true, request, |mut c, r| async move { c.refund(r).await }).await
    }

    fn consistency(max_staleness: Duration) -> Option<pb::ReadConsistency> {
        let ms = u32::try_from(max_staleness.as_millis()).unwrap_or(u32::MAX);
        Some(pb::ReadConsistency { max_staleness_ms: ms })
    }

    /// Accounts by id (found ones, in order); `max_staleness` zero is linearizable.
    ///
    /// # Errors
    /// As `create_assets`.
    pub async fn lookup_accounts(
        &self,
        ids: &[u128],
        max_staleness: Duration,
    ) -> Result<Vec<pb::Account>, ClientError> {
        let ids = ids.iter().filter_map(|id| pb_u128(*id)).collect();
        let request =
            pb::LookupAccountsRequest { ids, consistency: Self::consistency(max_staleness) };
        let reply =
            self.call(false, request, |mut c, r| async move { c.lookup_accounts(r).await }).await?;
        Ok(reply.accounts)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn lookup_transfers(
        &self,
        ids: &[u128],
        max_staleness: Duration,
    ) -> Result<Vec<pb::Transfer>, ClientError> {
        let ids = ids.iter().filter_map(|id| pb_u128(*id)).collect();
        let request =
            pb::LookupTransfersRequest { ids, consistency: Self::consistency(max_staleness) };
        let reply = self
            .call(false, request, |mut c, r| async move { c.lookup_transfers(r).await })
            .await?;
        Ok(reply.transfers)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn account_transfers(
        &self,
        filter: pb::AccountFilter,
    ) -> Result<Vec<pb::Transfer>, ClientError> {
        let reply = self
            .call(false, filter, |mut c, r| async move { c.get_account_transfers(r).await })
            .await?;
        Ok(reply.transfers)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn balance_history(
        &self,
        filter: pb::AccountFilter,
    ) -> Result<Vec<pb::BalanceEntry>, ClientError> {
        let reply = self
            .call(false, filter, |mut c, r| async move { c.get_balance_history(r).await })
            .await?;
        Ok(reply.entries)
    }

    /// # Errors
    /// As `create_assets`.
    pub async fn account_lots(&self, account: u128) -> Result<Vec<pb::Lot>, ClientError> {
        let request = pb::GetAccountLotsRequest { account: pb_u128(account), consistency: None };
        let reply = self
            .call(false, request, |mut c, r| async move { c.get_account_lots(r).await })
            .await?;
        Ok(reply.lots)
    }

    /// The gift card with `code`, or `None`.
    ///
    /// # Errors
    /// As `create_assets`.
    pub async fn gift_card(&self, code: &str) -> Result<Option<pb::Account>, ClientError> {
        let request = pb::GetGiftCardRequest { code: code.to_owned(), consistency: None };
        match self.call(false, request, |mut c, r| async move { c.get_gift_card(r).await }).await {
            Ok(card) => Ok(Some(card)),
            Err(e) if e.code == Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A batcher of single transfers over this client (see `Batcher`).
    #[must_use]
    pub fn batcher(&self, max_events: usize, linger: Duration) -> Batcher {
        let (submit, queue) = mpsc::channel(max_events.max(1) * 4);
        tokio::spawn(batch_loop(
            self.clone(),
            queue,
            max_events.clamp(1, BATCH_EVENTS_MAX as usize),
            linger,
        ));
        Batcher { submit }
    }
}

/// Batch requests a `Batcher` has in flight at once.
const BATCHES_IN_FLIGHT: usize = 16;

type Submitted = (pb::NewTransfer, oneshot::Sender<Result<pb::TransferResult, ClientError>>);

/// Gathers transfers submitted from many tasks into requests of up to `max_events`, waiting at
/// most `linger` for a request to fill. Linked transfers cannot go through it (a chain must
/// stay in one request): use `Client::create_transfers`.
#[derive(Clone, Debug)]
pub struct Batcher {
    submit: mpsc::Sender<Submitted>,
}

impl Batcher {
    /// Sends `transfer` in the next batch and waits for its result.
    ///
    /// # Errors
    /// A linked transfer, the batch's request failed, or the batcher stopped.
    pub async fn submit(
        &self,
        mut transfer: pb::NewTransfer,
    ) -> Result<pb::TransferResult, ClientError> {
        if transfer.flags & 1 != 0 {
            return Err(ClientError {
                code: Code::InvalidArgument,
                message: "linked transfers must be sent together with create_transfers".into(),
            });
        }
        fill_id(&mut transfer.id);
        let (reply, answer) = oneshot::channel();
        let stopped =
            || ClientError { code: Code::Unavailable, message: "the batcher stopped".into() };
        self.submit.send((transfer, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn batch_loop(
    client: Client,
    mut queue: mpsc::Receiver<Submitted>,
    max_events: usize,
    linger: Duration,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < max_events {
            match tokio::time::timeout_at(until, queue.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        // Past `BATCHES_IN_FLIGHT`, gathering waits: the bounded queue then pushes back on
        // the submitting tasks.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
        let client = client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (transfers, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            match client.create_transfers(transfers).await {
                Ok(results) if results.len() == replies.len() => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Ok(results) => {
                    let error = ClientError {
                        code: Code::Internal,
                        message: format!(
                            "{} results for {} transfers",
                            results.len(),
                            replies.len()
                        ),
                    };
                    replies.into_iter().for_each(|r| drop(r.send(Err(error.clone()))));
                }
                Err(error) => replies.into_iter().for_each(|r| drop(r.send(Err(error.clone())))),
            }
        });
    }
}
