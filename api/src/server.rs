//! One node's server, on one address: the internal raft service, `Ledger`, `Admin`, gRPC
//! health and reflection, the REST API under `/v1`, `/openapi.json`, `/healthz`, `/readyz`
//! and `/metrics` (the address peers know the node by, so a follower can forward to the
//! leader's `Ledger` at the same address raft uses).
//!
//! In front of every call: the gate — credentials and scope (`auth`), the token's rate limit,
//! and the request metrics. With TLS, connections are accepted by our own rustls acceptor
//! (HTTP/2 and HTTP/1.1 by ALPN, handshakes in parallel and bounded in time).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use raft::{Node, NodeConfig};
use storage::{Kv, Store};
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

use crate::admin_service::AdminService;
use crate::auth::{Auth, Denied, Need, Scope};
use crate::ledger_service::LedgerService;
use crate::metrics::Metrics;
use crate::proto::ledger::admin_server::AdminServer;
use crate::proto::ledger::ledger_server::LedgerServer;
use crate::rest::{self, Problem};
use crate::sync_out::{SyncOut, SyncOutConfig};

/// How long a stopping node lets calls in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once.
const TLS_HANDSHAKES_MAX: usize = 256;
/// Handshaken connections waiting for the server to take them.
const TLS_ACCEPTED_QUEUE: usize = 64;

/// Who may call, and over what.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub auth: Arc<Auth>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Starts raft over `store` and serves every service on `listener` until `shutdown` resolves;
/// then stops accepting, finishes calls in flight, and stops raft.
///
/// # Errors
/// Raft failed to start or stopped by itself (a storage failure: the caller should exit), or
/// the server failed.
pub async fn run<K: Kv + 'static>(
    config: NodeConfig,
    store: Arc<Store<K>>,
    listener: TcpListener,
    security: Security,
    sync_out: SyncOutConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let node = Node::start(config, store).await?;
    let sync_out = match SyncOut::start(&node, sync_out) {
        Ok(sync_out) => Arc::new(sync_out),
        Err(error) => {
            node.shutdown().await;
            return Err(error);
        }
    };
    // Calls in flight get `SHUTDOWN_GRACE` to finish; then raft stops whatever still waits.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let served = tokio::select! {
        served = serve(node.clone(), listener, security, sync_out, shutdown) => served,
        // Fail-stop: a node whose raft stopped by itself exits, for its supervisor to restart.
        reason = node.stopped() => Err(format!("raft stopped: {reason}")),
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
    listener: TcpListener,
    security: Security,
    sync_out: Arc<SyncOut>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let router = router(node, &security, sync_out).await?;
    // The builder's `tcp_nodelay` does not reach connections from our own listener: each
    // accepted socket gets it here (plain) or in `accept_tls`. Without it a reply's trailers
    // wait for the client's delayed ACK, ~40 ms on Linux.
    let server =
        tonic::transport::Server::builder().accept_http1(true).add_routes(Routes::from(router));
    match security.tls {
        None => server
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
            .map_err(|e| format!("server failed: {e}")),
        Some(tls) => {
            let (connections, incoming) = tokio::sync::mpsc::channel(TLS_ACCEPTED_QUEUE);
            let acceptor = tokio::spawn(accept_tls(listener, tls, connections));
            let served = server
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown)
                .await
                .map_err(|e| format!("server failed: {e}"));
            acceptor.abort();
            served
        }
    }
}

/// Serves `node` over the connections `incoming` yields (no TLS, no sync-out) until `shutdown`
/// resolves: how the simulation puts a node on its simulated network.
///
/// # Errors
/// The server failed.
pub async fn serve_connections<K, I, IO, IE>(
    node: Node<K>,
    security: Security,
    incoming: I,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String>
where
    K: Kv + 'static,
    I: futures_util::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    assert!(security.tls.is_none(), "TLS connections come through `serve`");
    let router = router(node, &security, Arc::new(SyncOut::default())).await?;
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| format!("server failed: {e}"))
}

/// Every service and route of the node, behind the gate.
async fn router<K: Kv + 'static>(
    node: Node<K>,
    security: &Security,
    sync_out: Arc<SyncOut>,
) -> Result<axum::Router, String> {
    if !security.auth.enabled() {
        tracing::warn!(
            "no tokens_file: every caller may do everything (fine for a local demo only)"
        );
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServer<LedgerService<K>>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let service = Arc::new(LedgerService::new(node.clone(), node.channels().clone()));
    let ledger = LedgerServer::from_arc(Arc::clone(&service))
        .max_decoding_message_size(crate::MESSAGE_BYTES_MAX)
        .max_encoding_message_size(crate::MESSAGE_BYTES_MAX);
    let grpc = tonic::service::Routes::builder()
        .add_service(node.raft_service())
        .add_service(ledger)
        .add_service(AdminServer::new(AdminService::new(node.clone(), Arc::clone(&sync_out))))
        .add_service(health_service)
        .add_service(reflection)
        .clone()
        .routes();
    let metrics = Metrics::new(node.clone(), sync_out);
    let gate = Arc::new(Gate { auth: Arc::clone(&security.auth), metrics: Arc::clone(&metrics) });
    let ready_node = node.clone();
    Ok(grpc
        .into_axum_router()
        .merge(rest::router(service))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || ready(ready_node.clone())))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move { ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text) }
            }),
        )
        .route(
            "/openapi.json",
            get(|| async {
                let text = crate::openapi::document().to_string();
                ([(header::CONTENT_TYPE, "application/json")], text)
            }),
        )
        .fallback(rest::not_found)
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(gate, gate_call)))
}

