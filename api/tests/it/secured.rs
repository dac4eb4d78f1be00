//! Secured clusters. Goal: with tokens and a peer secret, the nodes still elect and replicate
//! (peers prove themselves with the secret), and every caller gets exactly what its token
//! allows over both protocols: no or unknown or expired token 401 / UNAUTHENTICATED, a token
//! without the scope 403 / PERMISSION_DENIED, a token over its rate 429 / RESOURCE_EXHAUSTED,
//! raft's service for peers only; health needs nothing. With TLS and mutual TLS: the cluster
//! works end to end over TLS, and a plaintext client or one without a certificate is refused.

use api::convert::pb_u128;
use api::proto::ledger as pb;
use raft::proto::raft_client::RaftClient;
use raft::proto::ReadIndexRequest;
use serde_json::json;
use tonic::Code;

use crate::harness::{
    admin_as, authed, caught_up, earn, form, last_log_index, ledger_as, plain_channel,
    setup_ledger, tls_channel, token, transfers, wallet_credits, Cluster, Tls, CLUSTER_ID, WALLET,
};
use crate::http::{header_map, Http};

const READER: &str = "lpt_test_reader";
const WRITER: &str = "lpt_test_writer";
const ADMIN: &str = "lpt_test_admin";
const EXPIRED: &str = "lpt_test_expired";
const LIMITED: &str = "lpt_test_limited";

fn tokens() -> Vec<api::auth::TokenEntry> {
    let mut expired = token("expired", EXPIRED, &["ledger:read", "ledger:write", "admin"]);
    expired.expires_at = Some("2020-01-01T00:00:00Z".parse().unwrap());
    let mut limited = token("limited", LIMITED, &["ledger:read"]);
    limited.rate_per_second = Some(1);
    limited.burst = Some(2);
    vec![
        token("reader", READER, &["ledger:read"]),
        token("writer", WRITER, &["ledger:write"]),
        token("admin", ADMIN, &["admin"]),
        expired,
        limited,
    ]
}

fn lookup() -> pb::LookupAccountsRequest {
    pb::LookupAccountsRequest { ids: vec![pb_u128(WALLET).unwrap()], consistency: None }
}

/// Tokens and the peer secret on a 3-node cluster. Goal: the cluster forms and replicates, and
/// each token gets exactly what its scopes and rate allow, over gRPC and REST alike; writes
/// through a follower are forwarded with the caller's own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_rate_limits_decide_over_both_protocols() {
    let mut cluster = Cluster::secured(tokens(), Tls::Off);
    // Elections and replication need the peer secret on every raft call.
    let leader = form(&mut cluster, &[1, 2, 3]).await;
    setup_ledger(&cluster, leader).await;
    assert_eq!(transfers(&cluster, leader, vec![earn(1, WALLET, 5)]).await[0].result, "ok");
    let index = last_log_index(&cluster, leader).await;
    let hashes = caught_up(&cluster, &[1, 2, 3], index).await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    grpc_credentials(&cluster, follower).await;
    rest_credentials(&cluster, follower).await;
    admin_and_raft_need_their_own(&cluster, leader).await;
    rate_limits(&cluster, leader).await;
    head_needs_a_token(&cluster, follower).await;
    made_up_methods_add_no_metric_series(&cluster, follower).await;

    // Forwarded writes carry the caller's own token to the leader.
    let mut writer = ledger_as(&cluster, follower, Some(WRITER));
    let reply =
        writer.create_transfers(pb::CreateTransfersRequest { transfers: vec![earn(2, WALLET, 5)] });
    assert_eq!(reply.await.unwrap().into_inner().results[0].result, "ok");
    let body = json!({"id": "3", "account": "200", "from": "100", "amount": "5", "asset": 1});
    let reply = Http::to(&cluster, follower).token(Some(WRITER)).post("/v1/earn", &body).await;
    assert_eq!((reply.status.as_u16(), reply.json()["result"].as_str()), (200, Some("ok")));
    assert_eq!(wallet_credits(&cluster, follower, 0).await, 15);
    cluster.stop_all().await;
}

