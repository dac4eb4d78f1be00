//! Exhaustive small-domain tests: every sequence of a few operations over three accounts and
//! amounts 0..=3, each compared with the reference model, with the invariants checked after
//! every step. Plain transfers and holds credit expiring value, so every debit consumes lots and
//! every void, partial post and refund gives them back. Random tests find the common paths; this finds the corner of a corner (a void
//! after a partial post, a reversal of a balancing transfer that moved less than asked, a hold
//! that exactly exhausts a limit) because it tries all of them.

use ledger_sm::command::{Batch, NewTransfer, Operation};
use ledger_sm::constants::NANOS_PER_SECOND;
use ledger_sm::types::{
    AccountFlags, AccountId, AccountKind, Timestamp, TransferCode, TransferFlags, TransferId,
};

use crate::gen::{new_account, ASSET, START};
use crate::harness::Pair;

/// A no-overdraft wallet.
const WALLET: u128 = 1;
/// An issuance account without limits.
const ISSUER: u128 = 2;
/// A funding account whose credits must not exceed its debits.
const FUNDING: u128 = 3;
/// The setup's first transfer (issuer → wallet, 2, expiring), a valid reversal target.
const FUNDED: u128 = 101;
/// The setup's second transfer (funding → issuer, 2, expiring).
const ONE_MORE: u128 = 102;

#[derive(Clone, Copy, Debug)]
enum Op {
    Plain {
        debit: u128,
        credit: u128,
        amount: u128,
    },
    Hold {
        debit: u128,
        credit: u128,
        amount: u128,
    },
    /// Both balancing flags: the amount is clamped by whichever limit applies.
    Balancing {
        debit: u128,
        credit: u128,
        amount: u128,
    },
    Post {
        hold: u128,
        amount: u128,
    },
    Void {
        hold: u128,
        amount: u128,
    },
    Refund {
        original: u128,
        amount: u128,
    },
}

/// Plain transfers and holds credit expiring value: the setup's at 100 s and 70 s, step k's at
/// 40 − 10·(k − 1) s, so later credits expire earlier and consumption order is not creation
/// order. (Every step runs before the earliest of these.)
fn expiry(id: u128) -> Timestamp {
    let seconds = match id {
        FUNDED => 100,
        ONE_MORE => 70,
        k => 40 - 10 * (u64::try_from(k).expect("small") - 1),
    };
    Timestamp(START + seconds * NANOS_PER_SECOND)
}

fn transfer(id: u128, op: Op) -> NewTransfer {
    let base = NewTransfer {
        id: TransferId(id),
        asset: ASSET,
        code: Some(TransferCode::Transfer),
        ..NewTransfer::default()
    };
    let plain = |debit, credit, amount, flags| NewTransfer {
        debit_account: AccountId(debit),
        credit_account: AccountId(credit),
        amount,
        flags: TransferFlags(flags),
        ..base
    };
    match op {
        Op::Plain { debit, credit, amount } => {
            NewTransfer { expires_at: expiry(id), ..plain(debit, credit, amount, 0) }
        }
        Op::Hold { debit, credit, amount } => NewTransfer {
            expires_at: expiry(id),
            ..plain(debit, credit, amount, TransferFlags::PENDING)
        },
        Op::Balancing { debit, credit, amount } => plain(
            debit,
            credit,
            amount,
            TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT,
        ),
        Op::Post { hold, amount } => NewTransfer {
            pending_id: TransferId(hold),
            amount,
            code: None,
            asset: ledger_sm::types::AssetId(0),
            flags: TransferFlags(TransferFlags::POST_PENDING),
            ..base
        },
        Op::Void { hold, amount } => NewTransfer {
            pending_id: TransferId(hold),
            amount,
            code: None,
            asset: ledger_sm::types::AssetId(0),
            flags: TransferFlags(TransferFlags::VOID_PENDING),
            ..base
        },
        Op::Refund { original, amount } => NewTransfer {
            reverses: TransferId(original),
            amount,
            code: Some(TransferCode::Refund),
            ..base
        },
    }
}

