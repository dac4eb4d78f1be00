//! A deliberately simple reference model of the ledger, written from
//! `docs/ledger-semantics.md` and ADRs 0003, 0004, 0007, 0008 and 0009 without looking at
//! `src/apply/`. Plain ordered maps, whole-state clones for chain rollback, no performance
//! concern: its only job is to predict every field of every outcome, and the records the store
//! ends up with, so that the property tests can hold the real state machine to the spec.
//!
//! Where the spec leaves a detail open, the choice made here is marked `AMBIGUITY:`.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;

use ledger_sm::command::{
    AccountChange, Batch, CursorCommand, GiftCardIssue, NewAccount, NewAsset, NewTransfer,
    Operation,
};
use ledger_sm::constants::{
    ACCOUNT_LOTS_MAX, ACCOUNT_METADATA_BYTES_MAX, ASSET_CODE_BYTES_MAX, ASSET_SCALE_MAX,
    BATCH_EVENTS_MAX, EXTERNAL_REF_BYTES_MAX, TICK_EXPIRIES_MAX,
};
use ledger_sm::event::EventKind;
use ledger_sm::result::{
    AccountOutcome, BatchRefusal, ChangeAccountOutcome, ChangeAccountResult as C,
    CreateAccountResult as A, CreateAssetResult as S, CursorResult, EraseResult,
    IssueGiftCardOutcome, IssueGiftCardResult, Results, TickOutcome, TransferOutcome,
    TransferResult as T,
};
use ledger_sm::types::{
    Account, AccountBalances, AccountFlags, AccountId, AccountKind, AccountStatus, Asset, AssetId,
    Balances, CodeHash, Cursor, EventSeq, FailedTransfer, Lot, LotPart, MerchantId, SinkId,
    Timestamp, Transfer, TransferCode, TransferFlags, TransferId, TransferState,
};

const DMNEC: u16 = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
const CMNED: u16 = AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS;

/// The whole ledger as plain records.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// The last timestamp handed out.
    pub last: u64,
    /// The current batch's (clamped) clock.
    now: u64,
    pub assets: BTreeMap<AssetId, Asset>,
    pub accounts: BTreeMap<AccountId, Account>,
    pub transfers: BTreeMap<TransferId, Transfer>,
    pub failed: BTreeMap<TransferId, FailedTransfer>,
    pub lots: BTreeMap<(AccountId, Timestamp), u128>,
    pub gift_cards: BTreeMap<CodeHash, AccountId>,
    /// The outbox: each event's timestamp and kind, in order, from `events_first` on.
    pub events: Vec<(Timestamp, EventKind)>,
    pub events_first: u64,
    pub cursors: BTreeMap<SinkId, Cursor>,
}

fn has(flags: TransferFlags, bit: u16) -> bool {
    flags.0 & bit != 0
}

fn balances_of(account: &Account) -> AccountBalances {
    AccountBalances { account: account.id, balances: account.balances }
}

impl Model {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one batch and predicts its results.
    pub fn execute(&mut self, batch: &Batch) -> Results {
        let len = batch.operation.len();
        if len == 0 {
            return Results::BatchRefused(BatchRefusal::Empty);
        }
        if len > BATCH_EVENTS_MAX as usize {
            return Results::BatchRefused(BatchRefusal::TooManyEvents);
        }
        self.now = batch.time().0;
        match &batch.operation {
            Operation::CreateAssets(assets) => {
                Results::CreateAssets(assets.iter().map(|a| self.create_asset(a)).collect())
            }
            Operation::CreateAccounts(accounts) => Results::CreateAccounts(self.chained(
                accounts,
                |a| a.flags.has(AccountFlags::LINKED),
                |m, a, _| m.create_account(a),
                |r| matches!(r.result, A::Ok | A::Exists),
                AccountOutcome { result: A::LinkedEventFailed, timestamp: Timestamp::ZERO },
                AccountOutcome { result: A::LinkedEventChainOpen, timestamp: Timestamp::ZERO },
            )),
            Operation::CreateTransfers(transfers) => Results::CreateTransfers(self.chained(
                transfers,
                |t| t.flags.has(TransferFlags::LINKED),
                |m, t, in_chain| m.transfer(t, in_chain),
                |r| matches!(r.result, T::Ok | T::Exists),
                linked_outcome(T::LinkedEventFailed),
                linked_outcome(T::LinkedEventChainOpen),
            )),
            Operation::ChangeAccounts(changes) => {
                Results::ChangeAccounts(changes.iter().map(|c| self.change(c)).collect())
            }
            Operation::IssueGiftCards(issues) => {
                Results::IssueGiftCards(issues.iter().map(|i| self.issue(i)).collect())
            }
            Operation::Erase(ids) => Results::Erase(ids.iter().map(|id| self.erase(*id)).collect()),
            Operation::Tick => Results::Tick(self.tick()),
            Operation::Cursors(commands) => Results::Cursors(self.cursors(commands)),
        }
    }

    /// The sequence number the next event takes.
    pub fn event_seq_next(&self) -> u64 {
        self.events_first + self.events.len() as u64
    }

    /// Cursors move forward only, for the newest term, inside the outbox; afterwards the outbox
    /// starts at the lowest cursor (if any is left).
    fn cursors(&mut self, commands: &[CursorCommand]) -> Vec<CursorResult> {
        let results = commands.iter().map(|c| self.cursor(c)).collect();
        if let Some(lowest) = self.cursors.values().map(|c| c.next.0).min() {
            if lowest > self.events_first {
                let compacted = usize::try_from(lowest - self.events_first).unwrap();
                self.events.drain(..compacted);
                self.events_first = lowest;
            }
        }
        results
    }

    fn cursor(&mut self, command: &CursorCommand) -> CursorResult {
        let sink = command.sink();
        if !sink.is_valid() {
            return CursorResult::SinkInvalid;
        }
        let CursorCommand::Advance { next, term, .. } = *command else {
            self.cursors.remove(&sink);
            return CursorResult::Ok;
        };
        if next.0 > self.event_seq_next() {
            return CursorResult::CursorBeyondEvents;
        }
        if next.0 < self.events_first {
            return CursorResult::CursorBelowOutbox;
        }
        match self.cursors.get(&sink) {
            Some(c) if term < c.term => return CursorResult::TermStale,
            Some(c) if next < c.next => return CursorResult::CursorBehind,
            Some(c) if next == c.next && term == c.term => return CursorResult::Ok,
            _ => {}
        }
        let updated_at = self.next();
        self.cursors.insert(sink, Cursor { sink, next: EventSeq(next.0), term, updated_at });
        CursorResult::Ok
    }

    /// The timestamp the next change would take.
    fn peek(&self) -> u64 {
        (self.last + 1).max(self.now)
    }

    /// Takes the next timestamp.
    fn next(&mut self) -> Timestamp {
        self.last = self.peek();
        Timestamp(self.last)
    }

