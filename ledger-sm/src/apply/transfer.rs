//! Transfers: single-phase, holds (pending), posts and voids of holds, reversals and refunds,
//! balancing, with linked chains around them. Each path checks everything first and changes
//! records only once it cannot fail, so a refusal leaves no trace but its record.

use super::{apply_linked, lots, Context};
use crate::command::NewTransfer;
use crate::event::EventKind;
use crate::result::{TransferOutcome, TransferResult as R};
use crate::types::{
    Account, AccountBalances, AccountId, AccountStatus, FailedTransfer, LotPart, Timestamp,
    Transfer, TransferFlags as F, TransferState,
};

type Checked<T> = Result<T, R>;

impl Context {
    pub(crate) fn create_transfers(&mut self, transfers: &[NewTransfer]) -> Vec<TransferOutcome> {
        apply_linked(
            self,
            transfers,
            |t| t.flags.has(F::LINKED),
            |context, t, chained| context.create_transfer(t, chained),
            |outcome| matches!(outcome.result, R::Ok | R::Exists),
            TransferOutcome::refused(R::LinkedEventFailed),
            TransferOutcome::refused(R::LinkedEventChainOpen),
        )
    }

    /// One transfer. Refusals outside linked chains are recorded under the id, so a retry gets
    /// the same answer.
    pub(crate) fn create_transfer(&mut self, t: &NewTransfer, chained: bool) -> TransferOutcome {
        if let Err(result) = validate(t) {
            return self.refuse(t, result, chained);
        }
        if let Some(existing) = self.transfer(t.id) {
            if let Some(difference) = compare_applied(t, existing) {
                return self.outcome_refused(t, difference);
            }
            return TransferOutcome {
                result: R::Exists,
                timestamp: existing.timestamp,
                amount: existing.amount,
                debit: Some(existing.debit_account_balances()),
                credit: Some(existing.credit_account_balances()),
            };
        }
        if let Some(failed) = self.transfers_failed.get(&t.id) {
            let result = compare_requests(t, &failed.transfer).unwrap_or(failed.result);
            return self.outcome_refused(t, result);
        }
        let timestamp = self.timestamp_next();
        let applied = if t.flags.resolves_pending() {
            self.resolve_pending(t, timestamp)
        } else if t.code.is_some_and(|code| code.is_reversal()) {
            self.reverse(t, timestamp)
        } else {
            self.post_or_hold(t, timestamp)
        };
        match applied {
            Ok(outcome) => outcome,
            Err(result) => {
                // Nothing was applied: give the timestamp back so timestamps stay dense.
                self.meta.timestamp_last = Timestamp(timestamp.0 - 1);
                self.refuse(t, result, chained)
            }
        }
    }

    fn refuse(&mut self, t: &NewTransfer, result: R, chained: bool) -> TransferOutcome {
        if !chained && result.is_recorded() && !self.transfer_id_used(t.id) {
            let timestamp = self.timestamp_next();
            self.transfer_failed_insert(FailedTransfer { transfer: *t, result, timestamp });
        }
        self.outcome_refused(t, result)
    }

    fn outcome_refused(&self, t: &NewTransfer, result: R) -> TransferOutcome {
        TransferOutcome {
            result,
            timestamp: Timestamp::ZERO,
            amount: 0,
            debit: self.accounts.get(&t.debit_account).map(Account::account_balances),
            credit: self.accounts.get(&t.credit_account).map(Account::account_balances),
        }
    }

