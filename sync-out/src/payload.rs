//! The JSON form of an event, the same for every sink that carries documents (files, Kafka).
//! Integers wider than 32 bits are decimal strings (JSON numbers lose precision past 2^53),
//! names are snake_case.

use ledger_sm::event::EventKind;
use ledger_sm::query::EventRecord;
use ledger_sm::types::{
    Account, AccountKind, AccountStatus, Balances, Transfer, TransferCode, TransferFlags,
};
use serde::{Deserialize, Serialize};

/// One event as exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The event's sequence number: gap-free and strictly increasing; the key consumers
    /// deduplicate by (a repeated delivery carries the same number).
    pub seq: String,
    /// What happened: `asset_created`, `account_created`, `transfer_posted`, `hold_created`,
    /// `hold_posted`, `hold_voided`, `hold_expired`, `lot_expired`, `status_changed`,
    /// `account_changed`, `erased`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When, in nanoseconds since the UNIX epoch (the ledger's timestamp).
    pub timestamp: String,
    /// For asset events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<u32>,
    /// For account events: the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// For `status_changed`: the statuses before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_to: Option<String>,
    /// For `account_changed`: the account's flags and overdraft limit after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_flags: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overdraft_limit: Option<String>,
    /// For transfer events: the transfer, with both accounts' balances right after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<TransferPayload>,
    /// For `account_created`: the account's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_info: Option<AccountPayload>,
}

/// An account as created. Status, flags and overdraft limit are the account's when the event
/// is exported (later `status_changed` and `account_changed` events repeat them); the personal
/// fields are empty once the account is erased.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPayload {
    pub asset: u32,
    /// `customer_wallet`, `gift_card`, `merchant_issuance`, `merchant_settlement`,
    /// `expiry_sink`, `operator`.
    pub kind: String,
    pub status: String,
    pub flags: u16,
    pub overdraft_limit: String,
    pub merchant: String,
    /// Personal fields, hex-encoded bytes; cleared by erasure.
    pub external_ref: String,
    pub metadata: String,
    pub erased: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferPayload {
    pub id: String,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: String,
    pub asset: u32,
    pub code: String,
    /// Names of the flags set: `linked`, `pending`, `post_pending`, `void_pending`,
    /// `balancing_debit`, `balancing_credit`, `force`.
    pub flags: Vec<String>,
    /// The hold a post or void resolves ("0": none).
    pub pending_id: String,
    /// The transfer a refund or reversal undoes ("0": none).
    pub reverses: String,
    /// Seconds a hold lives (0: until resolved).
    pub timeout: u32,
    /// When credited value expires ("0": never).
    pub expires_at: String,
    pub user_data_128: String,
    pub user_data_64: String,
    pub user_data_32: u32,
    pub debit_balances: BalancesPayload,
    pub credit_balances: BalancesPayload,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesPayload {
    pub debits_pending: String,
    pub debits_posted: String,
    pub credits_pending: String,
    pub credits_posted: String,
}

impl Payload {
    /// The event as exported. Transfer events carry their transfer (as `query::events` joins
    /// it); an event that does not is a bug of the caller.
    ///
    /// # Panics
    /// A transfer event without its transfer.
    #[must_use]
    pub fn new(record: &EventRecord) -> Self {
        let event = &record.event;
        let mut payload = Self {
            seq: event.seq.0.to_string(),
            kind: kind_name(&event.kind).to_owned(),
            timestamp: event.timestamp.0.to_string(),
            asset: None,
            account: None,
            status_from: None,
            status_to: None,
            account_flags: None,
            overdraft_limit: None,
            transfer: None,
            account_info: None,
        };
        match event.kind {
            EventKind::AssetCreated(asset) => payload.asset = Some(asset.0),
            EventKind::AccountCreated(account) => {
                payload.account = Some(account.0.to_string());
                let info = record.account.as_ref().expect("account events carry it");
                payload.account_info = Some(AccountPayload::new(info));
            }
            EventKind::Erased(account) => payload.account = Some(account.0.to_string()),
            EventKind::StatusChanged { account, from, to } => {
                payload.account = Some(account.0.to_string());
                payload.status_from = Some(status_name(from).to_owned());
                payload.status_to = Some(status_name(to).to_owned());
            }
            EventKind::AccountChanged { account, flags, overdraft_limit } => {
                payload.account = Some(account.0.to_string());
                payload.account_flags = Some(flags.0);
                payload.overdraft_limit = Some(overdraft_limit.to_string());
            }
            EventKind::TransferPosted(_)
            | EventKind::HoldCreated(_)
            | EventKind::HoldPosted(_)
            | EventKind::HoldVoided(_)
            | EventKind::HoldExpired(_)
            | EventKind::LotExpired(_) => {
                let transfer = record.transfer.as_ref().expect("transfer events carry it");
                payload.transfer = Some(TransferPayload::new(transfer));
            }
        }
        payload
    }

    /// The event's sequence number.
    ///
    /// # Panics
    /// A payload not made by `new` (a sequence number that is not a number).
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq.parse().expect("payloads carry their sequence number")
    }

    /// The accounts the event is about, debit first: a consumer's partition keys.
    #[must_use]
    pub fn accounts(&self) -> Vec<&str> {
        match (&self.transfer, &self.account) {
            (Some(t), _) => vec![t.debit_account.as_str(), t.credit_account.as_str()],
            (None, Some(account)) => vec![account.as_str()],
            (None, None) => Vec::new(),
        }
    }
}