    /// Linked chains: all or nothing; the failing member answers its own code, the others
    /// `LinkedEventFailed`; a chain still open at the end of the batch is not tried at all.
    ///
    /// AMBIGUITY: "A chain still open at the end of the batch: every member answers
    /// `LinkedEventFailed` except the last" is read literally: an open chain's members are not
    /// tried, so none of them answers its own code.
    fn chained<E, R: Copy>(
        &mut self,
        events: &[E],
        linked: impl Fn(&E) -> bool,
        apply: impl Fn(&mut Self, &E, bool) -> R,
        ok: impl Fn(&R) -> bool,
        failed: R,
        open: R,
    ) -> Vec<R> {
        let n = events.len();
        let open_start = if linked(&events[n - 1]) {
            let mut start = n - 1;
            while start > 0 && linked(&events[start - 1]) {
                start -= 1;
            }
            Some(start)
        } else {
            None
        };
        let mut results = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            if open_start == Some(i) {
                results.extend((i..n).map(|j| if j == n - 1 { open } else { failed }));
                break;
            }
            if !linked(&events[i]) {
                results.push(apply(self, &events[i], false));
                i += 1;
                continue;
            }
            let mut end = i;
            while linked(&events[end]) {
                end += 1;
            }
            let snapshot = self.clone();
            let mut answers = Vec::new();
            let mut failed_at = None;
            for (j, event) in events.iter().enumerate().take(end + 1).skip(i) {
                let answer = apply(self, event, true);
                answers.push(answer);
                if !ok(&answer) {
                    failed_at = Some(j);
                    break;
                }
            }
            match failed_at {
                None => results.extend(answers),
                Some(f) => {
                    *self = snapshot;
                    results.extend((i..f).map(|_| failed));
                    results.push(answers[f - i]);
                    results.extend((f + 1..=end).map(|_| failed));
                }
            }
            i = end + 1;
        }
        results
    }

    // ----------------------------------------------------------------------------------------
    // Assets and accounts

    fn create_asset(&mut self, a: &NewAsset) -> S {
        if a.id.is_zero() {
            return S::IdMustNotBeZero;
        }
        if a.code.is_empty() {
            return S::CodeMustNotBeEmpty;
        }
        if a.code.len() > ASSET_CODE_BYTES_MAX {
            return S::CodeTooLong;
        }
        if !a.code.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return S::CodeMustBeAscii;
        }
        if a.scale > ASSET_SCALE_MAX {
            return S::ScaleTooLarge;
        }
        if a.expiry_account.is_zero() {
            return S::ExpiryAccountIdMustNotBeZero;
        }
        if a.expiry_account.is_reserved() {
            return S::ExpiryAccountIdReserved;
        }
        if let Some(existing) = self.assets.get(&a.id) {
            if existing.code != a.code {
                return S::ExistsWithDifferentCode;
            }
            if existing.scale != a.scale {
                return S::ExistsWithDifferentScale;
            }
            if existing.expiry_account != a.expiry_account {
                return S::ExistsWithDifferentExpiryAccount;
            }
            return S::Exists;
        }
        if self.accounts.contains_key(&a.expiry_account) {
            return S::ExpiryAccountExists;
        }
        let timestamp = self.next();
        self.assets.insert(
            a.id,
            Asset {
                id: a.id,
                code: a.code.clone(),
                scale: a.scale,
                expiry_account: a.expiry_account,
                timestamp,
            },
        );
        self.accounts.insert(
            a.expiry_account,
            Account {
                id: a.expiry_account,
                asset: a.id,
                kind: AccountKind::ExpirySink,
                flags: AccountFlags(0),
                status: AccountStatus::Active,
                overdraft_limit: 0,
                overdraft_forced: 0,
                lots_total: 0,
                merchant: MerchantId(0),
                external_ref: Vec::new(),
                metadata: Vec::new(),
                code_hash: CodeHash::ZERO,
                erased: false,
                timestamp,
                balances: Balances::default(),
            },
        );
        self.events.push((timestamp, EventKind::AssetCreated(a.id)));
        self.events.push((timestamp, EventKind::AccountCreated(a.expiry_account)));
        S::Ok
    }

    fn create_account(&mut self, a: &NewAccount) -> AccountOutcome {
        let refuse = |result| AccountOutcome { result, timestamp: Timestamp::ZERO };
        let gift = a.kind == AccountKind::GiftCard;
        // A gift card always carries DEBITS_MUST_NOT_EXCEED_CREDITS, so asking for
        // CREDITS_MUST_NOT_EXCEED_DEBITS on one asks for both, which are mutually exclusive.
        let flags = a.flags.0 | if gift { DMNEC } else { 0 };
        if a.id.is_zero() {
            return refuse(A::IdMustNotBeZero);
        }
        if a.id.is_reserved() {
            return refuse(A::IdReserved);
        }
        if a.flags.0 & !AccountFlags::ALL != 0 {
            return refuse(A::FlagsReserved);
        }
        if flags & DMNEC != 0 && flags & CMNED != 0 {
            return refuse(A::FlagsAreMutuallyExclusive);
        }
        if a.kind == AccountKind::ExpirySink {
            return refuse(A::KindReserved);
        }
        if a.overdraft_limit != 0 && (gift || a.flags.0 & DMNEC == 0) {
            return refuse(A::OverdraftLimitRequiresDebitsMustNotExceedCredits);
        }
        if a.external_ref.len() > EXTERNAL_REF_BYTES_MAX {
            return refuse(A::ExternalRefTooLong);
        }
        if a.metadata.len() > ACCOUNT_METADATA_BYTES_MAX {
            return refuse(A::MetadataTooLong);
        }
        if gift && a.code_hash.is_zero() {
            return refuse(A::CodeHashRequired);
        }
        if !gift && !a.code_hash.is_zero() {
            return refuse(A::CodeHashOnlyForGiftCards);
        }
        if a.asset.is_zero() {
            return refuse(A::AssetMustNotBeZero);
        }
        if let Some(e) = self.accounts.get(&a.id) {
            // AMBIGUITY: the spec does not say which timestamp `ExistsWithDifferent…` carries;
            // like `Exists`, the existing account's.
            let result = if e.asset != a.asset {
                A::ExistsWithDifferentAsset
            } else if e.kind != a.kind {
                A::ExistsWithDifferentKind
            } else if e.merchant != a.merchant {
                A::ExistsWithDifferentMerchant
            } else if !e.erased && e.external_ref != a.external_ref {
                A::ExistsWithDifferentExternalRef
            } else if !e.erased && e.metadata != a.metadata {
                A::ExistsWithDifferentMetadata
            } else if e.code_hash != a.code_hash {
                A::ExistsWithDifferentCodeHash
            } else {
                A::Exists
            };
            return AccountOutcome { result, timestamp: e.timestamp };
        }
        if !self.assets.contains_key(&a.asset) {
            return refuse(A::AssetNotFound);
        }
        if gift && self.gift_cards.contains_key(&a.code_hash) {
            return refuse(A::CodeHashExists);
        }
        let timestamp = self.next();
        if gift {
            self.gift_cards.insert(a.code_hash, a.id);
        }
        self.accounts.insert(
            a.id,
            Account {
                id: a.id,
                asset: a.asset,
                kind: a.kind,
                flags: AccountFlags(flags).stored(),
                status: if gift { AccountStatus::Pending } else { AccountStatus::Active },
                overdraft_limit: a.overdraft_limit,
                overdraft_forced: 0,
                lots_total: 0,
                merchant: a.merchant,
                external_ref: a.external_ref.clone(),
                metadata: a.metadata.clone(),
                code_hash: a.code_hash,
                erased: false,
                timestamp,
                balances: Balances::default(),
            },
        );
        self.events.push((timestamp, EventKind::AccountCreated(a.id)));
        AccountOutcome { result: A::Ok, timestamp }
    }

    // ----------------------------------------------------------------------------------------
    // Lots

    fn lots_of(&self, account: AccountId) -> Vec<(Timestamp, u128)> {
        let range = (account, Timestamp(0))..=(account, Timestamp(u64::MAX));
        self.lots.range(range).map(|((_, e), a)| (*e, *a)).collect()
    }

    fn lot_add(&mut self, account: AccountId, expires_at: Timestamp, amount: u128) {
        if amount == 0 {
            return;
        }
        *self.lots.entry((account, expires_at)).or_default() += amount;
        self.accounts.get_mut(&account).expect("account").lots_total += amount;
    }

    fn lot_sub(&mut self, account: AccountId, expires_at: Timestamp, amount: u128) {
        let lot = self.lots.get_mut(&(account, expires_at)).expect("lot");
        *lot -= amount;
        if *lot == 0 {
            self.lots.remove(&(account, expires_at));
        }
        self.accounts.get_mut(&account).expect("account").lots_total -= amount;
    }

    /// Whether the account can take value at `expires_at` without a new lot past the limit.
    fn lot_fits(&self, account: AccountId, expires_at: Timestamp) -> bool {
        self.lots.contains_key(&(account, expires_at))
            || self.lots_of(account).len() < ACCOUNT_LOTS_MAX
    }

    /// Adds up to `amount` to the lot at `expires_at`, capped by the room left.
    fn lot_credit(&mut self, account: AccountId, expires_at: Timestamp, amount: u128) {
        let acc = &self.accounts[&account];
        let room = acc.balances.available_or_zero() - acc.lots_total;
        if self.lot_fits(account, expires_at) {
            self.lot_add(account, expires_at, amount.min(room));
        }
    }

    /// A debit consumes `min(amount, lots_total)`: the preferred lot first, then earliest first.
    fn consume(
        &mut self,
        account: AccountId,
        amount: u128,
        preferred: Option<Timestamp>,
    ) -> Vec<LotPart> {
        let mut left = amount.min(self.accounts[&account].lots_total);
        let mut order = self.lots_of(account);
        if let Some(p) = preferred {
            if let Some(pos) = order.iter().position(|(e, _)| *e == p) {
                let lot = order.remove(pos);
                order.insert(0, lot);
            }
        }
        let mut parts = Vec::new();
        for (expires_at, lot) in order {
            if left == 0 {
                break;
            }
            let take = lot.min(left);
            self.lot_sub(account, expires_at, take);
            parts.push(LotPart { expires_at, amount: take });
            left -= take;
        }
        parts.sort_by_key(|p| p.expires_at);
        parts
    }

    /// Gives back `amount` of `parts`, latest expiry first, to `account`'s lots.
    fn give_back(&mut self, account: AccountId, parts: &mut Vec<LotPart>, amount: u128) {
        let mut left = amount;
        while left > 0 {
            let Some(part) = parts.last_mut() else { break };
            let take = part.amount.min(left);
            part.amount -= take;
            left -= take;
            let expires_at = part.expires_at;
            if part.amount == 0 {
                parts.pop();
            }
            self.lot_credit(account, expires_at, take);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Balances

    fn balances_mut(&mut self, account: AccountId) -> &mut Balances {
        &mut self.accounts.get_mut(&account).expect("account").balances
    }

    /// `overdraft_forced` recomputed after a balance change.
    fn fix_forced(&mut self, account: AccountId) {
        let acc = self.accounts.get_mut(&account).expect("account");
        acc.overdraft_forced = if acc.flags.has(DMNEC) {
            let b = acc.balances;
            (b.debits_posted + b.debits_pending)
                .saturating_sub(b.credits_posted.saturating_add(acc.overdraft_limit))
        } else {
            0
        };
    }

    fn current(&self, account: AccountId) -> Option<AccountBalances> {
        self.accounts.get(&account).map(balances_of)
    }

    // ----------------------------------------------------------------------------------------
    // Transfers

    fn transfer(&mut self, t: &NewTransfer, in_chain: bool) -> TransferOutcome {
        if let Err(code) = stateless(t) {
            let valid = !t.id.is_zero() && !t.id.is_reserved();
            if valid && !self.id_used(t.id) && !in_chain {
                self.record(t, code);
            }
            return self.refusal(t, code);
        }
        if let Some(e) = self.transfers.get(&t.id) {
            return match differs_from_applied(t, e) {
                Some(code) => self.refusal(t, code),
                None => TransferOutcome {
                    result: T::Exists,
                    timestamp: e.timestamp,
                    amount: e.amount,
                    debit: Some(AccountBalances {
                        account: e.debit_account,
                        balances: e.debit_balances,
                    }),
                    credit: Some(AccountBalances {
                        account: e.credit_account,
                        balances: e.credit_balances,
                    }),
                },
            };
        }
        if let Some(f) = self.failed.get(&t.id) {
            let code = differs_exactly(t, &f.transfer).unwrap_or(f.result);
            return self.refusal(t, code);
        }
        let outcome = if t.flags.resolves_pending() {
            self.resolve(t)
        } else if t.code.is_some_and(TransferCode::is_reversal) {
            self.reversal(t)
        } else {
            self.plain(t)
        };
        match outcome {
            Ok(outcome) => outcome,
            Err(code) => {
                // AMBIGUITY: a failing chain member reports balances as they stand when it
                // fails, before the chain is rolled back.
                let outcome = self.refusal(t, code);
                if !in_chain {
                    self.record(t, code);
                }
                outcome
            }
        }
    }

    fn id_used(&self, id: TransferId) -> bool {
        self.transfers.contains_key(&id) || self.failed.contains_key(&id)
    }

    fn record(&mut self, t: &NewTransfer, result: T) {
        let timestamp = self.next();
        self.failed.insert(t.id, FailedTransfer { transfer: *t, result, timestamp });
    }

    fn refusal(&self, t: &NewTransfer, result: T) -> TransferOutcome {
        TransferOutcome {
            result,
            timestamp: Timestamp::ZERO,
            amount: 0,
            debit: self.current(t.debit_account),
            credit: self.current(t.credit_account),
        }
    }

    fn credit_open(account: &Account) -> bool {
        account.status == AccountStatus::Active
            || (account.kind == AccountKind::GiftCard && account.status == AccountStatus::Pending)
    }

    fn exceeds_credits(account: &Account, amount: u128) -> bool {
        match account.debits_max() {
            Some(max) => {
                let b = account.balances;
                b.debits_posted + b.debits_pending + amount > max
            }
            None => false,
        }
    }

    fn exceeds_debits(account: &Account, amount: u128) -> bool {
        match account.credits_max() {
            Some(max) => {
                let b = account.balances;
                b.credits_posted + b.credits_pending + amount > max
            }
            None => false,
        }
    }

    fn plain(&mut self, t: &NewTransfer) -> Result<TransferOutcome, T> {
        let d = self.accounts.get(&t.debit_account).ok_or(T::DebitAccountNotFound)?;
        let c = self.accounts.get(&t.credit_account).ok_or(T::CreditAccountNotFound)?;
        if d.asset != c.asset {
            return Err(T::AccountsMustHaveTheSameAsset);
        }
        if t.asset != d.asset {
            return Err(T::TransferMustHaveTheSameAssetAsAccounts);
        }
        if d.status != AccountStatus::Active {
            return Err(T::DebitAccountNotActive);
        }
        if !Self::credit_open(c) {
            return Err(T::CreditAccountNotActive);
        }
        if !t.expires_at.is_zero() && t.expires_at.0 <= self.peek() {
            return Err(T::ExpiresAtMustBeInTheFuture);
        }
        let hold = t.flags.has(TransferFlags::PENDING);
        let (db, cb) = (d.balances, c.balances);
        let mut amount = t.amount;
        if t.flags.has(TransferFlags::BALANCING_DEBIT) {
            if let Some(max) = d.debits_max() {
                let debits = db.debits_posted.saturating_add(db.debits_pending);
                amount = amount.min(max.saturating_sub(debits));
                if amount == 0 {
                    return Err(T::ExceedsCredits);
                }
            }
        }
        if t.flags.has(TransferFlags::BALANCING_CREDIT) {
            if let Some(max) = c.credits_max() {
                let credits = cb.credits_posted.saturating_add(cb.credits_pending);
                amount = amount.min(max.saturating_sub(credits));
                if amount == 0 {
                    return Err(T::ExceedsDebits);
                }
            }
        }
        if hold {
            db.debits_pending.checked_add(amount).ok_or(T::OverflowsDebitsPending)?;
            cb.credits_pending.checked_add(amount).ok_or(T::OverflowsCreditsPending)?;
        } else {
            db.debits_posted.checked_add(amount).ok_or(T::OverflowsDebitsPosted)?;
            cb.credits_posted.checked_add(amount).ok_or(T::OverflowsCreditsPosted)?;
        }
        (db.debits_posted + db.debits_pending).checked_add(amount).ok_or(T::OverflowsDebits)?;
        (cb.credits_posted + cb.credits_pending).checked_add(amount).ok_or(T::OverflowsCredits)?;
        if Self::exceeds_credits(d, amount) {
            return Err(T::ExceedsCredits);
        }
        if Self::exceeds_debits(c, amount) {
            return Err(T::ExceedsDebits);
        }
        if !hold && !t.expires_at.is_zero() && !self.lot_fits(c.id, t.expires_at) {
            return Err(T::LotsExceedLimit);
        }
        let timestamp = self.next();
        if hold {
            self.balances_mut(t.debit_account).debits_pending += amount;
            self.balances_mut(t.credit_account).credits_pending += amount;
        } else {
            self.balances_mut(t.debit_account).debits_posted += amount;
            self.balances_mut(t.credit_account).credits_posted += amount;
        }
        self.fix_forced(t.debit_account);
        self.fix_forced(t.credit_account);
        let lots_consumed = self.consume(t.debit_account, amount, None);
        if !hold && !t.expires_at.is_zero() {
            self.lot_credit(t.credit_account, t.expires_at, amount);
        }
        let state = if hold { TransferState::Pending } else { TransferState::Final };
        Ok(self.insert(
            t,
            t.debit_account,
            t.credit_account,
            amount,
            t.asset,
            state,
            lots_consumed,
            timestamp,
        ))
    }

    /// Stores a new caller transfer and answers `Ok` with its outcome.
    ///
    /// AMBIGUITY: the record keeps the request's flags as sent (LINKED included, so a retried
    /// chain matches), its `pending_id`, `reverses`, timeout and user data; resolves and
    /// reversals keep `expires_at` zero (they may not carry one), and a resolve without a code
    /// stores its hold's.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        t: &NewTransfer,
        debit: AccountId,
        credit: AccountId,
        amount: u128,
        asset: AssetId,
        state: TransferState,
        lots_consumed: Vec<LotPart>,
        timestamp: Timestamp,
    ) -> TransferOutcome {
        let code = t.code.expect("resolves pass their code");
        let record = Transfer {
            id: t.id,
            debit_account: debit,
            credit_account: credit,
            amount,
            asset,
            code,
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
            debit_balances: self.accounts[&debit].balances,
            credit_balances: self.accounts[&credit].balances,
        };
        self.transfers.insert(t.id, record);
        let kind = if t.flags.has(TransferFlags::PENDING) {
            EventKind::HoldCreated(t.id)
        } else if t.flags.has(TransferFlags::POST_PENDING) {
            EventKind::HoldPosted(t.id)
        } else if t.flags.has(TransferFlags::VOID_PENDING) {
            EventKind::HoldVoided(t.id)
        } else {
            EventKind::TransferPosted(t.id)
        };
        self.events.push((timestamp, kind));
        TransferOutcome {
            result: T::Ok,
            timestamp,
            amount,
            debit: self.current(debit),
            credit: self.current(credit),
        }
    }

    fn resolve(&mut self, t: &NewTransfer) -> Result<TransferOutcome, T> {
        let post = t.flags.has(TransferFlags::POST_PENDING);
        let h = self.transfers.get(&t.pending_id).ok_or(T::PendingTransferNotFound)?;
        if !h.flags.has(TransferFlags::PENDING) {
            return Err(T::PendingTransferNotPending);
        }
        if !t.debit_account.is_zero() && t.debit_account != h.debit_account {
            return Err(T::PendingTransferHasDifferentDebitAccountId);
        }
        if !t.credit_account.is_zero() && t.credit_account != h.credit_account {
            return Err(T::PendingTransferHasDifferentCreditAccountId);
        }
        if !t.asset.is_zero() && t.asset != h.asset {
            return Err(T::PendingTransferHasDifferentAsset);
        }
        match h.state {
            TransferState::Posted => return Err(T::PendingTransferAlreadyPosted),
            TransferState::Voided => return Err(T::PendingTransferAlreadyVoided),
            TransferState::Expired => return Err(T::PendingTransferExpired),
            TransferState::Pending | TransferState::Final => {}
        }
        if h.hold_deadline().is_some_and(|deadline| self.peek() >= deadline.0) {
            return Err(T::PendingTransferExpired);
        }
        let held = h.amount;
        let amount = if t.amount == 0 { held } else { t.amount };
        if post && amount > held {
            return Err(T::ExceedsPendingTransferAmount);
        }
        if !post && amount != held {
            return Err(T::PendingTransferHasDifferentAmount);
        }
        let (debit, credit, asset, hold_code, hold_expires_at) =
            (h.debit_account, h.credit_account, h.asset, h.code, h.expires_at);
        if post {
            if self.accounts[&debit].status != AccountStatus::Active {
                return Err(T::DebitAccountNotActive);
            }
            if !Self::credit_open(&self.accounts[&credit]) {
                return Err(T::CreditAccountNotActive);
            }
            if !hold_expires_at.is_zero() && !self.lot_fits(credit, hold_expires_at) {
                return Err(T::LotsExceedLimit);
            }
        }
        let timestamp = self.next();
        let db = self.balances_mut(debit);
        db.debits_pending -= held;
        if post {
            db.debits_posted += amount;
        }
        let cb = self.balances_mut(credit);
        cb.credits_pending -= held;
        if post {
            cb.credits_posted += amount;
        }
        self.fix_forced(debit);
        self.fix_forced(credit);
        // Giving back removes the parts from the hold's list, and a post takes what is left
        // into its own record (AMBIGUITY: the spec says the post "records the rest"; the hold
        // keeps none, so nothing can be given back twice).
        let mut parts =
            std::mem::take(&mut self.transfers.get_mut(&t.pending_id).expect("hold").lots_consumed);
        self.give_back(debit, &mut parts, held - amount * u128::from(post));
        if post && !hold_expires_at.is_zero() {
            self.lot_credit(credit, hold_expires_at, amount);
        }
        let hold = self.transfers.get_mut(&t.pending_id).expect("hold");
        hold.state = if post { TransferState::Posted } else { TransferState::Voided };
        let mut request = *t;
        request.code = Some(t.code.unwrap_or(hold_code));
        let stored = if post { amount } else { held };
        let lots_consumed = if post { parts } else { Vec::new() };
        Ok(self.insert(
            &request,
            debit,
            credit,
            stored,
            asset,
            TransferState::Final,
            lots_consumed,
            timestamp,
        ))
    }

    fn reversal(&mut self, t: &NewTransfer) -> Result<TransferOutcome, T> {
        let o = self.transfers.get(&t.reverses).ok_or(T::ReversedTransferNotFound)?;
        if o.state != TransferState::Final
            || o.flags.has(TransferFlags::VOID_PENDING)
            || o.code.is_system()
            || o.code.is_reversal()
        {
            return Err(T::ReversedTransferNotReversible);
        }
        if !t.debit_account.is_zero() && t.debit_account != o.credit_account {
            return Err(T::ReversalHasDifferentDebitAccountId);
        }
        if !t.credit_account.is_zero() && t.credit_account != o.debit_account {
            return Err(T::ReversalHasDifferentCreditAccountId);
        }
        if !t.asset.is_zero() && t.asset != o.asset {
            return Err(T::ReversalHasDifferentAsset);
        }
        let left = o.amount - o.amount_reversed;
        let amount = if t.amount == 0 { left } else { t.amount };
        if amount == 0 || amount > left {
            return Err(T::ExceedsReversibleAmount);
        }
        let (debit, credit, asset, preferred) =
            (o.credit_account, o.debit_account, o.asset, o.expires_at);
        let d = &self.accounts[&debit];
        let c = &self.accounts[&credit];
        if d.status != AccountStatus::Active {
            return Err(T::DebitAccountNotActive);
        }
        if !Self::credit_open(c) {
            return Err(T::CreditAccountNotActive);
        }
        let (db, cb) = (d.balances, c.balances);
        db.debits_posted.checked_add(amount).ok_or(T::OverflowsDebitsPosted)?;
        cb.credits_posted.checked_add(amount).ok_or(T::OverflowsCreditsPosted)?;
        (db.debits_posted + db.debits_pending).checked_add(amount).ok_or(T::OverflowsDebits)?;
        (cb.credits_posted + cb.credits_pending).checked_add(amount).ok_or(T::OverflowsCredits)?;
        // FORCE never lifts a gift card's limit: a card never goes below zero.
        let force = t.flags.has(TransferFlags::FORCE) && d.kind != AccountKind::GiftCard;
        if !force && Self::exceeds_credits(d, amount) {
            return Err(T::ExceedsCredits);
        }
        if Self::exceeds_debits(c, amount) {
            return Err(T::ExceedsDebits);
        }
        let timestamp = self.next();
        self.balances_mut(debit).debits_posted += amount;
        self.balances_mut(credit).credits_posted += amount;
        self.fix_forced(debit);
        self.fix_forced(credit);
        let preferred = (!preferred.is_zero()).then_some(preferred);
        let lots_consumed = self.consume(debit, amount, preferred);
        let original = self.transfers.get_mut(&t.reverses).expect("original");
        original.amount_reversed += amount;
        let mut parts = std::mem::take(&mut original.lots_consumed);
        self.give_back(credit, &mut parts, amount);
        self.transfers.get_mut(&t.reverses).expect("original").lots_consumed = parts;
        Ok(self.insert(
            t,
            debit,
            credit,
            amount,
            asset,
            TransferState::Final,
            lots_consumed,
            timestamp,
        ))
    }

    // ----------------------------------------------------------------------------------------
    // Account changes, gift cards, erasure

    fn change(&mut self, change: &AccountChange) -> ChangeAccountOutcome {
        let id = change.account();
        let result = self.change_result(change);
        let account = self.accounts.get(&id);
        ChangeAccountOutcome {
            result,
            status: account.map(|a| a.status),
            balances: account.map(balances_of),
        }
    }

    fn set_status(&mut self, id: AccountId, to: AccountStatus) -> C {
        let timestamp = self.next();
        let account = self.accounts.get_mut(&id).expect("account");
        let from = account.status;
        account.status = to;
        self.events.push((timestamp, EventKind::StatusChanged { account: id, from, to }));
        C::Ok
    }

    /// AMBIGUITY: "a change that already holds" is a change to the status the account already
    /// has: Freeze of a frozen account, Unfreeze of an active one, Close of a closed one,
    /// Activate and Unblock of an active card, Block of a blocked one, Deactivate of a
    /// deactivated one. It answers `Ok` before any other per-change check.
    fn change_result(&mut self, change: &AccountChange) -> C {
        use AccountStatus::{Active, Blocked, Closed, Deactivated, Frozen, Pending};
        let id = change.account();
        if id.is_zero() {
            return C::IdMustNotBeZero;
        }
        let Some(account) = self.accounts.get(&id) else {
            return C::AccountNotFound;
        };
        if account.kind == AccountKind::ExpirySink {
            return C::AccountIsExpirySink;
        }
        let gift = account.kind == AccountKind::GiftCard;
        let for_cards = matches!(
            change,
            AccountChange::ActivateGiftCard { .. }
                | AccountChange::BlockGiftCard { .. }
                | AccountChange::UnblockGiftCard { .. }
                | AccountChange::DeactivateGiftCard { .. }
        );
        if gift && !for_cards {
            return C::AccountIsGiftCard;
        }
        if !gift && for_cards {
            return C::AccountNotGiftCard;
        }
        let status = account.status;
        let b = account.balances;
        match *change {
            AccountChange::Freeze { .. } => match status {
                Frozen => C::Ok,
                Active => self.set_status(id, Frozen),
                _ => C::StatusForbids,
            },
            AccountChange::Unfreeze { .. } => match status {
                Active => C::Ok,
                Frozen => self.set_status(id, Active),
                _ => C::StatusForbids,
            },
            AccountChange::Close { .. } => match status {
                Closed => C::Ok,
                Active | Frozen => {
                    if b.debits_pending != 0 || b.credits_pending != 0 {
                        C::PendingNotZero
                    } else if b.debits_posted != b.credits_posted {
                        C::BalanceNotZero
                    } else {
                        self.set_status(id, Closed)
                    }
                }
                _ => C::StatusForbids,
            },
            AccountChange::SetOverdraftLimit { overdraft_limit, .. } => {
                let flags = account.flags;
                self.set_limits(id, flags, overdraft_limit)
            }
            AccountChange::SetFlags { flags, .. } => {
                let limit = account.overdraft_limit;
                self.set_limits(id, flags, limit)
            }
            AccountChange::ActivateGiftCard { .. } => match status {
                Active => C::Ok,
                Pending => self.set_status(id, Active),
                _ => C::StatusForbids,
            },
            AccountChange::BlockGiftCard { .. } => match status {
                Blocked => C::Ok,
                Active => self.set_status(id, Blocked),
                _ => C::StatusForbids,
            },
            AccountChange::UnblockGiftCard { .. } => match status {
                Active => C::Ok,
                Blocked => self.set_status(id, Active),
                _ => C::StatusForbids,
            },
            AccountChange::DeactivateGiftCard { transfer_id, merchant_account, .. } => match status
            {
                Deactivated => C::Ok,
                Pending | Active | Blocked => self.deactivate(id, transfer_id, merchant_account),
                _ => C::StatusForbids,
            },
        }
    }

    /// SetOverdraftLimit and SetFlags: the account's flags and limit after the change.
    ///
    /// AMBIGUITY: "the current balances would break the new limits" is read as the invariant
    /// `debits ≤ credits_posted + limit + overdraft_forced` (with the current forced amount,
    /// which only a forced reversal may grow), and `credits ≤ debits_posted` for
    /// CREDITS_MUST_NOT_EXCEED_DEBITS. A change to the values already held is `Ok` without
    /// event; validation (closed, reserved flags, …) comes first.
    fn set_limits(&mut self, id: AccountId, flags: AccountFlags, limit: u128) -> C {
        let account = &self.accounts[&id];
        if account.status == AccountStatus::Closed {
            return C::StatusForbids;
        }
        if flags.0 & !AccountFlags::ALL != 0 || flags.has(AccountFlags::LINKED) {
            return C::FlagsReserved;
        }
        if flags.has(DMNEC) && flags.has(CMNED) {
            return C::FlagsAreMutuallyExclusive;
        }
        if limit != 0 && !flags.has(DMNEC) {
            return C::OverdraftLimitRequiresDebitsMustNotExceedCredits;
        }
        let b = account.balances;
        let debits = b.debits_posted + b.debits_pending;
        let credits = b.credits_posted + b.credits_pending;
        let forced = account.overdraft_forced;
        if flags.has(DMNEC)
            && debits > b.credits_posted.saturating_add(limit).saturating_add(forced)
        {
            return C::BalancesViolateChange;
        }
        if flags.has(CMNED) && credits > b.debits_posted {
            return C::BalancesViolateChange;
        }
        if account.flags == flags && account.overdraft_limit == limit {
            return C::Ok;
        }
        let timestamp = self.next();
        let account = self.accounts.get_mut(&id).expect("account");
        account.flags = flags;
        account.overdraft_limit = limit;
        self.fix_forced(id);
        let kind = EventKind::AccountChanged { account: id, flags, overdraft_limit: limit };
        self.events.push((timestamp, kind));
        C::Ok
    }

    /// AMBIGUITY: "holds value" is credits_posted > debits_posted (no holds are open by then);
    /// the `Clear` transfer and the status change take a timestamp each, the transfer first.
    fn deactivate(&mut self, id: AccountId, transfer_id: TransferId, merchant: AccountId) -> C {
        let card = &self.accounts[&id];
        let b = card.balances;
        if b.debits_pending != 0 || b.credits_pending != 0 {
            return C::PendingNotZero;
        }
        let value = b.credits_posted.saturating_sub(b.debits_posted);
        if value > 0 {
            if transfer_id.is_zero() {
                return C::TransferIdMustNotBeZero;
            }
            if transfer_id.is_reserved() {
                return C::TransferIdReserved;
            }
            if self.id_used(transfer_id) {
                return C::TransferExists;
            }
            let Some(m) = self.accounts.get(&merchant) else {
                return C::MerchantAccountNotFound;
            };
            if merchant == id {
                return C::MerchantAccountMustBeDifferent;
            }
            if m.asset != card.asset {
                return C::MerchantAccountHasDifferentAsset;
            }
            if m.status != AccountStatus::Active {
                return C::MerchantAccountNotActive;
            }
            let mb = m.balances;
            let overflows = mb.credits_posted.checked_add(value).is_none()
                || (mb.credits_posted + mb.credits_pending).checked_add(value).is_none();
            if overflows {
                return C::OverflowsCredits;
            }
            if Self::exceeds_debits(m, value) {
                return C::ExceedsDebits;
            }
            let asset = card.asset;
            let timestamp = self.next();
            self.balances_mut(id).debits_posted += value;
            self.balances_mut(merchant).credits_posted += value;
            self.fix_forced(id);
            self.fix_forced(merchant);
            let lots_consumed = self.consume(id, value, None);
            let clear = Transfer {
                id: transfer_id,
                debit_account: id,
                credit_account: merchant,
                amount: value,
                asset,
                code: TransferCode::Clear,
                flags: TransferFlags(0),
                pending_id: TransferId::ZERO,
                reverses: TransferId::ZERO,
                timeout: 0,
                expires_at: Timestamp::ZERO,
                user_data_128: 0,
                user_data_64: 0,
                user_data_32: 0,
                timestamp,
                state: TransferState::Final,
                amount_reversed: 0,
                lots_consumed,
                debit_balances: self.accounts[&id].balances,
                credit_balances: self.accounts[&merchant].balances,
            };
            self.transfers.insert(transfer_id, clear);
            self.events.push((timestamp, EventKind::TransferPosted(transfer_id)));
        }
        self.set_status(id, AccountStatus::Deactivated)
    }

    /// A failed issue reports no balances. AMBIGUITY: the load of an issue is never recorded as a
    /// refusal (the issue is atomic, like a chain).
    fn issue(&mut self, issue: &GiftCardIssue) -> IssueGiftCardOutcome {
        let id = issue.account.id;
        if issue.account.kind != AccountKind::GiftCard {
            return IssueGiftCardOutcome {
                result: IssueGiftCardResult::KindMustBeGiftCard,
                balances: None,
            };
        }
        let snapshot = self.clone();
        let created = self.create_account(&issue.account);
        let mut result = IssueGiftCardResult::Ok;
        if !matches!(created.result, A::Ok | A::Exists) {
            result = IssueGiftCardResult::Account(created.result);
        } else if let Some(load) = issue.load() {
            let loaded = self.transfer(&load, true);
            if !matches!(loaded.result, T::Ok | T::Exists) {
                result = IssueGiftCardResult::Load(loaded.result);
            }
        }
        if result != IssueGiftCardResult::Ok {
            *self = snapshot;
        }
        let balances = if result == IssueGiftCardResult::Ok { self.current(id) } else { None };
        IssueGiftCardOutcome { result, balances }
    }

    fn erase(&mut self, id: AccountId) -> EraseResult {
        if id.is_zero() {
            return EraseResult::IdMustNotBeZero;
        }
        let Some(account) = self.accounts.get(&id) else {
            return EraseResult::AccountNotFound;
        };
        if !account.erased {
            let timestamp = self.next();
            self.events.push((timestamp, EventKind::Erased(id)));
            let account = self.accounts.get_mut(&id).expect("account");
            account.external_ref.clear();
            account.metadata.clear();
            account.erased = true;
        }
        EraseResult::Ok
    }

    // ----------------------------------------------------------------------------------------
    // Time

    /// AMBIGUITY: the spec says "then every lot with expires_at ≤ now"; ADR 0004 says a
    /// given-back part whose expiry has passed "becomes a lot again and the next tick expires
    /// it". The lots due are taken as those due when the tick starts: a lot that a timed-out
    /// hold gives back in this tick waits for the next one.
    fn tick(&mut self) -> TickOutcome {
        let now = Timestamp(self.now);
        let mut holds: Vec<(Timestamp, TransferId)> = self
            .transfers
            .values()
            .filter(|t| t.state == TransferState::Pending)
            .filter_map(|t| t.hold_deadline().map(|d| (d, t.id)))
            .filter(|(d, _)| *d <= now)
            .collect();
        holds.sort();
        let mut due: Vec<(Timestamp, AccountId)> =
            self.lots.keys().filter(|(_, e)| *e <= now).map(|(a, e)| (*e, *a)).collect();
        due.sort();
        let cap = TICK_EXPIRIES_MAX as usize;
        let more_due = holds.len() > cap || due.len() > cap;
        let mut outcome = TickOutcome { more_due, ..TickOutcome::default() };
        for (_, hold_id) in holds.into_iter().take(cap) {
            self.expire_hold(hold_id);
            outcome.holds_expired += 1;
        }
        for (expires_at, account) in due.into_iter().take(cap) {
            if self.expire_lot(account, expires_at) {
                outcome.lots_expired += 1;
            }
        }
        outcome
    }

    /// AMBIGUITY: a system transfer records zero user data, timeout and expiry; a hold timeout
    /// is a `VOID_PENDING` of the hold's whole amount naming the hold, an expiry a plain
    /// transfer of the lot's amount that records the lot it consumed.
    fn system_transfer(
        &mut self,
        timestamp: Timestamp,
        hold: &Transfer,
        code: TransferCode,
        lots_consumed: Vec<LotPart>,
    ) {
        let id = TransferId::system(timestamp);
        let record = Transfer {
            id,
            code,
            pending_id: if code == TransferCode::HoldTimeout { hold.id } else { TransferId::ZERO },
            flags: TransferFlags(if code == TransferCode::HoldTimeout {
                TransferFlags::VOID_PENDING
            } else {
                0
            }),
            reverses: TransferId::ZERO,
            timeout: 0,
            expires_at: Timestamp::ZERO,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timestamp,
            state: TransferState::Final,
            amount_reversed: 0,
            lots_consumed,
            debit_balances: self.accounts[&hold.debit_account].balances,
            credit_balances: self.accounts[&hold.credit_account].balances,
            ..hold.clone()
        };
        self.transfers.insert(id, record);
        let kind = if code == TransferCode::HoldTimeout {
            EventKind::HoldExpired(id)
        } else {
            EventKind::LotExpired(id)
        };
        self.events.push((timestamp, kind));
    }

    fn expire_hold(&mut self, hold_id: TransferId) {
        let timestamp = self.next();
        let hold = self.transfers[&hold_id].clone();
        self.balances_mut(hold.debit_account).debits_pending -= hold.amount;
        self.balances_mut(hold.credit_account).credits_pending -= hold.amount;
        self.fix_forced(hold.debit_account);
        self.fix_forced(hold.credit_account);
        let mut parts = hold.lots_consumed.clone();
        self.give_back(hold.debit_account, &mut parts, hold.amount);
        let stored = self.transfers.get_mut(&hold_id).expect("hold");
        stored.state = TransferState::Expired;
        stored.lots_consumed = parts;
        self.system_transfer(timestamp, &hold, TransferCode::HoldTimeout, Vec::new());
    }

    /// AMBIGUITY: the spec does not say what happens when the expiry account cannot take a lot
    /// (its credits would overflow u128). The state machine skips that lot (it stays, and stays
    /// due) and goes on with the others; so does the model.
    fn expire_lot(&mut self, account: AccountId, expires_at: Timestamp) -> bool {
        let amount = self.lots[&(account, expires_at)];
        let asset = self.accounts[&account].asset;
        let sink = self.assets[&asset].expiry_account;
        let b = self.accounts[&sink].balances;
        if (b.credits_posted + b.credits_pending).checked_add(amount).is_none() {
            return false;
        }
        let timestamp = self.next();
        self.balances_mut(account).debits_posted += amount;
        self.balances_mut(sink).credits_posted += amount;
        self.fix_forced(account);
        self.fix_forced(sink);
        let parts = self.consume(account, amount, Some(expires_at));
        let shape = Transfer {
            id: TransferId::ZERO,
            debit_account: account,
            credit_account: sink,
            amount,
            asset,
            code: TransferCode::Expiry,
            flags: TransferFlags(0),
            pending_id: TransferId::ZERO,
            reverses: TransferId::ZERO,
            timeout: 0,
            expires_at: Timestamp::ZERO,
            user_data_128: 0,
            user_data_64: 0,
            user_data_32: 0,
            timestamp,
            state: TransferState::Final,
            amount_reversed: 0,
            lots_consumed: Vec::new(),
            debit_balances: Balances::default(),
            credit_balances: Balances::default(),
        };
        self.system_transfer(timestamp, &shape, TransferCode::Expiry, parts);
        true
    }

    // ----------------------------------------------------------------------------------------
    // Views for comparison with a store

    /// Every lot, ordered by (account, expiry).
    pub fn all_lots(&self) -> Vec<Lot> {
        self.lots
            .iter()
            .map(|((account, expires_at), amount)| Lot {
                account: *account,
                expires_at: *expires_at,
                amount: *amount,
            })
            .collect()
    }
}

