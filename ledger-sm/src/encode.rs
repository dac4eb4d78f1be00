//! Canonical bytes of records and commands: fixed field order, little-endian integers,
//! length-prefixed byte strings. Hashes are computed over these bytes, so they must never change
//! for a given record; append new fields at the end and bump `ENCODING_VERSION`.

use crate::command::{
    AccountChange, Batch, CursorCommand, GiftCardIssue, NewAccount, NewAsset, NewTransfer,
    Operation,
};
use crate::event::{Event, EventKind};
use crate::state::Meta;
use crate::types::{Account, Asset, Balances, Cursor, FailedTransfer, Lot, Transfer};

pub const ENCODING_VERSION: u8 = 1;

pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// A byte string with a u64 length prefix. Commands carry byte strings of any length (an
/// over-long one is refused by apply, but the batch is still encoded for the audit chain), so
/// the prefix must take any length without a panic.
fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    out.extend_from_slice(value);
}

macro_rules! le {
    ($out:expr, $($value:expr),+ $(,)?) => {{ $( $out.extend_from_slice(&$value.to_le_bytes()); )+ }};
}

impl Encode for Balances {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(
            out,
            self.debits_pending,
            self.debits_posted,
            self.credits_pending,
            self.credits_posted
        );
    }
}

impl Encode for Asset {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.id.0);
        bytes(out, &self.code);
        le!(out, self.scale, self.expiry_account.0, self.timestamp.0);
    }
}

impl Encode for Account {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.id.0, self.asset.0, self.kind as u8, self.flags.0, self.status as u8);
        le!(out, self.overdraft_limit, self.overdraft_forced, self.lots_total, self.merchant.0);
        bytes(out, &self.external_ref);
        bytes(out, &self.metadata);
        out.extend_from_slice(&self.code_hash.0);
        le!(out, u8::from(self.erased), self.timestamp.0);
        self.balances.encode(out);
    }
}

impl Encode for Transfer {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.id.0, self.debit_account.0, self.credit_account.0, self.amount);
        le!(out, self.asset.0, self.code as u16, self.flags.0, self.pending_id.0, self.reverses.0);
        le!(out, self.timeout, self.expires_at.0, self.user_data_128, self.user_data_64);
        le!(out, self.user_data_32, self.timestamp.0, self.state as u8, self.amount_reversed);
        let parts = u16::try_from(self.lots_consumed.len()).expect("bounded by ACCOUNT_LOTS_MAX");
        le!(out, parts);
        for part in &self.lots_consumed {
            le!(out, part.expires_at.0, part.amount);
        }
        self.debit_balances.encode(out);
        self.credit_balances.encode(out);
    }
}

impl Encode for NewTransfer {
    fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code.map_or(0, |code| code as u16);
        le!(out, self.id.0, self.debit_account.0, self.credit_account.0, self.amount);
        le!(out, self.asset.0, code, self.flags.0, self.pending_id.0, self.reverses.0);
        le!(out, self.timeout, self.expires_at.0, self.user_data_128, self.user_data_64);
        le!(out, self.user_data_32);
    }
}

impl Encode for FailedTransfer {
    fn encode(&self, out: &mut Vec<u8>) {
        self.transfer.encode(out);
        le!(out, self.result as u16, self.timestamp.0);
    }
}

impl Encode for Lot {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.account.0, self.expires_at.0, self.amount);
    }
}

impl Encode for NewAsset {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.id.0);
        bytes(out, &self.code);
        le!(out, self.scale, self.expiry_account.0);
    }
}

impl Encode for NewAccount {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.id.0, self.asset.0, self.kind as u8, self.flags.0, self.overdraft_limit);
        le!(out, self.merchant.0);
        bytes(out, &self.external_ref);
        bytes(out, &self.metadata);
        out.extend_from_slice(&self.code_hash.0);
    }
}

