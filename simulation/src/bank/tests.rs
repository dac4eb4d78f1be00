//! The bank model and its partitions: the failures the simulation exists to catch (double
//! spends, lost acknowledged writes, a retry applied twice, a refusal turned into a transfer,
//! stale reads), each as a small history, beside its correct twin.

use proptest::prelude::*;

use super::*;

const BOUND: usize = 200_000;
/// Account 0 is the program's (unguarded); 1 and 2 are wallets (guarded).
const PROGRAM: usize = 0;
const ALICE: usize = 1;
const BOB: usize = 2;

fn bank() -> Bank {
    Bank::new(vec![false, true, true])
}

fn transfer(id: u128, debit: usize, credit: usize, amount: u128) -> Op {
    Op::Transfer(Transfer { id, debit, credit, amount })
}

fn call(client: u32, from: u64, to: u64, op: Op, ret: Ret) -> Call<Op, Ret> {
    Call::answered(client, from, to, op, ret)
}

fn balance(debits: u128, credits: u128) -> Ret {
    Ret::Balance(Balance { debits, credits, ..Balance::default() })
}

/// Both checks, which must agree on histories small enough for the whole bank.
fn finding(history: &[Call<Op, Ret>]) -> Finding {
    let per_account = check_per_account(&bank(), history, BOUND);
    let whole = check_whole(&bank(), history, BOUND);
    assert_eq!(
        per_account == Finding::Linearizable,
        whole == Finding::Linearizable,
        "per account: {per_account:?}, whole: {whole:?}"
    );
    per_account
}

fn linearizable(history: &[Call<Op, Ret>]) -> bool {
    finding(history) == Finding::Linearizable
}

/// Goal: two concurrent spends of one balance cannot both succeed. Method: Alice earns 10,
/// then two overlapping burns of 10 — both `Ok` is a double spend; one `Ok` and one refusal is
/// fine either way round.
#[test]
fn a_double_spend_is_caught() {
    let earn = call(1, 0, 1, transfer(1, PROGRAM, ALICE, 10), Ret::Ok);
    let burn = |id: u32, ret| call(id, 2, 5, transfer(id.into(), ALICE, PROGRAM, 10), ret);
    assert!(!linearizable(&[earn.clone(), burn(2, Ret::Ok), burn(3, Ret::Ok)]));
    assert!(linearizable(&[earn.clone(), burn(2, Ret::Ok), burn(3, Ret::ExceedsCredits)]));
    assert!(linearizable(&[earn, burn(2, Ret::ExceedsCredits), burn(3, Ret::Ok)]));
}

/// Goal: a hold counts against the wallet until resolved, and each resolve answers by what
/// became of the hold. Method: Alice earns 10 and holds 8: a burn of 5 is refused while the
/// hold stands; a post of 3 moves 3 and releases the other 5; a second resolve finds it
/// posted; a void of a hold never applied finds nothing; a post of more than was held is
/// refused, and its retry answers the same refusal.
#[test]
fn holds_count_until_resolved() {
    let hold = Transfer { id: 2, debit: ALICE, credit: PROGRAM, amount: 8 };
    let resolve = |id, amount, void| Op::Resolve(Resolve { id, hold, amount, void });
    let pending = |debits, debits_pending| {
        Ret::Balance(Balance { debits, credits: 10, debits_pending, credits_pending: 0 })
    };
    let history = [
        call(1, 0, 1, transfer(1, PROGRAM, ALICE, 10), Ret::Ok),
        call(1, 2, 3, Op::Hold(hold), Ret::Ok),
        call(1, 4, 5, Op::Read(ALICE), pending(0, 8)),
        call(1, 6, 7, transfer(3, ALICE, PROGRAM, 5), Ret::ExceedsCredits),
        call(1, 8, 9, resolve(4, 9, false), Ret::ExceedsPendingTransferAmount),
        call(1, 10, 11, resolve(4, 9, false), Ret::ExceedsPendingTransferAmount),
        call(1, 12, 13, resolve(5, 3, false), Ret::Ok),
        call(1, 14, 15, Op::Read(ALICE), pending(3, 0)),
        call(1, 16, 17, resolve(6, 0, true), Ret::PendingTransferAlreadyPosted),
        call(1, 18, 19, transfer(7, ALICE, PROGRAM, 7), Ret::Ok),
    ];
    assert!(linearizable(&history));
    // The hold ignored: the burn of 5 succeeding is no order's answer.
    let mut ignored = history.clone();
    ignored[3].answered = Some((7, Ret::Ok));
    assert!(!linearizable(&ignored));
    // The post released nothing: the last burn of 7 could not have succeeded.
    let mut kept = history.clone();
    kept[7].answered = Some((15, pending(3, 5)));
    assert!(!linearizable(&kept));
    // A refusal turned into a post by its retry.
    let mut turned = history.clone();
    turned[5].answered = Some((11, Ret::Ok));
    assert!(!linearizable(&turned));
    // A void of a hold that was never applied.
    let never = Transfer { id: 9, debit: ALICE, credit: PROGRAM, amount: 1 };
    let void = Op::Resolve(Resolve { id: 10, hold: never, amount: 0, void: true });
    assert!(linearizable(&[call(1, 0, 1, void, Ret::PendingTransferNotFound)]));
    assert!(!linearizable(&[call(1, 0, 1, void, Ret::Ok)]));
}

