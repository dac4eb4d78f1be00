//! The bank model's accounts and calls on the real ledger, for both harnesses: account numbers
//! to ledger ids, the accounts to create, a model call as a request through `api::client`, and
//! the ledger's answer in the model's terms.

use std::time::Duration;

use api::client::Client;
use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;

use crate::bank::{Balance, Op, Ret, Reversal, Transfer};

const ISSUANCE: u128 = 1_001;
const SETTLEMENT: u128 = 1_002;
const WALLET_FIRST: u128 = 2_001;
const POINTS: u32 = 1;
const DEBITS_MUST_NOT_EXCEED_CREDITS: u32 = 2;
const PENDING: u32 = 2;
const POST_PENDING: u32 = 4;
const VOID_PENDING: u32 = 8;
const BALANCING_DEBIT: u32 = 16;

/// The model's accounts: 0 issuance and 1 settlement (a merchant's, unguarded), then
/// `wallets` customer wallets (guarded).
#[must_use]
pub fn guarded(wallets: usize) -> Vec<bool> {
    (0..2 + wallets).map(|account| account >= 2).collect()
}

/// The ledger id of the model's account number.
#[must_use]
pub fn ledger_id(account: usize) -> u128 {
    match account {
        0 => ISSUANCE,
        1 => SETTLEMENT,
        wallet => WALLET_FIRST + (wallet as u128 - 2),
    }
}

/// The points asset, and the accounts of a bank of `wallets` wallets.
#[must_use]
pub fn setup_requests(wallets: usize) -> (pb::NewAsset, Vec<pb::NewAccount>) {
    let asset =
        pb::NewAsset { id: POINTS, code: "PTS".into(), scale: 0, expiry_account: pb_u128(9_001) };
    let account = |id: u128, kind: pb::AccountKind, flags: u32| pb::NewAccount {
        id: pb_u128(id),
        asset: POINTS,
        kind: kind as i32,
        flags,
        ..pb::NewAccount::default()
    };
    let mut accounts = vec![
        account(ISSUANCE, pb::AccountKind::MerchantIssuance, 0),
        account(SETTLEMENT, pb::AccountKind::MerchantSettlement, 0),
    ];
    for wallet in 2..2 + wallets {
        let kind = pb::AccountKind::CustomerWallet;
        accounts.push(account(ledger_id(wallet), kind, DEBITS_MUST_NOT_EXCEED_CREDITS));
    }
    (asset, accounts)
}

/// The request for the write `op`: an earn from issuance, a burn to settlement, a transfer
/// between wallets, a hold (a pending burn), a post or void of one, a balancing burn ("burn
/// all"), or a refund of a burn or a reversal of anything else.
///
/// # Panics
/// `op` is a read.
#[must_use]
pub fn request(op: Op) -> pb::NewTransfer {
    let transfer = |t: Transfer, code: pb::TransferCode, flags| pb::NewTransfer {
        id: pb_u128(t.id),
        debit_account: pb_u128(ledger_id(t.debit)),
        credit_account: pb_u128(ledger_id(t.credit)),
        amount: pb_u128(t.amount),
        asset: POINTS,
        code: code as i32,
        flags,
        ..pb::NewTransfer::default()
    };
    match op {
        Op::Transfer(t) => {
            let code = match (t.debit, t.credit) {
                (0, _) => pb::TransferCode::Earn,
                (_, 1) => pb::TransferCode::Burn,
                _ => pb::TransferCode::Transfer,
            };
            transfer(t, code, 0)
        }
        Op::Hold(t) => transfer(t, pb::TransferCode::Burn, PENDING),
        Op::Balancing(t) => transfer(t, pb::TransferCode::Burn, BALANCING_DEBIT),
        // Accounts and asset are the original's.
        Op::Reverse(Reversal { id, original, amount }) => pb::NewTransfer {
            id: pb_u128(id),
            reverses: pb_u128(original.id),
            amount: pb_u128(amount),
            code: if original.credit == 1 {
                pb::TransferCode::Refund
            } else {
                pb::TransferCode::Reversal
            } as i32,
            ..pb::NewTransfer::default()
        },
        // Accounts, asset and code are the hold's.
        Op::Resolve(r) => pb::NewTransfer {
            id: pb_u128(r.id),
            pending_id: pb_u128(r.hold.id),
            amount: pb_u128(r.amount),
            flags: if r.void { VOID_PENDING } else { POST_PENDING },
            ..pb::NewTransfer::default()
        },
        Op::Read(_) => panic!("a read is not a transfer request"),
    }
}

/// The model's name for a transfer result.
///
/// # Errors
/// A result the model does not know (the workload should not be able to cause it).
pub fn ret_of(result: &str) -> Result<Ret, String> {
    Ok(match result {
        "ok" => Ret::Ok,
        "exists" => Ret::Exists,
        "exceeds_credits" => Ret::ExceedsCredits,
        "pending_transfer_not_found" => Ret::PendingTransferNotFound,
        "pending_transfer_already_posted" => Ret::PendingTransferAlreadyPosted,
        "pending_transfer_already_voided" => Ret::PendingTransferAlreadyVoided,
        "exceeds_pending_transfer_amount" => Ret::ExceedsPendingTransferAmount,
        "reversed_transfer_not_found" => Ret::ReversedTransferNotFound,
        "reversed_transfer_not_reversible" => Ret::ReversedTransferNotReversible,
        "exceeds_reversible_amount" => Ret::ExceedsReversibleAmount,
        r if r.starts_with("exists_with_different_") => Ret::ExistsWithDifferentFields,
        other => return Err(format!("an answer the model does not know: {other}")),
    })
}

/// Makes `op` through `client` (a read at `staleness`, zero for linearizable): its answer, or
/// why the client gave up on it (then its outcome is unknown).
///
/// # Errors
/// An answer the model does not know, or a reply without the result asked for.
pub async fn call(
    client: &Client,
    op: Op,
    staleness: Duration,
) -> Result<Result<Ret, String>, String> {
    if let Op::Read(account) = op {
        return match client.lookup_accounts(&[ledger_id(account)], staleness).await {
            Ok(found) => {
                let found = found.first().ok_or("an account was not found")?;
                let balances = found.balances.unwrap_or_default();
                Ok(Ok(Ret::Balance(Balance {
                    debits: u128_of(balances.debits_posted.as_ref()),
                    credits: u128_of(balances.credits_posted.as_ref()),
                    debits_pending: u128_of(balances.debits_pending.as_ref()),
                    credits_pending: u128_of(balances.credits_pending.as_ref()),
                })))
            }
            Err(gave_up) => Ok(Err(gave_up.to_string())),
        };
    }
    match client.create_transfers(vec![request(op)]).await {
        Ok(results) => {
            let result = results.first().ok_or("no result for a transfer")?;
            ret_of(&result.result).map(Ok)
        }
        Err(gave_up) => Ok(Err(gave_up.to_string())),
    }
}
