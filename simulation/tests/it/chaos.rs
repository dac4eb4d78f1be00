//! Goal: under SIGKILL and SIGSTOP of nodes, with clients writing, retrying (the same request,
//! and the same id with other fields) and reading, every history the clients saw is
//! linearizable against the bank model, and the nodes converge to one state hash. Method: the
//! chaos harness on three real `ledgerd` processes for a short, fixed seed.

use std::path::PathBuf;
use std::time::Duration;

use simulation::bank::{check_per_account, Finding, Op, Ret};
use simulation::chaos::{self, ChaosOptions, CONFIGURATIONS_MAX};

/// `ledgerd`, built by `cargo test --workspace` in the same target directory.
fn ledgerd() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let ledgerd = profile.join("ledgerd");
    assert!(ledgerd.exists(), "{} is missing: run the tests with --workspace", ledgerd.display());
    ledgerd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_stays_linearizable() {
    let _one_at_a_time = crate::SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let options = ChaosOptions {
        ledgerd: ledgerd(),
        dir: dir.path().to_owned(),
        seed: 7,
        clients: 6,
        wallets: 4,
        load: Duration::from_secs(16),
        fault_gap: Duration::from_millis(700),
    };
    let report = chaos::run(&options).await.unwrap();
    eprintln!("{report:#?}");
    assert_eq!(report.finding, Finding::Linearizable, "seed {}", report.seed);
    assert_eq!(report.state_hashes.len(), 3);
    assert!(report.state_hashes.iter().all(|h| *h == report.state_hashes[0]));
    // The run did what it is for: faults of both kinds, and answers of every kind.
    // Peer traffic went through the proxy, from the nodes' own source addresses.
    assert!(report.peer_connections >= 6, "{report:?}");
    for fault in chaos::FAULTS {
        assert!(report.faults.get(&fault).is_some_and(|n| *n >= 1), "no {fault:?}: {report:?}");
    }
    for answer in ["Ok", "Exists", "ExceedsCredits", "ExistsWithDifferentFields", "Balance"] {
        assert!(report.answers.contains_key(answer), "no {answer} in {:?}", report.answers);
    }
    // The checker has teeth on this history: one read that saw a point too many, or a
    // duplicate answered as new, is caught.
    let mut history = report.history.clone();
    let read = history.iter_mut().rev().find_map(|c| match &mut c.answered {
        Some((_, Ret::Balance(balance))) => Some(balance),
        _ => None,
    });
    // One point more than every call never answered could add, had they all taken effect.
    let unknown: u128 = report
        .history
        .iter()
        .filter(|c| c.answered.is_none())
        .filter_map(|c| match c.op {
            Op::Transfer(t) | Op::Hold(t) | Op::Balancing(t) => Some(t.amount),
            Op::Reverse(r) => Some(r.original.amount.max(r.amount)),
            Op::Resolve(_) | Op::Read(_) => None,
        })
        .sum();
    read.expect("reads were answered").credits += unknown + 1;
    let finding = check_per_account(&report.bank, &history, CONFIGURATIONS_MAX);
    assert!(matches!(finding, Finding::Violation(_)), "{finding:?}");
    let mut history = report.history.clone();
    // A retry answered `Exists` whose first attempt was answered `Ok` before it was made.
    let duplicate = (0..history.len()).find(|r| {
        let retry = &history[*r];
        matches!(retry.answered, Some((_, Ret::Exists)))
            && history.iter().any(|first| {
                first.op == retry.op
                    && first
                        .answered
                        .as_ref()
                        .is_some_and(|(at, ret)| *ret == Ret::Ok && *at < retry.invoked)
            })
    });
    let duplicate = duplicate.expect("a retry of an acknowledged transfer");
    history[duplicate].answered.as_mut().unwrap().1 = Ret::Ok;
    let finding = check_per_account(&report.bank, &history, CONFIGURATIONS_MAX);
    assert!(matches!(finding, Finding::Violation(_)), "{finding:?}");
}
