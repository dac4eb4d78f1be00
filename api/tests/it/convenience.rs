//! The Ledger service's convenience calls over gRPC: Earn, Burn (with `up_to_available` and
//! the REDEEM code), Hold, Capture (partial), Void and Refund. Goal: each moves what its
//! business operation says, answers the balances after it, answers `exists` to a retry with
//! the same id and a refusal code (never a status) when the ledger refuses; a call sent to a
//! follower is forwarded. And gRPC reflection lists the services.

use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

use crate::harness::{form, ledger, setup_ledger, Cluster, MERCHANT};

/// A wallet that may not go below zero (flag 2), so over-burns are refused.
const LIMITED: u128 = 201;
const CARD: u128 = 300;

fn u128s(value: Option<&pb::U128>) -> u128 {
    u128_of(value)
}

/// (debits pending, debits posted, credits posted) of one side of a reply.
fn sides(side: Option<&pb::AccountBalances>) -> (u128, u128, u128) {
    let balances = side.and_then(|s| s.balances).unwrap();
    (
        u128s(balances.debits_pending.as_ref()),
        u128s(balances.debits_posted.as_ref()),
        u128s(balances.credits_posted.as_ref()),
    )
}

/// Each convenience call on a 3-node cluster, some through a follower. Goal: the balances in
/// each reply and in the account afterwards are what the business operation says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convenience_calls_move_points_and_answer_results() {
    let mut cluster = Cluster::new();
    let leader = form(&mut cluster, &[1, 2, 3]).await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    setup_ledger(&cluster, leader).await;
    let account = pb::NewAccount {
        id: pb_u128(LIMITED),
        asset: 1,
        kind: pb::AccountKind::CustomerWallet as i32,
        flags: 2,
        ..pb::NewAccount::default()
    };
    let request = pb::CreateAccountsRequest { accounts: vec![account] };
    ledger(&cluster, leader).await.create_accounts(request).await.unwrap();

    earn_and_burn(&cluster, leader, follower).await;
    hold_capture_void(&cluster, follower).await;
    refunds(&cluster, leader).await;
    redeem_a_gift_card(&cluster, follower).await;

    let lookup =
        pb::LookupAccountsRequest { ids: vec![pb_u128(LIMITED).unwrap()], consistency: None };
    let reply = ledger(&cluster, follower).await.lookup_accounts(lookup).await.unwrap();
    let balances = reply.into_inner().accounts[0].balances.unwrap();
    // Credits: earned 100 + 50, refunded 10 + 20. Debits: burned 30 + 70, captured 25.
    assert_eq!(u128s(balances.credits_posted.as_ref()), 180);
    assert_eq!(u128s(balances.debits_posted.as_ref()), 125);
    assert_eq!(u128s(balances.debits_pending.as_ref()), 0);
    cluster.stop_all().await;
}

fn earn(id: u128, amount: u128) -> pb::EarnRequest {
    pb::EarnRequest {
        id: pb_u128(id),
        account: pb_u128(LIMITED),
        from: pb_u128(MERCHANT),
        amount: pb_u128(amount),
        asset: 1,
        ..pb::EarnRequest::default()
    }
}

fn burn(id: u128, amount: u128) -> pb::BurnRequest {
    pb::BurnRequest {
        id: pb_u128(id),
        account: pb_u128(LIMITED),
        to: pb_u128(MERCHANT),
        amount: pb_u128(amount),
        asset: 1,
        ..pb::BurnRequest::default()
    }
}

