//! Assets, accounts, account changes (freeze, close, limits, gift-card life cycle), gift-card
//! issue and erasure.

use super::{apply_linked, Context};
use crate::command::{AccountChange, GiftCardIssue, NewAccount, NewAsset, NewTransfer};
use crate::constants::{
    ACCOUNT_METADATA_BYTES_MAX, ASSET_CODE_BYTES_MAX, ASSET_SCALE_MAX, EXTERNAL_REF_BYTES_MAX,
};
use crate::event::EventKind;
use crate::result::{
    AccountOutcome, ChangeAccountOutcome, ChangeAccountResult as C, CreateAccountResult as A,
    CreateAssetResult, EraseResult, IssueGiftCardOutcome, IssueGiftCardResult, TransferResult,
};
use crate::types::{
    Account, AccountFlags, AccountId, AccountKind, AccountStatus, Asset, Balances, CodeHash,
    MerchantId, Timestamp, TransferCode, TransferId, TransferState,
};

impl Context {
    pub(crate) fn create_assets(&mut self, assets: &[NewAsset]) -> Vec<CreateAssetResult> {
        assets.iter().map(|asset| self.create_asset(asset)).collect()
    }

    fn create_asset(&mut self, a: &NewAsset) -> CreateAssetResult {
        use CreateAssetResult as R;
        if a.id.is_zero() {
            return R::IdMustNotBeZero;
        }
        if a.code.is_empty() {
            return R::CodeMustNotBeEmpty;
        }
        if a.code.len() > ASSET_CODE_BYTES_MAX {
            return R::CodeTooLong;
        }
        if !a.code.iter().all(|byte| byte.is_ascii_graphic()) {
            return R::CodeMustBeAscii;
        }
        if a.scale > ASSET_SCALE_MAX {
            return R::ScaleTooLarge;
        }
        if a.expiry_account.is_zero() {
            return R::ExpiryAccountIdMustNotBeZero;
        }
        if a.expiry_account.is_reserved() {
            return R::ExpiryAccountIdReserved;
        }
        if let Some(existing) = self.assets.get(&a.id) {
            if existing.code != a.code {
                return R::ExistsWithDifferentCode;
            }
            if existing.scale != a.scale {
                return R::ExistsWithDifferentScale;
            }
            if existing.expiry_account != a.expiry_account {
                return R::ExistsWithDifferentExpiryAccount;
            }
            return R::Exists;
        }
        if self.accounts.contains_key(&a.expiry_account) {
            return R::ExpiryAccountExists;
        }
        let timestamp = self.timestamp_next();
        let asset = Asset {
            id: a.id,
            code: a.code.clone(),
            scale: a.scale,
            expiry_account: a.expiry_account,
            timestamp,
        };
        self.asset_insert(asset);
        self.emit(timestamp, EventKind::AssetCreated(a.id));
        let sink = Account {
            id: a.expiry_account,
            asset: a.id,
            kind: AccountKind::ExpirySink,
            flags: AccountFlags::default(),
            status: AccountStatus::Active,
            overdraft_limit: 0,
            overdraft_forced: 0,
            lots_total: 0,
            merchant: MerchantId::ZERO,
            external_ref: Vec::new(),
            metadata: Vec::new(),
            code_hash: CodeHash::ZERO,
            erased: false,
            timestamp,
            balances: Balances::default(),
        };
        self.emit(timestamp, EventKind::AccountCreated(sink.id));
        self.account_insert(sink);
        R::Ok
    }

    pub(crate) fn create_accounts(&mut self, accounts: &[NewAccount]) -> Vec<AccountOutcome> {
        apply_linked(
            self,
            accounts,
            |a| a.flags.has(AccountFlags::LINKED),
            |context, a, _| context.create_account(a),
            |outcome| matches!(outcome.result, A::Ok | A::Exists),
            AccountOutcome { result: A::LinkedEventFailed, timestamp: Timestamp::ZERO },
            AccountOutcome { result: A::LinkedEventChainOpen, timestamp: Timestamp::ZERO },
        )
    }

