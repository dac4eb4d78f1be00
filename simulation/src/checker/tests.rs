//! The checker on its own, against a register: hand-written histories whose verdict is known,
//! and random histories built to be linearizable.

use proptest::prelude::*;

use super::*;

/// A read/write register starting at 0.
struct Register;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Write(u8),
    Read,
}

impl Model for Register {
    type State = u8;
    type Op = Op;
    /// A write answers 0; a read answers the value.
    type Ret = u8;

    fn init(&self) -> u8 {
        0
    }

    fn step(&self, state: &u8, op: &Op, ret: Option<&u8>) -> Option<u8> {
        match *op {
            Op::Write(value) => ret.is_none_or(|r| *r == 0).then_some(value),
            Op::Read => ret.is_none_or(|r| r == state).then_some(*state),
        }
    }
}

const BOUND: usize = 100_000;

fn w(client: u32, from: u64, to: u64, value: u8) -> Call<Op, u8> {
    Call::answered(client, from, to, Op::Write(value), 0)
}

fn r(client: u32, from: u64, to: u64, value: u8) -> Call<Op, u8> {
    Call::answered(client, from, to, Op::Read, value)
}

fn verdict(history: &[Call<Op, u8>]) -> Verdict {
    check(&Register, history, BOUND)
}

/// Goal: the verdicts of small histories drawn by hand. Method: each line is a history whose
/// answer a person can check on paper; the witness order, when there is one, is the expected one.
#[test]
fn hand_written_histories() {
    // Empty, and a single sequential client.
    assert_eq!(verdict(&[]), Verdict::Linearizable { order: vec![] });
    let sequential = [w(1, 0, 1, 1), r(1, 2, 3, 1), w(1, 4, 5, 2), r(1, 6, 7, 2)];
    assert_eq!(verdict(&sequential), Verdict::Linearizable { order: vec![0, 1, 2, 3] });
    // A read overlapping a write may see either value.
    assert!(verdict(&[w(1, 0, 10, 1), r(2, 5, 6, 1)]).is_linearizable());
    assert!(verdict(&[w(1, 0, 10, 1), r(2, 5, 6, 0)]).is_linearizable());
    // A read after the write was answered must see it (a stale read).
    let stale = [w(1, 0, 1, 1), r(2, 2, 3, 0)];
    assert_eq!(verdict(&stale), Verdict::NotLinearizable { longest: vec![0], unexplained: 1 });
    // A value nobody wrote.
    assert!(!verdict(&[w(1, 0, 10, 1), r(2, 5, 6, 7)]).is_linearizable());
    // New then old, both overlapping the write: once a read saw 1, a later read cannot see 0.
    assert!(!verdict(&[w(1, 0, 10, 1), r(2, 1, 2, 1), r(3, 3, 4, 0)]).is_linearizable());
    // The same reads, overlapping each other: 0 then 1 is an order that works.
    assert!(verdict(&[w(1, 0, 10, 1), r(2, 1, 5, 1), r(3, 3, 4, 0)]).is_linearizable());
    // Two overlapping writes, then reads that fix their order: 1 then 2.
    let ordered = [w(1, 0, 5, 1), w(2, 0, 5, 2), r(3, 6, 7, 2), r(3, 8, 9, 2)];
    assert!(verdict(&ordered).is_linearizable());
    // Reads that disagree on the last write after both writes ended.
    let split = [w(1, 0, 5, 1), w(2, 0, 5, 2), r(3, 6, 7, 2), r(4, 8, 9, 1)];
    assert!(!verdict(&split).is_linearizable());
}

/// Goal: calls never answered may have taken effect, at any moment after they were made, or
/// never. Method: a timed-out write seen, not seen, and seen then unseen.
#[test]
fn unanswered_calls_may_or_may_not_have_happened() {
    let lost = Call::unanswered(1, 0, Op::Write(1));
    assert!(verdict(&[lost.clone(), r(2, 5, 6, 0)]).is_linearizable());
    // Never answered, so never placed unless an answer needs it.
    assert_eq!(verdict(&[lost.clone(), r(2, 5, 6, 0)]), Verdict::Linearizable { order: vec![1] });
    let seen = [lost.clone(), r(2, 5, 6, 1)];
    assert_eq!(verdict(&seen), Verdict::Linearizable { order: vec![0, 1] });
    // Seen by one read, then missed by a later one: the write cannot be undone.
    assert!(!verdict(&[lost, r(2, 5, 6, 1), r(2, 7, 8, 0)]).is_linearizable());
    // It cannot take effect before it was made.
    assert!(!verdict(&[r(2, 0, 1, 1), Call::unanswered(1, 2, Op::Write(1))]).is_linearizable());
}

/// Goal: a search too large for its bound says so instead of guessing. Method: many
/// overlapping writes and a read that no order explains, with a tiny bound.
#[test]
fn a_bounded_search_is_undecided() {
    let mut history: Vec<Call<Op, u8>> = (1..=12u8).map(|i| w(i.into(), 0, 100, i)).collect();
    history.push(r(99, 200, 201, 50));
    assert_eq!(check(&Register, &history, 10), Verdict::Undecided { configurations: 10 });
    assert!(!verdict(&history).is_linearizable(), "with room the search decides");
}

/// One client's calls, as the test generates them: each gets an interval around the moment it
/// takes effect.
#[derive(Clone, Debug)]
struct Planned {
    op: Op,
    before: u64,
    after: u64,
    answered: bool,
}

fn planned() -> impl Strategy<Value = Vec<Planned>> {
    let op = prop_oneof![(1..4u8).prop_map(Op::Write), Just(Op::Read)];
    prop::collection::vec((op, 0..300u64, 0..300u64, prop::bool::weighted(0.9)), 1..24).prop_map(
        |calls| {
            calls
                .into_iter()
                .map(|(op, before, after, answered)| Planned { op, before, after, answered })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Goal: no false alarms. Method: run the calls one at a time on the register (so there is
    /// a true order), record each over a random interval around its moment, drop some answers;
    /// the checker must find an order. Then corrupt one read's answer to a value never written
    /// and the checker must refuse.
    #[test]
    fn histories_with_a_true_order_are_linearizable(calls in planned()) {
        let mut state = 0u8;
        let mut history = Vec::new();
        for (moment, call) in calls.iter().enumerate() {
            // Moments 100 apart, intervals up to 300 either side: neighbours overlap.
            let at = 100 * (moment as u64 + 3);
            let ret = match call.op {
                Op::Write(value) => { state = value; 0 }
                Op::Read => state,
            };
            let client = u32::try_from(moment).unwrap();
            history.push(if call.answered {
                Call::answered(client, at - call.before, at + call.after, call.op, ret)
            } else {
                Call::unanswered(client, at - call.before, call.op)
            });
        }
        let verdict = check(&Register, &history, BOUND);
        prop_assert!(verdict.is_linearizable(), "{verdict:?} for {history:?}");
        if let Some(read) = history.iter_mut().find(|c| c.op == Op::Read && c.answered.is_some()) {
            read.answered.as_mut().unwrap().1 = 9;
            prop_assert!(!check(&Register, &history, BOUND).is_linearizable());
        }
    }
}
