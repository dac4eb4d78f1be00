//! The PostgreSQL sink against a real PostgreSQL 15 (one throwaway server per test, started by
//! `scripts/pg-instance`; `scripts/test` installs it) and the real state machine over a store.
//! `common::Ledger` applies batches itself, as raft would; two exporters over the same store
//! play a deposed and a new leader (`common::Node`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use common::{config, until, Ledger};
use ledger_sm::command::{CursorCommand, Operation};
use ledger_sm::result::{CursorResult, Results};
use ledger_sm::types::{EventSeq, SinkId};
use sync_out::payload::Payload;
use sync_out::postgres::reconcile::reconcile;
use sync_out::postgres::{connect, PostgresConfig, PostgresSink};
use sync_out::{Exporter, Sink, SinkError};

const DAY: u64 = 86_400 * 1_000_000_000;

/// A PostgreSQL server in a temporary directory; stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    url: String,
}

impl Postgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = pg_instance("start", dir.path(), None);
        Self { dir, url }
    }

    fn stop(&self, mode: &str) {
        pg_instance("stop", self.dir.path(), Some(mode));
    }

    fn restart(&self) {
        pg_instance("start", self.dir.path(), None);
    }

    fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: self.url.clone(),
            tls_ca_file: None,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ =
            Command::new(script()).args(["stop"]).arg(self.dir.path()).arg("immediate").output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-instance")
}

fn pg_instance(command: &str, dir: &Path, mode: Option<&str>) -> String {
    let output = Command::new(script()).arg(command).arg(dir).args(mode).output().unwrap();
    assert!(
        output.status.success(),
        "scripts/pg-instance {command} failed (scripts/test installs PostgreSQL 15): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl Ledger {
    /// Moves ledger time to the next UTC day (the read model then closes the day).
    fn next_day(&self) {
        let mut clock = self.clock.lock().unwrap();
        *clock = (*clock / DAY + 1) * DAY + 1_000;
    }
}

fn sink(pg: &Postgres) -> PostgresSink {
    PostgresSink::new(SinkId::new("pg").unwrap(), pg.config()).unwrap()
}

/// The read model's position, or 0 while PostgreSQL is down.
async fn position(pg: &Postgres) -> u64 {
    let Ok(client) = connect(&pg.config()).await else { return 0 };
    let Ok(row) = client.query_one("SELECT next_seq FROM sync_cursor WHERE sink = 'pg'", &[]).await
    else {
        return 0;
    };
    u64::try_from(row.get::<_, i64>(0)).unwrap()
}

/// Every table of the read model but the cursor, as text, in key order.
async fn dump(pg: &Postgres) -> Vec<String> {
    let client = connect(&pg.config()).await.unwrap();
    let mut out = Vec::new();
    for (table, key) in [
        ("wallets", "account_id"),
        ("transactions", "transfer_id"),
        ("ledger_entries", "transfer_id, side"),
        ("balance_snapshot_runs", "snapshot_seq"),
        ("balance_snapshots", "snapshot_seq, account_id"),
    ] {
        let sql = format!("SELECT t::text FROM {table} t ORDER BY {key}");
        let rows = client.query(&sql, &[]).await.unwrap();
        out.extend(rows.iter().map(|row| format!("{table} {}", row.get::<_, String>(0))));
    }
    out
}

/// Goal: after the read model's server stops mid-export and restarts, and after a change of
/// leader with the deposed one still exporting, PostgreSQL matches the ledger exactly:
/// reconcile reports no difference, every transfer has one row and two entries, erased
/// wallets keep no personal field, a closed day has its snapshot. Method: a mixed workload
/// exported by two exporters over one store, with PostgreSQL stopped (immediate) mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_matches_the_ledger_through_faults() {
    let pg = Postgres::start();
    let ledger = Ledger::starting_at(DAY - 50 * 1_000_000);
    ledger.setup();
    let old = ledger.node(1);
    let exporter = Exporter::new(Arc::clone(&ledger.store), sink(&pg), Arc::clone(&old), config());
    let old_task = tokio::spawn(exporter.run());

    let mut wallets = 0;
    for step in 0..300 {
        ledger.step(step, &mut wallets);
    }
    until("the first export", async || position(&pg).await > 200).await;

    // PostgreSQL dies mid-export; the ledger goes on, and a day of ledger time ends.
    pg.stop("immediate");
    for step in 300..500 {
        ledger.step(step, &mut wallets);
    }
    ledger.next_day();
    for step in 500..600 {
        ledger.step(step, &mut wallets);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.restart();

    // A new leader takes over; the old one has not noticed yet and keeps exporting.
    let new = ledger.node(2);
    let exporter = Exporter::new(Arc::clone(&ledger.store), sink(&pg), Arc::clone(&new), config());
    let new_task = tokio::spawn(exporter.run());
    for step in 600..900 {
        ledger.step(step, &mut wallets);
    }
    let end = ledger.events_next();
    until("the export to finish", async || position(&pg).await == end).await;
    old.term.store(0, SeqCst);

    let mut client = connect(&pg.config()).await.unwrap();
    let report =
        reconcile(&ledger.store, &mut client, "pg", 16, Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.differences, vec![], "{report:?}");
    assert_eq!(report.accounts, 2 + u64::try_from(wallets).unwrap());
    assert!(report.ranges > 10, "{report:?}");

    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let transfers = ledger.store.records().unwrap().transfers.len();
    assert_eq!(count("SELECT count(*) FROM transactions").await, i64::try_from(transfers).unwrap());
    assert_eq!(
        count("SELECT count(*) FROM ledger_entries").await,
        2 * i64::try_from(transfers).unwrap()
    );
    assert!(count("SELECT count(*) FROM wallets WHERE erased").await > 0);
    assert_eq!(
        count("SELECT count(*) FROM wallets WHERE erased AND (external_ref IS NOT NULL OR metadata IS NOT NULL)").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM wallets WHERE NOT erased AND external_ref IS NULL").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM balance_snapshot_runs WHERE taken_for = DATE '1970-01-01'")
            .await,
        1
    );
    assert!(count("SELECT count(*) FROM balance_snapshots").await > 0);
    // An on-demand snapshot at the sink's position.
    assert_eq!(count("SELECT ledger_balance_snapshot('pg')").await, i64::try_from(end).unwrap());
    old_task.abort();
    new_task.abort();
}