/// Goal: a transfer is reversed at most once in total, only when applied and reversible, and
/// a reversal never overdraws a wallet. Method: Alice earns 10 and burns 6; reversing the earn
/// would overdraw her; the burn is refunded 4, then 3 is too much, then the 2 left (amount
/// zero), then nothing is left; a reversal of a reversal, and of a transfer never applied,
/// are refused. Twins: a second refund of all that is left succeeding is a double refund; a
/// read that missed a refund is a lost write.
#[test]
fn reversals_undo_at_most_once() {
    let earn = Transfer { id: 1, debit: PROGRAM, credit: ALICE, amount: 10 };
    let burn = Transfer { id: 2, debit: ALICE, credit: PROGRAM, amount: 6 };
    let refund = Transfer { id: 4, debit: PROGRAM, credit: ALICE, amount: 4 };
    let never = Transfer { id: 99, debit: ALICE, credit: PROGRAM, amount: 1 };
    let reverse = |id, original, amount| Op::Reverse(Reversal { id, original, amount });
    let history = [
        call(1, 0, 1, Op::Transfer(earn), Ret::Ok),
        call(1, 2, 3, Op::Transfer(burn), Ret::Ok),
        call(1, 4, 5, reverse(3, earn, 0), Ret::ExceedsCredits),
        call(1, 6, 7, reverse(4, burn, 4), Ret::Ok),
        call(1, 8, 9, reverse(5, burn, 3), Ret::ExceedsReversibleAmount),
        call(1, 10, 11, reverse(6, burn, 0), Ret::Ok),
        call(1, 12, 13, reverse(7, burn, 0), Ret::ExceedsReversibleAmount),
        call(1, 14, 15, reverse(8, refund, 1), Ret::ReversedTransferNotReversible),
        call(1, 16, 17, reverse(9, never, 0), Ret::ReversedTransferNotFound),
        call(1, 18, 19, reverse(4, burn, 4), Ret::Exists),
        call(1, 20, 21, Op::Read(ALICE), balance(6, 16)),
    ];
    assert!(linearizable(&history));
    let mut double = history.clone();
    double[6].answered = Some((13, Ret::Ok));
    assert!(!linearizable(&double));
    let mut lost = history.clone();
    lost[10].answered = Some((21, balance(6, 14)));
    assert!(!linearizable(&lost));
}

/// Goal: a balancing burn moves what is available and no more. Method: Alice earns 10 and
/// holds 3; a balancing burn of 100 moves 7 (a read shows it), and a second one finds nothing
/// (`ExceedsCredits`); once the hold is voided, one more moves the 3 released, and can be
/// refunded whole. Twin: the second burn succeeding is an overdraft.
#[test]
fn a_balancing_burn_moves_what_is_available() {
    let hold = Transfer { id: 2, debit: ALICE, credit: PROGRAM, amount: 3 };
    let burn_all = |id| Op::Balancing(Transfer { id, debit: ALICE, credit: PROGRAM, amount: 100 });
    let pending = |debits, debits_pending| {
        Ret::Balance(Balance { debits, credits: 10, debits_pending, credits_pending: 0 })
    };
    let history = [
        call(1, 0, 1, transfer(1, PROGRAM, ALICE, 10), Ret::Ok),
        call(1, 2, 3, Op::Hold(hold), Ret::Ok),
        call(1, 4, 5, burn_all(3), Ret::Ok),
        call(1, 6, 7, Op::Read(ALICE), pending(7, 3)),
        call(1, 8, 9, burn_all(4), Ret::ExceedsCredits),
        call(1, 10, 11, Op::Resolve(Resolve { id: 5, hold, amount: 0, void: true }), Ret::Ok),
        call(1, 12, 13, burn_all(6), Ret::Ok),
        call(1, 14, 15, Op::Read(ALICE), pending(10, 0)),
    ];
    assert!(linearizable(&history));
    let mut overdraft = history.clone();
    overdraft[4].answered = Some((9, Ret::Ok));
    assert!(!linearizable(&overdraft));
    let moved = Transfer { id: 6, debit: ALICE, credit: PROGRAM, amount: 100 };
    let refund = Op::Reverse(Reversal { id: 7, original: moved, amount: 3 });
    let mut refunded = history.to_vec();
    refunded.push(call(1, 16, 17, refund, Ret::Ok));
    assert!(linearizable(&refunded));
    refunded[8].op = Op::Reverse(Reversal { id: 7, original: moved, amount: 4 });
    refunded[8].answered = Some((17, Ret::ExceedsReversibleAmount));
    assert!(linearizable(&refunded));
}