    /// A single-phase transfer or a new hold.
    fn post_or_hold(&mut self, t: &NewTransfer, timestamp: Timestamp) -> Checked<TransferOutcome> {
        let debit = self.accounts.get(&t.debit_account).ok_or(R::DebitAccountNotFound)?;
        let credit = self.accounts.get(&t.credit_account).ok_or(R::CreditAccountNotFound)?;
        if debit.asset != credit.asset {
            return Err(R::AccountsMustHaveTheSameAsset);
        }
        if t.asset != debit.asset {
            return Err(R::TransferMustHaveTheSameAssetAsAccounts);
        }
        if !debits_allowed(debit.status) {
            return Err(R::DebitAccountNotActive);
        }
        if !credits_allowed(credit.status) {
            return Err(R::CreditAccountNotActive);
        }
        if !t.expires_at.is_zero() && t.expires_at <= timestamp {
            return Err(R::ExpiresAtMustBeInTheFuture);
        }
        let amount = balancing_amount(t, debit, credit)?;
        let pending = t.flags.has(F::PENDING);
        check_overflows(debit, credit, amount, pending)?;
        check_limits(debit, credit, amount, false)?;
        let credits_lot = !pending && !t.expires_at.is_zero();
        if credits_lot && lots::exceeds_limit(self.lots.get(&t.credit_account), t.expires_at) {
            return Err(R::LotsExceedLimit);
        }
        // Checked: from here on nothing fails.
        let lots_consumed = self.debit(t.debit_account, amount, pending, false, Timestamp::ZERO);
        self.credit(t.credit_account, amount, pending, t.expires_at);
        let state = if pending { TransferState::Pending } else { TransferState::Final };
        let transfer = self.record(t, timestamp, amount, state, lots_consumed);
        let kind = if pending { EventKind::HoldCreated } else { EventKind::TransferPosted };
        Ok(self.insert_and_emit(transfer, kind))
    }

    /// A post or void of a hold.
    fn resolve_pending(
        &mut self,
        t: &NewTransfer,
        timestamp: Timestamp,
    ) -> Checked<TransferOutcome> {
        let hold = self.transfer(t.pending_id).ok_or(R::PendingTransferNotFound)?;
        check_hold(t, hold, timestamp)?;
        let post = t.flags.has(F::POST_PENDING);
        let amount = if t.amount == 0 { hold.amount } else { t.amount };
        if post && amount > hold.amount {
            return Err(R::ExceedsPendingTransferAmount);
        }
        if !post && amount != hold.amount {
            return Err(R::PendingTransferHasDifferentAmount);
        }
        let debit = &self.accounts[&hold.debit_account];
        let credit = &self.accounts[&hold.credit_account];
        if post {
            if !debits_allowed(debit.status) {
                return Err(R::DebitAccountNotActive);
            }
            if !credits_allowed(credit.status) {
                return Err(R::CreditAccountNotActive);
            }
            // The hold was checked against `OverflowsDebits` / `OverflowsCredits`, and posted plus
            // pending only ever stays within u128 after that, so posting cannot overflow.
            assert!(debit
                .balances
                .debits_posted
                .checked_add(debit.balances.debits_pending)
                .is_some());
            assert!(credit
                .balances
                .credits_posted
                .checked_add(credit.balances.credits_pending)
                .is_some());
            if !hold.expires_at.is_zero()
                && lots::exceeds_limit(self.lots.get(&hold.credit_account), hold.expires_at)
            {
                return Err(R::LotsExceedLimit);
            }
        }
        let hold = hold.clone();
        let flags = if post { F::POST_PENDING } else { F::VOID_PENDING };
        let state = if post { TransferState::Posted } else { TransferState::Voided };
        let transfer = self.resolve(&hold, t, timestamp, amount, flags, state);
        let kind = if post { EventKind::HoldPosted } else { EventKind::HoldVoided };
        Ok(self.insert_and_emit(transfer, kind))
    }