fn linked_outcome(result: T) -> TransferOutcome {
    TransferOutcome { result, timestamp: Timestamp::ZERO, amount: 0, debit: None, credit: None }
}

/// The checks that need no record, in the spec's order.
fn stateless(t: &NewTransfer) -> Result<(), T> {
    let f = t.flags;
    if t.id.is_zero() {
        return Err(T::IdMustNotBeZero);
    }
    if t.id.is_reserved() {
        return Err(T::IdReserved);
    }
    if f.0 & !TransferFlags::ALL != 0 {
        return Err(T::FlagsReserved);
    }
    let phases = [TransferFlags::PENDING, TransferFlags::POST_PENDING, TransferFlags::VOID_PENDING]
        .into_iter()
        .filter(|bit| has(f, *bit))
        .count();
    let resolve = f.resolves_pending();
    let balancing = has(f, TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT);
    let reversal = t.code.is_some_and(TransferCode::is_reversal);
    if phases > 1 || (resolve && balancing) || (reversal && (phases > 0 || balancing)) {
        return Err(T::FlagsAreMutuallyExclusive);
    }
    match t.code {
        None if !resolve => return Err(T::CodeMustNotBeZero),
        Some(code) if code.is_system() => return Err(T::CodeReserved),
        _ => {}
    }
    if has(f, TransferFlags::FORCE) && !reversal {
        return Err(T::ForceRequiresReversal);
    }
    if resolve && t.pending_id.is_zero() {
        return Err(T::PendingIdMustNotBeZero);
    }
    if !resolve && !t.pending_id.is_zero() {
        return Err(T::PendingIdMustBeZero);
    }
    if resolve && t.pending_id == t.id {
        return Err(T::PendingIdMustBeDifferent);
    }
    if reversal && t.reverses.is_zero() {
        return Err(T::ReversesMustNotBeZero);
    }
    if !reversal && !t.reverses.is_zero() {
        return Err(T::ReversesMustBeZero);
    }
    if reversal && t.reverses == t.id {
        return Err(T::ReversesMustBeDifferent);
    }
    if t.timeout != 0 && !has(f, TransferFlags::PENDING) {
        return Err(T::TimeoutReservedForPendingTransfer);
    }
    if !t.expires_at.is_zero() && (resolve || reversal) {
        return Err(T::ExpiresAtNotAllowed);
    }
    if !resolve && !reversal {
        if t.debit_account.is_zero() {
            return Err(T::DebitAccountIdMustNotBeZero);
        }
        if t.credit_account.is_zero() {
            return Err(T::CreditAccountIdMustNotBeZero);
        }
        if t.debit_account == t.credit_account {
            return Err(T::AccountsMustBeDifferent);
        }
        if t.asset.is_zero() {
            return Err(T::AssetMustNotBeZero);
        }
        if t.amount == 0 {
            return Err(T::AmountMustNotBeZero);
        }
    }
    Ok(())
}

