//! Reconciliation: every wallet in the read model against the ledger's account, range by
//! range. Each range is compared by a SHA-256 checksum that PostgreSQL computes over the
//! range's rows and this node computes over the same rows of its store; only a range whose
//! checksums differ is read row by row.
//!
//! The two sides are read at different moments: the read model at its cursor `C`, the store
//! between positions `E1` and `E2`. An account touched by an event between them may differ
//! for a moment; it is "in flight", rechecked after a pause, and reported as a difference only
//! if it still differs once the export has passed it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ledger_sm::state::StateRead;
use ledger_sm::types::{Account, AccountId, EventSeq};
use serde::Serialize;
use storage::{Kv, Store};
use tokio_postgres::{Client, IsolationLevel};

use crate::payload::status_name;
use crate::postgres::numeric::Numeric;

/// What is compared of a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletView {
    pub asset: Option<u32>,
    pub status: Option<String>,
    pub erased: bool,
    /// Debits pending, debits posted, credits pending, credits posted.
    pub balances: [String; 4],
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub account: String,
    /// `None`: the account is missing on that side.
    pub ledger: Option<WalletView>,
    pub postgres: Option<WalletView>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub accounts: u64,
    pub ranges: u64,
    /// Ranges whose checksums differed at first look (read row by row).
    pub ranges_read: u64,
    /// The read model's position when the last range was compared.
    pub position: u64,
    /// Accounts that differed while events for them were in flight, and settled.
    pub settled: u64,
    pub differences: Vec<Difference>,
}

/// Reconciles `sink`'s read model with `store`. `range` accounts per checksum; a difference
/// for an account in flight is rechecked for up to `settle` before it is reported.
///
/// # Errors
/// PostgreSQL's or the store's error, or a read model that is not this sink's.
pub async fn reconcile<K: Kv>(
    store: &Store<K>,
    client: &mut Client,
    sink: &str,
    range: u32,
    settle: Duration,
) -> Result<Report, String> {
    let mut report = Report::default();
    let mut suspects: BTreeSet<u128> = BTreeSet::new();
    let mut from = AccountId(0);
    loop {
        let e1 = store.meta().map_err(|e| e.to_string())?.event_seq_next;
        let accounts = store.accounts_from(from, range as usize).map_err(|e| e.to_string())?;
        let e2 = store.meta().map_err(|e| e.to_string())?.event_seq_next;
        // The range: [from, last] (to the end of ids when this is the last range).
        let last = accounts.last().map(|a| a.id.0).filter(|_| accounts.len() == range as usize);
        let side = read_range(client, sink, from.0, last).await?;
        report.ranges += 1;
        report.accounts += accounts.len() as u64;
        report.position = side.position;
        if checksum(accounts.iter().map(|a| text(&view(a), a.id.0))) != side.checksum {
            report.ranges_read += 1;
            let ledger: BTreeMap<u128, WalletView> =
                accounts.iter().map(|a| (a.id.0, view(a))).collect();
            let rows = read_rows(client, from.0, last).await?;
            let moving = in_flight(store, side.position, e1, e2)?;
            for (account, difference) in diff(&ledger, &rows) {
                if moving.contains(&account) {
                    suspects.insert(account);
                } else {
                    report.differences.push(difference);
                }
            }
        }
        match last {
            Some(last) if last < u128::MAX => from = AccountId(last + 1),
            _ => break,
        }
    }
    recheck(store, client, sink, suspects, settle, &mut report).await?;
    Ok(report)
}

/// Rechecks accounts that differed while in flight until they match, are no longer in flight
/// (then they are differences), or `settle` runs out (then too).
async fn recheck<K: Kv>(
    store: &Store<K>,
    client: &mut Client,
    sink: &str,
    mut suspects: BTreeSet<u128>,
    settle: Duration,
    report: &mut Report,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + settle;
    while !suspects.is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut still = BTreeSet::new();
        for account in std::mem::take(&mut suspects) {
            let e1 = store.meta().map_err(|e| e.to_string())?.event_seq_next;
            let ledger = store.account(AccountId(account)).map_err(|e| e.to_string())?;
            let e2 = store.meta().map_err(|e| e.to_string())?.event_seq_next;
            let position = read_range(client, sink, account, Some(account)).await?.position;
            let rows = read_rows(client, account, Some(account)).await?;
            let ledger: BTreeMap<u128, WalletView> =
                ledger.iter().map(|a| (a.id.0, view(a))).collect();
            match diff(&ledger, &rows).pop() {
                None => report.settled += 1,
                Some((_, difference)) => {
                    let moving = in_flight(store, position, e1, e2)?.contains(&account);
                    if moving && tokio::time::Instant::now() < deadline {
                        still.insert(account);
                    } else {
                        report.differences.push(difference);
                    }
                }
            }
        }
        suspects = still;
    }
    report.differences.sort_by(|a, b| a.account.cmp(&b.account));
    Ok(())
}

