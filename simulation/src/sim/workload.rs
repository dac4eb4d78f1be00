//! The clients: earns, burns, transfers between wallets, holds and their posts (whole,
//! partial, too large) and voids, balancing burns ("burn all"), refunds and reversals (of all
//! that is left, part of it, too much, or of what cannot be reversed), on a few wallets through
//! `api::client`, with retries of the same request and conflicting reuses of an id, and balance
//! reads at both consistency levels.
//! Every call is recorded with its simulated invocation and answer times.

use std::rc::Rc;
use std::time::Duration;

use api::client::{Client, ClientConfig};

use super::net::{dialer, sim_now};
use super::{host_name, World, PORT};
use crate::bank::{Op, Resolve, Ret, Reversal, Transfer};
use crate::checker::Call;
use crate::ledger;
use crate::rng::Rng;

/// Wallets the clients share: few, so that their calls collide.
pub(super) const WALLETS: usize = 3;
const CALLS_PER_CLIENT: usize = 60;
/// How stale a bounded-staleness read may be.
const STALENESS: Duration = Duration::from_millis(250);

/// A recorded call, whether it was a bounded-staleness read, and why the client gave up on it
/// if it did.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub call: Call<Op, Ret>,
    pub stale: bool,
    pub gave_up: Option<String>,
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

/// What a client sent: its writes (to retry), its holds (to resolve), and what it may try to
/// reverse (every write, as the transfer it would make if applied).
#[derive(Default)]
struct Sent {
    writes: Vec<Op>,
    holds: Vec<Transfer>,
    reversible: Vec<Transfer>,
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
    let op = match rng.below(18) {
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
        10 => Op::Balancing(Transfer { id, debit: wallet, credit: 1, amount: 4 + amount }),
        11 | 12 => match sent.reversible.get(rng.index(sent.reversible.len() + 1)) {
            // All that is left (0), part of it, all of it, or one more than it moved.
            Some(original) => {
                let most = u64::try_from(original.amount).unwrap_or(u64::MAX - 1);
                let amount = u128::from(rng.below(most + 2));
                Op::Reverse(Reversal { id, original: *original, amount })
            }
            None => Op::Read(wallet),
        },
        13 | 14 => Op::Read(wallet),
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
    let made = match op {
        Op::Transfer(t) | Op::Hold(t) | Op::Balancing(t) => Some(t),
        Op::Resolve(r) => Some(Transfer { id: r.id, amount: r.amount.max(1), ..r.hold }),
        Op::Reverse(r) => Some(Transfer {
            id: r.id,
            debit: r.original.credit,
            credit: r.original.debit,
            amount: r.amount.max(1),
        }),
        Op::Read(_) => None,
    };
    if let Some(made) = made {
        sent.writes.push(op);
        sent.reversible.push(made);
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
    Ok(match call(api, op, stale).await? {
        Ok(ret) => Recorded {
            call: Call::answered(worker, invoked, sim_now(), op, ret),
            stale,
            gave_up: None,
        },
        Err(why) => {
            Recorded { call: Call::unanswered(worker, invoked, op), stale, gave_up: Some(why) }
        }
    })
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

/// Makes one call: its answer, or why the client gave up on it.
async fn call(api: &Client, op: Op, stale: bool) -> Result<Result<Ret, String>, String> {
    ledger::call(api, op, if stale { STALENESS } else { Duration::ZERO }).await
}
