//! The sequential model of a few ledger accounts: what the cluster must look like from outside.
//!
//! It is written apart from `ledger-sm`, on purpose: a second, small statement of the rules the
//! simulation's clients rely on, so that a bug in the ledger is not also in its judge.
//! - A transfer moves `amount` from `debit` to `credit`. A *guarded* account's debits must not
//!   exceed its credits (a customer wallet, a gift card); a transfer that would break that is
//!   refused with `ExceedsCredits`. Other accounts (a merchant's, the program's) may go below
//!   zero.
//! - A transfer id is used once, for ever (ADR 0003): a retry with the same fields answers
//!   `Exists` if the transfer was applied and the same refusal if it was refused — a refusal is
//!   recorded, so a blind retry never turns a refusal into a transfer; a retry with other
//!   fields answers `ExistsWithDifferentFields`.
//! - A hold is a transfer into the pending balances: it counts against a guarded account's
//!   credits (`debits + debits_pending + amount > credits` is refused) until a post moves all of
//!   it, or part of it, into the posted balances (the rest is released), or a void releases it.
//!   A resolve of a hold that was never applied answers `PendingTransferNotFound`; of one
//!   already resolved, `PendingTransferAlreadyPosted` or `…Voided`; a post of more than was
//!   held, `ExceedsPendingTransferAmount`. Resolves are ids like transfers: retried, they
//!   answer `Exists` or their recorded refusal.
//! - A balancing transfer moves at most what a guarded debit account has available: the
//!   requested amount, or less (`ExceedsCredits` when nothing is available) — "burn all".
//! - A reversal (a refund of a burn, a reversal of an earn) moves value back from the credit
//!   account of an applied posted transfer (a transfer, a balancing one, or a post) to its
//!   debit account: all that is left of it (`amount` zero) or part of it, at most the
//!   original amount in total (`ExceedsReversibleAmount`). It is refused with
//!   `ReversedTransferNotFound` when no transfer was applied under that id, with
//!   `ReversedTransferNotReversible` when that one is a hold, a void or itself a reversal, and
//!   with `ExceedsCredits` when it would overdraw a guarded account (a wallet that already
//!   spent an earn).
//! - A read returns an account's posted and pending debits and credits.
//! - Clients retry a call whose answer was lost with the same id (`api::client` does), so a
//!   call may itself be answered `Exists` for an id nobody used before: its first attempt
//!   applied the transfer. The model takes `Exists` there as the call applying it.
//!
//! `partitions` splits a history into parts that cannot influence each other (P-compositional
//! checking): each part is a set of guarded accounts with every call that touches them, so the
//! checker's search stays small however long the history.

use std::collections::BTreeMap;

use crate::checker::{self, Call, Model, Verdict};

/// An account's totals: posted, and held (pending).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Balance {
    pub debits: u128,
    pub credits: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

/// A transfer request; accounts are indexes into the bank's accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub id: u128,
    pub debit: usize,
    pub credit: usize,
    pub amount: u128,
}

/// A reversal of `original` (as its client sent it: its accounts place the reversal in a
/// partition; the model reverses what it recorded under that id). An `amount` of zero
/// reverses all that is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reversal {
    pub id: u128,
    pub original: Transfer,
    pub amount: u128,
}

/// A post (`void: false`) or a void of the hold `hold`; an `amount` of zero posts the whole
/// hold (a void always releases all of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolve {
    pub id: u128,
    pub hold: Transfer,
    pub amount: u128,
    pub void: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Transfer(Transfer),
    /// A pending transfer.
    Hold(Transfer),
    Resolve(Resolve),
    /// A transfer that moves at most what its debit account has available.
    Balancing(Transfer),
    Reverse(Reversal),
    Read(usize),
}

impl Op {
    /// The accounts a write moves (a resolve: its hold's).
    #[must_use]
    pub fn accounts(&self) -> Option<[usize; 2]> {
        match self {
            Op::Transfer(t)
            | Op::Hold(t)
            | Op::Balancing(t)
            | Op::Resolve(Resolve { hold: t, .. })
            | Op::Reverse(Reversal { original: t, .. }) => Some([t.debit, t.credit]),
            Op::Read(_) => None,
        }
    }

    /// The id of the record a write makes.
    fn id(&self) -> Option<u128> {
        match self {
            Op::Transfer(t) | Op::Hold(t) | Op::Balancing(t) => Some(t.id),
            Op::Resolve(Resolve { id, .. }) | Op::Reverse(Reversal { id, .. }) => Some(*id),
            Op::Read(_) => None,
        }
    }