/// Accounts touched by events between the read model's position and the store's reads.
fn in_flight<K: Kv>(
    store: &Store<K>,
    position: u64,
    e1: EventSeq,
    e2: EventSeq,
) -> Result<BTreeSet<u128>, String> {
    let low = position.min(e1.0);
    let high = position.max(e2.0);
    let mut accounts = BTreeSet::new();
    let mut next = EventSeq(low.max(store.meta().map_err(|e| e.to_string())?.events_first.0));
    while next.0 < high {
        let events = ledger_sm::query::events(store, next, 1024).map_err(|e| format!("{e:?}"))?;
        let Some(last) = events.last() else { break };
        next = EventSeq(last.event.seq.0 + 1);
        for record in &events {
            if record.event.seq.0 >= high {
                break;
            }
            if let Some(t) = &record.transfer {
                accounts.insert(t.debit_account.0);
                accounts.insert(t.credit_account.0);
            }
            if let Some(account) = record.event.kind.account() {
                accounts.insert(account.0);
            }
        }
    }
    Ok(accounts)
}

struct RangeSide {
    checksum: [u8; 32],
    position: u64,
}

/// The read model's checksum of wallets in `[from, to]` (`None`: to the end), with its
/// position, read in one snapshot.
async fn read_range(
    client: &mut Client,
    sink: &str,
    from: u128,
    to: Option<u128>,
) -> Result<RangeSide, String> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)?;
    let position: i64 = tx
        .query_opt("SELECT next_seq FROM sync_cursor WHERE sink = $1", &[&sink])
        .await
        .map_err(pg)?
        .ok_or_else(|| format!("the read model has no cursor for sink {sink:?}"))?
        .get(0);
    let row = tx
        .query_one(
            &format!(
                "SELECT sha256(convert_to(coalesce(string_agg({ROW_TEXT}, '' ORDER BY
                 account_id), ''), 'UTF8')) FROM wallets WHERE {RANGE}"
            ),
            &[&Numeric(from), &to.map(Numeric)],
        )
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    let digest: Vec<u8> = row.get(0);
    Ok(RangeSide {
        checksum: digest.try_into().map_err(|_| "sha256 is 32 bytes".to_owned())?,
        position: u64::try_from(position).map_err(|_| "negative cursor".to_owned())?,
    })
}

/// One wallet as checksummed text; the SQL below spells the same.
const ROW_TEXT: &str = "account_id::text || ',' || coalesce(asset::text, '') || ',' ||
    coalesce(status, '') || ',' || erased::text || ',' || debits_pending::text || ',' ||
    debits_posted::text || ',' || credits_pending::text || ',' || credits_posted::text || E'\\n'";
const RANGE: &str = "account_id >= $1 AND ($2::numeric IS NULL OR account_id <= $2)";

fn text(view: &WalletView, account: u128) -> String {
    let [dp, dpo, cp, cpo] = &view.balances;
    format!(
        "{account},{},{},{},{dp},{dpo},{cp},{cpo}\n",
        view.asset.map(|a| a.to_string()).unwrap_or_default(),
        view.status.as_deref().unwrap_or_default(),
        view.erased,
    )
}

fn checksum(rows: impl Iterator<Item = String>) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for row in rows {
        context.update(row.as_bytes());
    }
    context.finish().as_ref().try_into().expect("sha256 is 32 bytes")
}

async fn read_rows(
    client: &Client,
    from: u128,
    to: Option<u128>,
) -> Result<BTreeMap<u128, WalletView>, String> {
    let rows = client
        .query(
            &format!(
                "SELECT account_id, asset, status, erased, debits_pending, debits_posted,
                        credits_pending, credits_posted
                 FROM wallets WHERE {RANGE} ORDER BY account_id"
            ),
            &[&Numeric(from), &to.map(Numeric)],
        )
        .await
        .map_err(pg)?;
    let mut wallets = BTreeMap::new();
    for row in rows {
        let account: Numeric = row.get(0);
        let asset: Option<i32> = row.get(1);
        let balance = |i: usize| row.get::<_, Numeric>(i).0.to_string();
        let view = WalletView {
            asset: asset.and_then(|a| u32::try_from(a).ok()),
            status: row.get(2),
            erased: row.get(3),
            balances: [balance(4), balance(5), balance(6), balance(7)],
        };
        wallets.insert(account.0, view);
    }
    Ok(wallets)
}

fn diff(
    ledger: &BTreeMap<u128, WalletView>,
    postgres: &BTreeMap<u128, WalletView>,
) -> Vec<(u128, Difference)> {
    let accounts: BTreeSet<u128> = ledger.keys().chain(postgres.keys()).copied().collect();
    accounts
        .into_iter()
        .filter_map(|account| {
            let (l, p) = (ledger.get(&account), postgres.get(&account));
            (l != p).then(|| {
                let difference = Difference {
                    account: account.to_string(),
                    ledger: l.cloned(),
                    postgres: p.cloned(),
                };
                (account, difference)
            })
        })
        .collect()
}

fn view(account: &Account) -> WalletView {
    let b = &account.balances;
    WalletView {
        asset: Some(account.asset.0),
        status: Some(status_name(account.status).to_owned()),
        erased: account.erased,
        balances: [
            b.debits_pending.to_string(),
            b.debits_posted.to_string(),
            b.credits_pending.to_string(),
            b.credits_posted.to_string(),
        ],
    }
}

fn pg(error: tokio_postgres::Error) -> String {
    crate::postgres::describe(&error)
}
