//! Hand-written scenarios for the rules that are easiest to get subtly wrong, each run through
//! the model comparison (so results and records are checked in full) and pinned with an
//! `expect-test` snapshot of what matters, so that a reader sees the expected numbers.

use expect_test::expect;

use ledger_sm::command::{Batch, NewAccount, NewTransfer, Operation};
use ledger_sm::constants::{BATCH_EVENTS_MAX, NANOS_PER_SECOND, TIMESTAMP_NOW_MAX};
use ledger_sm::result::{BatchRefusal, Results};
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, Timestamp, TransferCode, TransferFlags, TransferId,
};

use crate::gen::{setup, ASSET, START};
use crate::harness::Pair;

fn ready() -> Pair {
    let mut pair = Pair::new();
    for batch in setup() {
        pair.step(&batch).expect("setup");
    }
    pair
}

fn at(seconds: u64) -> Timestamp {
    Timestamp(START + seconds * NANOS_PER_SECOND)
}

fn plain(id: u128, debit: u128, credit: u128, amount: u128, code: TransferCode) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account: AccountId(debit),
        credit_account: AccountId(credit),
        amount,
        asset: ASSET,
        code: Some(code),
        ..NewTransfer::default()
    }
}

fn transfers(pair: &mut Pair, now: Timestamp, list: Vec<NewTransfer>) -> Results {
    let batch = Batch { now, operation: Operation::CreateTransfers(list) };
    pair.step(&batch).unwrap_or_else(|error| panic!("{error}"))
}

fn tick(pair: &mut Pair, now: Timestamp) -> Results {
    pair.step(&Batch { now, operation: Operation::Tick }).unwrap_or_else(|error| panic!("{error}"))
}

fn lots(pair: &Pair) -> String {
    pair.model
        .all_lots()
        .iter()
        .map(|lot| {
            format!(
                "{}@{}s:{} ",
                lot.account.0,
                (lot.expires_at.0 - START) / NANOS_PER_SECOND,
                lot.amount
            )
        })
        .collect()
}

/// Goal: earliest-first consumption, latest-first give-back and expiry by tick, with the numbers
/// spelled out. Method: two earns with different expiries, a burn that spans both lots, a
/// partial refund of the burn, then a tick past the first expiry.
#[test]
fn lots_are_consumed_earliest_first_and_given_back_latest_first() {
    let mut pair = ready();
    let mut earn = plain(1, 1, 2, 10, TransferCode::Earn);
    earn.expires_at = at(5);
    let mut later = plain(2, 1, 2, 5, TransferCode::Earn);
    later.expires_at = at(10);
    transfers(&mut pair, at(0), vec![earn, later]);
    expect!["2@5s:10 2@10s:5 "].assert_eq(&lots(&pair));
    transfers(&mut pair, at(1), vec![plain(3, 2, 5, 12, TransferCode::Burn)]);
    expect!["2@10s:3 "].assert_eq(&lots(&pair));
    let refund = NewTransfer {
        id: TransferId(4),
        reverses: TransferId(3),
        amount: 6,
        code: Some(TransferCode::Refund),
        ..NewTransfer::default()
    };
    transfers(&mut pair, at(2), vec![refund]);
    expect!["2@5s:4 2@10s:5 "].assert_eq(&lots(&pair));
    let Results::Tick(outcome) = tick(&mut pair, at(6)) else { panic!("tick") };
    expect!["TickOutcome { lots_expired: 1, holds_expired: 0, more_due: false }"]
        .assert_eq(&format!("{outcome:?}"));
    expect!["2@10s:5 "].assert_eq(&lots(&pair));
}

