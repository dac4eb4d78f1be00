//! The clients: earns, burns, transfers between wallets, holds and their posts (whole,
//! partial, too large) and voids, on a few wallets through `api::client`, with retries of the
//! same request and conflicting reuses of an id, and balance reads at both consistency levels.
//! Every call is recorded with its simulated invocation and answer times.

use std::rc::Rc;
use std::time::Duration;

use api::client::{Client, ClientConfig};

use super::net::{dialer, sim_now};
use super::{host_name, World, PORT};
use crate::bank::{Op, Resolve, Ret, Transfer};
use crate::checker::Call;
use crate::ledger;
use crate::rng::Rng;

/// Wallets the clients share: few, so that their calls collide.
pub(super) const WALLETS: usize = 3;
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
    let mut sent = Sent::default();
    for _ in 0..CALLS_PER_CLIENT {
        tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
        let op = choose(&mut rng, worker, &mut sent);
        let stale = matches!(op, Op::Read(_)) && rng.below(2) == 0;
        let recorded = record(&api, worker, op, stale).await?;
        world.history.borrow_mut().push(recorded);
    }
    world.clients_done.set(world.clients_done.get() + 1);
    assert!(world.clients_done.get() <= clients);
    Ok(())
}

/// What a client sent: its writes (to retry) and its holds (to resolve).
#[derive(Default)]
struct Sent {
    writes: Vec<Op>,
    holds: Vec<Transfer>,
    ids: u128,
}

/// The next call of client `worker`.
fn choose(rng: &mut Rng, worker: u32, sent: &mut Sent) -> Op {
    let wallet = 2 + rng.index(WALLETS);
    let other = 2 + (wallet - 2 + 1 + rng.index(WALLETS - 1)) % WALLETS;
    let amount = 1 + u128::from(rng.below(8));
    sent.ids += 1;
    // Unique per run: the client in the high bits, a counter in the low ones.
    let id = (u128::from(worker) + 1) << 64 | sent.ids;
    let op = match rng.below(14) {
        0..=3 => Op::Transfer(Transfer { id, debit: 0, credit: wallet, amount: amount.min(5) }),
        4 | 5 => Op::Transfer(Transfer { id, debit: wallet, credit: 1, amount }),
        6 => Op::Transfer(Transfer { id, debit: wallet, credit: other, amount: amount.min(4) }),
        7 | 8 => {
            let hold = Transfer { id, debit: wallet, credit: 1, amount };
            sent.holds.push(hold);
            Op::Hold(hold)
        }
        9 => match sent.holds.get(rng.index(sent.holds.len() + 1)) {
            Some(hold) => {
                let void = rng.below(3) == 0;
                // A void releases the whole hold; a post takes all of it (0), part of it, or
                // one more than was held.
                let held = u64::try_from(hold.amount).unwrap_or(u64::MAX - 2);
                let amount = if void { 0 } else { u128::from(rng.below(held + 2)) };
                Op::Resolve(Resolve { id, hold: *hold, amount, void })
            }
            None => Op::Read(wallet),
        },
        10 | 11 => Op::Read(wallet),
        _ => {
            return match sent.writes.get(rng.index(sent.writes.len() + 1)).copied() {
                // The same request again, or the same id with another amount.
                Some(old) if rng.below(2) == 0 => old,
                Some(Op::Transfer(t)) => Op::Transfer(Transfer { amount: t.amount + 1, ..t }),
                Some(Op::Hold(t)) => Op::Hold(Transfer { amount: t.amount + 1, ..t }),
                Some(old) => old,
                None => Op::Read(wallet),
            };
        }
    };
    if !matches!(op, Op::Read(_)) {
        sent.writes.push(op);
    }
    op
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
    let (asset, accounts) = ledger::setup_requests(WALLETS);
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

/// Makes one call; `None` when the client gave up on it (its outcome is unknown).
async fn call(api: &Client, op: Op, stale: bool) -> Result<Option<Ret>, String> {
    ledger::call(api, op, if stale { STALENESS } else { Duration::ZERO }).await
}