/// Goal: replaying the whole outbox into a populated read model changes nothing, and a
/// deposed leader's delivery is refused (fenced) without touching it. Method: export
/// everything, keep the outbox whole (a second cursor at 0), then deliver it all again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_outbox_changes_nothing_and_stale_terms_are_fenced() {
    let pg = Postgres::start();
    let ledger = Ledger::starting_at(DAY - 50 * 1_000_000);
    ledger.setup();
    let keep =
        CursorCommand::Advance { sink: SinkId::new("keep").unwrap(), next: EventSeq(0), term: 3 };
    assert_eq!(
        ledger.execute(Operation::Cursors(vec![keep])),
        Results::Cursors(vec![CursorResult::Ok])
    );
    let mut wallets = 0;
    for step in 0..400 {
        ledger.step(step, &mut wallets);
        if step == 200 {
            ledger.next_day();
        }
    }
    let events: Vec<Payload> = ledger_sm::query::events(&*ledger.store, EventSeq(0), 8_000)
        .unwrap()
        .iter()
        .map(Payload::new)
        .collect();
    assert_eq!(events.len() as u64, ledger.events_next());

    let mut first = sink(&pg);
    for chunk in events.chunks(50) {
        first.deliver(3, chunk).await.unwrap();
    }
    assert_eq!(first.position().await.unwrap(), Some(EventSeq(ledger.events_next())));
    let before = dump(&pg).await;
    assert!(before.len() > 1000, "{}", before.len());

    // The whole outbox again, in other batch boundaries, from a read model that forgot its
    // position.
    let client = connect(&pg.config()).await.unwrap();
    client.execute("UPDATE sync_cursor SET next_seq = 0 WHERE sink = 'pg'", &[]).await.unwrap();
    let mut again = sink(&pg);
    for chunk in events.chunks(37) {
        again.deliver(3, chunk).await.unwrap();
    }
    assert_eq!(dump(&pg).await, before);

    // A deposed leader (term 2) is fenced and writes nothing.
    client.execute("UPDATE sync_cursor SET next_seq = 0 WHERE sink = 'pg'", &[]).await.unwrap();
    let fenced = again.deliver(2, &events[..10]).await;
    assert!(matches!(fenced, Err(SinkError::Fenced(_))), "{fenced:?}");
    assert_eq!(again.position().await.unwrap(), Some(EventSeq(0)));
    // A gap (events after the position) is refused, never skipped.
    let gap = again.deliver(3, &events[5..10]).await;
    assert!(matches!(gap, Err(SinkError::Behind { .. })), "{gap:?}");
    assert_eq!(dump(&pg).await, before);
}

/// Goal: reconcile reports a wallet that differs, one that is missing in the read model and
/// one that should not be there. Method: tamper with an exported read model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_what_differs() {
    let pg = Postgres::start();
    let ledger = Ledger::starting_at(DAY - 50 * 1_000_000);
    ledger.setup();
    let mut wallets = 0;
    for step in 0..200 {
        ledger.step(step, &mut wallets);
    }
    let events: Vec<Payload> = ledger_sm::query::events(&*ledger.store, EventSeq(0), 8_000)
        .unwrap()
        .iter()
        .map(Payload::new)
        .collect();
    let mut sink = sink(&pg);
    sink.deliver(1, &events).await.unwrap();
    let mut client = connect(&pg.config()).await.unwrap();
    let clean = reconcile(&ledger.store, &mut client, "pg", 8, Duration::ZERO).await.unwrap();
    assert_eq!(clean.differences, vec![]);

    client
        .batch_execute(
            "UPDATE wallets SET credits_posted = credits_posted + 1 WHERE account_id = 105;
             DELETE FROM wallets WHERE account_id = 110;
             INSERT INTO wallets (account_id, updated_at, last_seq) VALUES (99999, now(), 0);",
        )
        .await
        .unwrap();
    let report = reconcile(&ledger.store, &mut client, "pg", 8, Duration::ZERO).await.unwrap();
    let accounts: Vec<&str> = report.differences.iter().map(|d| d.account.as_str()).collect();
    assert_eq!(accounts, ["105", "110", "99999"], "{report:?}");
    assert!(report.differences[1].postgres.is_none());
    assert!(report.differences[2].ledger.is_none());
}