impl Encode for AccountChange {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Freeze { account } => le!(out, 1u8, account.0),
            Self::Unfreeze { account } => le!(out, 2u8, account.0),
            Self::Close { account } => le!(out, 3u8, account.0),
            Self::SetOverdraftLimit { account, overdraft_limit } => {
                le!(out, 4u8, account.0, overdraft_limit);
            }
            Self::SetFlags { account, flags } => le!(out, 5u8, account.0, flags.0),
            Self::ActivateGiftCard { account } => le!(out, 6u8, account.0),
            Self::BlockGiftCard { account } => le!(out, 7u8, account.0),
            Self::UnblockGiftCard { account } => le!(out, 8u8, account.0),
            Self::DeactivateGiftCard { account, transfer_id, merchant_account } => {
                le!(out, 9u8, account.0, transfer_id.0, merchant_account.0);
            }
        }
    }
}

impl Encode for GiftCardIssue {
    fn encode(&self, out: &mut Vec<u8>) {
        self.account.encode(out);
        le!(out, self.load_transfer_id.0, self.load_from.0, self.load_amount);
    }
}

fn list<T: Encode>(out: &mut Vec<u8>, tag: u8, events: &[T]) {
    let count = u32::try_from(events.len()).expect("bounded by BATCH_EVENTS_MAX");
    le!(out, tag, count);
    for event in events {
        event.encode(out);
    }
}

impl Encode for Batch {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, ENCODING_VERSION, self.now.0);
        match &self.operation {
            Operation::CreateAssets(events) => list(out, 1, events),
            Operation::CreateAccounts(events) => list(out, 2, events),
            Operation::CreateTransfers(events) => list(out, 3, events),
            Operation::ChangeAccounts(events) => list(out, 4, events),
            Operation::IssueGiftCards(events) => list(out, 5, events),
            Operation::Erase(ids) => {
                let count = u32::try_from(ids.len()).expect("bounded by BATCH_EVENTS_MAX");
                le!(out, 6u8, count);
                for id in ids {
                    le!(out, id.0);
                }
            }
            Operation::Tick => le!(out, 7u8),
            Operation::Cursors(commands) => list(out, 8, commands),
        }
    }
}

impl Encode for Meta {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.timestamp_last.0, self.event_seq_next.0, self.batches_applied);
        le!(out, self.state_hash);
        out.extend_from_slice(&self.chain);
        le!(out, self.events_first.0);
    }
}

impl Encode for Cursor {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sink.0);
        le!(out, self.next.0, self.term, self.updated_at.0);
    }
}

impl Encode for CursorCommand {
    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Advance { sink, next, term } => {
                out.push(1);
                out.extend_from_slice(&sink.0);
                le!(out, next.0, term);
            }
            Self::Forget { sink } => {
                out.push(2);
                out.extend_from_slice(&sink.0);
            }
        }
    }
}

impl Encode for Event {
    fn encode(&self, out: &mut Vec<u8>) {
        le!(out, self.seq.0, self.timestamp.0);
        match self.kind {
            EventKind::AssetCreated(id) => le!(out, 1u8, id.0),
            EventKind::AccountCreated(id) => le!(out, 2u8, id.0),
            EventKind::TransferPosted(id) => le!(out, 3u8, id.0),
            EventKind::HoldCreated(id) => le!(out, 4u8, id.0),
            EventKind::HoldPosted(id) => le!(out, 5u8, id.0),
            EventKind::HoldVoided(id) => le!(out, 6u8, id.0),
            EventKind::HoldExpired(id) => le!(out, 7u8, id.0),
            EventKind::LotExpired(id) => le!(out, 8u8, id.0),
            EventKind::StatusChanged { account, from, to } => {
                le!(out, 9u8, account.0, from as u8, to as u8);
            }
            EventKind::AccountChanged { account, flags, overdraft_limit } => {
                le!(out, 10u8, account.0, flags.0, overdraft_limit);
            }
            EventKind::Erased(id) => le!(out, 11u8, id.0),
        }
    }
}