    /// Writes that answer for each other share this: a transfer's id, a hold's (its resolves
    /// answer `NotFound`, `Already…` by what became of it), or a reversed transfer's.
    fn group(&self) -> Option<u128> {
        match self {
            Op::Transfer(t)
            | Op::Hold(t)
            | Op::Balancing(t)
            | Op::Resolve(Resolve { hold: t, .. })
            | Op::Reverse(Reversal { original: t, .. }) => Some(t.id),
            Op::Read(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    Ok,
    Exists,
    ExceedsCredits,
    ExistsWithDifferentFields,
    PendingTransferNotFound,
    PendingTransferAlreadyPosted,
    PendingTransferAlreadyVoided,
    ExceedsPendingTransferAmount,
    ReversedTransferNotFound,
    ReversedTransferNotReversible,
    ExceedsReversibleAmount,
    Balance(Balance),
}

/// The model: which accounts are guarded, and which the state keeps (a partition keeps only
/// its own; the others are unguarded there, so their balances decide nothing).
#[derive(Clone, Debug)]
pub struct Bank {
    guarded: Vec<bool>,
    kept: Vec<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BankState {
    balances: Vec<Balance>,
    /// Every id used, with the request and its first answer (`Ok` or a refusal).
    records: BTreeMap<u128, (Op, Ret)>,
    /// Every hold applied, with what became of it.
    holds: BTreeMap<u128, Hold>,
    /// Every posted transfer that may be reversed (transfers, balancing ones, posts), as
    /// applied, with the amount reversed so far.
    reversible: BTreeMap<u128, (Transfer, u128)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hold {
    Pending(u128),
    Posted,
    Voided,
}

/// One independent part of a history: its guarded accounts, the model to check it with, and
/// the indexes of its calls in the whole history.
#[derive(Clone, Debug)]
pub struct Partition {
    pub accounts: Vec<usize>,
    pub bank: Bank,
    pub calls: Vec<usize>,
}

impl Bank {
    /// A bank of `guarded.len()` accounts, all starting at zero.
    #[must_use]
    pub fn new(guarded: Vec<bool>) -> Bank {
        let kept = vec![true; guarded.len()];
        Bank { guarded, kept }
    }

    #[must_use]
    pub fn accounts(&self) -> usize {
        self.guarded.len()
    }

    /// Splits `history` into independent partitions, one per group of guarded accounts that
    /// transfers (or reuses of one transfer id) connect. Reads of unguarded accounts, and
    /// transfers that touch no guarded account, belong to no partition: only the whole-bank
    /// check judges them. Reads never answered belong to none either.
    ///
    /// # Panics
    /// A call names an account the bank does not have.
    #[must_use]
    pub fn partitions(&self, history: &[Call<Op, Ret>]) -> Vec<Partition> {
        let mut groups = Groups::new(self.accounts());
        // Calls that share an id answer for each other (`Exists…`, a hold's resolves): keep
        // them together.
        let mut by_id: BTreeMap<u128, Vec<usize>> = BTreeMap::new();
        for (index, call) in history.iter().enumerate() {
            if let (Some(group), Some(accounts)) = (call.op.group(), call.op.accounts()) {
                assert!(accounts.iter().all(|a| *a < self.accounts()));
                by_id.entry(group).or_default().push(index);
            }
        }
        let mut owner_of_call: Vec<Option<usize>> = vec![None; history.len()];
        for calls in by_id.values() {
            let guarded: Vec<usize> = calls
                .iter()
                .flat_map(|c| history[*c].op.accounts().expect("grouped writes"))
                .filter(|a| self.guarded[*a])
                .collect();
            for pair in guarded.windows(2) {
                groups.join(pair[0], pair[1]);
            }
            for call in calls {
                owner_of_call[*call] = guarded.first().copied();
            }
        }
        for (index, call) in history.iter().enumerate() {
            if let Op::Read(account) = call.op {
                assert!(account < self.accounts());
                // A read never answered changed nothing and showed nothing: it constrains no
                // order, and left in it would only double the search.
                let answered = call.answered.is_some();
                owner_of_call[index] = (self.guarded[account] && answered).then_some(account);
            }
        }
        let mut parts: BTreeMap<usize, Partition> = BTreeMap::new();
        for account in (0..self.accounts()).filter(|a| self.guarded[*a]) {
            let root = groups.root(account);
            let part = parts.entry(root).or_insert_with(|| Partition {
                accounts: Vec::new(),
                bank: Bank { guarded: self.guarded.clone(), kept: vec![false; self.accounts()] },
                calls: Vec::new(),
            });
            part.accounts.push(account);
            part.bank.kept[account] = true;
        }
        for (index, owner) in owner_of_call.into_iter().enumerate() {
            if let Some(account) = owner {
                let part = parts.get_mut(&groups.root(account)).expect("every guarded account");
                part.calls.push(index);
            }
        }
        parts.into_values().filter(|p| !p.calls.is_empty()).collect()
    }

    /// The model's answer to the write `op` in `state`, and the state after it.
    fn write(&self, state: &BankState, op: Op) -> (BankState, Ret) {
        let id = op.id().expect("a write");
        if let Some((original, first)) = state.records.get(&id) {
            let ret = match (*original == op, first) {
                (false, _) => Ret::ExistsWithDifferentFields,
                (true, Ret::Ok) => Ret::Exists,
                (true, refusal) => *refusal,
            };
            return (state.clone(), ret);
        }
        let mut next = state.clone();
        let ret = match op {
            Op::Transfer(t) => self.transfer(&mut next, t, false),
            Op::Hold(t) => self.transfer(&mut next, t, true),
            Op::Balancing(t) => match self.available(&next, t.debit).map(|a| a.min(t.amount)) {
                Some(0) => Ret::ExceedsCredits,
                Some(amount) => self.transfer(&mut next, Transfer { amount, ..t }, false),
                None => self.transfer(&mut next, t, false),
            },
            Op::Resolve(r) => self.resolve(&mut next, r),
            Op::Reverse(r) => self.reverse(&mut next, r),
            Op::Read(_) => unreachable!("a write"),
        };
        next.records.insert(id, (op, ret));
        (next, ret)
    }

    /// What a guarded account may still spend; `None` for an unguarded one (no limit).
    fn available(&self, state: &BankState, account: usize) -> Option<u128> {
        if !self.guarded[account] {
            return None;
        }
        assert!(self.kept[account], "a partition keeps its guarded accounts");
        let b = state.balances[account];
        Some(b.credits.saturating_sub(b.debits + b.debits_pending))
    }

    /// A transfer, or a hold (`pending`), applied to `next` unless refused.
    fn transfer(&self, next: &mut BankState, t: Transfer, pending: bool) -> Ret {
        if self.available(next, t.debit).is_some_and(|available| t.amount > available) {
            return Ret::ExceedsCredits;
        }
        if self.kept[t.debit] {
            let debit = &mut next.balances[t.debit];
            *if pending { &mut debit.debits_pending } else { &mut debit.debits } += t.amount;
        }
        if self.kept[t.credit] {
            let credit = &mut next.balances[t.credit];
            *if pending { &mut credit.credits_pending } else { &mut credit.credits } += t.amount;
        }
        if pending {
            next.holds.insert(t.id, Hold::Pending(t.amount));
        } else {
            next.reversible.insert(t.id, (t, 0));
        }
        Ret::Ok
    }

    /// A post or void of a hold, applied to `next` unless refused.
    fn resolve(&self, next: &mut BankState, r: Resolve) -> Ret {
        let held = match next.holds.get(&r.hold.id) {
            None => return Ret::PendingTransferNotFound,
            Some(Hold::Posted) => return Ret::PendingTransferAlreadyPosted,
            Some(Hold::Voided) => return Ret::PendingTransferAlreadyVoided,
            Some(Hold::Pending(held)) => *held,
        };
        let posted = match (r.void, r.amount) {
            (true, _) => 0,
            (false, 0) => held,
            (false, amount) if amount > held => return Ret::ExceedsPendingTransferAmount,
            (false, amount) => amount,
        };
        let t = r.hold;
        if self.kept[t.debit] {
            let debit = &mut next.balances[t.debit];
            debit.debits_pending -= held;
            debit.debits += posted;
        }
        if self.kept[t.credit] {
            let credit = &mut next.balances[t.credit];
            credit.credits_pending -= held;
            credit.credits += posted;
        }
        next.holds.insert(t.id, if r.void { Hold::Voided } else { Hold::Posted });
        if !r.void {
            next.reversible.insert(r.id, (Transfer { id: r.id, amount: posted, ..t }, 0));
        }
        Ret::Ok
    }

    /// A reversal, applied to `next` unless refused.
    fn reverse(&self, next: &mut BankState, r: Reversal) -> Ret {
        let Some((original, reversed)) = next.reversible.get(&r.original.id).copied() else {
            return match next.records.get(&r.original.id) {
                Some((_, Ret::Ok)) => Ret::ReversedTransferNotReversible,
                _ => Ret::ReversedTransferNotFound,
            };
        };
        let left = original.amount - reversed;
        let amount = if r.amount == 0 { left } else { r.amount };
        if amount == 0 || amount > left {
            return Ret::ExceedsReversibleAmount;
        }
        let back = Transfer { id: r.id, debit: original.credit, credit: original.debit, amount };
        if self.available(next, back.debit).is_some_and(|available| amount > available) {
            return Ret::ExceedsCredits;
        }
        if self.kept[back.debit] {
            next.balances[back.debit].debits += amount;
        }
        if self.kept[back.credit] {
            next.balances[back.credit].credits += amount;
        }
        next.reversible.insert(original.id, (original, reversed + amount));
        Ret::Ok
    }
}

impl Model for Bank {
    type State = BankState;
    type Op = Op;
    type Ret = Ret;

    fn init(&self) -> BankState {
        BankState {
            balances: vec![Balance::default(); self.accounts()],
            records: BTreeMap::new(),
            holds: BTreeMap::new(),
            reversible: BTreeMap::new(),
        }
    }

    fn step(&self, state: &BankState, op: &Op, ret: Option<&Ret>) -> Option<BankState> {
        match *op {
            Op::Read(account) => {
                assert!(self.kept[account], "a read of an account this model does not keep");
                let balance = Ret::Balance(state.balances[account]);
                ret.is_none_or(|r| *r == balance).then(|| state.clone())
            }
            Op::Transfer(_) | Op::Hold(_) | Op::Resolve(_) | Op::Balancing(_) | Op::Reverse(_) => {
                let (next, expected) = self.write(state, *op);
                let own_retry = expected == Ret::Ok && ret == Some(&Ret::Exists);
                (ret.is_none_or(|r| *r == expected) || own_retry).then_some(next)
            }
        }
    }
}

/// How many calls of `history` got each answer (`Balance` for any read), and how many none
/// (`unanswered`).
#[must_use]
pub fn answer_counts(history: &[Call<Op, Ret>]) -> BTreeMap<String, u32> {
    let mut answers = BTreeMap::new();
    for call in history {
        let name = match &call.answered {
            Some((_, Ret::Balance(_))) => "Balance".to_owned(),
            Some((_, ret)) => format!("{ret:?}"),
            None => "unanswered".to_owned(),
        };
        *answers.entry(name).or_insert(0) += 1;
    }
    answers
}

/// A partition (or the whole bank) whose calls no order explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The guarded accounts of the partition; every account for the whole bank.
    pub accounts: Vec<usize>,
    /// Indexes into the whole history.
    pub longest: Vec<usize>,
    pub unexplained: usize,
}

/// What checking a history found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    Linearizable,
    Violation(Violation),
    /// A part too large for the bound: neither a pass nor a failure.
    Undecided {
        accounts: Vec<usize>,
        configurations: usize,
    },
}

/// Checks each partition of `history` on its own.
#[must_use]
pub fn check_per_account(
    bank: &Bank,
    history: &[Call<Op, Ret>],
    configurations_max: usize,
) -> Finding {
    for part in bank.partitions(history) {
        let calls: Vec<Call<Op, Ret>> = part.calls.iter().map(|c| history[*c].clone()).collect();
        let finding = judged(
            checker::check(&part.bank, &calls, configurations_max),
            &part.accounts,
            &part.calls,
        );
        if finding != Finding::Linearizable {
            return finding;
        }
    }
    Finding::Linearizable
}

/// Checks the whole history against the whole bank (every account kept): the only check of
/// unguarded accounts' reads, affordable for short histories.
#[must_use]
pub fn check_whole(bank: &Bank, history: &[Call<Op, Ret>], configurations_max: usize) -> Finding {
    let whole = Bank::new(bank.guarded.clone());
    let all: Vec<usize> = (0..history.len()).collect();
    let accounts: Vec<usize> = (0..bank.accounts()).collect();
    judged(checker::check(&whole, history, configurations_max), &accounts, &all)
}

/// `verdict` on a part whose calls are `calls` of the whole history.
fn judged(verdict: Verdict, accounts: &[usize], calls: &[usize]) -> Finding {
    match verdict {
        Verdict::Linearizable { .. } => Finding::Linearizable,
        Verdict::NotLinearizable { longest, unexplained } => Finding::Violation(Violation {
            accounts: accounts.to_vec(),
            longest: longest.into_iter().map(|c| calls[c]).collect(),
            unexplained: calls[unexplained],
        }),
        Verdict::Undecided { configurations } => {
            Finding::Undecided { accounts: accounts.to_vec(), configurations }
        }
    }
}

/// Union-find over account indexes.
struct Groups {
    parent: Vec<usize>,
}

impl Groups {
    fn new(count: usize) -> Groups {
        Groups { parent: (0..count).collect() }
    }

    fn root(&mut self, mut account: usize) -> usize {
        while self.parent[account] != account {
            self.parent[account] = self.parent[self.parent[account]];
            account = self.parent[account];
        }
        account
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a.max(b)] = a.min(b);
    }
}

#[cfg(test)]
mod tests;
