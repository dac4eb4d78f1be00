//! Between the protobuf messages of `localplus.ledger.v1` and `ledger-sm`'s commands, records
//! and results. Values the ledger cannot represent (an unknown enum, a flag word wider than the
//! ledger's, an oversized scale) are refused with a message naming the field; everything the
//! ledger can represent goes through unchanged, and the ledger's own result codes judge it.

use ledger_sm::command::{AccountChange, GiftCardIssue, NewAccount, NewAsset, NewTransfer};
use ledger_sm::query::{AccountFilter, BalanceEntry};
use ledger_sm::result::{
    AccountOutcome, ChangeAccountOutcome, IssueGiftCardOutcome, IssueGiftCardResult,
    TransferOutcome,
};
use ledger_sm::types::{
    Account, AccountBalances, AccountFlags, AccountId, AccountKind, AccountStatus, AssetId,
    Balances, CodeHash, Lot, MerchantId, Timestamp, Transfer, TransferCode, TransferFlags,
    TransferId, TransferState,
};

use crate::proto::ledger as pb;

/// A request field the ledger cannot represent: `field` names it (`transfers[3].code`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn field_error(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), problem: problem.into() }
}

#[must_use]
pub fn u128_of(value: Option<&pb::U128>) -> u128 {
    value.map_or(0, |v| (u128::from(v.hi) << 64) | u128::from(v.lo))
}

#[must_use]
#[allow(clippy::cast_possible_truncation)] // Splitting into halves is the point.
pub fn pb_u128(value: u128) -> Option<pb::U128> {
    Some(pb::U128 { lo: value as u64, hi: (value >> 64) as u64 })
}

fn u16_flags(flags: u32, field: &str) -> Result<u16, FieldError> {
    u16::try_from(flags).map_err(|_| field_error(field, format!("{flags} is wider than 16 bits")))
}

fn kind_of(kind: i32, field: &str) -> Result<AccountKind, FieldError> {
    Ok(match pb::AccountKind::try_from(kind) {
        Ok(pb::AccountKind::CustomerWallet) => AccountKind::CustomerWallet,
        Ok(pb::AccountKind::GiftCard) => AccountKind::GiftCard,
        Ok(pb::AccountKind::MerchantIssuance) => AccountKind::MerchantIssuance,
        Ok(pb::AccountKind::MerchantSettlement) => AccountKind::MerchantSettlement,
        Ok(pb::AccountKind::ExpirySink) => AccountKind::ExpirySink,
        Ok(pb::AccountKind::Operator) => AccountKind::Operator,
        Ok(pb::AccountKind::Unspecified) => {
            return Err(field_error(field, "account kind is required"))
        }
        Err(_) => return Err(field_error(field, format!("unknown account kind {kind}"))),
    })
}

fn pb_kind(kind: AccountKind) -> i32 {
    let kind = match kind {
        AccountKind::CustomerWallet => pb::AccountKind::CustomerWallet,
        AccountKind::GiftCard => pb::AccountKind::GiftCard,
        AccountKind::MerchantIssuance => pb::AccountKind::MerchantIssuance,
        AccountKind::MerchantSettlement => pb::AccountKind::MerchantSettlement,
        AccountKind::ExpirySink => pb::AccountKind::ExpirySink,
        AccountKind::Operator => pb::AccountKind::Operator,
    };
    kind as i32
}

fn code_of(code: i32, field: &str) -> Result<Option<TransferCode>, FieldError> {
    use pb::TransferCode as P;
    Ok(Some(match P::try_from(code) {
        Ok(P::Unspecified) => return Ok(None),
        Ok(P::Earn) => TransferCode::Earn,
        Ok(P::Burn) => TransferCode::Burn,
        Ok(P::Load) => TransferCode::Load,
        Ok(P::Redeem) => TransferCode::Redeem,
        Ok(P::Refund) => TransferCode::Refund,
        Ok(P::Reversal) => TransferCode::Reversal,
        Ok(P::Adjustment) => TransferCode::Adjustment,
        Ok(P::Transfer) => TransferCode::Transfer,
        Ok(P::Expiry) => TransferCode::Expiry,
        Ok(P::Clear) => TransferCode::Clear,
        Ok(P::HoldTimeout) => TransferCode::HoldTimeout,
        Err(_) => return Err(field_error(field, format!("unknown transfer code {code}"))),
    }))
}