    /// Moves a hold out of pending: posts `amount` of it (when `flags` is a post) and releases
    /// the rest. Shared by posts, voids and hold timeouts. Returns the resolving record.
    pub(crate) fn resolve(
        &mut self,
        hold: &Transfer,
        t: &NewTransfer,
        timestamp: Timestamp,
        amount: u128,
        flags: u16,
        state: TransferState,
    ) -> Transfer {
        assert_eq!(hold.state, TransferState::Pending);
        let posted = if flags == F::POST_PENDING { amount } else { 0 };
        assert!(posted <= hold.amount);
        let mut parts = hold.lots_consumed.clone();
        {
            let debit = self.account_mut(hold.debit_account);
            debit.balances.debits_pending -= hold.amount;
            debit.balances.debits_posted += posted;
        }
        {
            let credit = self.account_mut(hold.credit_account);
            credit.balances.credits_pending -= hold.amount;
            credit.balances.credits_posted += posted;
        }
        self.settle_forced(hold.debit_account, false);
        self.settle_forced(hold.credit_account, false);
        if !parts.is_empty() && posted < hold.amount {
            self.restore_lots(hold.debit_account, &mut parts, hold.amount - posted);
        }
        if posted > 0 && !hold.expires_at.is_zero() {
            self.add_lot(hold.credit_account, hold.expires_at, posted);
        }
        {
            // Every consumed part is now given back or carried by the post record.
            let resolved = self.transfer_mut(hold.id);
            resolved.state = state;
            resolved.lots_consumed = Vec::new();
        }
        let request = NewTransfer {
            id: t.id,
            debit_account: hold.debit_account,
            credit_account: hold.credit_account,
            asset: hold.asset,
            code: Some(t.code.unwrap_or(hold.code)),
            flags: crate::types::TransferFlags(t.flags.0 | flags),
            pending_id: hold.id,
            ..*t
        };
        let lots_consumed = if posted > 0 { parts } else { Vec::new() };
        self.record(&request, timestamp, amount, TransferState::Final, lots_consumed)
    }

    /// A reversal or refund of an earlier transfer.
    fn reverse(&mut self, t: &NewTransfer, timestamp: Timestamp) -> Checked<TransferOutcome> {
        let original = self.transfer(t.reverses).ok_or(R::ReversedTransferNotFound)?;
        let amount = check_reversible(t, original)?;
        let debit = &self.accounts[&original.credit_account];
        let credit = &self.accounts[&original.debit_account];
        if !debits_allowed(debit.status) {
            return Err(R::DebitAccountNotActive);
        }
        if !credits_allowed(credit.status) {
            return Err(R::CreditAccountNotActive);
        }
        check_overflows(debit, credit, amount, false)?;
        // An operator's FORCE lifts the debit limit, except a gift card's: a card never goes
        // below zero (deactivation clears exactly what it holds).
        let force = t.flags.has(F::FORCE) && debit.kind != crate::types::AccountKind::GiftCard;
        check_limits(debit, credit, amount, force)?;
        let original = original.clone();
        // Checked: from here on nothing fails.
        let lots_consumed =
            self.debit(original.credit_account, amount, false, force, original.expires_at);
        self.credit(original.debit_account, amount, false, Timestamp::ZERO);
        let mut parts = original.lots_consumed.clone();
        if !parts.is_empty() {
            self.restore_lots(original.debit_account, &mut parts, amount);
        }
        {
            let reversed = self.transfer_mut(original.id);
            reversed.amount_reversed += amount;
            reversed.lots_consumed = parts;
        }
        let request = NewTransfer {
            debit_account: original.credit_account,
            credit_account: original.debit_account,
            asset: original.asset,
            ..*t
        };
        let transfer =
            self.record(&request, timestamp, amount, TransferState::Final, lots_consumed);
        Ok(self.insert_and_emit(transfer, EventKind::TransferPosted))
    }

    /// Debits `amount` (posted, or pending for a hold) and consumes lots for it, preferring the
    /// lot at `preferred`. Returns the lots consumed.
    pub(crate) fn debit(
        &mut self,
        id: AccountId,
        amount: u128,
        pending: bool,
        force: bool,
        preferred: Timestamp,
    ) -> Vec<LotPart> {
        let account = self.account_mut(id);
        if pending {
            account.balances.debits_pending += amount;
        } else {
            account.balances.debits_posted += amount;
        }
        let has_lots = account.lots_total > 0;
        self.settle_forced(id, force);
        if !has_lots {
            return Vec::new();
        }
        let mut lots = std::mem::take(self.lots_mut(id));
        let account = self.accounts.get_mut(&id).expect("touched above");
        let parts = lots::consume(account, &mut lots, amount, preferred);
        *self.lots.get_mut(&id).expect("taken above") = lots;
        parts
    }

