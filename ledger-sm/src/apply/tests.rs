//! Data-driven tests of `apply`: one line per case. A case runs setup batches over a fixed
//! fixture, then one batch, and compares the results (and balances) with an expectation.
//!
//! Fixture: asset 1 `PTS` (expiry sink 900) and asset 2 `EUR` (sink 901); accounts
//! 1 issuance, 2 and 3 no-overdraft wallets, 4 settlement, 5 credits-must-not-exceed-debits
//! (all PTS); 6 EUR wallet, 7 EUR issuance, 8 EUR gift card (pending, code hash [8; 32]).
//!
//! The event language, one event per line (a batch is the lines of one string):
//! - transfer: `ID DEBIT->CREDIT AMOUNT CODE [flag..] [key=value..]` with CODE one of earn burn
//!   load redeem refund reversal adjust transfer expiry none; flags linked pending post void bd
//!   bc force; keys pending reverses timeout (seconds) expires (seconds) asset ud; AMOUNT may be
//!   `max` (u128::MAX).
//! - changes: `freeze A`, `unfreeze A`, `close A`, `limit A N`, `flags A d|c|dc|none`,
//!   `activate A`, `block A`, `unblock A`, `deactivate A TRANSFER MERCHANT`; `erase A`; `tick`.
//! - a batch starting `@S ` runs at S seconds; otherwise each batch runs one second after the
//!   previous one (the fixture at 1 s).

#![allow(clippy::too_many_lines)] // Tables of cases.

use expect_test::{expect, Expect};

use crate::command::{AccountChange, Batch, NewAccount, NewAsset, NewTransfer, Operation};
use crate::constants::NANOS_PER_SECOND;
use crate::invariants;
use crate::mem::MemState;
use crate::result::Results;
use crate::types::{
    AccountFlags, AccountId, AccountKind, AssetId, CodeHash, MerchantId, Timestamp, TransferCode,
    TransferFlags, TransferId,
};

struct Ledger {
    state: MemState,
    now: u64,
}

impl Ledger {
    fn new() -> Self {
        let mut ledger = Self { state: MemState::with_journal(), now: 0 };
        let assets = vec![asset(1, "PTS", 900), asset(2, "EUR", 901)];
        ledger.run_operation(Operation::CreateAssets(assets));
        let d = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
        let c = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
        let accounts = vec![
            account(1, 1, AccountKind::MerchantIssuance, 0),
            account(2, 1, AccountKind::CustomerWallet, d),
            account(3, 1, AccountKind::CustomerWallet, d),
            account(4, 1, AccountKind::MerchantSettlement, 0),
            account(5, 1, AccountKind::Operator, c),
            account(6, 2, AccountKind::CustomerWallet, d),
            account(7, 2, AccountKind::MerchantIssuance, 0),
            NewAccount { code_hash: CodeHash([8; 32]), ..account(8, 2, AccountKind::GiftCard, 0) },
        ];
        ledger.run_operation(Operation::CreateAccounts(accounts));
        ledger
    }

    fn run_operation(&mut self, operation: Operation) -> Results {
        self.now += 1;
        let batch = Batch { now: Timestamp(self.now * NANOS_PER_SECOND), operation };
        let results = self.state.execute(&batch);
        if let Err(violation) = invariants::check(&self.state.records()) {
            panic!("invariant broken after {batch:?}: {violation:?}");
        }
        results
    }

    fn run(&mut self, text: &str) -> Results {
        let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if let Some(rest) = lines.first().and_then(|line| line.strip_prefix('@')) {
            let (seconds, line) = rest.split_once(' ').unwrap_or((rest, ""));
            self.now = seconds.parse::<u64>().unwrap() - 1;
            lines[0] = line;
        }
        let operation = parse_operation(&lines);
        self.run_operation(operation)
    }

    fn balances(&self, id: u128) -> String {
        let account = self.state.accounts().find(|a| a.id == AccountId(id)).unwrap();
        let b = &account.balances;
        let mut text = format!("{id}:{}/{}", b.debits_posted, b.credits_posted);
        if b.debits_pending != 0 || b.credits_pending != 0 {
            text += &format!(" pending {}/{}", b.debits_pending, b.credits_pending);
        }
        let mut lots: Vec<_> = self.state.all_lots().filter(|l| l.account.0 == id).collect();
        lots.sort_by_key(|l| l.expires_at);
        for lot in lots {
            text += &format!(" lot@{}={}", lot.expires_at.0 / NANOS_PER_SECOND, lot.amount);
        }
        text
    }
}

fn asset(id: u32, code: &str, sink: u128) -> NewAsset {
    NewAsset { id: AssetId(id), code: code.into(), scale: 0, expiry_account: AccountId(sink) }
}

fn account(id: u128, asset: u32, kind: AccountKind, flags: u16) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        asset: AssetId(asset),
        kind,
        flags: AccountFlags(flags),
        overdraft_limit: 0,
        merchant: MerchantId(42),
        external_ref: b"ref".to_vec(),
        metadata: Vec::new(),
        code_hash: CodeHash::ZERO,
    }
}

fn parse_operation(lines: &[&str]) -> Operation {
    let first: Vec<&str> = lines[0].split_whitespace().collect();
    match first[0] {
        "tick" => Operation::Tick,
        "erase" => Operation::Erase(
            lines.iter().map(|l| AccountId(number(l.split_whitespace().nth(1).unwrap()))).collect(),
        ),
        "freeze" | "unfreeze" | "close" | "limit" | "flags" | "activate" | "block" | "unblock"
        | "deactivate" => {
            Operation::ChangeAccounts(lines.iter().map(|l| parse_change(l)).collect())
        }
        _ => Operation::CreateTransfers(lines.iter().map(|l| parse_transfer(l)).collect()),
    }
}

fn number(text: &str) -> u128 {
    match text.strip_prefix("max") {
        Some("") => u128::MAX,
        Some(minus) => u128::MAX - minus.trim_start_matches('-').parse::<u128>().unwrap(),
        None => text.parse().unwrap(),
    }
}

fn parse_change(line: &str) -> AccountChange {
    let words: Vec<&str> = line.split_whitespace().collect();
    let account = AccountId(number(words[1]));
    match words[0] {
        "freeze" => AccountChange::Freeze { account },
        "unfreeze" => AccountChange::Unfreeze { account },
        "close" => AccountChange::Close { account },
        "limit" => AccountChange::SetOverdraftLimit { account, overdraft_limit: number(words[2]) },
        "flags" => {
            let mut flags = 0;
            if words[2].contains('d') {
                flags |= AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
            }
            if words[2].contains('c') {
                flags |= AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
            }
            AccountChange::SetFlags { account, flags: AccountFlags(flags) }
        }
        "activate" => AccountChange::ActivateGiftCard { account },
        "block" => AccountChange::BlockGiftCard { account },
        "unblock" => AccountChange::UnblockGiftCard { account },
        "deactivate" => AccountChange::DeactivateGiftCard {
            account,
            transfer_id: TransferId(number(words[2])),
            merchant_account: AccountId(number(words[3])),
        },
        other => panic!("unknown change {other}"),
    }
}

fn parse_transfer(line: &str) -> NewTransfer {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (debit, credit) = words[1].split_once("->").unwrap();
    let mut t = NewTransfer {
        id: TransferId(number(words[0])),
        debit_account: AccountId(number(debit)),
        credit_account: AccountId(number(credit)),
        amount: number(words[2]),
        asset: AssetId(1),
        code: parse_code(words[3]),
        ..NewTransfer::default()
    };
    for word in &words[4..] {
        let flag = match *word {
            "linked" => TransferFlags::LINKED,
            "pending" => TransferFlags::PENDING,
            "post" => TransferFlags::POST_PENDING,
            "void" => TransferFlags::VOID_PENDING,
            "bd" => TransferFlags::BALANCING_DEBIT,
            "bc" => TransferFlags::BALANCING_CREDIT,
            "force" => TransferFlags::FORCE,
            "reserved" => 1 << 15,
            _ => 0,
        };
        t.flags.0 |= flag;
        if let Some((key, value)) = word.split_once('=') {
            let value = number(value);
            match key {
                "pending" => t.pending_id = TransferId(value),
                "reverses" => t.reverses = TransferId(value),
                "timeout" => t.timeout = u32::try_from(value).unwrap(),
                "expires" => {
                    t.expires_at = Timestamp(u64::try_from(value).unwrap() * NANOS_PER_SECOND)
                }
                "asset" => t.asset = AssetId(u32::try_from(value).unwrap()),
                "ud" => t.user_data_64 = u64::try_from(value).unwrap(),
                _ => panic!("unknown key {key}"),
            }
        }
    }
    t
}

fn parse_code(word: &str) -> Option<TransferCode> {
    Some(match word {
        "earn" => TransferCode::Earn,
        "burn" => TransferCode::Burn,
        "load" => TransferCode::Load,
        "redeem" => TransferCode::Redeem,
        "refund" => TransferCode::Refund,
        "reversal" => TransferCode::Reversal,
        "adjust" => TransferCode::Adjustment,
        "transfer" => TransferCode::Transfer,
        "expiry" => TransferCode::Expiry,
        "none" => return None,
        other => panic!("unknown code {other}"),
    })
}

