//! Property tests: random workloads of every command kind, applied to the state machine and to
//! the reference model; after every batch the results, the records and the invariants must
//! agree. And determinism: two fresh stores fed the same batches end byte-identical.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};

use ledger_sm::mem::MemState;
use ledger_sm::result::Results;
use ledger_sm::types::{TransferCode, TransferFlags};

use crate::gen::{setup, workload, Driver, OpSeed};
use crate::harness::Pair;
use crate::model::Model;

/// Runs a workload after the setup through the state machine and the model; `Err` is the first
/// difference with a replayable list of the batches.
pub fn run(steps: &[(i64, OpSeed)]) -> Result<Pair, String> {
    let mut pair = Pair::new();
    let mut driver = Driver::new();
    for batch in setup() {
        pair.step(&batch)?;
    }
    for (step, seed) in steps {
        let batch = driver.batch(*step, seed, &pair.model);
        if let Err(error) = pair.step(&batch) {
            return Err(format!("{error}\nreplay:\n{}", pair.replay()));
        }
    }
    Ok(pair)
}

/// Cases per property: modest by default (the whole binary stays well under a minute in the dev
/// profile), larger with `RUN_SLOW_TESTS`.
fn cases(default: u32) -> u32 {
    if std::env::var_os("RUN_SLOW_TESTS").is_some() {
        default * 20
    } else {
        default
    }
}

fn config(default: u32) -> ProptestConfig {
    ProptestConfig { cases: cases(default), failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Goal: the state machine does exactly what the spec says, for every command kind and
    /// their interleavings. Method: random workloads (see `gen`) over a small id space, so that
    /// retries, conflicting retries, chains with a failing member, holds timing out, lots
    /// expiring, reversals of consumed lots, gift-card life cycles, freezes, erasures and
    /// overflows all happen; each batch goes to `MemState` and to the independent model, whose
    /// results and records must be equal, and `invariants::check` must pass after every batch.
    #[test]
    fn state_machine_matches_model(steps in workload(1..=40)) {
        run(&steps).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    /// Goal: as above, deeper into a ledger's life: ids recycled many times over, many lots per
    /// account, long-lived holds and debts. Method: the same comparison over fewer but longer
    /// workloads (100 to 200 batches).
    #[test]
    fn long_workloads_match_model(steps in workload(100..=200)) {
        run(&steps).map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Goal: apply is deterministic. Method: the same random workload on two fresh stores must
    /// give identical results, canonical bytes, meta (state hash and audit chain included) and
    /// events.
    #[test]
    fn same_batches_same_state(steps in workload(1..=30)) {
        let mut first = MemState::with_journal();
        let mut second = MemState::with_journal();
        // The model only steers the workload's references here.
        let mut model = Model::new();
        let mut driver = Driver::new();
        let setup = setup();
        let batches = setup.iter().cloned().map(Ok).chain(steps.iter().map(Err));
        for item in batches {
            let batch = match item {
                Ok(batch) => batch,
                Err((step, seed)) => driver.batch(*step, seed, &model),
            };
            model.execute(&batch);
            prop_assert_eq!(first.execute(&batch), second.execute(&batch));
        }
        prop_assert_eq!(first.meta(), second.meta());
        prop_assert_eq!(first.all_events(), second.all_events());
        prop_assert!(first.canonical_bytes() == second.canonical_bytes());
    }
}

/// What a workload reached: result codes (prefixed by the operation) and a few situations.
fn reached(pair: &Pair, seen: &mut BTreeSet<String>) {
    let mut model = Model::new();
    for batch in &pair.history {
        let keys: Vec<String> = match model.execute(batch) {
            Results::CreateTransfers(r) => r.iter().map(|o| format!("T {:?}", o.result)).collect(),
            Results::CreateAccounts(r) => r.iter().map(|o| format!("A {:?}", o.result)).collect(),
            Results::ChangeAccounts(r) => r.iter().map(|o| format!("C {:?}", o.result)).collect(),
            Results::IssueGiftCards(r) => r.iter().map(|o| format!("I {:?}", o.result)).collect(),
            Results::CreateAssets(r) => r.iter().map(|o| format!("S {o:?}")).collect(),
            Results::Erase(r) => r.iter().map(|o| format!("E {o:?}")).collect(),
            Results::Tick(t) => vec![
                format!("K holds {}", t.holds_expired.min(1)),
                format!("K lots {}", t.lots_expired.min(1)),
            ],
            Results::Cursors(r) => r.iter().map(|o| format!("U {o:?}")).collect(),
            Results::BatchRefused(refusal) => vec![format!("B {refusal:?}")],
        };
        seen.extend(keys);
        if model.accounts.values().any(|a| a.overdraft_forced > 0) {
            seen.insert("forced debt".into());
        }
    }
    let transfers = &model.transfers;
    for t in transfers.values() {
        if t.code == TransferCode::Clear {
            seen.insert("card cleared".into());
        }
        if t.flags.has(TransferFlags::POST_PENDING) && t.amount < transfers[&t.pending_id].amount {
            seen.insert("partial post".into());
        }
        if t.code.is_reversal() && transfers[&t.reverses].lots_consumed.is_empty() {
            seen.insert("consumption given back".into());
        }
        if t.lots_consumed.len() > 1 {
            seen.insert("consumed several lots".into());
        }
    }
}

/// Goal: the workloads keep reaching what the properties are meant to test (a change to the
/// generator that starves a path fails here, not silently). Method: `WORKLOADS` workloads from the
/// deterministic runner, the outcomes and situations they reach, against a list.
/// Workloads the coverage test draws: enough that every listed outcome shows up.
const WORKLOADS: usize = 512;

#[test]
fn workloads_reach_every_interesting_outcome() {
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..WORKLOADS {
        let steps = workload(1..=40).new_tree(&mut runner).expect("workload").current();
        let pair = run(&steps).unwrap_or_else(|error| panic!("{error}"));
        reached(&pair, &mut seen);
    }
    let wanted = [
        "A Exists",
        "A ExistsWithDifferentKind",
        "A LinkedEventChainOpen",
        "A LinkedEventFailed",
        "A Ok",
        "B Empty",
        "C BalanceNotZero",
        "C BalancesViolateChange",
        "C Ok",
        "C PendingNotZero",
        "C StatusForbids",
        "C TransferExists",
        "E Ok",
        "I Ok",
        "I Account(CodeHashExists)",
        "I KindMustBeGiftCard",
        "I Load(ExceedsCredits)",
        "K holds 1",
        "K lots 1",
        "S Ok",
        "T CreditAccountNotActive",
        "T DebitAccountNotActive",
        "T ExceedsCredits",
        "T ExceedsDebits",
        "T ExceedsPendingTransferAmount",
        "T ExceedsReversibleAmount",
        "T Exists",
        "T ExistsWithDifferentAmount",
        "T ExistsWithDifferentFlags",
        "T ExpiresAtMustBeInTheFuture",
        "T LinkedEventChainOpen",
        "T LinkedEventFailed",
        "T Ok",
        "T OverflowsDebits",
        "T OverflowsDebitsPosted",
        "T PendingTransferAlreadyPosted",
        "T PendingTransferAlreadyVoided",
        "T PendingTransferExpired",
        "T PendingTransferHasDifferentAmount",
        "T ReversedTransferNotReversible",
        "card cleared",
        "consumed several lots",
        "consumption given back",
        "forced debt",
        "partial post",
    ];
    let missing: Vec<_> = wanted.iter().filter(|key| !seen.contains(**key)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}