    pub(crate) fn create_account(&mut self, a: &NewAccount) -> AccountOutcome {
        let refused = |result| AccountOutcome { result, timestamp: Timestamp::ZERO };
        if let Err(result) = validate_account(a) {
            return refused(result);
        }
        if let Some(existing) = self.accounts.get(&a.id) {
            let result = compare_account(a, existing).unwrap_or(A::Exists);
            return AccountOutcome { result, timestamp: existing.timestamp };
        }
        if !self.assets.contains_key(&a.asset) {
            return refused(A::AssetNotFound);
        }
        if !a.code_hash.is_zero() && self.gift_cards.contains_key(&a.code_hash) {
            return refused(A::CodeHashExists);
        }
        let timestamp = self.timestamp_next();
        let gift_card = a.kind == AccountKind::GiftCard;
        let mut flags = a.flags.stored();
        if gift_card {
            // A gift card never goes below zero, whatever the caller asked.
            flags.0 |= AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
        }
        let account = Account {
            id: a.id,
            asset: a.asset,
            kind: a.kind,
            flags,
            status: if gift_card { AccountStatus::Pending } else { AccountStatus::Active },
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
        };
        if gift_card {
            self.gift_card_insert(a.code_hash, a.id);
        }
        self.emit(timestamp, EventKind::AccountCreated(account.id));
        self.account_insert(account);
        AccountOutcome { result: A::Ok, timestamp }
    }

    /// A gift card and its first load, as one linked chain.
    pub(crate) fn issue_gift_card(&mut self, issue: &GiftCardIssue) -> IssueGiftCardOutcome {
        let refused = |result| IssueGiftCardOutcome { result, balances: None };
        if issue.account.kind != AccountKind::GiftCard {
            return refused(IssueGiftCardResult::KindMustBeGiftCard);
        }
        let checkpoint = self.chain_begin();
        let account = self.create_account(&issue.account);
        if !matches!(account.result, A::Ok | A::Exists) {
            self.chain_rollback(checkpoint);
            return refused(IssueGiftCardResult::Account(account.result));
        }
        if let Some(load) = issue.load() {
            let outcome = self.create_transfer(&load, true);
            if !matches!(outcome.result, TransferResult::Ok | TransferResult::Exists) {
                self.chain_rollback(checkpoint);
                return refused(IssueGiftCardResult::Load(outcome.result));
            }
        }
        self.chain_commit();
        let balances = self.accounts.get(&issue.account.id).map(Account::account_balances);
        IssueGiftCardOutcome { result: IssueGiftCardResult::Ok, balances }
    }

    pub(crate) fn change_account(&mut self, change: &AccountChange) -> ChangeAccountOutcome {
        let id = change.account();
        let result = self.change_account_result(change);
        let account = self.accounts.get(&id);
        ChangeAccountOutcome {
            result,
            status: account.map(|a| a.status),
            balances: account.map(Account::account_balances),
        }
    }

    fn change_account_result(&mut self, change: &AccountChange) -> C {
        let id = change.account();
        if id.is_zero() {
            return C::IdMustNotBeZero;
        }
        let Some(account) = self.accounts.get(&id) else {
            return C::AccountNotFound;
        };
        if account.kind == AccountKind::ExpirySink {
            // A system account: ticks credit it whatever its status and limits would say.
            return C::AccountIsExpirySink;
        }
        let gift_card = account.kind == AccountKind::GiftCard;
        let for_gift_cards = matches!(
            change,
            AccountChange::ActivateGiftCard { .. }
                | AccountChange::BlockGiftCard { .. }
                | AccountChange::UnblockGiftCard { .. }
                | AccountChange::DeactivateGiftCard { .. }
        );
        if gift_card && !for_gift_cards {
            return C::AccountIsGiftCard;
        }
        if !gift_card && for_gift_cards {
            return C::AccountNotGiftCard;
        }
        use AccountStatus as S;
        match *change {
            AccountChange::Freeze { .. } => self.transition(id, &[S::Active], S::Frozen),
            AccountChange::Unfreeze { .. } => self.transition(id, &[S::Frozen], S::Active),
            AccountChange::Close { .. } => self.close(id),
            AccountChange::SetOverdraftLimit { overdraft_limit, .. } => {
                self.set_limits(id, account.flags, overdraft_limit)
            }
            AccountChange::SetFlags { flags, .. } => {
                self.set_limits(id, flags, account.overdraft_limit)
            }
            AccountChange::ActivateGiftCard { .. } => self.transition(id, &[S::Pending], S::Active),
            AccountChange::BlockGiftCard { .. } => self.transition(id, &[S::Active], S::Blocked),
            AccountChange::UnblockGiftCard { .. } => self.transition(id, &[S::Blocked], S::Active),
            AccountChange::DeactivateGiftCard { transfer_id, merchant_account, .. } => {
                self.deactivate(id, transfer_id, merchant_account)
            }
        }
    }

