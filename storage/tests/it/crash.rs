//! Crash test with real processes: a child process writes through a RocksDB store (log appends
//! and ledger batches, each synced) and reports each acknowledgement on stdout; the parent kills
//! it with SIGKILL at a random point, reopens the store, and checks that everything acknowledged
//! is there, verifies, and satisfies the ledger's invariants. Several rounds, each resuming the
//! store the previous one killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use ledger_sm::state::StateRead;
use storage::{LogEntry, RocksKv, Store};

use crate::conformance::{execute, small_options, CLUSTER};
use crate::workload::{self, Rng};

const CHILD_DIR: &str = "STORAGE_CRASH_CHILD_DIR";

#[test]
fn sigkill_loses_no_acknowledged_write() {
    // Re-executed as the child (see `write_until_killed`): write until killed.
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        write_until_killed(dir.as_ref());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xdead);
    let mut acknowledged_log = 0u64;
    let mut acknowledged_batches = 0u64;
    for round in 0..4 {
        let kill_after = 5 + rng.below(40);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::sigkill_loses_no_acknowledged_write", "--nocapture"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(index) = line.strip_prefix("log ") {
                acknowledged_log = index.parse().unwrap();
                seen += 1;
            } else if let Some(count) = line.strip_prefix("batch ") {
                acknowledged_batches = count.parse().unwrap();
                seen += 1;
            }
            if seen >= kill_after {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL: no destructors, no flush.
        child.wait().unwrap();
        let store =
            Store::open(RocksKv::open(dir.path(), small_options()).unwrap(), CLUSTER).unwrap();
        let entries = store.log_entries(1, acknowledged_log + 1).unwrap();
        assert_eq!(
            entries.len() as u64,
            acknowledged_log,
            "round {round}: acknowledged entries lost"
        );
        let meta = store.meta().unwrap();
        assert!(
            meta.batches_applied >= acknowledged_batches,
            "round {round}: acknowledged batch lost"
        );
        ledger_sm::invariants::check(&store.records().unwrap()).unwrap();
    }
    assert!(acknowledged_log > 0 && acknowledged_batches > 0);
}

/// The child's side: appends log entries and applies ledger batches through the store, and
/// prints each acknowledgement only after its (synced) write returned.
fn write_until_killed(dir: &std::path::Path) {
    let store = Store::open(RocksKv::open(dir, small_options()).unwrap(), CLUSTER).unwrap();
    let mut next_index = store.log_bounds().unwrap().map_or(1, |(_, last)| last.index + 1);
    let mut batches = workload::setup();
    let mut rng = Rng(1);
    batches.extend((1..=10_000).map(|n| workload::batch(&mut rng, n)));
    let done = usize::try_from(store.meta().unwrap().batches_applied).unwrap();
    let mut stdout = std::io::stdout().lock();
    for batch in &batches[done..] {
        let entry = LogEntry { index: next_index, payload: vec![7; 100] };
        store.log_append(&[entry]).unwrap();
        writeln!(stdout, "log {next_index}").unwrap();
        stdout.flush().unwrap();
        next_index += 1;
        execute(&store, batch, &next_index.to_le_bytes());
        writeln!(stdout, "batch {}", store.meta().unwrap().batches_applied).unwrap();
        stdout.flush().unwrap();
    }
}