impl TransferPayload {
    fn new(t: &Transfer) -> Self {
        let id = |id: u128| id.to_string();
        Self {
            id: id(t.id.0),
            debit_account: id(t.debit_account.0),
            credit_account: id(t.credit_account.0),
            amount: t.amount.to_string(),
            asset: t.asset.0,
            code: code_name(t.code).to_owned(),
            flags: flag_names(t.flags),
            pending_id: id(t.pending_id.0),
            reverses: id(t.reverses.0),
            timeout: t.timeout,
            expires_at: t.expires_at.0.to_string(),
            user_data_128: t.user_data_128.to_string(),
            user_data_64: t.user_data_64.to_string(),
            user_data_32: t.user_data_32,
            debit_balances: BalancesPayload::new(&t.debit_balances),
            credit_balances: BalancesPayload::new(&t.credit_balances),
        }
    }
}

impl AccountPayload {
    fn new(a: &Account) -> Self {
        Self {
            asset: a.asset.0,
            kind: account_kind_name(a.kind).to_owned(),
            status: status_name(a.status).to_owned(),
            flags: a.flags.0,
            overdraft_limit: a.overdraft_limit.to_string(),
            merchant: a.merchant.0.to_string(),
            external_ref: hex(&a.external_ref),
            metadata: hex(&a.metadata),
            erased: a.erased,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn account_kind_name(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::CustomerWallet => "customer_wallet",
        AccountKind::GiftCard => "gift_card",
        AccountKind::MerchantIssuance => "merchant_issuance",
        AccountKind::MerchantSettlement => "merchant_settlement",
        AccountKind::ExpirySink => "expiry_sink",
        AccountKind::Operator => "operator",
    }
}

impl BalancesPayload {
    fn new(b: &Balances) -> Self {
        Self {
            debits_pending: b.debits_pending.to_string(),
            debits_posted: b.debits_posted.to_string(),
            credits_pending: b.credits_pending.to_string(),
            credits_posted: b.credits_posted.to_string(),
        }
    }
}

/// The event type's name, as in `Payload::kind`.
#[must_use]
pub fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::AssetCreated(_) => "asset_created",
        EventKind::AccountCreated(_) => "account_created",
        EventKind::TransferPosted(_) => "transfer_posted",
        EventKind::HoldCreated(_) => "hold_created",
        EventKind::HoldPosted(_) => "hold_posted",
        EventKind::HoldVoided(_) => "hold_voided",
        EventKind::HoldExpired(_) => "hold_expired",
        EventKind::LotExpired(_) => "lot_expired",
        EventKind::StatusChanged { .. } => "status_changed",
        EventKind::AccountChanged { .. } => "account_changed",
        EventKind::Erased(_) => "erased",
    }
}

pub fn status_name(status: AccountStatus) -> &'static str {
    match status {
        AccountStatus::Active => "active",
        AccountStatus::Frozen => "frozen",
        AccountStatus::Closed => "closed",
        AccountStatus::Pending => "pending",
        AccountStatus::Blocked => "blocked",
        AccountStatus::Deactivated => "deactivated",
    }
}

fn code_name(code: TransferCode) -> &'static str {
    match code {
        TransferCode::Earn => "earn",
        TransferCode::Burn => "burn",
        TransferCode::Load => "load",
        TransferCode::Redeem => "redeem",
        TransferCode::Refund => "refund",
        TransferCode::Reversal => "reversal",
        TransferCode::Adjustment => "adjustment",
        TransferCode::Transfer => "transfer",
        TransferCode::Expiry => "expiry",
        TransferCode::Clear => "clear",
        TransferCode::HoldTimeout => "hold_timeout",
    }
}

fn flag_names(flags: TransferFlags) -> Vec<String> {
    const NAMES: [(u16, &str); 7] = [
        (TransferFlags::LINKED, "linked"),
        (TransferFlags::PENDING, "pending"),
        (TransferFlags::POST_PENDING, "post_pending"),
        (TransferFlags::VOID_PENDING, "void_pending"),
        (TransferFlags::BALANCING_DEBIT, "balancing_debit"),
        (TransferFlags::BALANCING_CREDIT, "balancing_credit"),
        (TransferFlags::FORCE, "force"),
    ];
    NAMES.iter().filter(|(bit, _)| flags.has(*bit)).map(|(_, name)| (*name).to_owned()).collect()
}