    /// Moves the account to `to` from one of `from`; already at `to` is a no-op success.
    fn transition(&mut self, id: AccountId, from: &[AccountStatus], to: AccountStatus) -> C {
        let status = self.accounts[&id].status;
        if status == to {
            return C::Ok;
        }
        if !from.contains(&status) {
            return C::StatusForbids;
        }
        self.set_status(id, to);
        C::Ok
    }

    fn set_status(&mut self, id: AccountId, to: AccountStatus) {
        let timestamp = self.timestamp_next();
        let account = self.account_mut(id);
        let from = account.status;
        assert_ne!(from, to);
        account.status = to;
        self.emit(timestamp, EventKind::StatusChanged { account: id, from, to });
    }

    fn close(&mut self, id: AccountId) -> C {
        let account = &self.accounts[&id];
        match account.status {
            AccountStatus::Closed => return C::Ok,
            AccountStatus::Active | AccountStatus::Frozen => {}
            _ => return C::StatusForbids,
        }
        let b = &account.balances;
        if b.debits_pending != 0 || b.credits_pending != 0 {
            return C::PendingNotZero;
        }
        if b.debits_posted != b.credits_posted {
            return C::BalanceNotZero;
        }
        self.set_status(id, AccountStatus::Closed);
        C::Ok
    }

    /// Replaces the account's limit flags and overdraft limit, if its balances satisfy them.
    fn set_limits(&mut self, id: AccountId, flags: AccountFlags, overdraft_limit: u128) -> C {
        let account = &self.accounts[&id];
        if account.status == AccountStatus::Closed {
            return C::StatusForbids;
        }
        if flags.0 & !AccountFlags::ALL != 0 || flags.has(AccountFlags::LINKED) {
            return C::FlagsReserved;
        }
        let debits_limited = flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
        if debits_limited && flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            return C::FlagsAreMutuallyExclusive;
        }
        if overdraft_limit > 0 && !debits_limited {
            return C::OverdraftLimitRequiresDebitsMustNotExceedCredits;
        }
        let changed = Account { flags, overdraft_limit, ..account.clone() };
        let b = &changed.balances;
        let debits_fit =
            changed.debits_max().is_none_or(|max| b.debits_posted + b.debits_pending <= max);
        let credits_fit =
            changed.credits_max().is_none_or(|max| b.credits_posted + b.credits_pending <= max);
        if !debits_fit || !credits_fit {
            return C::BalancesViolateChange;
        }
        if changed.flags == account.flags && changed.overdraft_limit == account.overdraft_limit {
            return C::Ok;
        }
        let timestamp = self.timestamp_next();
        let account = self.account_mut(id);
        account.flags = flags;
        account.overdraft_limit = overdraft_limit;
        if !debits_limited {
            account.overdraft_forced = 0;
        }
        self.settle_forced(id, false);
        self.emit(timestamp, EventKind::AccountChanged { account: id, flags, overdraft_limit });
        C::Ok
    }

    /// Clears a gift card's remaining value to the merchant and deactivates it for good.
    fn deactivate(
        &mut self,
        id: AccountId,
        transfer_id: TransferId,
        merchant_account: AccountId,
    ) -> C {
        let card = &self.accounts[&id];
        if card.status == AccountStatus::Deactivated {
            return C::Ok;
        }
        let b = &card.balances;
        if b.debits_pending != 0 || b.credits_pending != 0 {
            return C::PendingNotZero;
        }
        let remaining = b.available().expect("gift cards never go below zero");
        if remaining > 0 {
            if let Err(result) = self.check_clear(card, transfer_id, merchant_account, remaining) {
                return result;
            }
            let asset = card.asset;
            let timestamp = self.timestamp_next();
            let request = NewTransfer {
                id: transfer_id,
                debit_account: id,
                credit_account: merchant_account,
                amount: remaining,
                asset,
                code: Some(TransferCode::Clear),
                ..NewTransfer::default()
            };
            let consumed = self.debit(id, remaining, false, false, Timestamp::ZERO);
            self.credit(merchant_account, remaining, false, Timestamp::ZERO);
            let transfer =
                self.record(&request, timestamp, remaining, TransferState::Final, consumed);
            self.insert_and_emit(transfer, EventKind::TransferPosted);
        }
        self.set_status(id, AccountStatus::Deactivated);
        C::Ok
    }

    fn check_clear(
        &self,
        card: &Account,
        transfer_id: TransferId,
        merchant_account: AccountId,
        amount: u128,
    ) -> Result<(), C> {
        if transfer_id.is_zero() {
            return Err(C::TransferIdMustNotBeZero);
        }
        if transfer_id.is_reserved() {
            return Err(C::TransferIdReserved);
        }
        if self.transfer_id_used(transfer_id) {
            return Err(C::TransferExists);
        }
        let merchant = self.accounts.get(&merchant_account).ok_or(C::MerchantAccountNotFound)?;
        if merchant.id == card.id {
            return Err(C::MerchantAccountMustBeDifferent);
        }
        if merchant.asset != card.asset {
            return Err(C::MerchantAccountHasDifferentAsset);
        }
        if merchant.status != AccountStatus::Active {
            return Err(C::MerchantAccountNotActive);
        }
        let m = &merchant.balances;
        m.credits_posted
            .checked_add(m.credits_pending)
            .and_then(|sum| sum.checked_add(amount))
            .ok_or(C::OverflowsCredits)?;
        if merchant
            .credits_max()
            .is_some_and(|max| m.credits_posted + m.credits_pending + amount > max)
        {
            return Err(C::ExceedsDebits);
        }
        Ok(())
    }

    pub(crate) fn erase(&mut self, id: AccountId) -> EraseResult {
        if id.is_zero() {
            return EraseResult::IdMustNotBeZero;
        }
        let Some(account) = self.accounts.get(&id) else {
            return EraseResult::AccountNotFound;
        };
        if account.erased {
            return EraseResult::Ok;
        }
        let timestamp = self.timestamp_next();
        let account = self.account_mut(id);
        account.external_ref = Vec::new();
        account.metadata = Vec::new();
        account.erased = true;
        self.emit(timestamp, EventKind::Erased(id));
        EraseResult::Ok
    }
}