async fn grpc_credentials(cluster: &Cluster, id: u64) {
    for (token, code, says) in [
        (None, Code::Unauthenticated, "credentials required"),
        (Some("lpt_nobody"), Code::Unauthenticated, "unknown token"),
        (Some(EXPIRED), Code::Unauthenticated, "expired"),
        (Some(WRITER), Code::PermissionDenied, "ledger:read"),
        (Some(ADMIN), Code::PermissionDenied, "ledger:read"),
    ] {
        let status = ledger_as(cluster, id, token).lookup_accounts(lookup()).await.unwrap_err();
        assert_eq!(status.code(), code, "{token:?}: {status:?}");
        assert!(status.message().contains(says), "{token:?}: {status:?}");
    }
    assert!(ledger_as(cluster, id, Some(READER)).lookup_accounts(lookup()).await.is_ok());
    let write = || pb::CreateTransfersRequest { transfers: vec![earn(90, WALLET, 5)] };
    let status = ledger_as(cluster, id, Some(READER)).create_transfers(write()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let earn = pb::EarnRequest { id: pb_u128(91), ..pb::EarnRequest::default() };
    let status = ledger_as(cluster, id, Some(READER)).earn(earn).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "convenience calls are writes");
}

async fn rest_credentials(cluster: &Cluster, id: u64) {
    let http = Http::to(cluster, id);
    let earn = json!({"id": "92", "account": "200", "from": "100", "amount": "5", "asset": 1});
    for (token, status, code) in [
        (None, 401, "unauthenticated"),
        (Some("lpt_nobody"), 401, "unauthenticated"),
        (Some(EXPIRED), 401, "unauthenticated"),
        (Some(READER), 403, "forbidden"),
        (Some(ADMIN), 403, "forbidden"),
    ] {
        let reply = http.clone().token(token).post("/v1/earn", &earn).await;
        assert_eq!(reply.problem(status), code, "{token:?}");
        if status == 401 {
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{token:?}");
        }
    }
    let reply = http.clone().token(Some(READER)).get("/v1/accounts/200").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = http.clone().token(Some(WRITER)).get("/v1/accounts/200").await;
    assert_eq!(reply.problem(403), "forbidden");
    // Health, readiness, metrics and the API's description need no token.
    let anyone = http.clone().token(None);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(anyone.get(path).await.status, 200, "{path}");
    }
    // A path no route knows is not a way around the gate, nor a way to probe it: it needs the
    // widest scope (fail closed), and only then does it answer that nothing is there.
    assert_eq!(anyone.get("/v1/nothing").await.problem(401), "unauthenticated");
    let reader = http.clone().token(Some(READER));
    assert_eq!(reader.get("/v1/nothing").await.problem(403), "forbidden");
    let admin = http.clone().token(Some(ADMIN));
    assert_eq!(admin.get("/v1/nothing").await.problem(404), "no_such_route");
}

async fn admin_and_raft_need_their_own(cluster: &Cluster, leader: u64) {
    let status = admin_as(cluster, leader, Some(ADMIN)).status(pb::StatusRequest {}).await;
    assert_eq!(status.unwrap().into_inner().leader, Some(leader));
    for (token, code) in [
        (Some(WRITER), Code::PermissionDenied),
        (Some(READER), Code::PermissionDenied),
        (None, Code::Unauthenticated),
    ] {
        let status = admin_as(cluster, leader, token).status(pb::StatusRequest {}).await;
        assert_eq!(status.unwrap_err().code(), code, "Admin with {token:?}");
    }

    // Raft's service takes the peer secret only; not even an admin token.
    let read_index = ReadIndexRequest { cluster_id: CLUSTER_ID };
    let secret = cluster.security.as_ref().unwrap().peer_secret.clone();
    for (token, code) in [
        (Some(ADMIN), Code::PermissionDenied),
        (Some(WRITER), Code::PermissionDenied),
        (cluster.operator(), Code::PermissionDenied),
        (None, Code::Unauthenticated),
    ] {
        let mut client = RaftClient::new(authed(cluster.channel(leader), token));
        let status = client.read_index(read_index).await.unwrap_err();
        assert_eq!(status.code(), code, "raft with {token:?}: {status:?}");
    }
    let mut peer = RaftClient::new(authed(cluster.channel(leader), Some(&secret)));
    let index = peer.read_index(read_index).await.unwrap().into_inner().index;
    assert!(index > 0, "the peer secret opens raft's service");
}

/// The limited token: 1 a second, bursts of 2. Calls in quick succession run out after the
/// burst (a slow machine may refill one in between, hence a few tries).
async fn rate_limits(cluster: &Cluster, id: u64) {
    let mut client = ledger_as(cluster, id, Some(LIMITED));
    let mut allowed = 0;
    let status = loop {
        match client.lookup_accounts(lookup()).await {
            Ok(_) => allowed += 1,
            Err(status) => break status,
        }
        assert!(allowed <= 4, "the rate limit never applied");
    };
    assert!(allowed >= 2, "the burst is 2, {allowed} allowed");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("rate limit"), "{status:?}");

    // The bucket is the token's on this node, whatever the protocol.
    let http = Http::to(cluster, id).token(Some(LIMITED));
    let mut reply = http.get("/v1/accounts/200").await;
    for _ in 0..4 {
        if reply.status != 200 {
            break;
        }
        reply = http.get("/v1/accounts/200").await;
    }
    assert_eq!(reply.problem(429), "rate_limited");
    let seconds: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&seconds), "Retry-After: {seconds}");
}