    /// Credits `amount` (posted, or pending for a hold); a posted credit with an expiry adds to
    /// the lot at `expires_at`.
    pub(crate) fn credit(
        &mut self,
        id: AccountId,
        amount: u128,
        pending: bool,
        expires_at: Timestamp,
    ) {
        let account = self.account_mut(id);
        if pending {
            account.balances.credits_pending += amount;
        } else {
            account.balances.credits_posted += amount;
        }
        self.settle_forced(id, false);
        if !pending && !expires_at.is_zero() {
            self.add_lot(id, expires_at, amount);
        }
    }

    pub(crate) fn add_lot(&mut self, id: AccountId, expires_at: Timestamp, amount: u128) {
        let mut lots = std::mem::take(self.lots_mut(id));
        let account = self.accounts.get_mut(&id).expect("account of the lot");
        lots::add(account, &mut lots, expires_at, amount);
        *self.lots.get_mut(&id).expect("taken above") = lots;
    }

    pub(crate) fn restore_lots(&mut self, id: AccountId, parts: &mut Vec<LotPart>, amount: u128) {
        let mut lots = std::mem::take(self.lots_mut(id));
        self.account_mut(id);
        let account = self.accounts.get_mut(&id).expect("account of the lots");
        lots::restore(account, &mut lots, parts, amount);
        *self.lots.get_mut(&id).expect("taken above") = lots;
    }

    /// Brings `overdraft_forced` up to date after a balance change: a forced transfer may set it
    /// to the account's excess over its limit; any other change may only shrink it.
    pub(crate) fn settle_forced(&mut self, id: AccountId, force: bool) {
        let account = self.accounts.get_mut(&id).expect("touched account");
        if account.debits_max().is_none() {
            assert_eq!(account.overdraft_forced, 0);
            return;
        }
        let b = &account.balances;
        let excess = (b.debits_posted + b.debits_pending)
            .saturating_sub(b.credits_posted.saturating_add(account.overdraft_limit));
        if !force {
            assert!(excess <= account.overdraft_forced, "debit limit checked before applying");
        }
        account.overdraft_forced = excess;
    }

    pub(crate) fn record(
        &self,
        t: &NewTransfer,
        timestamp: Timestamp,
        amount: u128,
        state: TransferState,
        lots_consumed: Vec<LotPart>,
    ) -> Transfer {
        Transfer {
            id: t.id,
            debit_account: t.debit_account,
            credit_account: t.credit_account,
            amount,
            asset: t.asset,
            code: t.code.expect("validated"),
            flags: t.flags,
            pending_id: t.pending_id,
            reverses: t.reverses,
            timeout: t.timeout,
            expires_at: t.expires_at,
            user_data_128: t.user_data_128,
            user_data_64: t.user_data_64,
            user_data_32: t.user_data_32,
            timestamp,
            state,
            amount_reversed: 0,
            lots_consumed,
            debit_balances: self.accounts[&t.debit_account].balances,
            credit_balances: self.accounts[&t.credit_account].balances,
        }
    }

    pub(crate) fn insert_and_emit(
        &mut self,
        transfer: Transfer,
        kind: fn(crate::types::TransferId) -> EventKind,
    ) -> TransferOutcome {
        let outcome = TransferOutcome {
            result: R::Ok,
            timestamp: transfer.timestamp,
            amount: transfer.amount,
            debit: Some(transfer.debit_account_balances()),
            credit: Some(transfer.credit_account_balances()),
        };
        self.emit(transfer.timestamp, kind(transfer.id));
        self.transfer_insert(transfer);
        outcome
    }
}

impl TransferOutcome {
    pub(crate) const fn refused(result: R) -> Self {
        Self { result, timestamp: Timestamp::ZERO, amount: 0, debit: None, credit: None }
    }
}

impl Transfer {
    #[must_use]
    pub fn debit_account_balances(&self) -> AccountBalances {
        AccountBalances { account: self.debit_account, balances: self.debit_balances }
    }