/// A retry of an applied transfer: inherited fields left zero match.
fn differs_from_applied(t: &NewTransfer, e: &Transfer) -> Option<T> {
    let inherits = e.flags.resolves_pending() || e.code.is_reversal();
    let balancing = e.flags.has(TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT);
    let account_differs =
        |given: AccountId, stored: AccountId| !(inherits && given.is_zero()) && given != stored;
    if t.flags != e.flags {
        return Some(T::ExistsWithDifferentFlags);
    }
    if t.pending_id != e.pending_id {
        return Some(T::ExistsWithDifferentPendingId);
    }
    if t.reverses != e.reverses {
        return Some(T::ExistsWithDifferentReverses);
    }
    if t.timeout != e.timeout {
        return Some(T::ExistsWithDifferentTimeout);
    }
    if t.expires_at != e.expires_at {
        return Some(T::ExistsWithDifferentExpiresAt);
    }
    if account_differs(t.debit_account, e.debit_account) {
        return Some(T::ExistsWithDifferentDebitAccountId);
    }
    if account_differs(t.credit_account, e.credit_account) {
        return Some(T::ExistsWithDifferentCreditAccountId);
    }
    let amount_differs = if inherits && t.amount == 0 {
        false
    } else if balancing {
        t.amount < e.amount
    } else {
        t.amount != e.amount
    };
    if amount_differs {
        return Some(T::ExistsWithDifferentAmount);
    }
    if !(inherits && t.asset.is_zero()) && t.asset != e.asset {
        return Some(T::ExistsWithDifferentAsset);
    }
    let code_inherited = e.flags.resolves_pending() && t.code.is_none();
    if !code_inherited && t.code != Some(e.code) {
        return Some(T::ExistsWithDifferentCode);
    }
    differs_user_data(t.user_data_128, t.user_data_64, t.user_data_32, e)
}

