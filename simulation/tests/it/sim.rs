//! The seeded simulation through `ledger-sim`, as CI runs it: a fixed set of seeds, a replay,
//! and a planted bug.

use std::process::Command;

/// Every fault kind the simulation injects; the fixed seeds must cover each.
const FAULT_KINDS: [&str; 11] = [
    "partition",
    "one-way partition",
    "held messages",
    "message loss",
    "delay",
    "crash",
    "crash with a torn write",
    "fsync failure",
    "corruption",
    "leader transfer",
    "node replacement",
];

fn ledger_sim(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ledger-sim"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("ledger-sim runs");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Goal: 200 seeds of faults keep every history linearizable, every node's state within the
/// ledger's invariants, and the cluster converging after healing; the seeds cover every fault
/// kind and every recovery. Regression seeds: 2, a node that kept serving errors after a read
/// found a corrupted row (it now halts and is replaced); 173, a node restarted on a corrupted
/// row that, as leader, seeded two replacement nodes with it through a snapshot (snapshots now
/// check every row, both ways), and a node that failed to start left its port accepting.
#[test]
fn two_hundred_seeds_pass_and_cover_every_fault() {
    let _one_at_a_time = crate::SERIAL.blocking_lock();
    let (code, out) = ledger_sim(&["--seeds", "1..201"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("200 seeds passed"), "{out}");
    let faults = out.lines().find(|l| l.starts_with("faults by kind:")).expect("a fault count");
    for kind in FAULT_KINDS {
        assert!(faults.contains(&format!("\"{kind}\":")), "no {kind} in {faults}");
    }
    let outcomes = out.lines().find(|l| l.starts_with("outcomes by kind:")).expect("outcomes");
    for outcome in ["corruption caught", "node replaced", "stopped and restarted"] {
        assert!(outcomes.contains(outcome), "no {outcome} in {outcomes}");
    }
    let answers = out.lines().find(|l| l.starts_with("answers by kind:")).expect("answers");
    for answer in [
        "Ok",
        "Exists",
        "ExceedsCredits",
        "ExistsWithDifferentFields",
        "PendingTransferNotFound",
        "PendingTransferAlreadyPosted",
        "PendingTransferAlreadyVoided",
        "ExceedsPendingTransferAmount",
        "ReversedTransferNotFound",
        "ReversedTransferNotReversible",
        "ExceedsReversibleAmount",
        "Balance",
    ] {
        assert!(answers.contains(&format!("\"{answer}\":")), "no {answer} in {answers}");
    }
    eprintln!("{faults}\n{outcomes}\n{answers}");
}

/// Goal: the seeds past the fixed range that once failed pass. 227: after a one-way partition
/// healed, the leader's connections to both followers stayed open but stalled, and it had no
/// quorum until a 10 s keep-alive noticed (peer connections are now pinged every 2 s). 267:
/// the checker's memo kept whole model states and ran out of memory (it now keeps 128-bit
/// fingerprints).
#[test]
fn regression_seeds_pass() {
    let _one_at_a_time = crate::SERIAL.blocking_lock();
    for seed in ["227", "267"] {
        let (code, out) = ledger_sim(&["--seed", seed]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.starts_with(&format!("seed {seed}: ")), "{out}");
    }
}

/// Goal: a seed replays exactly: the same trace hash twice, each in a fresh process.
#[test]
fn a_seed_replays_exactly() {
    let _one_at_a_time = crate::SERIAL.blocking_lock();
    let (code, out) = ledger_sim(&["--seed", "5", "--check-determinism"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("seed 5:") && out.contains("trace "), "{out}");
}

/// Goal: the simulation catches a planted bug. Disks that acknowledge a sync without making
/// anything durable (a write acknowledged before it is on disk) make seed 3 fail as a safety
/// failure: a node comes back from a crash without the log it had acknowledged.
#[test]
fn a_planted_lying_fsync_fails_seed_3() {
    let _one_at_a_time = crate::SERIAL.blocking_lock();
    let (code, out) = ledger_sim(&["--seed", "3", "--planted-bug", "lying-fsync"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("seed 3: SAFETY FAILURE"), "{out}");
    // Without the bug, the same seed passes.
    let (code, out) = ledger_sim(&["--seed", "3"]);
    assert_eq!(code, Some(0), "{out}");
}
