//! The demo the README's run command shows: a merchant's points and a gift card, through the
//! `Ledger` service. Fixed ids make it safe to run again: a second run answers `exists` for
//! every event and prints the same balances. It checks the balances it prints and fails if the
//! ledger disagrees.

use std::time::{Duration, Instant};

use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use api::proto::ledger::ledger_client::LedgerClient;
use tonic::transport::Channel;

const POINTS: u32 = 1;
const USD: u32 = 2;
const MERCHANT_POINTS: u128 = 1_001;
const MERCHANT_SETTLEMENT: u128 = 1_002;
const MERCHANT_GIFT_FUNDING: u128 = 1_101;
const MERCHANT_GIFT_SETTLEMENT: u128 = 1_102;
const ALICE: u128 = 2_001;
const BOB: u128 = 2_002;
const GIFT_CARD: u128 = 3_001;
const DEBITS_MUST_NOT_EXCEED_CREDITS: u32 = 2;
const PENDING: u32 = 2;
const POST_PENDING: u32 = 4;

fn client(address: &str) -> Result<LedgerClient<Channel>, String> {
    let channel = Channel::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        // Lazily: a node still starting answers UNAVAILABLE, which `retry` waits out.
        .connect_lazy();
    Ok(LedgerClient::new(channel))
}

/// One call on a clone of the client, with a clone of the request: what `retry` repeats.
macro_rules! call {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request.clone();
        async move { client.$method(request).await }
    }};
}

