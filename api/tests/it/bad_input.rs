//! Bad input to the Ledger and Admin services. Goal: every malformed or impossible request gets
//! a clear gRPC status naming the problem, and changes nothing (the state hash and the log stay
//! where they were).

use api::convert::pb_u128;
use api::proto::ledger as pb;
use tonic::Code;

use crate::harness::{admin, earn, leader, ledger, setup_ledger, status, Cluster, WALLET};

/// A message whose field 1 is bytes: sent where a message is expected, it is malformed.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(bytes = "vec", tag = "1")]
    junk: Vec<u8>,
}

async fn raw_create_transfers(cluster: &Cluster, junk: Vec<u8>) -> tonic::Status {
    let channel = crate::harness::channel(&cluster.address(1)).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/localplus.ledger.v1.Ledger/CreateTransfers",
    );
    let codec = tonic_prost::ProstCodec::<Garbage, pb::CreateTransfersReply>::default();
    grpc.unary(tonic::Request::new(Garbage { junk }), path, codec).await.unwrap_err()
}

async fn refused(
    reply: Result<tonic::Response<impl std::fmt::Debug>, tonic::Status>,
    code: Code,
    says: &str,
) {
    let status = reply.expect_err("must be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{:?} does not say {says:?}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_status_and_changes_nothing() {
    let mut cluster = Cluster::new();
    cluster.start(1).await;
    let members = cluster.members(&[1]).into_iter().collect();
    admin(&cluster, 1).await.initialize(pb::InitializeRequest { members }).await.unwrap();
    leader(&cluster, 1).await;
    setup_ledger(&cluster, 1).await;
    let before = status(&cluster, 1).await.unwrap();

    ledger_refusals(&cluster).await;
    admin_refusals(&cluster).await;

    let after = status(&cluster, 1).await.unwrap();
    assert_eq!(after.state_hash, before.state_hash);
    assert_eq!(after.last_log_index, before.last_log_index, "nothing reached the log");
    cluster.stop_all().await;
}

async fn ledger_refusals(cluster: &Cluster) {
    for junk in
        [vec![0xff; 7], vec![0x0a, 0x7f], b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80".to_vec()]
    {
        let status = raw_create_transfers(cluster, junk).await;
        assert!(
            matches!(status.code(), Code::Internal | Code::InvalidArgument),
            "malformed protobuf: {status:?}"
        );
    }
    let mut client = ledger(cluster, 1).await;
    let mut bad_code = earn(1, WALLET, 5);
    bad_code.code = 77;
    let request = pb::CreateTransfersRequest { transfers: vec![earn(2, WALLET, 5), bad_code] };
    refused(client.create_transfers(request).await, Code::InvalidArgument, "transfers[1].code")
        .await;
    let mut wide_flags = earn(3, WALLET, 5);
    wide_flags.flags = 1 << 16;
    let request = pb::CreateTransfersRequest { transfers: vec![wide_flags] };
    refused(client.create_transfers(request).await, Code::InvalidArgument, "transfers[0].flags")
        .await;
    let request = pb::CreateTransfersRequest { transfers: Vec::new() };
    refused(client.create_transfers(request).await, Code::InvalidArgument, "at least one").await;
    let request = pb::CreateTransfersRequest { transfers: vec![earn(4, WALLET, 5); 8_191] };
    refused(client.create_transfers(request).await, Code::InvalidArgument, "at most 8190").await;
    let account = pb::NewAccount { id: pb_u128(5), asset: 1, kind: 42, ..Default::default() };
    let request = pb::CreateAccountsRequest { accounts: vec![account] };
    refused(client.create_accounts(request).await, Code::InvalidArgument, "accounts[0].kind").await;
    let request = pb::ChangeAccountsRequest { changes: vec![pb::AccountChange { change: None }] };
    refused(client.change_accounts(request).await, Code::InvalidArgument, "changes[0]").await;
    let card = pb::GiftCardIssue { account: None, ..Default::default() };
    let request = pb::IssueGiftCardsRequest { cards: vec![card] };
    refused(client.issue_gift_cards(request).await, Code::InvalidArgument, "cards[0].account")
        .await;
    let asset = pb::NewAsset { id: 2, code: "X".into(), scale: 300, expiry_account: None };
    let request = pb::CreateAssetsRequest { assets: vec![asset] };
    refused(client.create_assets(request).await, Code::InvalidArgument, "assets[0].scale").await;
    let request =
        pb::LookupAccountsRequest { ids: vec![pb_u128(1).unwrap(); 8_191], consistency: None };
    refused(client.lookup_accounts(request).await, Code::InvalidArgument, "at most").await;
}

async fn admin_refusals(cluster: &Cluster) {
    let mut client = admin(cluster, 1).await;
    refused(client.promote(pb::PromoteRequest { id: 42 }).await, Code::NotFound, "node 42").await;
    let to = pb::TransferLeaderRequest { to: 42 };
    refused(client.transfer_leader(to).await, Code::NotFound, "node 42").await;
    let add = pb::AddLearnerRequest { id: 0, address: "127.0.0.1:1".into() };
    refused(client.add_learner(add).await, Code::InvalidArgument, "non-zero id").await;
    let add = pb::AddLearnerRequest { id: 1, address: "127.0.0.1:1".into() };
    refused(client.add_learner(add).await, Code::FailedPrecondition, "is a member at").await;
    refused(client.remove(pb::RemoveRequest { id: 1 }).await, Code::FailedPrecondition, "leads")
        .await;
    let other = pb::InitializeRequest {
        members: [(1, cluster.address(1)), (2, "127.0.0.1:1".to_owned())].into_iter().collect(),
    };
    refused(client.initialize(other).await, Code::FailedPrecondition, "already initialized").await;
    let empty = pb::InitializeRequest { members: Default::default() };
    refused(client.initialize(empty).await, Code::InvalidArgument, "non-empty").await;
}