type TlsConnection = Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>;

/// Accepts connections and hands each to the server once its handshake is done; a client that
/// fails or stalls its handshake is dropped alone.
async fn accept_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    connections: tokio::sync::mpsc::Sender<TlsConnection>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(TLS_HANDSHAKES_MAX));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // At most `TLS_HANDSHAKES_MAX` at once: past that, accepting waits (the kernel's
        // backlog holds new connections), so stalled handshakes cannot exhaust the node.
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else { return };
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = connections.send(Ok(tls)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn ready<K: Kv + 'static>(node: Node<K>) -> Response {
    match node.status() {
        Ok(status) if status.leader.is_some() => "ready\n".into_response(),
        Ok(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "no leader known yet")
                .into_response()
        }
        Err(e) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e).into_response(),
    }
}

#[derive(Debug)]
struct Gate {
    auth: Arc<Auth>,
    metrics: Arc<Metrics>,
}

const LEDGER: &str = "/localplus.ledger.v1.Ledger/";
const ADMIN: &str = "/localplus.ledger.v1.Admin/";
const RAFT: &str = "/localplus.raft.v1.Raft/";
const READS: [&str; 6] = [
    "LookupAccounts",
    "LookupTransfers",
    "GetAccountTransfers",
    "GetBalanceHistory",
    "GetAccountLots",
    "GetGiftCard",
];

/// Whether `service` has the method `name`, so that a metrics label names only methods that
/// exist (a caller cannot add series by inventing names).
fn known_method(service: &str, name: &str) -> bool {
    static METHODS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        use prost::Message;
        let descriptors = prost_types::FileDescriptorSet::decode(crate::proto::DESCRIPTOR_SET)
            .expect("the descriptor set compiled into this binary decodes");
        let mut methods: Vec<(String, String)> = descriptors
            .file
            .iter()
            .flat_map(|f| &f.service)
            .flat_map(|s| s.method.iter().map(|m| (s.name().to_owned(), m.name().to_owned())))
            .collect();
        for name in RAFT_METHODS {
            methods.push(("Raft".to_owned(), name.to_owned()));
        }
        methods
    });
    methods.iter().any(|(s, m)| s == service && m == name)
}

/// The internal raft service's methods (`raft/proto/localplus/raft/v1/raft.proto`).
const RAFT_METHODS: [&str; 6] =
    ["AppendEntries", "Vote", "PreVote", "TransferLeader", "InstallSnapshot", "ReadIndex"];

/// The protocol, the metrics label and the credentials a call needs. Labels are method names
/// and route templates only, never ids.
fn classify(method: &str, path: &str) -> (&'static str, String, Need) {
    // axum answers HEAD with the GET route: it needs what GET needs.
    let method = if method == "HEAD" { "GET" } else { method };
    let grpc_label = |service: &str, name: &str| {
        if known_method(service, name) {
            format!("{service}/{name}")
        } else {
            "unknown".to_owned()
        }
    };
    if let Some(name) = path.strip_prefix(LEDGER) {
        let need = if READS.contains(&name) { Scope::Read } else { Scope::Write };
        return ("grpc", grpc_label("Ledger", name), Need::Scope(need));
    }
    if let Some(name) = path.strip_prefix(ADMIN) {
        return ("grpc", grpc_label("Admin", name), Need::Scope(Scope::Admin));
    }
    if let Some(name) = path.strip_prefix(RAFT) {
        return ("grpc", grpc_label("Raft", name), Need::Peer);
    }
    if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
        return ("grpc", "health_or_reflection".into(), Need::Nothing);
    }
    if let Some(route) = rest::route_of(method, path) {
        return ("http", format!("{} {}", route.method, route.path), Need::Scope(route.scope));
    }
    match path {
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" => {
            ("http", path.into(), Need::Nothing)
        }
        // Fail closed: a path no route knows (or a service mounted later and not listed
        // here) needs the widest scope.
        _ => ("http", "unknown".into(), Need::Scope(Scope::Admin)),
    }
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn denied_grpc(denied: &Denied) -> Response {
    let status = match denied {
        Denied::Unauthenticated(_) => tonic::Status::unauthenticated(denied.to_string()),
        Denied::Forbidden(_) => tonic::Status::permission_denied(denied.to_string()),
        Denied::RateLimited { .. } => {
            let mut status = tonic::Status::resource_exhausted(denied.to_string());
            status
                .metadata_mut()
                .insert(rest::RATE_LIMITED, tonic::metadata::MetadataValue::from_static("1"));
            status
        }
    };
    status.into_http::<Body>().map(Body::new)
}