async fn earn_and_burn(cluster: &Cluster, leader: u64, follower: u64) {
    let mut client = ledger(cluster, follower).await;
    let earned = client.earn(earn(1, 100)).await.unwrap().into_inner();
    assert_eq!((earned.result.as_str(), u128s(earned.amount.as_ref())), ("ok", 100));
    assert_eq!(sides(earned.credit.as_ref()), (0, 0, 100));
    assert_eq!(u128s(earned.credit.as_ref().unwrap().account.as_ref()), LIMITED);
    assert_eq!(client.earn(earn(1, 100)).await.unwrap().into_inner().result, "exists");
    let different = client.earn(earn(1, 101)).await.unwrap().into_inner();
    assert_eq!(different.result, "exists_with_different_amount");

    let mut client = ledger(cluster, leader).await;
    let burned = client.burn(burn(2, 30)).await.unwrap().into_inner();
    assert_eq!((burned.result.as_str(), sides(burned.debit.as_ref())), ("ok", (0, 30, 100)));
    let refused = client.burn(burn(3, 1_000)).await.unwrap().into_inner();
    assert_eq!(refused.result, "exceeds_credits", "a refusal is a result, not a status");
    assert_eq!(u128s(refused.amount.as_ref()), 0);
    // Up to what is available: the 70 left, not the 1,000 asked.
    let all = pb::BurnRequest { up_to_available: true, ..burn(4, 1_000) };
    let burned = client.burn(all).await.unwrap().into_inner();
    assert_eq!((burned.result.as_str(), u128s(burned.amount.as_ref())), ("ok", 70));
    assert_eq!(sides(burned.debit.as_ref()), (0, 100, 100));
    assert_eq!(client.burn(all).await.unwrap().into_inner().result, "exists");
    let earned = client.earn(earn(5, 50)).await.unwrap().into_inner();
    assert_eq!(sides(earned.credit.as_ref()), (0, 100, 150));
}

async fn hold_capture_void(cluster: &Cluster, via: u64) {
    let mut client = ledger(cluster, via).await;
    let hold = |id: u128, amount: u128| pb::HoldRequest {
        id: pb_u128(id),
        account: pb_u128(LIMITED),
        to: pb_u128(MERCHANT),
        amount: pb_u128(amount),
        asset: 1,
        timeout: 3_600,
        ..pb::HoldRequest::default()
    };
    let held = client.hold(hold(6, 40)).await.unwrap().into_inner();
    assert_eq!((held.result.as_str(), sides(held.debit.as_ref())), ("ok", (40, 100, 150)));
    let capture = pb::CaptureRequest {
        id: pb_u128(7),
        hold: pb_u128(6),
        amount: pb_u128(25),
        ..pb::CaptureRequest::default()
    };
    let captured = client.capture(capture).await.unwrap().into_inner();
    assert_eq!((captured.result.as_str(), u128s(captured.amount.as_ref())), ("ok", 25));
    assert_eq!(sides(captured.debit.as_ref()), (0, 125, 150), "the other 15 returns");
    assert_eq!(client.capture(capture).await.unwrap().into_inner().result, "exists");

    assert_eq!(client.hold(hold(8, 10)).await.unwrap().into_inner().result, "ok");
    let void =
        |id: u128| pb::VoidRequest { id: pb_u128(id), hold: pb_u128(8), ..Default::default() };
    let voided = client.void(void(9)).await.unwrap().into_inner();
    assert_eq!((voided.result.as_str(), sides(voided.debit.as_ref())), ("ok", (0, 125, 150)));
    assert_eq!(client.void(void(9)).await.unwrap().into_inner().result, "exists");
    let again = client.void(void(10)).await.unwrap().into_inner();
    assert_eq!(again.result, "pending_transfer_already_voided");
    let over = pb::HoldRequest { timeout: 0, ..hold(11, 1_000) };
    assert_eq!(client.hold(over).await.unwrap().into_inner().result, "exceeds_credits");
}

async fn refunds(cluster: &Cluster, via: u64) {
    let mut client = ledger(cluster, via).await;
    let refund = |id: u128, amount: u128| pb::RefundRequest {
        id: pb_u128(id),
        transfer: pb_u128(2), // The burn of 30.
        amount: pb_u128(amount),
        ..pb::RefundRequest::default()
    };
    let part = client.refund(refund(12, 10)).await.unwrap().into_inner();
    assert_eq!((part.result.as_str(), u128s(part.amount.as_ref())), ("ok", 10));
    assert_eq!(u128s(part.credit.as_ref().unwrap().account.as_ref()), LIMITED);
    assert_eq!(sides(part.credit.as_ref()), (0, 125, 160));
    // Amount zero: what is left of it.
    let rest = client.refund(refund(13, 0)).await.unwrap().into_inner();
    assert_eq!((rest.result.as_str(), u128s(rest.amount.as_ref())), ("ok", 20));
    assert_eq!(client.refund(refund(13, 0)).await.unwrap().into_inner().result, "exists");
    let more = client.refund(refund(14, 1)).await.unwrap().into_inner();
    assert_eq!(more.result, "exceeds_reversible_amount");
    let lookup = pb::LookupTransfersRequest { ids: vec![pb_u128(13).unwrap()], consistency: None };
    let transfer = client.lookup_transfers(lookup).await.unwrap().into_inner().transfers.remove(0);
    assert_eq!(
        (transfer.code, u128s(transfer.reverses.as_ref())),
        (pb::TransferCode::Refund as i32, 2)
    );
}