fn pb_code(code: TransferCode) -> i32 {
    use pb::TransferCode as P;
    let code = match code {
        TransferCode::Earn => P::Earn,
        TransferCode::Burn => P::Burn,
        TransferCode::Load => P::Load,
        TransferCode::Redeem => P::Redeem,
        TransferCode::Refund => P::Refund,
        TransferCode::Reversal => P::Reversal,
        TransferCode::Adjustment => P::Adjustment,
        TransferCode::Transfer => P::Transfer,
        TransferCode::Expiry => P::Expiry,
        TransferCode::Clear => P::Clear,
        TransferCode::HoldTimeout => P::HoldTimeout,
    };
    code as i32
}

/// A result code as the API spells it: the variant's name in snake case (`exceeds_credits`).
/// Stable: renaming a variant is a breaking API change.
#[must_use]
pub fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn code_name(value: impl std::fmt::Debug) -> String {
    snake(&format!("{value:?}"))
}

fn status_name(status: AccountStatus) -> String {
    code_name(status)
}

fn state_name(state: TransferState) -> String {
    code_name(state)
}

/// The hash under which a gift card's code is stored: keyed by purpose, so it matches nothing
/// else hashed from the same text.
#[must_use]
pub fn gift_card_code_hash(code: &str) -> CodeHash {
    if code.is_empty() {
        return CodeHash::ZERO; // The ledger answers `code_hash_required`.
    }
    CodeHash(blake3::derive_key("localplus-ledger 2026 gift card code v1", code.as_bytes()))
}

/// # Errors
/// A scale that does not fit the ledger's.
pub fn new_asset(asset: &pb::NewAsset, i: usize) -> Result<NewAsset, FieldError> {
    let scale = u8::try_from(asset.scale)
        .map_err(|_| field_error(format!("assets[{i}].scale"), "out of range"))?;
    Ok(NewAsset {
        id: AssetId(asset.id),
        code: asset.code.as_bytes().to_vec(),
        scale,
        expiry_account: AccountId(u128_of(asset.expiry_account.as_ref())),
    })
}

/// # Errors
/// An unknown kind or a flag word wider than the ledger's.
pub fn new_account(account: &pb::NewAccount, field: &str) -> Result<NewAccount, FieldError> {
    Ok(NewAccount {
        id: AccountId(u128_of(account.id.as_ref())),
        asset: AssetId(account.asset),
        kind: kind_of(account.kind, &format!("{field}.kind"))?,
        flags: AccountFlags(u16_flags(account.flags, &format!("{field}.flags"))?),
        overdraft_limit: u128_of(account.overdraft_limit.as_ref()),
        merchant: MerchantId(account.merchant),
        external_ref: account.external_ref.clone(),
        metadata: account.metadata.clone(),
        code_hash: CodeHash::ZERO,
    })
}

/// # Errors
/// An unknown code or a flag word wider than the ledger's.
pub fn new_transfer(transfer: &pb::NewTransfer, field: &str) -> Result<NewTransfer, FieldError> {
    Ok(NewTransfer {
        id: TransferId(u128_of(transfer.id.as_ref())),
        debit_account: AccountId(u128_of(transfer.debit_account.as_ref())),
        credit_account: AccountId(u128_of(transfer.credit_account.as_ref())),
        amount: u128_of(transfer.amount.as_ref()),
        asset: AssetId(transfer.asset),
        code: code_of(transfer.code, &format!("{field}.code"))?,
        flags: TransferFlags(u16_flags(transfer.flags, &format!("{field}.flags"))?),
        pending_id: TransferId(u128_of(transfer.pending_id.as_ref())),
        reverses: TransferId(u128_of(transfer.reverses.as_ref())),
        timeout: transfer.timeout,
        expires_at: Timestamp(transfer.expires_at),
        user_data_128: u128_of(transfer.user_data_128.as_ref()),
        user_data_64: transfer.user_data_64,
        user_data_32: transfer.user_data_32,
    })
}