fn denied_http(denied: &Denied) -> Response {
    let mut problem = match denied {
        Denied::Unauthenticated(why) => {
            let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", why.clone());
            p.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            p
        }
        Denied::Forbidden(why) => Problem::new(StatusCode::FORBIDDEN, "forbidden", why.clone()),
        Denied::RateLimited { retry_after, .. } => {
            let mut p =
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", denied.to_string());
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            p.headers.push((header::RETRY_AFTER, HeaderValue::from(seconds.max(1))));
            p
        }
    };
    problem.detail = denied.to_string();
    problem.into_response()
}

/// Every call passes here: credentials, rate limit, metrics.
async fn gate_call(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (protocol, label, need) = classify(request.method().as_str(), request.uri().path());
    let grpc = is_grpc(&request);
    let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let caller = match gate.auth.check(need, authorization) {
        Ok(caller) => caller,
        Err(denied) => {
            let response = if grpc { denied_grpc(&denied) } else { denied_http(&denied) };
            let result = result_of(&response, grpc).unwrap_or_else(|| "unknown".into());
            gate.metrics.record(protocol, label, result, started.elapsed());
            return response;
        }
    };
    let mut request = request;
    request.headers_mut().remove(rest::CALLER);
    if let Some(value) = caller.and_then(|name| HeaderValue::from_str(&name).ok()) {
        request.headers_mut().insert(rest::CALLER, value);
    }
    let response = next.run(request).await;
    if !grpc {
        gate.metrics.record(
            protocol,
            label,
            response.status().as_u16().to_string(),
            started.elapsed(),
        );
        return response;
    }
    // A trailers-only answer (an error) carries its status in the headers; otherwise it comes
    // in the trailers, and the body reports it at the end.
    if let Some(result) = result_of(&response, true) {
        gate.metrics.record(protocol, label, result, started.elapsed());
        return response;
    }
    let recorder = Recorder { metrics: Arc::clone(&gate.metrics), protocol, label, started };
    response.map(|body| Body::new(Recorded { body, recorder: Some(recorder) }))
}

fn grpc_code_name(code: &str) -> String {
    let code: i32 = code.parse().unwrap_or(2);
    format!("{:?}", tonic::Code::from(code))
}

fn result_of(response: &Response, grpc: bool) -> Option<String> {
    if !grpc {
        return Some(response.status().as_u16().to_string());
    }
    let status = response.headers().get("grpc-status")?.to_str().ok()?;
    Some(grpc_code_name(status))
}

#[derive(Debug)]
struct Recorder {
    metrics: Arc<Metrics>,
    protocol: &'static str,
    label: String,
    started: Instant,
}

impl Recorder {
    fn record(self, result: String) {
        self.metrics.record(self.protocol, self.label, result, self.started.elapsed());
    }
}

/// A gRPC response body that records the call when its trailers pass (or when it is dropped
/// unfinished: the client went away).
struct Recorded {
    body: Body,
    recorder: Option<Recorder>,
}

impl http_body::Body for Recorded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let result = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .map_or_else(|| "Unknown".into(), grpc_code_name);
                    if let Some(recorder) = self.recorder.take() {
                        recorder.record(result);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(recorder) = self.recorder.take() {
                    recorder.record("Internal".into());
                }
            }
            // The body ended without trailers: tonic always sends them, so this is a fault.
            Poll::Ready(None) => {
                if let Some(recorder) = self.recorder.take() {
                    recorder.record("Unknown".into());
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            recorder.record("Cancelled".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raft_methods_listed_are_the_raft_services() {
        let proto = include_str!("../../raft/proto/localplus/raft/v1/raft.proto");
        let rpcs: Vec<&str> = proto
            .lines()
            .filter_map(|line| line.trim().strip_prefix("rpc "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        assert_eq!(rpcs.len(), RAFT_METHODS.len(), "{rpcs:?}");
        assert!(rpcs.iter().all(|rpc| RAFT_METHODS.contains(rpc)), "{rpcs:?}");
    }

    #[test]
    fn calls_are_classified_by_what_they_need() {
        let need = |method, path| classify(method, path).2;
        assert_eq!(
            need("POST", "/localplus.ledger.v1.Ledger/GetGiftCard"),
            Need::Scope(Scope::Read)
        );
        assert_eq!(need("POST", "/localplus.ledger.v1.Ledger/Earn"), Need::Scope(Scope::Write));
        assert_eq!(need("POST", "/localplus.ledger.v1.Admin/Status"), Need::Scope(Scope::Admin));
        assert_eq!(need("POST", "/localplus.raft.v1.Raft/Vote"), Need::Peer);
        assert_eq!(need("HEAD", "/v1/accounts/7"), Need::Scope(Scope::Read));
        assert_eq!(need("GET", "/healthz"), Need::Nothing);
        assert_eq!(classify("POST", "/localplus.ledger.v1.Ledger/Nope").1, "unknown");
        assert_eq!(classify("POST", "/localplus.raft.v1.Raft/Vote").1, "Raft/Vote");
    }
}