async fn redeem_a_gift_card(cluster: &Cluster, via: u64) {
    let mut client = ledger(cluster, via).await;
    let card = pb::GiftCardIssue {
        account: Some(pb::NewAccount {
            id: pb_u128(CARD),
            asset: 1,
            kind: pb::AccountKind::GiftCard as i32,
            ..pb::NewAccount::default()
        }),
        code: "GC-CONVENIENCE".into(),
        load_transfer_id: pb_u128(20),
        load_from: pb_u128(MERCHANT),
        load_amount: pb_u128(25),
    };
    let issued = client.issue_gift_cards(pb::IssueGiftCardsRequest { cards: vec![card] }).await;
    assert_eq!(issued.unwrap().into_inner().results[0].result, "ok");
    let redeem = pb::BurnRequest {
        account: pb_u128(CARD),
        code: pb::TransferCode::Redeem as i32,
        ..burn(21, 10)
    };
    let inactive = client.burn(redeem).await.unwrap().into_inner();
    assert_eq!(inactive.result, "debit_account_not_active", "a card is activated first");
    let activate = pb::AccountChange {
        change: Some(pb::account_change::Change::ActivateGiftCard(pb_u128(CARD).unwrap())),
    };
    let changed = client.change_accounts(pb::ChangeAccountsRequest { changes: vec![activate] });
    assert_eq!(changed.await.unwrap().into_inner().results[0].result, "ok");
    let redeemed = client.burn(pb::BurnRequest { id: pb_u128(22), ..redeem }).await;
    let redeemed = redeemed.unwrap().into_inner();
    assert_eq!((redeemed.result.as_str(), sides(redeemed.debit.as_ref())), ("ok", (0, 10, 25)));
    let lookup = pb::LookupTransfersRequest { ids: vec![pb_u128(22).unwrap()], consistency: None };
    let transfer = client.lookup_transfers(lookup).await.unwrap().into_inner().transfers.remove(0);
    assert_eq!(transfer.code, pb::TransferCode::Redeem as i32);
}

/// Reflection and health on a node that is in no cluster yet. Goal: a client that knows
/// nothing of our protos can list the services and fetch the Ledger's descriptor, convenience
/// calls included; the node is alive (/healthz) but not ready (/readyz 503: no leader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_ledger_service() {
    let mut cluster = Cluster::new();
    cluster.start(1).await; // Reflection needs no leader.
    let http = crate::http::Http::to(&cluster, 1);
    assert_eq!(http.get("/healthz").await.status, 200);
    let ready = http.get("/readyz").await;
    assert_eq!(ready.problem(503), "unavailable");
    let mut client = ServerReflectionClient::new(cluster.channel(1));
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol("localplus.ledger.v1.Ledger".into())),
    ];
    let mut replies =
        client.server_reflection_info(tokio_stream::iter(requests)).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a list of services");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in
        ["localplus.ledger.v1.Ledger", "localplus.ledger.v1.Admin", "grpc.health.v1.Health"]
    {
        assert!(names.contains(&service), "{service} not in {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor");
    };
    let methods: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            <prost_types::FileDescriptorProto as prost::Message>::decode(&bytes[..]).unwrap()
        })
        .flat_map(|file| file.service)
        .filter(|service| service.name() == "Ledger")
        .flat_map(|service| service.method.into_iter().map(|m| m.name().to_owned()))
        .collect();
    for method in ["CreateTransfers", "Earn", "Burn", "Hold", "Capture", "Void", "Refund"] {
        assert!(methods.iter().any(|m| m == method), "{method} not in {methods:?}");
    }
    cluster.stop_all().await;
}