/// The transfer a convenience call stands for. Fields it does not set are zero, and the ledger
/// judges the rest as it judges any transfer.
#[must_use]
pub fn earn(r: &pb::EarnRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        debit_account: r.from,
        credit_account: r.account,
        amount: r.amount,
        asset: r.asset,
        code: pb::TransferCode::Earn as i32,
        expires_at: r.expires_at,
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

fn code_or_burn(code: i32) -> i32 {
    if code == pb::TransferCode::Unspecified as i32 {
        pb::TransferCode::Burn as i32
    } else {
        code
    }
}

#[must_use]
pub fn burn(r: &pb::BurnRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        debit_account: r.account,
        credit_account: r.to,
        amount: r.amount,
        asset: r.asset,
        code: code_or_burn(r.code),
        flags: if r.up_to_available { u32::from(TransferFlags::BALANCING_DEBIT) } else { 0 },
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

#[must_use]
pub fn hold(r: &pb::HoldRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        debit_account: r.account,
        credit_account: r.to,
        amount: r.amount,
        asset: r.asset,
        code: code_or_burn(r.code),
        flags: u32::from(TransferFlags::PENDING),
        timeout: r.timeout,
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

#[must_use]
pub fn capture(r: &pb::CaptureRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        pending_id: r.hold,
        amount: r.amount,
        flags: u32::from(TransferFlags::POST_PENDING),
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

#[must_use]
pub fn void(r: &pb::VoidRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        pending_id: r.hold,
        flags: u32::from(TransferFlags::VOID_PENDING),
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

#[must_use]
pub fn refund(r: &pb::RefundRequest) -> pb::NewTransfer {
    pb::NewTransfer {
        id: r.id,
        reverses: r.transfer,
        amount: r.amount,
        code: pb::TransferCode::Refund as i32,
        user_data_128: r.user_data_128,
        user_data_64: r.user_data_64,
        user_data_32: r.user_data_32,
        ..Default::default()
    }
}

/// # Errors
/// A change with nothing in it, or a flag word wider than the ledger's.
pub fn account_change(change: &pb::AccountChange, i: usize) -> Result<AccountChange, FieldError> {
    use pb::account_change::Change;
    let id = |v: &pb::U128| AccountId(u128_of(Some(v)));
    let Some(change) = &change.change else {
        return Err(field_error(format!("changes[{i}]"), "no change given"));
    };
    Ok(match change {
        Change::Freeze(a) => AccountChange::Freeze { account: id(a) },
        Change::Unfreeze(a) => AccountChange::Unfreeze { account: id(a) },
        Change::Close(a) => AccountChange::Close { account: id(a) },
        Change::SetOverdraftLimit(s) => AccountChange::SetOverdraftLimit {
            account: AccountId(u128_of(s.account.as_ref())),
            overdraft_limit: u128_of(s.overdraft_limit.as_ref()),
        },
        Change::SetFlags(s) => AccountChange::SetFlags {
            account: AccountId(u128_of(s.account.as_ref())),
            flags: AccountFlags(u16_flags(s.flags, &format!("changes[{i}].flags"))?),
        },
        Change::ActivateGiftCard(a) => AccountChange::ActivateGiftCard { account: id(a) },
        Change::BlockGiftCard(a) => AccountChange::BlockGiftCard { account: id(a) },
        Change::UnblockGiftCard(a) => AccountChange::UnblockGiftCard { account: id(a) },
        Change::DeactivateGiftCard(d) => AccountChange::DeactivateGiftCard {
            account: AccountId(u128_of(d.account.as_ref())),
            transfer_id: TransferId(u128_of(d.transfer_id.as_ref())),
            merchant_account: AccountId(u128_of(d.merchant_account.as_ref())),
        },
    })
}

/// # Errors
/// A card without an account, or a field the ledger cannot represent.
pub fn gift_card_issue(card: &pb::GiftCardIssue, i: usize) -> Result<GiftCardIssue, FieldError> {
    let field = format!("cards[{i}].account");
    let account = card.account.as_ref().ok_or_else(|| field_error(&field, "required"))?;
    let mut account = new_account(account, &field)?;
    account.code_hash = gift_card_code_hash(&card.code);
    Ok(GiftCardIssue {
        account,
        load_transfer_id: TransferId(u128_of(card.load_transfer_id.as_ref())),
        load_from: AccountId(u128_of(card.load_from.as_ref())),
        load_amount: u128_of(card.load_amount.as_ref()),
    })
}

fn pb_balances(b: &Balances) -> pb::Balances {
    pb::Balances {
        debits_pending: pb_u128(b.debits_pending),
        debits_posted: pb_u128(b.debits_posted),
        credits_pending: pb_u128(b.credits_pending),
        credits_posted: pb_u128(b.credits_posted),
    }
}

fn pb_account_balances(b: Option<&AccountBalances>) -> Option<pb::AccountBalances> {
    b.map(|b| pb::AccountBalances {
        account: pb_u128(b.account.0),
        balances: Some(pb_balances(&b.balances)),
    })
}

#[must_use]
pub fn account_result(outcome: &AccountOutcome) -> pb::AccountResult {
    pb::AccountResult { result: code_name(outcome.result), timestamp: outcome.timestamp.0 }
}

#[must_use]
pub fn transfer_result(outcome: &TransferOutcome, id: TransferId) -> pb::TransferResult {
    pb::TransferResult {
        id: pb_u128(id.0),
        result: code_name(outcome.result),
        timestamp: outcome.timestamp.0,
        amount: pb_u128(outcome.amount),
        debit: pb_account_balances(outcome.debit.as_ref()),
        credit: pb_account_balances(outcome.credit.as_ref()),
    }
}

#[must_use]
pub fn change_result(outcome: &ChangeAccountOutcome) -> pb::ChangeAccountResult {
    pb::ChangeAccountResult {
        result: code_name(outcome.result),
        status: outcome.status.map(status_name).unwrap_or_default(),
        balances: pb_account_balances(outcome.balances.as_ref()),
    }
}

#[must_use]
pub fn gift_card_result(outcome: &IssueGiftCardOutcome) -> pb::IssueGiftCardResult {
    let result = match outcome.result {
        IssueGiftCardResult::Account(r) => format!("account_{}", code_name(r)),
        IssueGiftCardResult::Load(r) => format!("load_{}", code_name(r)),
        other => code_name(other),
    };
    pb::IssueGiftCardResult { result, balances: pb_account_balances(outcome.balances.as_ref()) }
}

#[must_use]
pub fn create_asset_result(result: ledger_sm::result::CreateAssetResult) -> String {
    code_name(result)
}

#[must_use]
pub fn account(a: &Account) -> pb::Account {
    pb::Account {
        id: pb_u128(a.id.0),
        asset: a.asset.0,
        kind: pb_kind(a.kind),
        flags: u32::from(a.flags.0),
        status: status_name(a.status),
        balances: Some(pb_balances(&a.balances)),
        overdraft_limit: pb_u128(a.overdraft_limit),
        overdraft_forced: pb_u128(a.overdraft_forced),
        lots_total: pb_u128(a.lots_total),
        merchant: a.merchant.0,
        external_ref: a.external_ref.clone(),
        metadata: a.metadata.clone(),
        erased: a.erased,
        timestamp: a.timestamp.0,
        available: pb_u128(a.balances.available_or_zero()),
    }
}

#[must_use]
pub fn transfer(t: &Transfer) -> pb::Transfer {
    pb::Transfer {
        id: pb_u128(t.id.0),
        debit_account: pb_u128(t.debit_account.0),
        credit_account: pb_u128(t.credit_account.0),
        amount: pb_u128(t.amount),
        asset: t.asset.0,
        code: pb_code(t.code),
        flags: u32::from(t.flags.0),
        pending_id: pb_u128(t.pending_id.0),
        reverses: pb_u128(t.reverses.0),
        timeout: t.timeout,
        expires_at: t.expires_at.0,
        user_data_128: pb_u128(t.user_data_128),
        user_data_64: t.user_data_64,
        user_data_32: t.user_data_32,
        timestamp: t.timestamp.0,
        state: state_name(t.state),
        amount_reversed: pb_u128(t.amount_reversed),
        debit_balances: Some(pb_balances(&t.debit_balances)),
        credit_balances: Some(pb_balances(&t.credit_balances)),
    }
}

/// A filter as `ledger-sm` takes it: every value is representable; `ledger-sm` judges them.
#[must_use]
pub fn account_filter(filter: &pb::AccountFilter) -> AccountFilter {
    AccountFilter {
        account: AccountId(u128_of(filter.account.as_ref())),
        timestamp_min: Timestamp(filter.timestamp_min),
        timestamp_max: Timestamp(filter.timestamp_max),
        limit: filter.limit,
        descending: filter.descending,
    }
}

#[must_use]
pub fn balance_entry(entry: &BalanceEntry) -> pb::BalanceEntry {
    pb::BalanceEntry {
        transfer: pb_u128(entry.transfer.0),
        timestamp: entry.timestamp.0,
        balances: Some(pb_balances(&entry.balances)),
    }
}

#[must_use]
pub fn lot(lot: &Lot) -> pb::Lot {
    pb::Lot { expires_at: lot.expires_at.0, amount: pb_u128(lot.amount) }
}

#[must_use]
pub fn erase_result(result: ledger_sm::result::EraseResult) -> String {
    code_name(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_sm::result::TransferResult;

    #[test]
    fn u128_round_trips_through_halves() {
        for value in [0, 1, u128::from(u64::MAX), u128::from(u64::MAX) + 1, u128::MAX] {
            assert_eq!(u128_of(pb_u128(value).as_ref()), value);
        }
    }

    #[test]
    fn result_codes_are_distinct_snake_case_names() {
        assert_eq!(snake("ExceedsCredits"), "exceeds_credits");
        assert_eq!(code_name(TransferResult::Ok), "ok");
        let names: std::collections::BTreeSet<String> =
            TransferResult::ALL.iter().map(|r| code_name(*r)).collect();
        assert_eq!(names.len(), TransferResult::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
    }

    #[test]
    fn unrepresentable_fields_are_refused_by_name() {
        let transfer = pb::NewTransfer { code: 99, ..pb::NewTransfer::default() };
        let error = new_transfer(&transfer, "transfers[3]").unwrap_err();
        assert_eq!(error.field, "transfers[3].code");
        let transfer = pb::NewTransfer { flags: 1 << 20, ..pb::NewTransfer::default() };
        assert_eq!(
            new_transfer(&transfer, "transfers[0]").unwrap_err().field,
            "transfers[0].flags"
        );
        let account = pb::NewAccount::default();
        assert_eq!(new_account(&account, "accounts[0]").unwrap_err().field, "accounts[0].kind");
    }

    #[test]
    fn gift_card_codes_hash_apart_and_never_to_zero() {
        let a = gift_card_code_hash("GC-0001");
        assert_ne!(a, gift_card_code_hash("GC-0002"));
        assert!(!a.is_zero());
        assert!(gift_card_code_hash("").is_zero());
    }
}