/// Goal: which lot a reversal of a *post* consumes first. The spec: "a reversal prefers the
/// original transfer's expires_at"; a post has none of its own (resolves may not carry one), so
/// the lot its hold's expiry created gets no preference and the earliest lot goes first.
/// Method: an earn expiring at 8 s, an earn hold expiring at 20 s posted in full, then a refund
/// of 4 of the post.
#[test]
fn reversal_of_a_post_prefers_no_lot() {
    let mut pair = ready();
    let earn = NewTransfer { expires_at: at(8), ..plain(1, 1, 2, 5, TransferCode::Earn) };
    let hold = NewTransfer {
        flags: TransferFlags(TransferFlags::PENDING),
        expires_at: at(20),
        ..plain(2, 1, 2, 6, TransferCode::Earn)
    };
    let post = NewTransfer {
        id: TransferId(3),
        pending_id: TransferId(2),
        flags: TransferFlags(TransferFlags::POST_PENDING),
        ..NewTransfer::default()
    };
    transfers(&mut pair, at(0), vec![earn, hold, post]);
    expect!["2@8s:5 2@20s:6 "].assert_eq(&lots(&pair));
    let refund = NewTransfer {
        id: TransferId(4),
        reverses: TransferId(3),
        amount: 4,
        code: Some(TransferCode::Reversal),
        ..NewTransfer::default()
    };
    transfers(&mut pair, at(1), vec![refund]);
    expect!["2@8s:1 2@20s:6 "].assert_eq(&lots(&pair));
}

/// Goal: a hold with a timeout is voided by the first tick at or after its deadline, and a post
/// after the deadline is refused even before that tick. Method: hold, post too late, tick.
#[test]
fn holds_time_out() {
    let mut pair = ready();
    transfers(&mut pair, at(0), vec![plain(1, 1, 2, 10, TransferCode::Earn)]);
    let hold = NewTransfer {
        flags: TransferFlags(TransferFlags::PENDING),
        timeout: 2,
        ..plain(2, 2, 5, 4, TransferCode::Redeem)
    };
    transfers(&mut pair, at(1), vec![hold]);
    let post = NewTransfer {
        id: TransferId(3),
        pending_id: TransferId(2),
        flags: TransferFlags(TransferFlags::POST_PENDING),
        ..NewTransfer::default()
    };
    let Results::CreateTransfers(refused) = transfers(&mut pair, at(3), vec![post]) else {
        panic!("transfers")
    };
    expect!["PendingTransferExpired"].assert_eq(&format!("{:?}", refused[0].result));
    let Results::Tick(outcome) = tick(&mut pair, at(3)) else { panic!("tick") };
    expect!["TickOutcome { lots_expired: 0, holds_expired: 1, more_due: false }"]
        .assert_eq(&format!("{outcome:?}"));
}

/// Goal: a forced refund may take a no-overdraft wallet below zero, tracked in
/// `overdraft_forced`, and then every debit is refused until credits repay it. Method: (on the
/// funded wallet) earn,
/// spend, refund the earn with and without FORCE, try a debit, earn again.
#[test]
fn forced_refunds_track_the_debt() {
    let mut pair = ready();
    transfers(&mut pair, at(0), vec![plain(1, 1, 2, 10, TransferCode::Earn)]);
    transfers(&mut pair, at(1), vec![plain(2, 2, 5, 48, TransferCode::Burn)]);
    let refund = |id, flags| NewTransfer {
        id: TransferId(id),
        reverses: TransferId(1),
        code: Some(TransferCode::Reversal),
        flags: TransferFlags(flags),
        ..NewTransfer::default()
    };
    let Results::CreateTransfers(unforced) = transfers(&mut pair, at(2), vec![refund(3, 0)]) else {
        panic!("transfers")
    };
    expect!["ExceedsCredits"].assert_eq(&format!("{:?}", unforced[0].result));
    transfers(&mut pair, at(3), vec![refund(4, TransferFlags::FORCE)]);
    expect!["8"].assert_eq(&pair.model.accounts[&AccountId(2)].overdraft_forced.to_string());
    let Results::CreateTransfers(debit) =
        transfers(&mut pair, at(4), vec![plain(5, 2, 5, 1, TransferCode::Burn)])
    else {
        panic!("transfers")
    };
    expect!["ExceedsCredits"].assert_eq(&format!("{:?}", debit[0].result));
    transfers(&mut pair, at(5), vec![plain(6, 1, 2, 3, TransferCode::Earn)]);
    expect!["5"].assert_eq(&pair.model.accounts[&AccountId(2)].overdraft_forced.to_string());
}

