//! The Ledger service's reads and erasure over gRPC. Goal: account transfers page by
//! timestamp, balance history gives the balances after each transfer, open lots come back by
//! expiry, a gift card is found by its code (and by no other), erasure clears personal fields;
//! malformed filters are refused with a status naming the problem.

use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use tonic::Code;

use crate::harness::{
    admin, earn, leader, ledger, setup_ledger, transfers, Cluster, MERCHANT, WALLET,
};

fn filter(limit: u32, timestamp_min: u64) -> pb::AccountFilter {
    pb::AccountFilter {
        account: pb_u128(WALLET),
        timestamp_min,
        limit,
        ..pb::AccountFilter::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_page_and_find_and_erasure_clears() {
    let mut cluster = Cluster::new();
    cluster.start(1).await;
    let members = cluster.members(&[1]).into_iter().collect();
    admin(&cluster, 1).await.initialize(pb::InitializeRequest { members }).await.unwrap();
    leader(&cluster, 1).await;
    setup_ledger(&cluster, 1).await;
    let now = u64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()).unwrap();
    let day = 86_400 * 1_000_000_000;
    for (id, amount, expires) in [(1, 10, now + 2 * day), (2, 20, now + day), (3, 30, 0)] {
        let mut transfer = earn(id, WALLET, amount);
        transfer.expires_at = expires;
        assert_eq!(transfers(&cluster, 1, vec![transfer]).await[0].result, "ok");
    }
    let mut client = ledger(&cluster, 1).await;

    let page = client.get_account_transfers(filter(2, 0)).await.unwrap().into_inner().transfers;
    assert_eq!(page.iter().map(|t| u128_of(t.id.as_ref())).collect::<Vec<_>>(), [1, 2]);
    let next = filter(2, page[1].timestamp + 1);
    let rest = client.get_account_transfers(next).await.unwrap().into_inner().transfers;
    assert_eq!(rest.iter().map(|t| u128_of(t.id.as_ref())).collect::<Vec<_>>(), [3]);

    let history = client.get_balance_history(filter(10, 0)).await.unwrap().into_inner().entries;
    let credits: Vec<u128> =
        history.iter().map(|e| u128_of(e.balances.unwrap().credits_posted.as_ref())).collect();
    assert_eq!(credits, [10, 30, 60]);

    let request = pb::GetAccountLotsRequest { account: pb_u128(WALLET), consistency: None };
    let lots = client.get_account_lots(request).await.unwrap().into_inner().lots;
    let lots: Vec<(u64, u128)> =
        lots.iter().map(|l| (l.expires_at, u128_of(l.amount.as_ref()))).collect();
    assert_eq!(lots, [(now + day, 20), (now + 2 * day, 10)], "earliest expiry first");

    gift_card_by_code(&cluster).await;
    refusals(&cluster).await;

    let lookup =
        pb::LookupAccountsRequest { ids: vec![pb_u128(WALLET).unwrap()], consistency: None };
    let before = client.lookup_accounts(lookup).await.unwrap().into_inner().accounts.remove(0);
    assert_eq!(before.external_ref, b"customer-200", "personal fields before erasure");
    let erase = pb::EraseAccountsRequest { accounts: vec![pb_u128(WALLET).unwrap()] };
    let reply = client.erase_accounts(erase).await.unwrap().into_inner();
    assert_eq!(reply.results, ["ok"]);
    let lookup =
        pb::LookupAccountsRequest { ids: vec![pb_u128(WALLET).unwrap()], consistency: None };
    let account = client.lookup_accounts(lookup).await.unwrap().into_inner().accounts.remove(0);
    assert!(account.erased && account.external_ref.is_empty() && account.metadata.is_empty());
    assert_eq!(u128_of(account.balances.unwrap().credits_posted.as_ref()), 60, "amounts stay");
    cluster.stop_all().await;
}

async fn gift_card_by_code(cluster: &Cluster) {
    let mut client = ledger(cluster, 1).await;
    let card = pb::GiftCardIssue {
        account: Some(pb::NewAccount {
            id: pb_u128(700),
            asset: 1,
            kind: pb::AccountKind::GiftCard as i32,
            ..pb::NewAccount::default()
        }),
        code: "GC-7000-SECRET".into(),
        load_transfer_id: pb_u128(701),
        load_from: pb_u128(MERCHANT),
        load_amount: pb_u128(25),
    };
    let request = pb::IssueGiftCardsRequest { cards: vec![card] };
    let reply = client.issue_gift_cards(request).await.unwrap().into_inner();
    assert_eq!(reply.results[0].result, "ok");
    let get = |code: &str| pb::GetGiftCardRequest { code: code.into(), consistency: None };
    let found = client.get_gift_card(get("GC-7000-SECRET")).await.unwrap().into_inner();
    assert_eq!((u128_of(found.id.as_ref()), u128_of(found.available.as_ref())), (700, 25));
    for wrong in ["GC-7000-SECRE", "", "gc-7000-secret"] {
        let status = client.get_gift_card(get(wrong)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{wrong:?}");
    }
}

async fn refusals(cluster: &Cluster) {
    let mut client = ledger(cluster, 1).await;
    let zero = pb::AccountFilter { account: None, limit: 1, ..pb::AccountFilter::default() };
    let status = client.get_account_transfers(zero).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "account_id_must_not_be_zero")
    );
    let status = client.get_balance_history(filter(0, 0)).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "limit_must_not_be_zero")
    );
    let backwards = pb::AccountFilter { timestamp_max: 5, ..filter(1, 10) };
    let status = client.get_account_transfers(backwards).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let erase = pb::EraseAccountsRequest { accounts: Vec::new() };
    assert_eq!(client.erase_accounts(erase).await.unwrap_err().code(), Code::InvalidArgument);
}