fn differs_user_data(u128_: u128, u64_: u64, u32_: u32, e: &Transfer) -> Option<T> {
    if u128_ != e.user_data_128 {
        return Some(T::ExistsWithDifferentUserData128);
    }
    if u64_ != e.user_data_64 {
        return Some(T::ExistsWithDifferentUserData64);
    }
    if u32_ != e.user_data_32 {
        return Some(T::ExistsWithDifferentUserData32);
    }
    None
}

/// A retry of a recorded refusal: every field compared exactly.
fn differs_exactly(t: &NewTransfer, e: &NewTransfer) -> Option<T> {
    let checks = [
        (t.flags != e.flags, T::ExistsWithDifferentFlags),
        (t.pending_id != e.pending_id, T::ExistsWithDifferentPendingId),
        (t.reverses != e.reverses, T::ExistsWithDifferentReverses),
        (t.timeout != e.timeout, T::ExistsWithDifferentTimeout),
        (t.expires_at != e.expires_at, T::ExistsWithDifferentExpiresAt),
        (t.debit_account != e.debit_account, T::ExistsWithDifferentDebitAccountId),
        (t.credit_account != e.credit_account, T::ExistsWithDifferentCreditAccountId),
        (t.amount != e.amount, T::ExistsWithDifferentAmount),
        (t.asset != e.asset, T::ExistsWithDifferentAsset),
        (t.code != e.code, T::ExistsWithDifferentCode),
        (t.user_data_128 != e.user_data_128, T::ExistsWithDifferentUserData128),
        (t.user_data_64 != e.user_data_64, T::ExistsWithDifferentUserData64),
        (t.user_data_32 != e.user_data_32, T::ExistsWithDifferentUserData32),
    ];
    checks.into_iter().find(|(differs, _)| *differs).map(|(_, code)| code)
}