/// TLS with client certificates. Goal: a cluster whose nodes talk TLS to each other and take
/// only clients with a certificate from their CA elects, replicates and serves gRPC and REST
/// (HTTP/1.1 by ALPN) over TLS; a plaintext client and a TLS client without a certificate are
/// refused and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_cluster_serves_only_clients_with_certificates() {
    let mut cluster = Cluster::secured(tokens(), Tls::Mutual);
    let leader = form(&mut cluster, &[1, 2, 3]).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    setup_ledger(&cluster, follower).await; // Forwarded to the leader over TLS.
    assert_eq!(transfers(&cluster, follower, vec![earn(1, WALLET, 7)]).await[0].result, "ok");
    for id in 1..=3 {
        assert_eq!(wallet_credits(&cluster, id, 0).await, 7, "node {id}");
    }
    let index = last_log_index(&cluster, leader).await;
    let hashes = caught_up(&cluster, &[1, 2, 3], index).await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");

    let pki = cluster.pki().unwrap().clone();
    let address = cluster.address(leader);
    let plaintext = ledger_client(plain_channel(&address), WRITER).lookup_accounts(lookup()).await;
    assert!(plaintext.is_err(), "a plaintext client got {plaintext:?}");
    let anonymous = tls_channel(&address, pki.client_tls(false));
    let refused = ledger_client(anonymous, READER).lookup_accounts(lookup()).await;
    assert!(refused.is_err(), "a client without a certificate got {refused:?}");
    let certified = tls_channel(&address, pki.client_tls(true));
    assert!(ledger_client(certified, READER).lookup_accounts(lookup()).await.is_ok());

    // REST over TLS, HTTP/1.1 by ALPN.
    let http = Http::to(&cluster, follower).token(Some(WRITER));
    assert_eq!(http.alpn().await.unwrap().as_deref(), Some(&b"http/1.1"[..]));
    let earn = json!({"id": "2", "account": "200", "from": "100", "amount": "3", "asset": 1});
    let reply = http.post("/v1/earn", &earn).await;
    assert_eq!((reply.status.as_u16(), reply.json()["result"].as_str()), (200, Some("ok")));
    let reader = Http::to(&cluster, leader).token(Some(READER));
    let account = reader.get("/v1/accounts/200").await.json();
    assert_eq!(account["balances"]["credits_posted"], "10");
    let without = reader.clone().tls(Some(pki.rustls_client(false, b"http/1.1")));
    let refused = without.send("GET", "/healthz", header_map(&[]), "").await;
    assert!(refused.is_err(), "REST without a certificate got {refused:?}");
    let plaintext = reader.clone().tls(None).send("GET", "/healthz", header_map(&[]), "").await;
    assert!(plaintext.is_err(), "plaintext REST got {plaintext:?}");

    assert_eq!(wallet_credits(&cluster, leader, 0).await, 10, "refused clients changed nothing");
    cluster.stop_all().await;
}

fn ledger_client(
    channel: tonic::transport::Channel,
    token: &str,
) -> api::proto::ledger::ledger_client::LedgerClient<crate::harness::Authed> {
    api::proto::ledger::ledger_client::LedgerClient::new(authed(channel, Some(token)))
}

/// HEAD runs a GET route, so it needs what GET needs.
async fn head_needs_a_token(cluster: &Cluster, id: u64) {
    let anyone = Http::to(cluster, id).token(None);
    for path in ["/v1/accounts/200", "/v1/accounts/999", "/v1/transfers/1"] {
        let reply = anyone.send("HEAD", path, header_map(&[]), "").await.unwrap();
        assert_eq!(reply.status, 401, "HEAD {path}");
    }
}

/// A made-up method shares the one `unknown` label: callers cannot add metric series.
async fn made_up_methods_add_no_metric_series(cluster: &Cluster, id: u64) {
    let anyone = Http::to(cluster, id).token(None);
    for n in 0..3 {
        let path = format!("/localplus.ledger.v1.Ledger/Made-Up-{n}");
        let reply = anyone.grpc(&path, header_map(&[]), crate::http::grpc_frame(&[]).into()).await;
        assert_eq!(reply.unwrap().grpc_status().unwrap().0, Code::Unauthenticated);
    }
    let metrics = anyone.get("/metrics").await.text();
    assert!(!metrics.contains("Made-Up"), "made-up methods became series");
    assert!(metrics.contains("method=\"unknown\""), "{metrics}");
}