/// Retries `call` while the cluster answers UNAVAILABLE (electing a leader), until `deadline`.
async fn retry<T, F, Fut>(deadline: Instant, mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    loop {
        match call().await {
            Ok(reply) => return Ok(reply.into_inner()),
            Err(status)
                if status.code() == tonic::Code::Unavailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(status) => return Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}

fn account(id: u128, asset: u32, kind: pb::AccountKind, flags: u32) -> pb::NewAccount {
    pb::NewAccount { id: pb_u128(id), asset, kind: kind as i32, flags, ..pb::NewAccount::default() }
}

fn transfer(
    id: u128,
    from: u128,
    to: u128,
    amount: u128,
    code: pb::TransferCode,
) -> pb::NewTransfer {
    pb::NewTransfer {
        id: pb_u128(id),
        debit_account: pb_u128(from),
        credit_account: pb_u128(to),
        amount: pb_u128(amount),
        asset: POINTS,
        code: code as i32,
        ..pb::NewTransfer::default()
    }
}

/// An event's result is fine if it applied now or in an earlier run.
fn fine(result: &str) -> bool {
    result == "ok" || result == "exists"
}

fn check(what: &str, results: &[String]) -> Result<(), String> {
    match results.iter().find(|r| !fine(r)) {
        None => {
            println!("  {what}: {}", results.join(", "));
            Ok(())
        }
        Some(bad) => Err(format!("{what}: the ledger answered {bad}")),
    }
}

pub async fn run(address: &str, deadline: Instant) -> Result<(), String> {
    let mut c = client(address)?;
    println!("demo: a merchant's loyalty points and a gift card");
    setup(&mut c, deadline).await?;
    points(&mut c, deadline).await?;
    gift_card(&mut c, deadline).await?;
    balances(&mut c, deadline).await
}

async fn setup(c: &mut LedgerClient<Channel>, deadline: Instant) -> Result<(), String> {
    let assets = pb::CreateAssetsRequest {
        assets: vec![
            pb::NewAsset {
                id: POINTS,
                code: "PTS".into(),
                scale: 0,
                expiry_account: pb_u128(9_001),
            },
            pb::NewAsset { id: USD, code: "USD".into(), scale: 2, expiry_account: pb_u128(9_002) },
        ],
    };
    let reply = retry(deadline, || call!(c, create_assets, assets)).await?;
    check("assets PTS, USD", &reply.results)?;
    use pb::AccountKind as K;
    let accounts = pb::CreateAccountsRequest {
        accounts: vec![
            account(MERCHANT_POINTS, POINTS, K::MerchantIssuance, 0),
            account(MERCHANT_SETTLEMENT, POINTS, K::MerchantSettlement, 0),
            account(MERCHANT_GIFT_FUNDING, USD, K::MerchantIssuance, 0),
            account(MERCHANT_GIFT_SETTLEMENT, USD, K::MerchantSettlement, 0),
            account(ALICE, POINTS, K::CustomerWallet, DEBITS_MUST_NOT_EXCEED_CREDITS),
            account(BOB, POINTS, K::CustomerWallet, DEBITS_MUST_NOT_EXCEED_CREDITS),
        ],
    };
    let reply = retry(deadline, || call!(c, create_accounts, accounts)).await?;
    let results: Vec<String> = reply.results.into_iter().map(|r| r.result).collect();
    check("merchant accounts and wallets of alice and bob", &results)
}

async fn points(c: &mut LedgerClient<Channel>, deadline: Instant) -> Result<(), String> {
    use pb::TransferCode as T;
    let earn = vec![
        transfer(10_001, MERCHANT_POINTS, ALICE, 500, T::Earn),
        transfer(10_002, MERCHANT_POINTS, BOB, 300, T::Earn),
    ];
    write(c, deadline, "earn: alice 500, bob 300", earn).await?;
    let burn = vec![transfer(10_003, ALICE, MERCHANT_SETTLEMENT, 120, T::Burn)];
    write(c, deadline, "burn: alice spends 120", burn).await?;
    let mut hold = transfer(10_004, BOB, MERCHANT_SETTLEMENT, 200, T::Burn);
    hold.flags = PENDING;
    hold.timeout = 3_600;
    write(c, deadline, "hold: 200 of bob's points for an order", vec![hold]).await?;
    let mut capture = transfer(10_005, 0, 0, 150, T::Unspecified);
    capture.asset = 0;
    capture.flags = POST_PENDING;
    capture.pending_id = pb_u128(10_004);
    write(c, deadline, "capture: 150 of the hold (the rest goes back)", vec![capture]).await
}

async fn write(
    c: &mut LedgerClient<Channel>,
    deadline: Instant,
    what: &str,
    transfers: Vec<pb::NewTransfer>,
) -> Result<(), String> {
    let request = pb::CreateTransfersRequest { transfers };
    let reply = retry(deadline, || call!(c, create_transfers, request)).await?;
    let results: Vec<String> = reply.results.into_iter().map(|r| r.result).collect();
    check(what, &results)
}

async fn gift_card(c: &mut LedgerClient<Channel>, deadline: Instant) -> Result<(), String> {
    let card = pb::GiftCardIssue {
        account: Some(account(GIFT_CARD, USD, pb::AccountKind::GiftCard, 0)),
        code: "DEMO-GIFT-0001".into(),
        load_transfer_id: pb_u128(20_001),
        load_from: pb_u128(MERCHANT_GIFT_FUNDING),
        load_amount: pb_u128(5_000),
    };
    let request = pb::IssueGiftCardsRequest { cards: vec![card] };
    let reply = retry(deadline, || call!(c, issue_gift_cards, request)).await?;
    let results: Vec<String> = reply.results.into_iter().map(|r| r.result).collect();
    check("gift card issued with $50.00", &results)?;
    let activate = pb::ChangeAccountsRequest {
        changes: vec![pb::AccountChange {
            change: Some(pb::account_change::Change::ActivateGiftCard(
                pb_u128(GIFT_CARD).unwrap_or_default(),
            )),
        }],
    };
    let reply = retry(deadline, || call!(c, change_accounts, activate)).await?;
    // A second run finds the card active already: the ledger forbids activating it twice.
    let activated = |r: &pb::ChangeAccountResult| {
        r.result == "ok" || (r.result == "status_forbids" && r.status == "active")
    };
    if let Some(bad) = reply.results.iter().find(|r| !activated(r)) {
        return Err(format!("gift card activation: the ledger answered {}", bad.result));
    }
    println!("  gift card activated");
    let mut redeem =
        transfer(20_002, GIFT_CARD, MERCHANT_GIFT_SETTLEMENT, 1_250, pb::TransferCode::Redeem);
    redeem.asset = USD;
    write(c, deadline, "redeem: $12.50 at checkout", vec![redeem]).await
}

async fn balances(c: &mut LedgerClient<Channel>, deadline: Instant) -> Result<(), String> {
    let expected = [
        ("alice (points)", ALICE, 380),
        ("bob (points)", BOB, 150),
        ("merchant settlement (points)", MERCHANT_SETTLEMENT, 270),
        ("gift card (cents)", GIFT_CARD, 3_750),
    ];
    let request = pb::LookupAccountsRequest {
        ids: expected.iter().filter_map(|(_, id, _)| pb_u128(*id)).collect(),
        consistency: None,
    };
    let reply = retry(deadline, || call!(c, lookup_accounts, request)).await?;
    println!("balances (linearizable read):");
    for (name, id, want) in expected {
        let found = reply.accounts.iter().find(|a| u128_of(a.id.as_ref()) == id);
        let available = found.map_or(0, |a| u128_of(a.available.as_ref()));
        println!("  {name:<30} {available:>6}");
        if available != want {
            return Err(format!("{name}: expected {want}, the ledger has {available}"));
        }
    }
    Ok(())
}
