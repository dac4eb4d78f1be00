//! The exporter over a real store and the real state machine (`common::Ledger` applies
//! batches itself, as raft would; a `common::Node` plays the leader).

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ledger;
use ledger_sm::command::{CursorCommand, Operation};
use ledger_sm::state::StateRead;
use ledger_sm::types::{AccountKind, EventSeq, SinkId};
use sync_out::file::FileSink;
use sync_out::payload::Payload;
use sync_out::{Exporter, ExporterConfig, Leadership, Sink, SinkError};

/// The common ledger, and account 2 (a wallet) to earn into.
fn ledger() -> Arc<Ledger> {
    let ledger = Ledger::new();
    ledger.setup();
    ledger.create(&[(2, AccountKind::CustomerWallet)]);
    ledger
}

fn config() -> ExporterConfig {
    ExporterConfig {
        batch_events: 7,
        poll: Duration::from_millis(5),
        advance_every: Duration::from_millis(20),
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
    }
}

fn lines(path: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Complete lines only: a torn last line is the sink's to cut off.
    let complete = text.split_inclusive('\n').filter(|line| line.ends_with('\n'));
    complete.map(|line| serde_json::from_str::<Payload>(line).unwrap().seq()).collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Goal: every committed event reaches the file once, in order, across a change of leader
/// and a restart that finds a torn last line; the replicated cursor follows, and the outbox
/// drops what the sink holds. Method: a file sink over a real store.
#[tokio::test]
async fn events_reach_the_file_once_in_order_and_leave_the_outbox() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.jsonl");
    let sink_id = SinkId::new("file").unwrap();
    let ledger = ledger();
    let node = ledger.node(1);
    ledger.earn(1, 30);
    let exporter = |ledger: &Arc<Ledger>| {
        let sink = FileSink::new(sink_id, path.clone());
        Exporter::new(Arc::clone(&ledger.store), sink, Arc::clone(&node), config())
    };
    let first = exporter(&ledger);
    let status = first.status();
    let task = tokio::spawn(first.run());
    let all = ledger.events_next();
    until("the first events", || lines(&path).len() as u64 == all).await;
    until("the cursor", || ledger.store.meta().unwrap().events_first.0 == all).await;
    assert!(ledger.store.events(EventSeq(0), 10).unwrap().is_empty());

    // Deposed: nothing moves; leader again in a newer term: export resumes.
    node.term.store(0, SeqCst);
    until("the pause", || !status.lock().unwrap().active).await;
    ledger.earn(100, 10);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lines(&path).len() as u64, all);
    node.term.store(2, SeqCst);
    let all = ledger.events_next();
    until("events of term 2", || lines(&path).len() as u64 == all).await;
    task.abort();

    // A crash tore the last line; a restarted exporter cuts it off and goes on.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"seq\":\"4"))
        .unwrap();
    ledger.earn(200, 5);
    let task = tokio::spawn(exporter(&ledger).run());
    let all = ledger.events_next();
    until("events after the restart", || lines(&path).len() as u64 == all).await;
    until("the cursor after the restart", || ledger.store.meta().unwrap().events_first.0 == all)
        .await;
    task.abort();
    assert_eq!(lines(&path), (0..all).collect::<Vec<_>>());
    let cursors = ledger.store.cursors().unwrap();
    assert_eq!((cursors[0].next.0, cursors[0].term), (all, 2));
}

/// Goal: a sink whose own position is below the outbox (it lost what was compacted) is
/// reported, not silently skipped ahead. Method: compact past a file's end, then export.
#[tokio::test]
async fn a_sink_behind_the_outbox_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("events.jsonl");
    let ledger = ledger();
    let node = ledger.node(1);
    ledger.earn(1, 5);
    // Another sink took everything, so the outbox is empty; this file holds only event 0.
    let other = SinkId::new("other").unwrap();
    let next = EventSeq(ledger.events_next());
    node.propose(vec![CursorCommand::Advance { sink: other, next, term: 1 }]).await.unwrap();
    let first = ledger_sm::query::events(&*ledger.store, EventSeq(0), 1);
    assert!(first.unwrap().is_empty());
    std::fs::write(&path, b"{\"seq\":\"0\",\"type\":\"asset_created\",\"timestamp\":\"1\"}\n")
        .unwrap();
    let sink = FileSink::new(SinkId::new("file").unwrap(), path.clone());
    let exporter = Exporter::new(Arc::clone(&ledger.store), sink, Arc::clone(&node), config());
    let status = exporter.status();
    let task = tokio::spawn(exporter.run());
    until("the report", || status.lock().unwrap().last_error.is_some()).await;
    task.abort();
    let error = status.lock().unwrap().last_error.clone().unwrap();
    assert!(error.contains("rebuild"), "{error}");
    assert_eq!(lines(&path), [0]);
}

/// A sink that records what it receives and, on its first delivery, lets another sink compact
/// the whole outbox and commits new events: the events it has not taken yet are gone.
struct Overtaken {
    ledger: Arc<Ledger>,
    seen: Arc<Mutex<Vec<u64>>>,
    overtaken: bool,
}

impl Sink for Overtaken {
    fn id(&self) -> SinkId {
        SinkId::new("overtaken").unwrap()
    }

    async fn position(&mut self) -> Result<Option<EventSeq>, SinkError> {
        Ok(None)
    }

    async fn deliver(&mut self, _term: u64, events: &[Payload]) -> Result<(), SinkError> {
        self.seen.lock().unwrap().extend(events.iter().map(Payload::seq));
        if !std::mem::replace(&mut self.overtaken, true) {
            let other = SinkId::new("other").unwrap();
            let next = EventSeq(self.ledger.events_next());
            let advance = CursorCommand::Advance { sink: other, next, term: 1 };
            self.ledger.execute(Operation::Cursors(vec![advance]));
            self.ledger.earn(500, 3);
        }
        Ok(())
    }
}

/// Goal: events compacted away under a running export (the sink had no cursor yet to hold
/// them) are reported as a gap, never skipped over. Method: a sink that is overtaken mid-way.
#[tokio::test]
async fn a_gap_under_a_running_export_is_reported() {
    let ledger = ledger();
    let node = ledger.node(1);
    ledger.earn(1, 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Overtaken { ledger: Arc::clone(&ledger), seen: Arc::clone(&seen), overtaken: false };
    let exporter = Exporter::new(Arc::clone(&ledger.store), sink, Arc::clone(&node), config());
    let status = exporter.status();
    let task = tokio::spawn(exporter.run());
    until("the report", || status.lock().unwrap().last_error.is_some()).await;
    task.abort();
    let error = status.lock().unwrap().last_error.clone().unwrap();
    assert!(error.contains("rebuild"), "{error}");
    // Only the first delivery (the batch size) reached the sink; nothing after the gap did.
    assert_eq!(*seen.lock().unwrap(), (0..7).collect::<Vec<_>>());
}