fn validate_account(a: &NewAccount) -> Result<(), A> {
    if a.id.is_zero() {
        return Err(A::IdMustNotBeZero);
    }
    if a.id.is_reserved() {
        return Err(A::IdReserved);
    }
    if a.flags.0 & !AccountFlags::ALL != 0 {
        return Err(A::FlagsReserved);
    }
    let debits_limited = a.flags.has(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS);
    let credits_limited = a.flags.has(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS);
    // A gift card always gets the debit limit, so the credit limit cannot go with it.
    let gift_card = a.kind == AccountKind::GiftCard;
    if credits_limited && (debits_limited || gift_card) {
        return Err(A::FlagsAreMutuallyExclusive);
    }
    if a.kind == AccountKind::ExpirySink {
        return Err(A::KindReserved);
    }
    if a.overdraft_limit > 0 && (!debits_limited || gift_card) {
        return Err(A::OverdraftLimitRequiresDebitsMustNotExceedCredits);
    }
    if a.external_ref.len() > EXTERNAL_REF_BYTES_MAX {
        return Err(A::ExternalRefTooLong);
    }
    if a.metadata.len() > ACCOUNT_METADATA_BYTES_MAX {
        return Err(A::MetadataTooLong);
    }
    if gift_card && a.code_hash.is_zero() {
        return Err(A::CodeHashRequired);
    }
    if !gift_card && !a.code_hash.is_zero() {
        return Err(A::CodeHashOnlyForGiftCards);
    }
    if a.asset.is_zero() {
        return Err(A::AssetMustNotBeZero);
    }
    Ok(())
}

/// The first immutable field in which a retry differs from the account. Flags and overdraft
/// limit change by command, so a retry is not compared on them; erased fields are not compared.
fn compare_account(a: &NewAccount, e: &Account) -> Option<A> {
    if a.asset != e.asset {
        return Some(A::ExistsWithDifferentAsset);
    }
    if a.kind != e.kind {
        return Some(A::ExistsWithDifferentKind);
    }
    if a.merchant != e.merchant {
        return Some(A::ExistsWithDifferentMerchant);
    }
    if !e.erased && a.external_ref != e.external_ref {
        return Some(A::ExistsWithDifferentExternalRef);
    }
    if !e.erased && a.metadata != e.metadata {
        return Some(A::ExistsWithDifferentMetadata);
    }
    if a.code_hash != e.code_hash {
        return Some(A::ExistsWithDifferentCodeHash);
    }
    None
}