    #[must_use]
    pub fn credit_account_balances(&self) -> AccountBalances {
        AccountBalances { account: self.credit_account, balances: self.credit_balances }
    }
}

/// A post or void names a live hold and agrees with it.
fn check_hold(t: &NewTransfer, hold: &Transfer, timestamp: Timestamp) -> Checked<()> {
    if !hold.flags.has(F::PENDING) {
        return Err(R::PendingTransferNotPending);
    }
    if !t.debit_account.is_zero() && t.debit_account != hold.debit_account {
        return Err(R::PendingTransferHasDifferentDebitAccountId);
    }
    if !t.credit_account.is_zero() && t.credit_account != hold.credit_account {
        return Err(R::PendingTransferHasDifferentCreditAccountId);
    }
    if !t.asset.is_zero() && t.asset != hold.asset {
        return Err(R::PendingTransferHasDifferentAsset);
    }
    match hold.state {
        TransferState::Pending => {}
        TransferState::Posted => return Err(R::PendingTransferAlreadyPosted),
        TransferState::Voided => return Err(R::PendingTransferAlreadyVoided),
        TransferState::Expired => return Err(R::PendingTransferExpired),
        TransferState::Final => unreachable!("holds are never final"),
    }
    if hold.hold_deadline().is_some_and(|deadline| deadline <= timestamp) {
        return Err(R::PendingTransferExpired);
    }
    Ok(())
}

/// A reversal names a reversible transfer, agrees with it and fits what is left of it. Returns
/// the amount to reverse.
fn check_reversible(t: &NewTransfer, original: &Transfer) -> Checked<u128> {
    let reversible = original.state == TransferState::Final
        && !original.flags.has(F::VOID_PENDING)
        && !original.code.is_system()
        && !original.code.is_reversal();
    if !reversible {
        return Err(R::ReversedTransferNotReversible);
    }
    if !t.debit_account.is_zero() && t.debit_account != original.credit_account {
        return Err(R::ReversalHasDifferentDebitAccountId);
    }
    if !t.credit_account.is_zero() && t.credit_account != original.debit_account {
        return Err(R::ReversalHasDifferentCreditAccountId);
    }
    if !t.asset.is_zero() && t.asset != original.asset {
        return Err(R::ReversalHasDifferentAsset);
    }
    let reversible_amount = original.amount - original.amount_reversed;
    let amount = if t.amount == 0 { reversible_amount } else { t.amount };
    if amount == 0 || amount > reversible_amount {
        return Err(R::ExceedsReversibleAmount);
    }
    Ok(amount)
}

/// Checks that need no record, in precedence order.
fn validate(t: &NewTransfer) -> Checked<()> {
    if t.id.is_zero() {
        return Err(R::IdMustNotBeZero);
    }
    if t.id.is_reserved() {
        return Err(R::IdReserved);
    }
    let flags = t.flags;
    if flags.0 & !F::ALL != 0 {
        return Err(R::FlagsReserved);
    }
    let reversal = t.code.is_some_and(|code| code.is_reversal());
    let phases = [F::PENDING, F::POST_PENDING, F::VOID_PENDING].iter().filter(|f| flags.has(**f));
    let balancing = flags.has(F::BALANCING_DEBIT | F::BALANCING_CREDIT);
    if phases.clone().count() > 1
        || (flags.resolves_pending() && balancing)
        || (reversal && (phases.count() > 0 || balancing))
    {
        return Err(R::FlagsAreMutuallyExclusive);
    }
    let resolves = flags.resolves_pending();
    match t.code {
        None if !resolves => return Err(R::CodeMustNotBeZero),
        Some(code) if code.is_system() => return Err(R::CodeReserved),
        _ => {}
    }
    if flags.has(F::FORCE) && !reversal {
        return Err(R::ForceRequiresReversal);
    }
    validate_references(t, resolves, reversal)?;
    if resolves || reversal {
        return Ok(());
    }
    if t.debit_account.is_zero() {
        return Err(R::DebitAccountIdMustNotBeZero);
    }
    if t.credit_account.is_zero() {
        return Err(R::CreditAccountIdMustNotBeZero);
    }
    if t.debit_account == t.credit_account {
        return Err(R::AccountsMustBeDifferent);
    }
    if t.asset.is_zero() {
        return Err(R::AssetMustNotBeZero);
    }
    if t.amount == 0 {
        return Err(R::AmountMustNotBeZero);
    }
    Ok(())
}