/// Goal: an acknowledged write survives, and reads after it see it. Method: an earn answered
/// `Ok`, then a read of zero.
#[test]
fn a_lost_write_is_caught() {
    let earn = call(1, 0, 1, transfer(1, PROGRAM, ALICE, 10), Ret::Ok);
    let Finding::Violation(violation) =
        finding(&[earn.clone(), call(2, 2, 3, Op::Read(ALICE), balance(0, 0))])
    else {
        panic!("a lost write passed");
    };
    assert_eq!(violation.accounts, [ALICE]);
    assert_eq!(violation.unexplained, 1);
    assert!(linearizable(&[earn, call(2, 2, 3, Op::Read(ALICE), balance(0, 10))]));
}

/// Goal: a retry with the same id is answered from the record and never applied twice.
/// Method: an earn that timed out, retried: `Exists` with one credit is right; `Ok` (applied
/// again), or two credits seen, is a duplicate.
#[test]
fn a_duplicate_is_caught() {
    let first = Call::unanswered(1, 0, transfer(7, PROGRAM, ALICE, 5));
    let read = |credits| call(2, 20, 21, Op::Read(ALICE), balance(0, credits));
    let retry = |ret| call(1, 10, 11, transfer(7, PROGRAM, ALICE, 5), ret);
    assert!(linearizable(&[first.clone(), retry(Ret::Exists), read(5)]));
    // The first attempt may never have arrived: the retry applies it.
    assert!(linearizable(&[first.clone(), retry(Ret::Ok), read(5)]));
    assert!(!linearizable(&[first.clone(), retry(Ret::Ok), read(10)]));
    assert!(!linearizable(&[first, retry(Ret::Exists), read(10)]));
    // A call answered `Exists` on its own (the client retried after losing the first answer)
    // applied the transfer — once.
    let alone = call(1, 0, 1, transfer(8, PROGRAM, ALICE, 5), Ret::Exists);
    assert!(linearizable(&[alone.clone(), call(2, 2, 3, Op::Read(ALICE), balance(0, 5))]));
    assert!(!linearizable(&[alone.clone(), call(2, 2, 3, Op::Read(ALICE), balance(0, 0))]));
    let again = call(1, 4, 5, transfer(8, PROGRAM, ALICE, 5), Ret::Ok);
    assert!(!linearizable(&[alone, again]), "a second Ok for one id is a duplicate");
}

/// Goal: a refusal is recorded (ADR 0003), so a blind retry cannot turn it into a transfer,
/// and a retry with other fields is named as such. Method: a refused burn, an earn that would
/// now cover it, the burn retried.
#[test]
fn refusals_stay_refusals() {
    let burn = transfer(3, ALICE, PROGRAM, 4);
    let history = |retried| {
        vec![
            call(1, 0, 1, burn, Ret::ExceedsCredits),
            call(2, 2, 3, transfer(4, PROGRAM, ALICE, 10), Ret::Ok),
            call(1, 4, 5, burn, retried),
        ]
    };
    assert!(linearizable(&history(Ret::ExceedsCredits)));
    assert!(!linearizable(&history(Ret::Ok)));
    let mut conflicting = history(Ret::ExceedsCredits);
    conflicting[2] = call(1, 4, 5, transfer(3, ALICE, PROGRAM, 5), Ret::ExistsWithDifferentFields);
    assert!(linearizable(&conflicting));
    conflicting[2].answered = Some((5, Ret::Ok));
    assert!(!linearizable(&conflicting));
}

