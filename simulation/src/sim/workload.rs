//! The clients: earns into and burns from a few wallets through `api::client`, with retries of
//! the same request and conflicting reuses of an id, and balance reads at both consistency
//! levels. Every call is recorded with its simulated invocation and answer times.

use std::rc::Rc;
use std::time::Duration;

use api::client::{Client, ClientConfig};
use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;

use super::net::{dialer, sim_now};
use super::{host_name, World, PORT};
use crate::bank::{Balance, Op, Ret, Transfer};
use crate::checker::Call;
use crate::rng::Rng;

const ISSUANCE: u128 = 1_001;
const SETTLEMENT: u128 = 1_002;
const WALLET_FIRST: u128 = 2_001;
/// Wallets the clients share: few, so that their calls collide.
pub(super) const WALLETS: usize = 3;
const POINTS: u32 = 1;
const DEBITS_MUST_NOT_EXCEED_CREDITS: u32 = 2;
const CALLS_PER_CLIENT: usize = 60;
/// How stale a bounded-staleness read may be.
const STALENESS: Duration = Duration::from_millis(250);

/// A recorded call, and whether it was a bounded-staleness read.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub call: Call<Op, Ret>,
    pub stale: bool,
}

pub(super) fn client_of(world: &World) -> Client {
    let addresses = (0..world.nodes).map(|n| format!("{}:{PORT}", host_name(n))).collect();
    let mut config = ClientConfig::new(addresses);
    config.timeout = Duration::from_secs(1);
    config.retry_for = Duration::from_secs(3);
    config.connect_timeout = Duration::from_millis(500);
    config.dialer = Some(dialer());
    Client::new(config).expect("addresses and no token")
}

/// One client: client 0 creates the accounts first; then each makes its calls, recording them.
pub(super) async fn client(
    client: usize,
    clients: usize,
    mut rng: Rng,
    world: Rc<World>,
) -> turmoil::Result {
    let api = client_of(&world);
    if client == 0 {
        setup(&api).await?;
        world.ready.set(true);
    }
    while !world.ready.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker = u32::try_from(client).expect("a few clients");
    let mut sent: Vec<Transfer> = Vec::new();
    for _ in 0..CALLS_PER_CLIENT {
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        let wallet = 2 + rng.index(WALLETS);
        let amount = 1 + u128::from(rng.below(8));
        let fresh = |sent: &mut Vec<Transfer>, debit, credit, amount| {
            let id = (u128::from(worker) + 1) << 64 | (sent.len() as u128 + 1);
            let transfer = Transfer { id, debit, credit, amount };
            sent.push(transfer);
            transfer
        };
        let op = match rng.below(10) {
            0..=3 => Op::Transfer(fresh(&mut sent, 0, wallet, amount.min(5))),
            4..=6 => Op::Transfer(fresh(&mut sent, wallet, 1, amount)),
            7 | 8 => Op::Read(wallet),
            _ => match sent.get(rng.index(sent.len() + 1)) {
                Some(old) if rng.below(2) == 0 => Op::Transfer(*old),
                Some(old) => Op::Transfer(Transfer { amount: old.amount + 1, ..*old }),
                None => Op::Read(wallet),
            },
        };
        let stale = matches!(op, Op::Read(_)) && rng.below(2) == 0;
        let recorded = record(&api, worker, op, stale).await?;
        world.history.borrow_mut().push(recorded);
    }
    world.clients_done.set(world.clients_done.get() + 1);
    assert!(world.clients_done.get() <= clients);
    Ok(())
}

/// Makes one call and records it.
pub(super) async fn record(
    api: &Client,
    worker: u32,
    op: Op,
    stale: bool,
) -> Result<Recorded, String> {
    let invoked = sim_now();
    let call = match call(api, op, stale).await? {
        Some(ret) => Call::answered(worker, invoked, sim_now(), op, ret),
        None => Call::unanswered(worker, invoked, op),
    };
    Ok(Recorded { call, stale })
}

async fn setup(api: &Client) -> Result<(), String> {
    let asset =
        pb::NewAsset { id: POINTS, code: "PTS".into(), scale: 0, expiry_account: pb_u128(9_001) };
    let account = |id: u128, kind: pb::AccountKind, flags: u32| pb::NewAccount {
        id: pb_u128(id),
        asset: POINTS,
        kind: kind as i32,
        flags,
        ..pb::NewAccount::default()
    };
    let mut accounts = vec![
        account(ISSUANCE, pb::AccountKind::MerchantIssuance, 0),
        account(SETTLEMENT, pb::AccountKind::MerchantSettlement, 0),
    ];
    for wallet in 0..WALLETS {
        let id = WALLET_FIRST + wallet as u128;
        accounts.push(account(id, pb::AccountKind::CustomerWallet, DEBITS_MUST_NOT_EXCEED_CREDITS));
    }
    // The cluster is still electing its first leader: keep trying.
    for _ in 0..100 {
        let assets = api.create_assets(vec![asset.clone()]).await;
        let created = match assets {
            Ok(_) => api.create_accounts(accounts.clone()).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if created.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the accounts could not be created".into())
}

/// The ledger id of the model's account number (0 issuance, 1 settlement, then the wallets).
pub(super) fn ledger_id(account: usize) -> u128 {
    match account {
        0 => ISSUANCE,
        1 => SETTLEMENT,
        wallet => WALLET_FIRST + (wallet as u128 - 2),
    }
}

/// Makes one call; `None` when the client gave up on it (its outcome is unknown).
async fn call(api: &Client, op: Op, stale: bool) -> Result<Option<Ret>, String> {
    match op {
        Op::Read(account) => {
            let staleness = if stale { STALENESS } else { Duration::ZERO };
            match api.lookup_accounts(&[ledger_id(account)], staleness).await {
                Ok(found) => {
                    let found = found.first().ok_or("an account was not found")?;
                    let balances = found.balances.unwrap_or_default();
                    Ok(Some(Ret::Balance(Balance {
                        debits: u128_of(balances.debits_posted.as_ref()),
                        credits: u128_of(balances.credits_posted.as_ref()),
                    })))
                }
                Err(_) => Ok(None),
            }
        }
        Op::Transfer(t) => {
            let code = if t.debit == 0 { pb::TransferCode::Earn } else { pb::TransferCode::Burn };
            let transfer = pb::NewTransfer {
                id: pb_u128(t.id),
                debit_account: pb_u128(ledger_id(t.debit)),
                credit_account: pb_u128(ledger_id(t.credit)),
                amount: pb_u128(t.amount),
                asset: POINTS,
                code: code as i32,
                ..pb::NewTransfer::default()
            };
            match api.create_transfers(vec![transfer]).await {
                Ok(results) => {
                    let result = results.first().ok_or("no result for a transfer")?;
                    match result.result.as_str() {
                        "ok" => Ok(Some(Ret::Ok)),
                        "exists" => Ok(Some(Ret::Exists)),
                        "exceeds_credits" => Ok(Some(Ret::ExceedsCredits)),
                        r if r.starts_with("exists_with_different_") => {
                            Ok(Some(Ret::ExistsWithDifferentFields))
                        }
                        other => Err(format!("an answer the model does not know: {other}")),
                    }
                }
                Err(_) => Ok(None),
            }
        }
    }
}