fn validate_references(t: &NewTransfer, resolves: bool, reversal: bool) -> Checked<()> {
    if resolves && t.pending_id.is_zero() {
        return Err(R::PendingIdMustNotBeZero);
    }
    if !resolves && !t.pending_id.is_zero() {
        return Err(R::PendingIdMustBeZero);
    }
    if resolves && t.pending_id == t.id {
        return Err(R::PendingIdMustBeDifferent);
    }
    if reversal && t.reverses.is_zero() {
        return Err(R::ReversesMustNotBeZero);
    }
    if !reversal && !t.reverses.is_zero() {
        return Err(R::ReversesMustBeZero);
    }
    if reversal && t.reverses == t.id {
        return Err(R::ReversesMustBeDifferent);
    }
    if t.timeout != 0 && !t.flags.has(F::PENDING) {
        return Err(R::TimeoutReservedForPendingTransfer);
    }
    if !t.expires_at.is_zero() && (resolves || reversal) {
        return Err(R::ExpiresAtNotAllowed);
    }
    Ok(())
}

/// The first field in which a retry differs from the applied transfer, in precedence order.
/// Fields a post, void or reversal may leave zero to inherit are compared only when given.
fn compare_applied(t: &NewTransfer, e: &Transfer) -> Option<R> {
    let inherits = e.flags.resolves_pending() || e.code.is_reversal();
    let given = |zero: bool| !(inherits && zero);
    let balancing = e.flags.has(F::BALANCING_DEBIT | F::BALANCING_CREDIT);
    if t.flags != e.flags {
        return Some(R::ExistsWithDifferentFlags);
    }
    if t.pending_id != e.pending_id {
        return Some(R::ExistsWithDifferentPendingId);
    }
    if t.reverses != e.reverses {
        return Some(R::ExistsWithDifferentReverses);
    }
    if t.timeout != e.timeout {
        return Some(R::ExistsWithDifferentTimeout);
    }
    if t.expires_at != e.expires_at {
        return Some(R::ExistsWithDifferentExpiresAt);
    }
    if given(t.debit_account.is_zero()) && t.debit_account != e.debit_account {
        return Some(R::ExistsWithDifferentDebitAccountId);
    }
    if given(t.credit_account.is_zero()) && t.credit_account != e.credit_account {
        return Some(R::ExistsWithDifferentCreditAccountId);
    }
    let amount_differs =
        if balancing { t.amount < e.amount } else { given(t.amount == 0) && t.amount != e.amount };
    if amount_differs {
        return Some(R::ExistsWithDifferentAmount);
    }
    if given(t.asset.is_zero()) && t.asset != e.asset {
        return Some(R::ExistsWithDifferentAsset);
    }
    if t.code.is_some_and(|code| code != e.code) || (t.code.is_none() && !inherits) {
        return Some(R::ExistsWithDifferentCode);
    }
    compare_user_data(t, e.user_data_128, e.user_data_64, e.user_data_32)
}

/// The first field in which a retry differs from a refused request, in precedence order.
fn compare_requests(t: &NewTransfer, e: &NewTransfer) -> Option<R> {
    let checks = [
        (t.flags != e.flags, R::ExistsWithDifferentFlags),
        (t.pending_id != e.pending_id, R::ExistsWithDifferentPendingId),
        (t.reverses != e.reverses, R::ExistsWithDifferentReverses),
        (t.timeout != e.timeout, R::ExistsWithDifferentTimeout),
        (t.expires_at != e.expires_at, R::ExistsWithDifferentExpiresAt),
        (t.debit_account != e.debit_account, R::ExistsWithDifferentDebitAccountId),
        (t.credit_account != e.credit_account, R::ExistsWithDifferentCreditAccountId),
        (t.amount != e.amount, R::ExistsWithDifferentAmount),
        (t.asset != e.asset, R::ExistsWithDifferentAsset),
        (t.code != e.code, R::ExistsWithDifferentCode),
    ];
    if let Some((_, result)) = checks.iter().find(|(differs, _)| *differs) {
        return Some(*result);
    }
    compare_user_data(t, e.user_data_128, e.user_data_64, e.user_data_32)
}