/// Goal: a clock beyond year 2262 is clamped, and empty or oversized batches change nothing.
/// Method: a batch at `u64::MAX`, an empty batch, a batch one event too large.
#[test]
fn clock_clamp_and_batch_bounds() {
    let mut pair = ready();
    let wallet = NewAccount {
        flags: AccountFlags(0),
        ..crate::gen::new_account(9, ASSET, AccountKind::CustomerWallet, 0)
    };
    let batch =
        Batch { now: Timestamp(u64::MAX), operation: Operation::CreateAccounts(vec![wallet]) };
    pair.step(&batch).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(pair.model.accounts[&AccountId(9)].timestamp, Timestamp(TIMESTAMP_NOW_MAX));
    let before = pair.state.meta();
    let empty = Batch { now: at(1), operation: Operation::CreateTransfers(Vec::new()) };
    assert_eq!(pair.step(&empty), Ok(Results::BatchRefused(BatchRefusal::Empty)));
    let ids = vec![AccountId(2); BATCH_EVENTS_MAX as usize + 1];
    let oversized = Batch { now: at(1), operation: Operation::Erase(ids) };
    assert_eq!(pair.step(&oversized), Ok(Results::BatchRefused(BatchRefusal::TooManyEvents)));
    assert_eq!(pair.state.meta(), before);
}

fn codes(results: &Results) -> String {
    match results {
        Results::CreateTransfers(outcomes) => {
            outcomes.iter().map(|o| format!("{:?} ", o.result)).collect()
        }
        Results::ChangeAccounts(outcomes) => {
            outcomes.iter().map(|o| format!("{:?} ", o.result)).collect()
        }
        Results::IssueGiftCards(outcomes) => {
            outcomes.iter().map(|o| format!("{:?} ", o.result)).collect()
        }
        other => format!("{other:?}"),
    }
}

/// Goal: the 512-lot limit: a credit needing a 513th lot is refused (plain and post), a credit
/// to an existing expiry is not, and a given-back part that would need a 513th lot stays
/// non-expiring value. Method: 512 earns with distinct expiries, then each case in turn.
#[test]
fn lots_are_limited_per_account() {
    let mut pair = ready();
    let earn = |id: u128, expires: u64| NewTransfer {
        expires_at: at(expires),
        ..plain(id, 1, 2, 1, TransferCode::Earn)
    };
    let limit = u128::try_from(ledger_sm::constants::ACCOUNT_LOTS_MAX).expect("small");
    let earns = (1..=limit).map(|id| earn(id, 100 + u64::try_from(id).expect("small"))).collect();
    transfers(&mut pair, at(0), earns);
    assert_eq!(pair.model.all_lots().len(), 512);
    let hold = NewTransfer {
        flags: TransferFlags(TransferFlags::PENDING),
        expires_at: at(2_000),
        ..plain(1_003, 1, 2, 1, TransferCode::Earn)
    };
    let post = NewTransfer {
        id: TransferId(1_004),
        pending_id: TransferId(1_003),
        flags: TransferFlags(TransferFlags::POST_PENDING),
        ..NewTransfer::default()
    };
    let results =
        transfers(&mut pair, at(1), vec![earn(1_001, 1_000), earn(1_002, 101), hold, post]);
    expect!["LotsExceedLimit Ok Ok LotsExceedLimit "].assert_eq(&codes(&results));
    // The burn empties the lot at 101 s (2), a new earn takes the freed slot, and the refund's
    // give-back finds no slot: the wallet keeps the value, not as a lot.
    let refund = NewTransfer {
        id: TransferId(1_007),
        reverses: TransferId(1_005),
        code: Some(TransferCode::Refund),
        ..NewTransfer::default()
    };
    let burn = plain(1_005, 2, 5, 2, TransferCode::Burn);
    let results = transfers(&mut pair, at(2), vec![burn, earn(1_006, 3_000), refund]);
    expect!["Ok Ok Ok "].assert_eq(&codes(&results));
    let wallet = &pair.model.accounts[&AccountId(2)];
    expect!["lots 512, lots_total 512, available 554"].assert_eq(&format!(
        "lots {}, lots_total {}, available {}",
        pair.model.all_lots().len(),
        wallet.lots_total,
        wallet.balances.available_or_zero()
    ));
}