/// Runs `setup` (one batch per string), then `batch`, and compares the batch's results plus the
/// balances of `show` accounts afterwards with `expect`.
#[track_caller]
fn check(setup: &[&str], batch: &str, show: &[u128], expect: Expect) {
    let mut ledger = Ledger::new();
    for text in setup {
        ledger.run(text);
    }
    let results = ledger.run(batch);
    let mut actual = describe(&results);
    for id in show {
        actual += &ledger.balances(*id);
        actual.push('\n');
    }
    expect.assert_eq(&actual);
}

fn describe(results: &Results) -> String {
    let mut out = String::new();
    match results {
        Results::CreateTransfers(outcomes) => {
            for o in outcomes {
                out += &format!("{:?}", o.result);
                if o.amount != 0 {
                    out += &format!(" amount={}", o.amount);
                }
                out.push('\n');
            }
        }
        Results::ChangeAccounts(outcomes) => {
            for o in outcomes {
                out += &format!("{:?} {:?}\n", o.result, o.status);
            }
        }
        Results::Erase(results) => results.iter().for_each(|r| out += &format!("{r:?}\n")),
        Results::Tick(tick) => out += &format!("{tick:?}\n"),
        other => out += &format!("{other:?}\n"),
    }
    out
}

// Single-phase transfers and their validation codes.
#[test]
fn earn() {
    check(
        &[],
        "1 1->2 100 earn",
        &[2, 1],
        expect![[r#"
        Ok amount=100
        2:0/100
        1:100/0
    "#]],
    );
}
#[test]
fn burn() {
    check(
        &["1 1->2 100 earn"],
        "2 2->4 30 burn",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:30/100
        4:0/30
    "#]],
    );
}
#[test]
fn id_zero() {
    check(
        &[],
        "0 1->2 1 earn",
        &[],
        expect![[r#"
        IdMustNotBeZero
    "#]],
    );
}
#[test]
fn id_reserved() {
    check(
        &[],
        "170141183460469231731687303715884105728 1->2 1 earn",
        &[],
        expect![[r#"
        IdReserved
    "#]],
    );
}
#[test]
fn flags_reserved() {
    check(
        &[],
        "1 1->2 1 earn reserved",
        &[],
        expect![[r#"
        FlagsReserved
    "#]],
    );
}
#[test]
fn flags_pending_post() {
    check(
        &[],
        "1 1->2 1 earn pending post pending=9",
        &[],
        expect![[r#"
        FlagsAreMutuallyExclusive
    "#]],
    );
}
#[test]
fn flags_post_balancing() {
    check(
        &[],
        "1 0->0 1 none post bd pending=9",
        &[],
        expect![[r#"
        FlagsAreMutuallyExclusive
    "#]],
    );
}
#[test]
fn flags_reversal_pending() {
    check(
        &[],
        "1 0->0 1 refund pending reverses=9",
        &[],
        expect![[r#"
        FlagsAreMutuallyExclusive
    "#]],
    );
}
#[test]
fn code_zero() {
    check(
        &[],
        "1 1->2 1 none",
        &[],
        expect![[r#"
        CodeMustNotBeZero
    "#]],
    );
}
#[test]
fn code_reserved() {
    check(
        &[],
        "1 1->2 1 expiry",
        &[],
        expect![[r#"
        CodeReserved
    "#]],
    );
}
#[test]
fn force_requires_reversal() {
    check(
        &[],
        "1 1->2 1 earn force",
        &[],
        expect![[r#"
        ForceRequiresReversal
    "#]],
    );
}
#[test]
fn pending_id_zero() {
    check(
        &[],
        "1 0->0 1 none post",
        &[],
        expect![[r#"
        PendingIdMustNotBeZero
    "#]],
    );
}
#[test]
fn pending_id_must_be_zero() {
    check(
        &[],
        "1 1->2 1 earn pending=9",
        &[],
        expect![[r#"
        PendingIdMustBeZero
    "#]],
    );
}
#[test]
fn pending_id_same() {
    check(
        &[],
        "1 0->0 1 none post pending=1",
        &[],
        expect![[r#"
        PendingIdMustBeDifferent
    "#]],
    );
}
#[test]
fn reverses_zero() {
    check(
        &[],
        "1 0->0 1 refund",
        &[],
        expect![[r#"
        ReversesMustNotBeZero
    "#]],
    );
}
#[test]
fn reverses_must_be_zero() {
    check(
        &[],
        "1 1->2 1 earn reverses=9",
        &[],
        expect![[r#"
        ReversesMustBeZero
    "#]],
    );
}
#[test]
fn reverses_same() {
    check(
        &[],
        "1 0->0 1 refund reverses=1",
        &[],
        expect![[r#"
        ReversesMustBeDifferent
    "#]],
    );
}
#[test]
fn timeout_not_pending() {
    check(
        &[],
        "1 1->2 1 earn timeout=5",
        &[],
        expect![[r#"
        TimeoutReservedForPendingTransfer
    "#]],
    );
}
#[test]
fn expires_on_post() {
    check(
        &[],
        "1 0->0 1 none post pending=9 expires=100",
        &[],
        expect![[r#"
        ExpiresAtNotAllowed
    "#]],
    );
}
#[test]
fn debit_zero() {
    check(
        &[],
        "1 0->2 1 earn",
        &[],
        expect![[r#"
        DebitAccountIdMustNotBeZero
    "#]],
    );
}
#[test]
fn credit_zero() {
    check(
        &[],
        "1 1->0 1 earn",
        &[],
        expect![[r#"
        CreditAccountIdMustNotBeZero
    "#]],
    );
}
#[test]
fn same_accounts() {
    check(
        &[],
        "1 2->2 1 earn",
        &[],
        expect![[r#"
        AccountsMustBeDifferent
    "#]],
    );
}
#[test]
fn asset_zero() {
    check(
        &[],
        "1 1->2 1 earn asset=0",
        &[],
        expect![[r#"
        AssetMustNotBeZero
    "#]],
    );
}
#[test]
fn amount_zero() {
    check(
        &[],
        "1 1->2 0 earn",
        &[],
        expect![[r#"
        AmountMustNotBeZero
    "#]],
    );
}
#[test]
fn debit_not_found() {
    check(
        &[],
        "1 99->2 1 earn",
        &[],
        expect![[r#"
        DebitAccountNotFound
    "#]],
    );
}
#[test]
fn credit_not_found() {
    check(
        &[],
        "1 1->99 1 earn",
        &[],
        expect![[r#"
        CreditAccountNotFound
    "#]],
    );
}
#[test]
fn accounts_assets_differ() {
    check(
        &[],
        "1 1->6 1 earn",
        &[],
        expect![[r#"
        AccountsMustHaveTheSameAsset
    "#]],
    );
}
#[test]
fn transfer_asset_differs() {
    check(
        &[],
        "1 1->2 1 earn asset=2",
        &[],
        expect![[r#"
        TransferMustHaveTheSameAssetAsAccounts
    "#]],
    );
}
#[test]
fn expires_in_past() {
    check(
        &[],
        "1 1->2 1 earn expires=1",
        &[],
        expect![[r#"
        ExpiresAtMustBeInTheFuture
    "#]],
    );
}
#[test]
fn exceeds_credits() {
    check(
        &["1 1->2 10 earn"],
        "2 2->4 11 burn",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:0/10
    "#]],
    );
}
#[test]
fn exceeds_debits() {
    check(
        &[],
        "1 4->5 1 transfer",
        &[5],
        expect![[r#"
        ExceedsDebits
        5:0/0
    "#]],
    );
}
#[test]
fn overflows_credits_posted() {
    check(
        &["1 1->2 max earn"],
        "2 3->2 1 earn",
        &[],
        expect![[r#"
        OverflowsCreditsPosted
    "#]],
    );
}
#[test]
fn overflows_debits_posted() {
    check(
        &["1 1->2 max earn"],
        "2 1->3 1 earn",
        &[],
        expect![[r#"
        OverflowsDebitsPosted
    "#]],
    );
}
#[test]
fn overflows_debits_pending() {
    check(
        &["1 1->2 max earn pending"],
        "2 1->3 1 earn pending",
        &[],
        expect![[r#"
        OverflowsDebitsPending
    "#]],
    );
}
#[test]
fn overflows_credits_pending() {
    check(
        &["1 1->2 max earn pending"],
        "2 4->2 1 earn pending",
        &[],
        expect![[r#"
        OverflowsCreditsPending
    "#]],
    );
}
#[test]
fn overflows_debits() {
    check(
        &["1 1->2 max earn pending"],
        "2 1->3 1 earn",
        &[],
        expect![[r#"
        OverflowsDebits
    "#]],
    );
}
#[test]
fn overflows_credits() {
    check(
        &["1 1->2 max earn pending"],
        "2 4->2 1 earn",
        &[],
        expect![[r#"
        OverflowsCredits
    "#]],
    );
}
#[test]
fn debit_frozen() {
    check(
        &["1 1->2 10 earn", "freeze 2"],
        "2 2->4 1 burn",
        &[],
        expect![[r#"
        DebitAccountNotActive
    "#]],
    );
}
#[test]
fn credit_frozen() {
    check(
        &["freeze 2"],
        "1 1->2 1 earn",
        &[],
        expect![[r#"
        CreditAccountNotActive
    "#]],
    );
}
#[test]
fn credit_closed() {
    check(
        &["close 3"],
        "1 1->3 1 earn",
        &[],
        expect![[r#"
        CreditAccountNotActive
    "#]],
    );
}

// Idempotency.
#[test]
fn exists() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 earn",
        &[2],
        expect![[r#"
        Exists amount=10
        2:0/10
    "#]],
    );
}
#[test]
fn exists_different_amount() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 11 earn",
        &[],
        expect![[r#"
        ExistsWithDifferentAmount
    "#]],
    );
}
#[test]
fn exists_different_flags() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 earn pending",
        &[],
        expect![[r#"
        ExistsWithDifferentFlags
    "#]],
    );
}
#[test]
fn exists_different_debit() {
    check(
        &["1 1->2 10 earn"],
        "1 4->2 10 earn",
        &[],
        expect![[r#"
        ExistsWithDifferentDebitAccountId
    "#]],
    );
}
#[test]
fn exists_different_credit() {
    check(
        &["1 1->2 10 earn"],
        "1 1->3 10 earn",
        &[],
        expect![[r#"
        ExistsWithDifferentCreditAccountId
    "#]],
    );
}
#[test]
fn exists_different_code() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 adjust",
        &[],
        expect![[r#"
        ExistsWithDifferentCode
    "#]],
    );
}
#[test]
fn exists_different_user_data() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 earn ud=7",
        &[],
        expect![[r#"
        ExistsWithDifferentUserData64
    "#]],
    );
}
#[test]
fn exists_different_expires() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 earn expires=99",
        &[],
        expect![[r#"
        ExistsWithDifferentExpiresAt
    "#]],
    );
}
#[test]
fn refused_retry_same_answer() {
    check(
        &["1 2->4 10 burn"],
        "1 2->4 10 burn",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:0/0
    "#]],
    );
}
#[test]
fn refused_retry_later_still_refused() {
    check(
        &["1 2->4 10 burn", "2 1->2 50 earn"],
        "1 2->4 10 burn",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:0/50
    "#]],
    );
}
#[test]
fn refused_retry_different() {
    check(
        &["1 2->4 10 burn"],
        "1 2->4 11 burn",
        &[],
        expect![[r#"
        ExistsWithDifferentAmount
    "#]],
    );
}
#[test]
fn duplicate_in_one_batch() {
    check(
        &[],
        "1 1->2 10 earn\n1 1->2 10 earn\n1 1->2 12 earn",
        &[2],
        expect![[r#"
        Ok amount=10
        Exists amount=10
        ExistsWithDifferentAmount
        2:0/10
    "#]],
    );
}

// Holds.
#[test]
fn hold() {
    check(
        &["1 1->2 100 earn"],
        "2 2->4 30 burn pending",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:0/100 pending 30/0
        4:0/0 pending 0/30
    "#]],
    );
}
#[test]
fn hold_exceeds_available() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn pending"],
        "3 2->4 30 burn pending",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:0/100 pending 80/0
    "#]],
    );
}
#[test]
fn post_full() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 0 none post pending=2",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:30/100
        4:0/30
    "#]],
    );
}
#[test]
fn post_partial() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 20 none post pending=2",
        &[2, 4],
        expect![[r#"
        Ok amount=20
        2:20/100
        4:0/20
    "#]],
    );
}
#[test]
fn post_exceeds() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 31 none post pending=2",
        &[2],
        expect![[r#"
        ExceedsPendingTransferAmount
        2:0/100 pending 30/0
    "#]],
    );
}
#[test]
fn void() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 0 none void pending=2",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:0/100
        4:0/0
    "#]],
    );
}
#[test]
fn void_different_amount() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 5 none void pending=2",
        &[],
        expect![[r#"
        PendingTransferHasDifferentAmount
    "#]],
    );
}
#[test]
fn post_twice() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none post pending=2"],
        "4 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferAlreadyPosted
    "#]],
    );
}
#[test]
fn void_after_post() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none post pending=2"],
        "4 0->0 0 none void pending=2",
        &[],
        expect![[r#"
        PendingTransferAlreadyPosted
    "#]],
    );
}
#[test]
fn post_after_void() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none void pending=2"],
        "4 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferAlreadyVoided
    "#]],
    );
}
#[test]
fn pending_not_found() {
    check(
        &[],
        "3 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferNotFound
    "#]],
    );
}
#[test]
fn pending_not_pending() {
    check(
        &["1 1->2 100 earn"],
        "3 0->0 0 none post pending=1",
        &[],
        expect![[r#"
        PendingTransferNotPending
    "#]],
    );
}
#[test]
fn pending_different_debit() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 3->0 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferHasDifferentDebitAccountId
    "#]],
    );
}
#[test]
fn pending_different_credit() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->1 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferHasDifferentCreditAccountId
    "#]],
    );
}
#[test]
fn pending_different_asset() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 0 none post pending=2 asset=2",
        &[],
        expect![[r#"
        PendingTransferHasDifferentAsset
    "#]],
    );
}
#[test]
fn post_expired_before_tick() {
    check(
        &["1 1->2 100 earn", "@10 2 2->4 30 burn pending timeout=5"],
        "@15 3 0->0 0 none post pending=2",
        &[2],
        expect![[r#"
        PendingTransferExpired
        2:0/100 pending 30/0
    "#]],
    );
}
#[test]
fn hold_times_out() {
    check(
        &["1 1->2 100 earn", "@10 2 2->4 30 burn pending timeout=5"],
        "@15 tick",
        &[2, 4],
        expect![[r#"
        TickOutcome { lots_expired: 0, holds_expired: 1, more_due: false }
        2:0/100
        4:0/0
    "#]],
    );
}
#[test]
fn post_after_timeout() {
    check(
        &["1 1->2 100 earn", "@10 2 2->4 30 burn pending timeout=5", "@15 tick"],
        "@16 3 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        PendingTransferExpired
    "#]],
    );
}
#[test]
fn void_frozen_account() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "freeze 2"],
        "3 0->0 0 none void pending=2",
        &[2],
        expect![[r#"
        Ok amount=30
        2:0/100
    "#]],
    );
}
#[test]
fn post_frozen_account() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "freeze 2"],
        "3 0->0 0 none post pending=2",
        &[2],
        expect![[r#"
        DebitAccountNotActive
        2:0/100 pending 30/0
    "#]],
    );
}
#[test]
fn post_frozen_credit() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "freeze 4"],
        "3 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        CreditAccountNotActive
    "#]],
    );
}
#[test]
fn post_near_max_never_overflows() {
    check(
        &["1 1->2 10 earn", "3 4->3 max-10 earn", "2 2->3 10 burn pending"],
        "4 0->0 0 none post pending=2",
        &[3],
        expect![[r#"
        Ok amount=10
        3:0/340282366920938463463374607431768211455
    "#]],
    );
}
#[test]
fn exists_post_inherits() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none post pending=2"],
        "3 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        Exists amount=30
    "#]],
    );
}

// Balancing.
#[test]
fn balancing_debit_clamps() {
    check(
        &["1 1->2 10 earn"],
        "2 2->4 100 burn bd",
        &[2, 4],
        expect![[r#"
        Ok amount=10
        2:10/10
        4:0/10
    "#]],
    );
}
#[test]
fn balancing_debit_nothing() {
    check(
        &[],
        "2 2->4 100 burn bd",
        &[],
        expect![[r#"
        ExceedsCredits
    "#]],
    );
}
#[test]
fn balancing_debit_unlimited() {
    check(
        &[],
        "2 1->4 100 transfer bd",
        &[1],
        expect![[r#"
        Ok amount=100
        1:100/0
    "#]],
    );
}
#[test]
fn balancing_credit_clamps() {
    check(
        &["1 5->4 10 transfer"],
        "2 1->5 100 transfer bc",
        &[5],
        expect![[r#"
        Ok amount=10
        5:10/10
    "#]],
    );
}
#[test]
fn balancing_credit_nothing() {
    check(
        &[],
        "2 1->5 100 transfer bc",
        &[],
        expect![[r#"
        ExceedsDebits
    "#]],
    );
}
#[test]
fn balancing_exists_lower() {
    check(
        &["1 1->2 10 earn", "2 2->4 100 burn bd"],
        "2 2->4 5 burn bd",
        &[],
        expect![[r#"
        ExistsWithDifferentAmount
    "#]],
    );
}
#[test]
fn balancing_exists_higher() {
    check(
        &["1 1->2 10 earn", "2 2->4 100 burn bd"],
        "2 2->4 500 burn bd",
        &[],
        expect![[r#"
        Exists amount=10
    "#]],
    );
}

// Linked chains.
#[test]
fn linked_ok() {
    check(
        &[],
        "1 1->2 10 earn linked\n2 2->4 5 burn",
        &[2, 4],
        expect![[r#"
        Ok amount=10
        Ok amount=5
        2:5/10
        4:0/5
    "#]],
    );
}
#[test]
fn linked_fails() {
    check(
        &[],
        "1 1->2 10 earn linked\n2 2->4 50 burn linked\n3 1->3 1 earn\n4 1->3 1 earn",
        &[2, 3],
        expect![[r#"
        LinkedEventFailed
        ExceedsCredits
        LinkedEventFailed
        Ok amount=1
        2:0/0
        3:0/1
    "#]],
    );
}
#[test]
fn linked_open() {
    check(
        &[],
        "1 1->2 10 earn\n2 1->3 5 earn linked\n3 1->3 5 earn linked",
        &[2, 3],
        expect![[r#"
        Ok amount=10
        LinkedEventFailed
        LinkedEventChainOpen
        2:0/10
        3:0/0
    "#]],
    );
}
#[test]
fn linked_retry() {
    check(
        &["1 1->2 10 earn linked\n2 2->4 5 burn"],
        "1 1->2 10 earn linked\n2 2->4 5 burn",
        &[2],
        expect![[r#"
        Exists amount=10
        Exists amount=5
        2:5/10
    "#]],
    );
}
#[test]
fn linked_failure_not_recorded() {
    check(
        &["1 1->2 10 earn linked\n2 2->4 50 burn"],
        "1 1->2 10 earn linked\n2 2->4 5 burn",
        &[2],
        expect![[r#"
        Ok amount=10
        Ok amount=5
        2:5/10
    "#]],
    );
}
#[test]
fn linked_hold_and_post() {
    check(
        &["1 1->2 10 earn"],
        "2 2->4 10 burn pending linked\n3 0->0 4 none post pending=2",
        &[2, 4],
        expect![[r#"
        Ok amount=10
        Ok amount=4
        2:4/10
        4:0/4
    "#]],
    );
}

// Reversals and refunds.
#[test]
fn refund_full() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn"],
        "3 0->0 0 refund reverses=2",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:30/130
        4:30/30
    "#]],
    );
}
#[test]
fn refund_partial_twice() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn", "3 0->0 10 refund reverses=2"],
        "4 0->0 20 refund reverses=2",
        &[2, 4],
        expect![[r#"
        Ok amount=20
        2:30/130
        4:30/30
    "#]],
    );
}
#[test]
fn refund_exceeds() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn", "3 0->0 10 refund reverses=2"],
        "4 0->0 21 refund reverses=2",
        &[],
        expect![[r#"
        ExceedsReversibleAmount
    "#]],
    );
}
#[test]
fn refund_nothing_left() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn", "3 0->0 0 refund reverses=2"],
        "4 0->0 0 refund reverses=2",
        &[],
        expect![[r#"
        ExceedsReversibleAmount
    "#]],
    );
}
#[test]
fn reversal_not_found() {
    check(
        &[],
        "3 0->0 0 reversal reverses=2",
        &[],
        expect![[r#"
        ReversedTransferNotFound
    "#]],
    );
}
#[test]
fn reversal_of_hold() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending"],
        "3 0->0 0 reversal reverses=2",
        &[],
        expect![[r#"
        ReversedTransferNotReversible
    "#]],
    );
}
#[test]
fn reversal_of_post() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none post pending=2"],
        "4 0->0 0 refund reverses=3",
        &[2, 4],
        expect![[r#"
        Ok amount=30
        2:30/130
        4:30/30
    "#]],
    );
}
#[test]
fn reversal_of_void() {
    check(
        &["1 1->2 100 earn", "2 2->4 30 burn pending", "3 0->0 0 none void pending=2"],
        "4 0->0 0 refund reverses=3",
        &[],
        expect![[r#"
        ReversedTransferNotReversible
    "#]],
    );
}
#[test]
fn reversal_of_reversal() {
    check(
        &["1 1->2 100 earn", "2 0->0 0 reversal reverses=1"],
        "3 0->0 0 reversal reverses=2",
        &[],
        expect![[r#"
        ReversedTransferNotReversible
    "#]],
    );
}
#[test]
fn reversal_different_debit() {
    check(
        &["1 1->2 100 earn"],
        "2 1->1 0 reversal reverses=1",
        &[],
        expect![[r#"
        ReversalHasDifferentDebitAccountId
    "#]],
    );
}
#[test]
fn reversal_different_credit() {
    check(
        &["1 1->2 100 earn"],
        "2 0->2 0 reversal reverses=1",
        &[],
        expect![[r#"
        ReversalHasDifferentCreditAccountId
    "#]],
    );
}
#[test]
fn reversal_different_asset() {
    check(
        &["1 1->2 100 earn"],
        "2 0->0 0 reversal reverses=1 asset=2",
        &[],
        expect![[r#"
        ReversalHasDifferentAsset
    "#]],
    );
}
#[test]
fn reversal_of_earn_spent() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn"],
        "3 0->0 0 reversal reverses=1",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:80/100
    "#]],
    );
}
#[test]
fn reversal_of_earn_forced() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn"],
        "3 0->0 0 reversal force reverses=1",
        &[2, 1],
        expect![[r#"
        Ok amount=100
        2:180/100
        1:100/100
    "#]],
    );
}
#[test]
fn forced_debt_repaid() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn", "3 0->0 0 reversal force reverses=1"],
        "4 1->2 100 earn",
        &[2],
        expect![[r#"
        Ok amount=100
        2:180/200
    "#]],
    );
}
#[test]
fn forced_debt_blocks_debits() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn", "3 0->0 0 reversal force reverses=1"],
        "4 2->4 1 burn",
        &[2],
        expect![[r#"
        ExceedsCredits
        2:180/100
    "#]],
    );
}
#[test]
fn reversal_debit_frozen() {
    check(
        &["1 1->2 100 earn", "freeze 2"],
        "3 0->0 0 reversal reverses=1",
        &[],
        expect![[r#"
        DebitAccountNotActive
    "#]],
    );
}

// Lots.
#[test]
fn earn_with_expiry() {
    check(
        &[],
        "1 1->2 100 earn expires=100",
        &[2],
        expect![[r#"
        Ok amount=100
        2:0/100 lot@100=100
    "#]],
    );
}
#[test]
fn lots_merge_same_expiry() {
    check(
        &["1 1->2 100 earn expires=100"],
        "2 1->2 50 earn expires=100",
        &[2],
        expect![[r#"
        Ok amount=50
        2:0/150 lot@100=150
    "#]],
    );
}
#[test]
fn burn_consumes_earliest() {
    check(
        &["1 1->2 100 earn expires=200", "2 1->2 50 earn expires=100"],
        "3 2->4 70 burn",
        &[2],
        expect![[r#"
        Ok amount=70
        2:70/150 lot@200=80
    "#]],
    );
}
#[test]
fn burn_spares_non_expiring() {
    check(
        &["1 1->2 100 earn", "2 1->2 50 earn expires=100"],
        "3 2->4 30 burn",
        &[2],
        expect![[r#"
        Ok amount=30
        2:30/150 lot@100=20
    "#]],
    );
}
#[test]
fn refund_restores_lots() {
    check(
        &["1 1->2 100 earn expires=200", "2 1->2 50 earn expires=100", "3 2->4 120 burn"],
        "4 0->0 0 refund reverses=3",
        &[2],
        expect![[r#"
        Ok amount=120
        2:120/270 lot@100=50 lot@200=100
    "#]],
    );
}
#[test]
fn refund_partial_latest_first() {
    check(
        &["1 1->2 100 earn expires=200", "2 1->2 50 earn expires=100", "3 2->4 120 burn"],
        "4 0->0 80 refund reverses=3",
        &[2],
        expect![[r#"
        Ok amount=80
        2:120/230 lot@100=10 lot@200=100
    "#]],
    );
}
#[test]
fn hold_reserves_lots() {
    check(
        &["1 1->2 100 earn expires=100"],
        "2 2->4 30 burn pending",
        &[2],
        expect![[r#"
        Ok amount=30
        2:0/100 pending 30/0 lot@100=70
    "#]],
    );
}
#[test]
fn void_restores_lots() {
    check(
        &["1 1->2 100 earn expires=100", "2 2->4 30 burn pending"],
        "3 0->0 0 none void pending=2",
        &[2],
        expect![[r#"
        Ok amount=30
        2:0/100 lot@100=100
    "#]],
    );
}
#[test]
fn partial_post_restores_rest() {
    check(
        &["1 1->2 40 earn expires=100", "2 1->2 40 earn expires=200", "3 2->4 60 burn pending"],
        "4 0->0 25 none post pending=3",
        &[2, 4],
        expect![[r#"
        Ok amount=25
        2:25/80 lot@100=15 lot@200=40
        4:0/25
    "#]],
    );
}
#[test]
fn hold_with_expiry_posts_lot() {
    check(
        &[],
        "1 1->2 100 earn pending expires=100",
        &[2],
        expect![[r#"
        Ok amount=100
        2:0/0 pending 0/100
    "#]],
    );
}
#[test]
fn post_hold_with_expiry() {
    check(
        &["1 1->2 100 earn pending expires=100"],
        "2 0->0 60 none post pending=1",
        &[2],
        expect![[r#"
        Ok amount=60
        2:0/60 lot@100=60
    "#]],
    );
}
#[test]
fn tick_expires_lots() {
    check(
        &["1 1->2 100 earn expires=10", "2 1->2 50 earn expires=20"],
        "@15 tick",
        &[2, 900],
        expect![[r#"
        TickOutcome { lots_expired: 1, holds_expired: 0, more_due: false }
        2:100/150 lot@20=50
        900:0/100
    "#]],
    );
}
#[test]
fn tick_nothing_due() {
    check(
        &["1 1->2 100 earn expires=100"],
        "tick",
        &[2],
        expect![[r#"
        TickOutcome { lots_expired: 0, holds_expired: 0, more_due: false }
        2:0/100 lot@100=100
    "#]],
    );
}
#[test]
fn reversal_of_earn_prefers_its_lot() {
    check(
        &["1 1->2 100 earn expires=100", "2 1->2 50 earn expires=200"],
        "3 0->0 0 reversal reverses=2",
        &[2],
        expect![[r#"
        Ok amount=50
        2:50/150 lot@100=100
    "#]],
    );
}
#[test]
fn restored_lot_past_expiry_expires() {
    check(
        &["1 1->2 100 earn expires=10", "2 2->4 60 burn", "@20 tick"],
        "@21 3 0->0 0 refund reverses=2",
        &[2],
        expect![[r#"
        Ok amount=60
        2:100/160 lot@10=60
    "#]],
    );
}
#[test]
fn expired_then_refund_then_tick() {
    check(
        &[
            "1 1->2 100 earn expires=10",
            "2 2->4 60 burn",
            "@20 tick",
            "@21 3 0->0 0 refund reverses=2",
        ],
        "@22 tick",
        &[2, 900],
        expect![[r#"
        TickOutcome { lots_expired: 1, holds_expired: 0, more_due: false }
        2:160/160
        900:0/100
    "#]],
    );
}
#[test]
fn lot_room_in_debt() {
    check(
        &["1 1->2 100 earn", "2 2->4 80 burn", "3 0->0 0 reversal force reverses=1"],
        "4 1->2 100 earn expires=500",
        &[2],
        expect![[r#"
        Ok amount=100
        2:180/200 lot@500=20
    "#]],
    );
}

// Account changes.
#[test]
fn freeze_unfreeze() {
    check(
        &[],
        "freeze 2\nfreeze 2\nunfreeze 2\nunfreeze 2",
        &[],
        expect![[r#"
        Ok Some(Frozen)
        Ok Some(Frozen)
        Ok Some(Active)
        Ok Some(Active)
    "#]],
    );
}
#[test]
fn close_nonzero() {
    check(
        &["1 1->2 10 earn"],
        "close 2",
        &[],
        expect![[r#"
        BalanceNotZero Some(Active)
    "#]],
    );
}
#[test]
fn close_pending() {
    check(
        &["1 1->2 10 earn pending"],
        "close 2",
        &[],
        expect![[r#"
        PendingNotZero Some(Active)
    "#]],
    );
}
#[test]
fn close_then_unfreeze() {
    check(
        &["close 3"],
        "unfreeze 3\nfreeze 3\nclose 3",
        &[],
        expect![[r#"
        StatusForbids Some(Closed)
        StatusForbids Some(Closed)
        Ok Some(Closed)
    "#]],
    );
}
#[test]
fn change_not_found() {
    check(
        &[],
        "freeze 99\nfreeze 0",
        &[],
        expect![[r#"
        AccountNotFound None
        IdMustNotBeZero None
    "#]],
    );
}
#[test]
fn change_gift_card() {
    check(
        &[],
        "freeze 8\nactivate 2",
        &[],
        expect![[r#"
        AccountIsGiftCard Some(Pending)
        AccountNotGiftCard Some(Active)
    "#]],
    );
}
#[test]
fn set_limit() {
    check(
        &[],
        "limit 2 50",
        &[],
        expect![[r#"
        Ok Some(Active)
    "#]],
    );
}
#[test]
fn set_limit_without_flag() {
    check(
        &[],
        "limit 4 50",
        &[],
        expect![[r#"
        OverdraftLimitRequiresDebitsMustNotExceedCredits Some(Active)
    "#]],
    );
}
#[test]
fn overdraft_used() {
    check(
        &["limit 2 50"],
        "1 2->4 50 burn\n2 2->4 1 burn",
        &[2],
        expect![[r#"
        Ok amount=50
        ExceedsCredits
        2:50/0
    "#]],
    );
}
#[test]
fn limit_lowered_below_use() {
    check(
        &["limit 2 50", "1 2->4 30 burn"],
        "limit 2 20\nlimit 2 30",
        &[],
        expect![[r#"
        BalancesViolateChange Some(Active)
        Ok Some(Active)
    "#]],
    );
}
#[test]
fn set_flags() {
    check(
        &["1 1->2 10 earn", "2 4->1 5 transfer"],
        "flags 4 d\nflags 1 c\nflags 2 dc\nflags 2 none",
        &[],
        expect![[r#"
        BalancesViolateChange Some(Active)
        Ok Some(Active)
        FlagsAreMutuallyExclusive Some(Active)
        Ok Some(Active)
    "#]],
    );
}
#[test]
fn set_flags_closed() {
    check(
        &["close 3"],
        "flags 3 d",
        &[],
        expect![[r#"
        StatusForbids Some(Closed)
    "#]],
    );
}

// Gift cards.
#[test]
fn gift_card_load_before_activation() {
    check(
        &[],
        "1 7->8 500 load asset=2",
        &[8],
        expect![[r#"
        Ok amount=500
        8:0/500
    "#]],
    );
}
#[test]
fn gift_card_redeem_before_activation() {
    check(
        &["1 7->8 500 load asset=2"],
        "2 8->7 100 redeem asset=2",
        &[],
        expect![[r#"
        DebitAccountNotActive
    "#]],
    );
}
#[test]
fn gift_card_activate_redeem() {
    check(
        &["1 7->8 500 load asset=2", "activate 8"],
        "2 8->7 100 redeem asset=2",
        &[8],
        expect![[r#"
        Ok amount=100
        8:100/500
    "#]],
    );
}
#[test]
fn gift_card_redeem_too_much() {
    check(
        &["1 7->8 500 load asset=2", "activate 8"],
        "2 8->7 600 redeem asset=2",
        &[],
        expect![[r#"
        ExceedsCredits
    "#]],
    );
}
#[test]
fn gift_card_clear_balance() {
    check(
        &["1 7->8 500 load asset=2", "activate 8"],
        "2 8->7 1000 redeem bd asset=2",
        &[8],
        expect![[r#"
        Ok amount=500
        8:500/500
    "#]],
    );
}
#[test]
fn gift_card_block() {
    check(
        &["1 7->8 500 load asset=2", "activate 8"],
        "block 8\nblock 8\nunblock 8\nunblock 8\nactivate 8",
        &[],
        expect![[r#"
        Ok Some(Blocked)
        Ok Some(Blocked)
        Ok Some(Active)
        Ok Some(Active)
        Ok Some(Active)
    "#]],
    );
}
#[test]
fn gift_card_blocked_redeem() {
    check(
        &["1 7->8 500 load asset=2", "activate 8", "block 8"],
        "2 8->7 100 redeem asset=2",
        &[],
        expect![[r#"
        DebitAccountNotActive
    "#]],
    );
}
#[test]
fn gift_card_block_pending() {
    check(
        &[],
        "block 8\nunblock 8",
        &[],
        expect![[r#"
        StatusForbids Some(Pending)
        StatusForbids Some(Pending)
    "#]],
    );
}
#[test]
fn gift_card_deactivate() {
    check(
        &["1 7->8 500 load asset=2", "activate 8"],
        "deactivate 8 9 7",
        &[8, 7],
        expect![[r#"
        Ok Some(Deactivated)
        8:500/500
        7:500/500
    "#]],
    );
}
#[test]
fn gift_card_deactivate_empty() {
    check(
        &[],
        "deactivate 8 0 0\ndeactivate 8 0 0\nactivate 8",
        &[8],
        expect![[r#"
        Ok Some(Deactivated)
        Ok Some(Deactivated)
        StatusForbids Some(Deactivated)
        8:0/0
    "#]],
    );
}
#[test]
fn gift_card_deactivate_codes() {
    check(
        &["1 7->8 500 load asset=2", "9 7->8 5 load asset=2 pending"],
        "deactivate 8 9 7",
        &[],
        expect![[r#"
        PendingNotZero Some(Pending)
    "#]],
    );
}
#[test]
fn gift_card_deactivate_transfer_codes() {
    check(&["1 7->8 500 load asset=2"], "deactivate 8 0 7\ndeactivate 8 170141183460469231731687303715884105728 7\ndeactivate 8 1 7\ndeactivate 8 9 99\ndeactivate 8 9 8\ndeactivate 8 9 1", &[], expect![[r#"
        TransferIdMustNotBeZero Some(Pending)
        TransferIdReserved Some(Pending)
        TransferExists Some(Pending)
        MerchantAccountNotFound Some(Pending)
        MerchantAccountMustBeDifferent Some(Pending)
        MerchantAccountHasDifferentAsset Some(Pending)
    "#]]);
}
#[test]
fn gift_card_deactivate_merchant_frozen() {
    check(
        &["1 7->8 500 load asset=2", "freeze 7"],
        "deactivate 8 9 7",
        &[],
        expect![[r#"
        MerchantAccountNotActive Some(Pending)
    "#]],
    );
}
#[test]
fn gift_card_deactivate_merchant_limit() {
    check(
        &["1 7->8 500 load asset=2", "flags 6 c"],
        "deactivate 8 9 6",
        &[],
        expect![[r#"
        ExceedsDebits Some(Pending)
    "#]],
    );
}

#[test]
fn gift_card_deactivate_merchant_overflow() {
    check(
        &["1 7->6 max transfer asset=2", "2 6->8 500 load asset=2"],
        "deactivate 8 9 6",
        &[],
        expect![[r#"
            OverflowsCredits Some(Pending)
        "#]],
    );
}

// Erasure and ticks.
#[test]
fn erase() {
    check(
        &[],
        "erase 2\nerase 2\nerase 99\nerase 0",
        &[],
        expect![[r#"
        Ok
        Ok
        AccountNotFound
        IdMustNotBeZero
    "#]],
    );
}

// Idempotency of the remaining fields.
#[test]
fn exists_different_pending_id() {
    check(
        &["1 1->2 10 earn pending", "2 1->2 10 earn pending", "3 0->0 0 none post pending=1"],
        "3 0->0 0 none post pending=2",
        &[],
        expect![[r#"
        ExistsWithDifferentPendingId
    "#]],
    );
}
#[test]
fn exists_different_reverses() {
    check(
        &["1 1->2 10 earn", "2 1->2 10 earn", "3 0->0 0 reversal reverses=1"],
        "3 0->0 0 reversal reverses=2",
        &[],
        expect![[r#"
        ExistsWithDifferentReverses
    "#]],
    );
}
#[test]
fn exists_different_timeout() {
    check(
        &["1 1->2 10 earn pending timeout=5"],
        "1 1->2 10 earn pending timeout=6",
        &[],
        expect![[r#"
        ExistsWithDifferentTimeout
    "#]],
    );
}
#[test]
fn exists_different_asset() {
    check(
        &["1 1->2 10 earn"],
        "1 1->2 10 earn asset=2",
        &[],
        expect![[r#"
        ExistsWithDifferentAsset
    "#]],
    );
}
#[test]
fn exists_reversal_inherits() {
    check(
        &["1 1->2 10 earn", "2 0->0 0 reversal reverses=1"],
        "2 1->0 0 reversal reverses=1\n2 0->0 10 reversal reverses=1\n2 2->1 0 reversal reverses=1",
        &[],
        expect![[r#"
        ExistsWithDifferentDebitAccountId
        Exists amount=10
        Exists amount=10
    "#]],
    );
}

// Lot limits.
#[test]
fn lots_exceed_limit() {
    let mut ledger = Ledger::new();
    let earns: Vec<String> =
        (1..=512).map(|i| format!("{i} 1->2 1 earn expires={}", 1000 + i)).collect();
    ledger.run(&earns.join("\n"));
    check_results(
        &mut ledger,
        "600 1->2 1 earn expires=5000\n601 1->2 1 earn expires=1001",
        expect![[r#"
        LotsExceedLimit
        Ok amount=1
    "#]],
    );
}

// Batches.
#[test]
fn batch_refused() {
    let mut ledger = Ledger::new();
    let empty = ledger.run_operation(Operation::CreateTransfers(Vec::new()));
    let transfers = vec![NewTransfer::default(); crate::constants::BATCH_EVENTS_MAX as usize + 1];
    let oversize = ledger.run_operation(Operation::CreateTransfers(transfers));
    expect![[r#"
        BatchRefused(Empty)
        BatchRefused(TooManyEvents)"#]]
    .assert_eq(&format!("{empty:?}\n{oversize:?}"));
    assert_eq!(ledger.state.meta().batches_applied, 2, "refused batches change nothing");
}

#[track_caller]
fn check_results(ledger: &mut Ledger, batch: &str, expect: Expect) {
    let results = ledger.run(batch);
    expect.assert_eq(&describe(&results));
}

// Assets: every result code, one event each.
#[test]
fn create_assets() {
    let mut ledger = Ledger::new();
    let a = |id: u32, code: &str, scale: u8, sink: u128| NewAsset {
        id: AssetId(id),
        code: code.as_bytes().to_vec(),
        scale,
        expiry_account: AccountId(sink),
    };
    let results = ledger.run_operation(Operation::CreateAssets(vec![
        a(3, "GBP", 2, 903),
        a(0, "X", 0, 904),
        a(4, "", 0, 904),
        a(4, "ABCDEFGHIJKLMNOPQ", 0, 904),
        a(4, "A B", 0, 904),
        a(4, "USD", 19, 904),
        a(4, "USD", 2, 0),
        a(4, "USD", 2, u128::MAX),
        a(3, "GBP", 2, 903),
        a(3, "GBX", 2, 903),
        a(3, "GBP", 3, 903),
        a(3, "GBP", 2, 905),
        a(4, "USD", 2, 2),
    ]));
    expect![[r#"
        CreateAssets(
            [
                Ok,
                IdMustNotBeZero,
                CodeMustNotBeEmpty,
                CodeTooLong,
                CodeMustBeAscii,
                ScaleTooLarge,
                ExpiryAccountIdMustNotBeZero,
                ExpiryAccountIdReserved,
                Exists,
                ExistsWithDifferentCode,
                ExistsWithDifferentScale,
                ExistsWithDifferentExpiryAccount,
                ExpiryAccountExists,
            ],
        )"#]]
    .assert_eq(&format!("{results:#?}"));
}

// Accounts: every result code, one event each, and linked chains of accounts.
#[test]
fn create_accounts() {
    let mut ledger = Ledger::new();
    let d = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    let c = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;
    let wallet = |id: u128| account(id, 1, AccountKind::CustomerWallet, d);
    let card = |id: u128, hash: u8| NewAccount {
        code_hash: CodeHash([hash; 32]),
        ..account(id, 1, AccountKind::GiftCard, 0)
    };
    let results = ledger.run_operation(Operation::CreateAccounts(vec![
        wallet(10),
        wallet(0),
        wallet(u128::MAX),
        NewAccount { flags: AccountFlags(1 << 9), ..wallet(11) },
        NewAccount { flags: AccountFlags(d | c), ..wallet(11) },
        account(11, 1, AccountKind::ExpirySink, 0),
        NewAccount { overdraft_limit: 5, ..account(11, 1, AccountKind::CustomerWallet, 0) },
        NewAccount { overdraft_limit: 5, ..card(11, 1) },
        NewAccount { external_ref: vec![1; 65], ..wallet(11) },
        NewAccount { metadata: vec![1; 129], ..wallet(11) },
        card(11, 0),
        NewAccount { code_hash: CodeHash([1; 32]), ..wallet(11) },
        NewAccount { asset: AssetId(0), ..wallet(11) },
        wallet(10),
        NewAccount { asset: AssetId(2), ..wallet(10) },
        account(10, 1, AccountKind::Operator, d),
        NewAccount { merchant: MerchantId(7), ..wallet(10) },
        NewAccount { external_ref: b"other".to_vec(), ..wallet(10) },
        NewAccount { metadata: b"other".to_vec(), ..wallet(10) },
        NewAccount { asset: AssetId(9), ..wallet(11) },
        card(12, 8),
        card(12, 9),
        card(12, 10),
        NewAccount { flags: AccountFlags(d | AccountFlags::LINKED), ..wallet(13) },
        NewAccount { asset: AssetId(9), ..wallet(14) },
        NewAccount { flags: AccountFlags(d | AccountFlags::LINKED), ..wallet(15) },
    ]));
    let results: Vec<_> = match results {
        Results::CreateAccounts(outcomes) => outcomes.iter().map(|o| o.result).collect(),
        other => panic!("{other:?}"),
    };
    expect![[r#"
        [
            Ok,
            IdMustNotBeZero,
            IdReserved,
            FlagsReserved,
            FlagsAreMutuallyExclusive,
            KindReserved,
            OverdraftLimitRequiresDebitsMustNotExceedCredits,
            OverdraftLimitRequiresDebitsMustNotExceedCredits,
            ExternalRefTooLong,
            MetadataTooLong,
            CodeHashRequired,
            CodeHashOnlyForGiftCards,
            AssetMustNotBeZero,
            Exists,
            ExistsWithDifferentAsset,
            ExistsWithDifferentKind,
            ExistsWithDifferentMerchant,
            ExistsWithDifferentExternalRef,
            ExistsWithDifferentMetadata,
            AssetNotFound,
            CodeHashExists,
            Ok,
            ExistsWithDifferentCodeHash,
            LinkedEventFailed,
            AssetNotFound,
            LinkedEventChainOpen,
        ]"#]]
    .assert_eq(&format!("{results:#?}"));
    let created: Vec<_> =
        ledger.state.accounts().filter(|a| a.id.0 >= 10 && a.id.0 < 900).collect();
    assert_eq!(created.len(), 2, "10 and 12 only: 13 rolled back with its chain");
}

// Gift cards: issue with a load, atomicity when the load fails, retries, lookup by code hash.
#[test]
fn issue_gift_cards() {
    use crate::command::GiftCardIssue;
    let mut ledger = Ledger::new();
    let card = |id: u128, hash: u8| NewAccount {
        code_hash: CodeHash([hash; 32]),
        ..account(id, 2, AccountKind::GiftCard, 0)
    };
    let issue = |account: NewAccount, load: u128, amount: u128| GiftCardIssue {
        account,
        load_transfer_id: TransferId(load),
        load_from: AccountId(7),
        load_amount: amount,
    };
    let results = ledger.run_operation(Operation::IssueGiftCards(vec![
        issue(card(20, 20), 200, 2500),
        issue(card(20, 20), 200, 2500),
        issue(card(21, 21), 0, 0),
        issue(card(22, 20), 220, 100),
        issue(card(23, 23), 200, 100),
        issue(account(24, 2, AccountKind::CustomerWallet, 0), 0, 0),
        issue(card(25, 25), 250, 0),
    ]));
    let results: Vec<_> = match results {
        Results::IssueGiftCards(outcomes) => outcomes.iter().map(|o| o.result).collect(),
        other => panic!("{other:?}"),
    };
    expect![[r#"
        [
            Ok,
            Ok,
            Ok,
            Account(
                CodeHashExists,
            ),
            Load(
                ExistsWithDifferentCreditAccountId,
            ),
            KindMustBeGiftCard,
            Load(
                AmountMustNotBeZero,
            ),
        ]"#]]
    .assert_eq(&format!("{results:#?}"));
    let found = crate::query::gift_card(&ledger.state, &CodeHash([20; 32])).unwrap().unwrap();
    assert_eq!((found.id, found.balances.credits_posted), (AccountId(20), 2500));
    assert!(crate::query::gift_card(&ledger.state, &CodeHash([23; 32])).unwrap().is_none());
    assert!(ledger.state.accounts().all(|a| a.id != AccountId(25)), "refused load, no card");
}

// Account changes that the line language cannot express.
#[test]
fn set_flags_reserved() {
    let mut ledger = Ledger::new();
    let results = ledger.run_operation(Operation::ChangeAccounts(vec![
        AccountChange::SetFlags {
            account: AccountId(2),
            flags: AccountFlags(AccountFlags::LINKED),
        },
        AccountChange::SetFlags { account: AccountId(2), flags: AccountFlags(1 << 12) },
        AccountChange::SetOverdraftLimit { account: AccountId(8), overdraft_limit: 1 },
    ]));
    expect![[r#"
        FlagsReserved Some(Active)
        FlagsReserved Some(Active)
        AccountIsGiftCard Some(Pending)
    "#]]
    .assert_eq(&describe(&results));
}

// Reads: an account's transfers by time range, paged in both directions; balance history; lots;
// and the refusals of malformed filters.
#[test]
fn queries_page_through_history() {
    use crate::query::{self, AccountFilter, QueryError};
    let mut ledger = Ledger::new();
    for i in 1..=5u128 {
        ledger.run(&format!("{i} 1->2 {i} earn expires=1000"));
    }
    let filter = AccountFilter {
        account: AccountId(2),
        timestamp_min: Timestamp::ZERO,
        timestamp_max: Timestamp::ZERO,
        limit: 2,
        descending: false,
    };
    let mut seen = Vec::new();
    let mut page_filter = filter;
    loop {
        let page = query::account_transfers(&ledger.state, &page_filter).unwrap();
        seen.extend(page.iter().map(|t| t.id.0));
        if page.len() < page_filter.limit as usize {
            break;
        }
        page_filter.timestamp_min = Timestamp(page.last().unwrap().timestamp.0 + 1);
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    let newest = AccountFilter { descending: true, ..filter };
    let page = query::account_transfers(&ledger.state, &newest).unwrap();
    assert_eq!(page.iter().map(|t| t.id.0).collect::<Vec<_>>(), [5, 4]);
    let history = query::balance_history(&ledger.state, &AccountFilter { limit: 10, ..filter });
    let credits: Vec<u128> = history.unwrap().iter().map(|e| e.balances.credits_posted).collect();
    assert_eq!(credits, [1, 3, 6, 10, 15]);
    let lots = query::account_lots(&ledger.state, AccountId(2)).unwrap();
    assert_eq!(lots.len(), 1);
    assert_eq!(lots[0].amount, 15);
    let bad = [
        AccountFilter { limit: 0, ..filter },
        AccountFilter { limit: 8_191, ..filter },
        AccountFilter { account: AccountId::ZERO, ..filter },
        AccountFilter { timestamp_min: Timestamp(9), timestamp_max: Timestamp(8), ..filter },
    ];
    let errors: Vec<_> =
        bad.iter().map(|f| query::account_transfers(&ledger.state, f).unwrap_err()).collect();
    assert_eq!(
        errors,
        [
            QueryError::LimitMustNotBeZero,
            QueryError::LimitTooLarge,
            QueryError::AccountIdMustNotBeZero,
            QueryError::TimestampRangeInvalid,
        ]
    );
    let too_many = vec![AccountId(1); 8_191];
    assert_eq!(query::lookup_accounts(&ledger.state, &too_many), Err(QueryError::TooManyIds));
    let events = query::events(&ledger.state, crate::types::EventSeq(0), 100).unwrap();
    assert_eq!(events.len() as u64, ledger.state.meta().event_seq_next.0);
}

// Determinism: the same batches on two fresh ledgers give byte-identical state and equal hashes;
// one changed amount anywhere changes the state hash and the chain.
#[test]
fn determinism_and_hash_sensitivity() {
    let script = [
        "1 1->2 100 earn expires=50",
        "2 2->4 30 burn pending timeout=3",
        "3 1->3 7 earn linked\n4 3->4 7 burn",
        "@60 tick",
        "5 0->0 0 refund reverses=4",
    ];
    let run = |amount: &str| {
        let mut ledger = Ledger::new();
        for line in script {
            ledger.run(&line.replace("1 1->2 100", &format!("1 1->2 {amount}")));
        }
        ledger.state
    };
    let (first, second, changed) = (run("100"), run("100"), run("101"));
    assert_eq!(first.canonical_bytes(), second.canonical_bytes());
    assert_eq!(first.meta(), second.meta());
    assert_ne!(first.meta().state_hash, changed.meta().state_hash);
    assert_ne!(first.meta().chain, changed.meta().chain);
    assert_eq!(first.all_events(), second.all_events());
}

// Bad input: batches of every operation with arbitrary field values (any ids, flags, codes,
// amounts, times, byte strings of any length, arbitrary clocks) never panic, and every
// invariant holds after each batch. Method: proptest over raw values, biased towards the
// fixture's ids so that some events reach deep checks.
mod bad_input {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::command::GiftCardIssue;

    fn id() -> impl Strategy<Value = u128> {
        prop_oneof![4 => 0..12u128, 1 => any::<u128>(), 1 => Just(u128::MAX), 1 => Just(1 << 127)]
    }

    fn amount() -> impl Strategy<Value = u128> {
        prop_oneof![4 => 0..200u128, 1 => any::<u128>(), 1 => (u128::MAX - 3)..=u128::MAX]
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![4 => vec(any::<u8>(), 0..8), 1 => vec(any::<u8>(), 60..200)]
    }

    fn code() -> impl Strategy<Value = Option<TransferCode>> {
        use TransferCode as C;
        let codes = [
            C::Earn,
            C::Burn,
            C::Load,
            C::Redeem,
            C::Refund,
            C::Reversal,
            C::Adjustment,
            C::Transfer,
            C::Expiry,
            C::Clear,
            C::HoldTimeout,
        ];
        proptest::option::weighted(0.9, proptest::sample::select(codes.to_vec()))
    }

    prop_compose! {
        fn transfer()(
            id in id(), debit in id(), credit in id(), amount in amount(), asset in 0..4u32,
            code in code(), flags in any::<u16>(), low_flags in 0..128u16, pending in id(),
            reverses in id(), timeout in prop_oneof![0..10u32, Just(0), any::<u32>()],
            expires in prop_oneof![Just(0u64), 0..200u64, any::<u64>()],
            raw_flags in any::<bool>(),
        ) -> NewTransfer {
            NewTransfer {
                id: TransferId(id),
                debit_account: AccountId(debit),
                credit_account: AccountId(credit),
                amount,
                asset: AssetId(asset),
                code,
                flags: TransferFlags(if raw_flags { flags } else { low_flags }),
                pending_id: TransferId(pending),
                reverses: TransferId(reverses),
                timeout,
                expires_at: Timestamp(expires.saturating_mul(if expires < 200 { NANOS_PER_SECOND } else { 1 })),
                user_data_128: id,
                user_data_64: 0,
                user_data_32: 0,
            }
        }
    }

    prop_compose! {
        fn new_account()(
            id in id(), asset in 0..4u32, kind in 1..=6u8, flags in any::<u16>(),
            limit in amount(), external_ref in bytes(), metadata in bytes(), hash in 0..3u8,
        ) -> NewAccount {
            let kind = match kind {
                1 => AccountKind::CustomerWallet,
                2 => AccountKind::GiftCard,
                3 => AccountKind::MerchantIssuance,
                4 => AccountKind::MerchantSettlement,
                5 => AccountKind::ExpirySink,
                _ => AccountKind::Operator,
            };
            NewAccount {
                id: AccountId(id),
                asset: AssetId(asset),
                kind,
                flags: AccountFlags(flags % 8),
                overdraft_limit: if flags > 60_000 { limit } else { 0 },
                merchant: MerchantId(1),
                external_ref,
                metadata,
                code_hash: CodeHash([hash; 32]),
            }
        }
    }

    fn change() -> impl Strategy<Value = AccountChange> {
        (0..9u8, id(), amount(), any::<u16>(), id(), id()).prop_map(|(kind, a, n, f, t, m)| {
            let account = AccountId(a);
            match kind {
                0 => AccountChange::Freeze { account },
                1 => AccountChange::Unfreeze { account },
                2 => AccountChange::Close { account },
                3 => AccountChange::SetOverdraftLimit { account, overdraft_limit: n },
                4 => AccountChange::SetFlags { account, flags: AccountFlags(f) },
                5 => AccountChange::ActivateGiftCard { account },
                6 => AccountChange::BlockGiftCard { account },
                7 => AccountChange::UnblockGiftCard { account },
                _ => AccountChange::DeactivateGiftCard {
                    account,
                    transfer_id: TransferId(t),
                    merchant_account: AccountId(m),
                },
            }
        })
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            6 => vec(transfer(), 0..12).prop_map(Operation::CreateTransfers),
            2 => vec(new_account(), 0..6).prop_map(Operation::CreateAccounts),
            1 => vec((any::<u32>(), bytes(), any::<u8>(), id()), 0..3).prop_map(|assets| {
                Operation::CreateAssets(
                    assets
                        .into_iter()
                        .map(|(id, code, scale, sink)| NewAsset {
                            id: AssetId(id % 5),
                            code,
                            scale,
                            expiry_account: AccountId(sink),
                        })
                        .collect(),
                )
            }),
            2 => vec(change(), 0..6).prop_map(Operation::ChangeAccounts),
            1 => vec((new_account(), id(), id(), amount()), 0..3).prop_map(|issues| {
                Operation::IssueGiftCards(
                    issues
                        .into_iter()
                        .map(|(account, load, from, amount)| GiftCardIssue {
                            account,
                            load_transfer_id: TransferId(load),
                            load_from: AccountId(from),
                            load_amount: amount,
                        })
                        .collect(),
                )
            }),
            1 => vec(id(), 0..4).prop_map(|ids| Operation::Erase(ids.into_iter().map(AccountId).collect())),
            2 => Just(Operation::Tick),
        ]
    }

    fn clock() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0..300u64, 1 => any::<u64>(), 1 => Just(u64::MAX)]
    }

    /// Encodes `value`, decodes it back, and checks that every strict prefix fails to decode.
    fn round_trip<T>(value: &T) -> Result<(), TestCaseError>
    where
        T: crate::encode::Encode + crate::decode::Decode + PartialEq + std::fmt::Debug,
    {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        prop_assert_eq!(&crate::decode::decode_exact::<T>(&bytes).unwrap(), value);
        for cut in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
            if cut < bytes.len() {
                prop_assert!(crate::decode::decode_exact::<T>(&bytes[..cut]).is_err());
            }
        }
        Ok(())
    }

    proptest! {
        // Goal: the codec is the exact inverse of the encoding for every batch and every record
        // a random history stores. Method: encode, decode, compare; truncations must fail.
        #[test]
        fn codec_round_trips(batches in vec((clock(), operation()), 1..12)) {
            let mut ledger = Ledger::new();
            for (seconds, operation) in batches {
                let batch = Batch { now: Timestamp(seconds.saturating_mul(NANOS_PER_SECOND)), operation };
                round_trip(&batch)?;
                ledger.state.execute(&batch);
            }
            let records = ledger.state.records();
            round_trip(&records.meta)?;
            records.assets.iter().try_for_each(round_trip)?;
            records.accounts.iter().try_for_each(round_trip)?;
            records.transfers.iter().try_for_each(round_trip)?;
            records.transfers_failed.iter().try_for_each(round_trip)?;
            records.lots.iter().try_for_each(round_trip)?;
            records.events.iter().flatten().try_for_each(round_trip)?;
        }

        // Goal: damaged bytes are an error, never a panic or a huge allocation. Method: random
        // bytes, and valid encodings with one byte flipped, decoded as every type.
        #[test]
        fn garbage_never_panics(bytes in vec(any::<u8>(), 0..400), flip in any::<prop::sample::Index>()) {
            use crate::decode::decode_exact;
            let _ = decode_exact::<Batch>(&bytes);
            let _ = decode_exact::<crate::types::Account>(&bytes);
            let _ = decode_exact::<crate::types::Transfer>(&bytes);
            let _ = decode_exact::<crate::types::FailedTransfer>(&bytes);
            let _ = decode_exact::<crate::event::Event>(&bytes);
            let mut valid = Vec::new();
            crate::encode::Encode::encode(&Batch {
                now: Timestamp(5),
                operation: Operation::CreateTransfers(vec![NewTransfer::default(); 3]),
            }, &mut valid);
            let index = flip.index(valid.len());
            valid[index] ^= bytes.first().copied().unwrap_or(1) | 1;
            let _ = decode_exact::<Batch>(&valid);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if std::env::var_os("RUN_SLOW_TESTS").is_some() { 4_000 } else { 300 },
            ..ProptestConfig::default()
        })]
        #[test]
        fn never_panics_and_keeps_invariants(batches in vec((clock(), operation()), 1..25)) {
            let mut ledger = Ledger::new();
            for (seconds, operation) in batches {
                let now = Timestamp(seconds.saturating_mul(NANOS_PER_SECOND));
                let batch = Batch { now, operation };
                let results = ledger.state.execute(&batch);
                prop_assert_eq!(results.len(), batch.operation.len().min(
                    if matches!(results, Results::BatchRefused(_)) { 0 } else { usize::MAX }));
                let checked = invariants::check(&ledger.state.records());
                prop_assert!(checked.is_ok(), "{:?} after {:?}", checked, batch);
            }
        }
    }
}

/// Regression: the invariant checker added `credits_posted + overdraft_limit + overdraft_forced`
/// unchecked and panicked once an account's limit was set near `u128::MAX`, which apply accepts.
/// (Every `check` runs the invariants after each batch.)
#[test]
fn overdraft_limit_near_max() {
    check(
        &["1 1->2 10 earn", "limit 2 max"],
        "2 2->4 1000 burn",
        &[2],
        expect![[r#"
        Ok amount=1000
        2:1000/10
    "#]],
    );
}

/// Regression: resolving a hold left the given-back lot parts in the hold's `lots_consumed`,
/// which documents what is *not yet* given back. After a void the hold lists nothing; after a
/// partial post the post record carries what stayed consumed.
#[test]
fn resolved_hold_lists_no_lots() {
    let mut ledger = Ledger::new();
    for batch in ["1 1->2 100 earn expires=100", "2 2->4 30 burn pending", "3 2->4 30 burn pending"]
    {
        ledger.run(batch);
    }
    ledger.run("4 0->0 0 none void pending=2");
    ledger.run("5 0->0 10 none post pending=3");
    let record = |id| ledger.state.transfers().find(|t| t.id == TransferId(id)).unwrap().clone();
    assert!(record(2).lots_consumed.is_empty());
    assert!(record(3).lots_consumed.is_empty());
    assert_eq!(record(5).lots_consumed.iter().map(|p| p.amount).sum::<u128>(), 10);
}

/// Regression: a forced refund of a gift card's load could take the card below zero, and
/// deactivating it then panicked in apply ("gift cards never go below zero"): one command would
/// stop every replica. FORCE no longer lifts a gift card's limit.
#[test]
fn forced_refund_cannot_empty_a_gift_card_below_zero() {
    let setup = ["1 7->8 500 load asset=2", "activate 8", "2 8->7 400 redeem asset=2"];
    check(
        &setup,
        "3 0->0 0 reversal force reverses=1 asset=2\n4 0->0 100 reversal force reverses=1 asset=2",
        &[8],
        expect![[r#"
            ExceedsCredits
            Ok amount=100
            8:500/500
        "#]],
    );
    check(
        &setup,
        "deactivate 8 9 7",
        &[8, 7],
        expect![[r#"
        Ok Some(Deactivated)
        8:500/500
        7:500/500
    "#]],
    );
}

/// Regression: expiry sinks are system accounts; a limit flag set on one was broken by the next
/// tick's credit, so they take no account changes at all.
#[test]
fn expiry_sink_takes_no_changes() {
    check(
        &[],
        "flags 900 c\nfreeze 900\nclose 900\nlimit 900 0",
        &[],
        expect![[r#"
        AccountIsExpirySink Some(Active)
        AccountIsExpirySink Some(Active)
        AccountIsExpirySink Some(Active)
        AccountIsExpirySink Some(Active)
    "#]],
    );
}

/// Regression: a gift card asked with CREDITS_MUST_NOT_EXCEED_DEBITS was stored with both limit
/// flags, which are mutually exclusive.
#[test]
fn gift_card_with_credit_limit_is_refused() {
    let mut ledger = Ledger::new();
    let card = NewAccount {
        code_hash: CodeHash([3; 32]),
        ..account(30, 2, AccountKind::GiftCard, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
    };
    let results = ledger.run_operation(Operation::CreateAccounts(vec![card]));
    expect![[r#"
        CreateAccounts([AccountOutcome { result: FlagsAreMutuallyExclusive, timestamp: Timestamp(0) }])
    "#]].assert_eq(&describe(&results));
}