/// Goal: a read must not go back in time (the stale follower read of DESIGN §7's planted
/// bug). Method: one client sees 10, a later client sees 0.
#[test]
fn a_stale_read_is_caught() {
    let history = [
        Call::unanswered(1, 0, transfer(1, PROGRAM, BOB, 10)),
        call(2, 5, 6, Op::Read(BOB), balance(0, 10)),
        call(3, 7, 8, Op::Read(BOB), balance(0, 0)),
    ];
    assert!(!linearizable(&history));
}

/// Goal: partitions are the guarded accounts that transfers (or shared ids) connect, and
/// unguarded accounts' reads belong to the whole bank only. Method: Alice and Bob apart, then
/// joined by a transfer between them, then by an id reused across them.
#[test]
fn partitions_follow_the_transfers() {
    let accounts = |history: &[Call<Op, Ret>]| -> Vec<(Vec<usize>, Vec<usize>)> {
        bank().partitions(history).into_iter().map(|p| (p.accounts, p.calls)).collect()
    };
    let apart = [
        call(1, 0, 1, transfer(1, PROGRAM, ALICE, 10), Ret::Ok),
        call(2, 0, 1, transfer(2, PROGRAM, BOB, 10), Ret::Ok),
        call(3, 2, 3, Op::Read(PROGRAM), balance(20, 0)),
    ];
    assert_eq!(accounts(&apart), [(vec![ALICE], vec![0]), (vec![BOB], vec![1])]);
    let mut joined = apart.to_vec();
    joined.push(call(1, 4, 5, transfer(3, ALICE, BOB, 1), Ret::Ok));
    assert_eq!(accounts(&joined), [(vec![ALICE, BOB], vec![0, 1, 3])]);
    let mut reused = apart.to_vec();
    reused.push(call(1, 4, 5, transfer(2, PROGRAM, ALICE, 10), Ret::ExistsWithDifferentFields));
    assert_eq!(accounts(&reused), [(vec![ALICE, BOB], vec![0, 1, 3])]);
    assert!(linearizable(&reused));
    // The program's balance is checked by the whole bank only.
    let mut wrong = apart.to_vec();
    wrong[2].answered = Some((3, balance(10, 0)));
    assert_eq!(check_per_account(&bank(), &wrong, BOUND), Finding::Linearizable);
    assert!(matches!(check_whole(&bank(), &wrong, BOUND), Finding::Violation(_)));
    // A read never answered is in no partition.
    let mut unanswered = apart.to_vec();
    unanswered.push(Call::unanswered(3, 4, Op::Read(ALICE)));
    assert_eq!(accounts(&unanswered), [(vec![ALICE], vec![0]), (vec![BOB], vec![1])]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Goal: no false alarms on the bank. Method: run random transfers (some retried with the
    /// same or other fields) and reads one at a time through the model, so a true order exists;
    /// record each over a random interval around its moment, drop some answers; both checks
    /// must pass.
    #[test]
    fn histories_with_a_true_order_pass(
        calls in prop::collection::vec(
            (0..3usize, 0..3usize, 1..8u128, 0..12u128, 0..250u64, 0..250u64,
             prop::bool::weighted(0.9), prop::bool::weighted(0.2)),
            1..18,
        )
    ) {
        let bank = bank();
        let mut state = bank.init();
        let mut history = Vec::new();
        for (moment, (debit, credit, amount, id, before, after, answered, read)) in
            calls.into_iter().enumerate()
        {
            let op = if read { Op::Read(debit) } else { transfer(id, debit, credit, amount) };
            let ret = match op {
                Op::Read(account) => Ret::Balance(state.balances[account]),
                write => {
                    let (next, ret) = bank.write(&state, write);
                    state = next;
                    ret
                }
            };
            let at = 100 * (moment as u64 + 3);
            let client = u32::try_from(moment).unwrap();
            // An unanswered call did take effect here; the checker may place it or not.
            history.push(if answered {
                call(client, at - before, at + after, op, ret)
            } else {
                Call::unanswered(client, at - before, op)
            });
        }
        prop_assert_eq!(check_per_account(&bank, &history, BOUND), Finding::Linearizable);
        prop_assert_eq!(check_whole(&bank, &history, BOUND), Finding::Linearizable);
    }
}