/// The operations possible at position `k` (ids 1..=k are the earlier steps), over the given
/// account pairs.
fn alphabet(k: u128, pairs: &[(u128, u128)]) -> Vec<Op> {
    let mut ops = Vec::new();
    for &(debit, credit) in pairs {
        for amount in 0..=3 {
            ops.push(Op::Plain { debit, credit, amount });
            ops.push(Op::Hold { debit, credit, amount });
            ops.push(Op::Balancing { debit, credit, amount });
        }
    }
    let targets = std::iter::once(FUNDED).chain(1..=k);
    for target in targets {
        for amount in 0..=3 {
            ops.push(Op::Post { hold: target, amount });
            ops.push(Op::Void { hold: target, amount });
            ops.push(Op::Refund { original: target, amount });
        }
    }
    ops
}

fn setup() -> Pair {
    let mut pair = Pair::new();
    for batch in crate::gen::setup().into_iter().take(1) {
        pair.step(&batch).expect("assets");
    }
    let accounts = vec![
        new_account(
            WALLET,
            ASSET,
            AccountKind::CustomerWallet,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        ),
        new_account(ISSUER, ASSET, AccountKind::MerchantIssuance, 0),
        new_account(
            FUNDING,
            ASSET,
            AccountKind::Operator,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ),
    ];
    let now = Timestamp(START);
    pair.step(&Batch { now, operation: Operation::CreateAccounts(accounts) }).expect("accounts");
    let funding = vec![
        transfer(FUNDED, Op::Plain { debit: ISSUER, credit: WALLET, amount: 2 }),
        transfer(ONE_MORE, Op::Plain { debit: FUNDING, credit: ISSUER, amount: 2 }),
    ];
    pair.step(&Batch { now, operation: Operation::CreateTransfers(funding) }).expect("funding");
    pair
}

/// Depth-first over every sequence; each step is one batch one second after the previous one.
fn explore(pair: &Pair, path: &mut Vec<Op>, depth: usize, pairs: &[(u128, u128)]) -> u64 {
    if path.len() == depth {
        return 1;
    }
    let k = path.len() as u128;
    let mut sequences = 0;
    for op in alphabet(k, pairs) {
        let mut next = pair.clone();
        path.push(op);
        let now = Timestamp(START + (path.len() as u64) * NANOS_PER_SECOND);
        let batch = Batch { now, operation: Operation::CreateTransfers(vec![transfer(k + 1, op)]) };
        if let Err(error) = next.step(&batch) {
            panic!("sequence {path:?}: {error}");
        }
        sequences += explore(&next, path, depth, pairs);
        path.pop();
    }
    sequences
}

const ALL_PAIRS: [(u128, u128); 6] = [
    (ISSUER, WALLET),
    (WALLET, ISSUER),
    (WALLET, FUNDING),
    (FUNDING, WALLET),
    (ISSUER, FUNDING),
    (FUNDING, ISSUER),
];

/// Goal: every sequence of two transfers over the three accounts behaves as the spec says.
/// Method: depth-first enumeration of plain transfers, holds, balancing transfers, posts, voids
/// and refunds (each referring to every earlier step and the setup's funding transfer), amounts
/// 0..=3, every account pair; model comparison and invariants after each step.
#[test]
fn every_pair_of_transfers() {
    let sequences = explore(&setup(), &mut Vec::new(), 2, &ALL_PAIRS);
    assert!(sequences > 8_000, "{sequences}");
}

/// Goal: as above, three steps deep: long enough for hold → partial post → refund, or two
/// holds competing for one limit. Method: the same enumeration, all six pairs (~870,000
/// sequences). With `RUN_SLOW_TESTS`, also four steps deep over the wallet's debits.
#[test]
fn every_triple_of_transfers() {
    let sequences = explore(&setup(), &mut Vec::new(), 3, &ALL_PAIRS);
    assert!(sequences > 800_000, "{sequences}");
    if std::env::var_os("RUN_SLOW_TESTS").is_some() {
        let sequences = explore(&setup(), &mut Vec::new(), 4, &[(WALLET, ISSUER)]);
        assert!(sequences > 2_000_000, "{sequences}");
    }
}