fn compare_user_data(t: &NewTransfer, u128_: u128, u64_: u64, u32_: u32) -> Option<R> {
    if t.user_data_128 != u128_ {
        return Some(R::ExistsWithDifferentUserData128);
    }
    if t.user_data_64 != u64_ {
        return Some(R::ExistsWithDifferentUserData64);
    }
    if t.user_data_32 != u32_ {
        return Some(R::ExistsWithDifferentUserData32);
    }
    None
}

/// Debits are allowed from active accounts and active gift cards only.
pub(crate) fn debits_allowed(status: AccountStatus) -> bool {
    status == AccountStatus::Active
}

/// Credits are allowed to active accounts and to gift cards that are active or not yet activated
/// (a card is loaded at the till before it is activated).
pub(crate) fn credits_allowed(status: AccountStatus) -> bool {
    matches!(status, AccountStatus::Active | AccountStatus::Pending)
}

/// The amount a transfer moves: the request, or for a balancing transfer at most what the
/// account's limit leaves room for.
fn balancing_amount(t: &NewTransfer, debit: &Account, credit: &Account) -> Checked<u128> {
    let mut amount = t.amount;
    if t.flags.has(F::BALANCING_DEBIT) {
        if let Some(max) = debit.debits_max() {
            let b = &debit.balances;
            let room = max.saturating_sub(b.debits_posted.saturating_add(b.debits_pending));
            amount = amount.min(room);
            if amount == 0 {
                return Err(R::ExceedsCredits);
            }
        }
    }
    if t.flags.has(F::BALANCING_CREDIT) {
        if let Some(max) = credit.credits_max() {
            let b = &credit.balances;
            let room = max.saturating_sub(b.credits_posted.saturating_add(b.credits_pending));
            amount = amount.min(room);
            if amount == 0 {
                return Err(R::ExceedsDebits);
            }
        }
    }
    Ok(amount)
}

fn check_overflows(debit: &Account, credit: &Account, amount: u128, pending: bool) -> Checked<()> {
    let (d, c) = (&debit.balances, &credit.balances);
    if pending {
        d.debits_pending.checked_add(amount).ok_or(R::OverflowsDebitsPending)?;
        c.credits_pending.checked_add(amount).ok_or(R::OverflowsCreditsPending)?;
    } else {
        d.debits_posted.checked_add(amount).ok_or(R::OverflowsDebitsPosted)?;
        c.credits_posted.checked_add(amount).ok_or(R::OverflowsCreditsPosted)?;
    }
    d.debits_posted
        .checked_add(d.debits_pending)
        .and_then(|sum| sum.checked_add(amount))
        .ok_or(R::OverflowsDebits)?;
    c.credits_posted
        .checked_add(c.credits_pending)
        .and_then(|sum| sum.checked_add(amount))
        .ok_or(R::OverflowsCredits)?;
    Ok(())
}

/// Balance limits; `force` lifts the debit account's (the caller decides when it may).
fn check_limits(debit: &Account, credit: &Account, amount: u128, force: bool) -> Checked<()> {
    if let (Some(max), false) = (debit.debits_max(), force) {
        let b = &debit.balances;
        if b.debits_posted + b.debits_pending + amount > max {
            return Err(R::ExceedsCredits);
        }
    }
    if let Some(max) = credit.credits_max() {
        let b = &credit.balances;
        if b.credits_posted + b.credits_pending + amount > max {
            return Err(R::ExceedsDebits);
        }
    }
    Ok(())
}