/// Goal: a tick voids at most `TICK_EXPIRIES_MAX` holds and says more are due; the next tick
/// does the rest. Method: 8,191 holds with a one-second timeout, two ticks.
#[test]
fn ticks_are_bounded() {
    let mut pair = ready();
    let max = u128::from(BATCH_EVENTS_MAX);
    let hold = |id| NewTransfer {
        flags: TransferFlags(TransferFlags::PENDING),
        timeout: 1,
        ..plain(id, 1, 2, 1, TransferCode::Earn)
    };
    // Ids from 10,001: clear of the setup's.
    transfers(&mut pair, at(0), (10_001..=10_000 + max).map(hold).collect());
    transfers(&mut pair, at(0), vec![hold(10_001 + max)]);
    expect!["Tick(TickOutcome { lots_expired: 0, holds_expired: 8190, more_due: true })"]
        .assert_eq(&format!("{:?}", tick(&mut pair, at(2))));
    expect!["Tick(TickOutcome { lots_expired: 0, holds_expired: 1, more_due: false })"]
        .assert_eq(&format!("{:?}", tick(&mut pair, at(2))));
}

/// Goal: the gift-card life cycle: issue with load (atomic, retry-safe), spend only once
/// active, block and unblock, deactivation refused while a hold is open and then clearing the
/// rest to the merchant. Method: one card through every step, with the events of the
/// deactivation.
#[test]
fn gift_card_life_cycle() {
    use ledger_sm::command::{AccountChange, GiftCardIssue};
    let mut pair = ready();
    let card = AccountId(10);
    let issue = GiftCardIssue {
        account: NewAccount {
            code_hash: crate::gen::code_hash(1),
            ..crate::gen::new_account(10, ASSET, AccountKind::GiftCard, 0)
        },
        load_transfer_id: TransferId(1),
        load_from: AccountId(1),
        load_amount: 20,
    };
    let issues = Operation::IssueGiftCards(vec![issue.clone(), issue]);
    let results = pair.step(&Batch { now: at(0), operation: issues }).expect("issue");
    expect!["Ok Ok "].assert_eq(&codes(&results));
    let redeem = |id, amount| plain(id, 10, 5, amount, TransferCode::Redeem);
    let hold = NewTransfer { flags: TransferFlags(TransferFlags::PENDING), ..redeem(5, 2) };
    let void = NewTransfer {
        id: TransferId(6),
        pending_id: TransferId(5),
        flags: TransferFlags(TransferFlags::VOID_PENDING),
        ..NewTransfer::default()
    };
    let mut log = String::new();
    log += &codes(&transfers(&mut pair, at(1), vec![redeem(2, 3)]));
    log += &change_codes(&mut pair, at(2), AccountChange::ActivateGiftCard { account: card });
    log += &codes(&transfers(&mut pair, at(3), vec![redeem(3, 3)]));
    log += &change_codes(&mut pair, at(4), AccountChange::BlockGiftCard { account: card });
    log += &codes(&transfers(&mut pair, at(5), vec![redeem(4, 1)]));
    log += &change_codes(&mut pair, at(6), AccountChange::UnblockGiftCard { account: card });
    log += &codes(&transfers(&mut pair, at(7), vec![hold]));
    let deactivate = |transfer_id| AccountChange::DeactivateGiftCard {
        account: card,
        transfer_id: TransferId(transfer_id),
        merchant_account: AccountId(5),
    };
    log += &change_codes(&mut pair, at(8), deactivate(7));
    log += &codes(&transfers(&mut pair, at(9), vec![void]));
    log += &change_codes(&mut pair, at(10), deactivate(3));
    let events_before = pair.state.all_events().len();
    log += &change_codes(&mut pair, at(11), deactivate(7));
    expect![[r#"
        DebitAccountNotActive Ok Ok Ok DebitAccountNotActive Ok Ok PendingNotZero Ok TransferExists Ok "#]]
    .assert_eq(&log);
    let events: String = pair.state.all_events()[events_before..]
        .iter()
        .map(|event| format!("{:?}\n", event.kind))
        .collect();
    expect![[r#"
        TransferPosted(TransferId(7))
        StatusChanged { account: AccountId(10), from: Active, to: Deactivated }
    "#]]
    .assert_eq(&events);
    assert_eq!(pair.model.transfers[&TransferId(7)].amount, 17);
}

fn change_codes(
    pair: &mut Pair,
    now: Timestamp,
    change: ledger_sm::command::AccountChange,
) -> String {
    let batch = Batch { now, operation: Operation::ChangeAccounts(vec![change]) };
    codes(&pair.step(&batch).unwrap_or_else(|error| panic!("{error}")))
}

/// Goal: retries are answered from the record (ADR 0003): a balancing transfer's amount differs
/// only below what moved; posts and refunds match with inherited fields given or left zero; a
/// recorded refusal answers its code again, or the first differing field; `Exists` counts as
/// success in a chain; a failed chain leaves its ids free. Method: one request and its retries
/// at a time, the answers pinned.
#[test]
fn retries_are_answered_from_the_record() {
    let mut pair = ready();
    let mut log = Vec::new();
    let mut send = |pair: &mut Pair, now, list: Vec<NewTransfer>| {
        log.push(codes(&transfers(pair, now, list)));
    };
    // Wallet 2 holds 40: a balancing burn of 100 moves 40.
    let burn_all = NewTransfer {
        flags: TransferFlags(TransferFlags::BALANCING_DEBIT),
        ..plain(1, 2, 5, 100, TransferCode::Burn)
    };
    send(&mut pair, at(1), vec![burn_all]);
    let retry = |amount| NewTransfer { amount, ..burn_all };
    send(&mut pair, at(2), vec![retry(100), retry(40), retry(1_000), retry(39)]);
    // A hold, its post, and retries of the post with the inherited fields given.
    let hold = NewTransfer {
        flags: TransferFlags(TransferFlags::PENDING),
        ..plain(2, 1, 3, 7, TransferCode::Earn)
    };
    let post = NewTransfer {
        id: TransferId(3),
        pending_id: TransferId(2),
        amount: 5,
        flags: TransferFlags(TransferFlags::POST_PENDING),
        ..NewTransfer::default()
    };
    send(&mut pair, at(3), vec![hold, post]);
    let given = NewTransfer {
        debit_account: AccountId(1),
        credit_account: AccountId(3),
        asset: ASSET,
        code: Some(TransferCode::Earn),
        ..post
    };
    let other_code = NewTransfer { code: Some(TransferCode::Adjustment), ..given };
    send(&mut pair, at(4), vec![post, given, other_code, NewTransfer { amount: 0, ..post }]);
    // A refusal is recorded: the same request answers the same code, another the field.
    let overdraw = plain(4, 2, 5, 1, TransferCode::Burn);
    send(&mut pair, at(5), vec![overdraw]);
    let other_data = NewTransfer { user_data_64: 9, ..overdraw };
    send(&mut pair, at(6), vec![overdraw, other_data]);
    // A chain fails on its second member; its ids stay free, and the same chain succeeds once
    // the wallet is funded; retried whole, every member answers `Exists`.
    let linked = |t: NewTransfer| NewTransfer {
        flags: TransferFlags(t.flags.0 | TransferFlags::LINKED),
        ..t
    };
    let chain =
        vec![linked(plain(5, 1, 2, 3, TransferCode::Earn)), plain(6, 2, 5, 4, TransferCode::Burn)];
    send(&mut pair, at(7), chain.clone());
    send(&mut pair, at(8), vec![plain(7, 1, 2, 1, TransferCode::Earn)]);
    send(&mut pair, at(9), chain.clone());
    send(&mut pair, at(10), chain);
    expect![[r#"
        [
            "Ok ",
            "Exists Exists Exists ExistsWithDifferentAmount ",
            "Ok Ok ",
            "Exists Exists ExistsWithDifferentCode Exists ",
            "ExceedsCredits ",
            "ExceedsCredits ExistsWithDifferentUserData64 ",
            "LinkedEventFailed ExceedsCredits ",
            "Ok ",
            "Ok Ok ",
            "Exists Exists ",
        ]
    "#]]
    .assert_debug_eq(&log);
}

/// Cursors move forward only, for the newest term, inside the outbox; the outbox starts at the
/// lowest cursor, and a forgotten sink stops holding events back.
#[test]
fn cursors_fence_and_compact_the_outbox() {
    use ledger_sm::command::CursorCommand::{self, Advance, Forget};
    use ledger_sm::types::{EventSeq, SinkId};

    let mut pair = ready();
    let postgres = SinkId::new("postgres").unwrap();
    let kafka = SinkId::new("kafka").unwrap();
    let advance = |sink, next, term| Advance { sink, next: EventSeq(next), term };
    let mut step = |seconds, commands: Vec<CursorCommand>| {
        let batch = Batch { now: at(seconds), operation: Operation::Cursors(commands) };
        let results = pair.step(&batch).unwrap_or_else(|error| panic!("{error}"));
        let meta = pair.state.meta();
        let outbox = (meta.events_first.0, meta.event_seq_next.0, pair.state.all_events().len());
        format!("{results:?} outbox {outbox:?}\n")
    };
    let mut log = String::new();
    log += &step(1, vec![advance(postgres, 10, 1)]);
    log += &step(2, vec![advance(kafka, 5, 1), advance(kafka, 12, 1)]);
    log += &step(3, vec![advance(postgres, 14, 1)]);
    log += &step(4, vec![advance(postgres, 13, 2), advance(postgres, 14, 0)]);
    log += &step(5, vec![advance(postgres, 15, 1), advance(postgres, 14, 1)]);
    log += &step(6, vec![Forget { sink: kafka }, Forget { sink: kafka }]);
    log += &step(7, vec![Forget { sink: postgres }, advance(SinkId([b'A'; 16]), 14, 1)]);
    expect![[r#"
        Cursors([Ok]) outbox (10, 14, 4)
        Cursors([CursorBelowOutbox, Ok]) outbox (10, 14, 4)
        Cursors([Ok]) outbox (12, 14, 2)
        Cursors([CursorBehind, TermStale]) outbox (12, 14, 2)
        Cursors([CursorBeyondEvents, Ok]) outbox (12, 14, 2)
        Cursors([Ok, Ok]) outbox (14, 14, 0)
        Cursors([Ok, SinkInvalid]) outbox (14, 14, 0)
    "#]]
    .assert_eq(&log);
    transfers(&mut pair, at(8), vec![plain(1, 1, 2, 5, TransferCode::Earn)]);
    let events = ledger_sm::query::events(&pair.state, EventSeq(0), 10).unwrap();
    assert_eq!(events.iter().map(|e| e.event.seq.0).collect::<Vec<_>>(), [14]);
}
