//! Reading canonical bytes back (the inverse of `encode`). Total: malformed or truncated input
//! is an error, never a panic, because stored bytes can rot and entries can arrive damaged.

use crate::command::{
    AccountChange, Batch, CursorCommand, GiftCardIssue, NewAccount, NewAsset, NewTransfer,
    Operation,
};
use crate::constants::{ACCOUNT_LOTS_MAX, BATCH_EVENTS_MAX};
use crate::encode::ENCODING_VERSION;
use crate::event::{Event, EventKind};
use crate::result::TransferResult;
use crate::state::Meta;
use crate::types::{
    Account, AccountFlags, AccountId, AccountKind, AccountStatus, Asset, AssetId, Balances,
    CodeHash, Cursor, EventSeq, FailedTransfer, Lot, LotPart, MerchantId, SinkId, Timestamp,
    Transfer, TransferCode, TransferFlags, TransferId, TransferState,
};

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a field.
    Truncated,
    /// Bytes were left over after the value.
    TrailingBytes,
    /// A field held a value outside its domain (an unknown enum tag, an oversized count).
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated => write!(f, "truncated"),
            Self::TrailingBytes => write!(f, "trailing bytes"),
            Self::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub trait Decode: Sized {
    /// # Errors
    /// When the bytes are not a valid encoding.
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Decodes a whole buffer: every byte must belong to the value.
///
/// # Errors
/// When the bytes are not exactly one valid encoding.
pub fn decode_exact<T: Decode>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut reader = Reader { bytes };
    let value = T::decode(&mut reader)?;
    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(value)
}

#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

macro_rules! reader_int {
    ($name:ident, $type:ty) => {
        /// # Errors
        /// When the input ends first.
        pub fn $name(&mut self) -> Result<$type, DecodeError> {
            let array = self.array::<{ std::mem::size_of::<$type>() }>()?;
            Ok(<$type>::from_le_bytes(array))
        }
    };
}

impl<'a> Reader<'a> {
    #[must_use]
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// Whether every byte was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    reader_int!(u8, u8);
    reader_int!(u16, u16);
    reader_int!(u32, u32);
    reader_int!(u64, u64);
    reader_int!(u128, u128);

    /// # Errors
    /// When the input ends first.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, tail) = self.bytes.split_first_chunk::<N>().ok_or(DecodeError::Truncated)?;
        self.bytes = tail;
        Ok(*head)
    }

    /// A length-prefixed byte string (u64 prefix), checked against the input length before any
    /// allocation so a damaged prefix cannot ask for a huge buffer.
    ///
    /// # Errors
    /// When the input ends first.
    pub fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = usize::try_from(self.u64()?).map_err(|_| DecodeError::Truncated)?;
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head.to_vec())
    }

    fn count(&mut self, max: usize, what: &'static str) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count > max {
            return Err(DecodeError::Invalid(what));
        }
        Ok(count)
    }
}

fn kind(tag: u8) -> Result<AccountKind, DecodeError> {
    Ok(match tag {
        1 => AccountKind::CustomerWallet,
        2 => AccountKind::GiftCard,
        3 => AccountKind::MerchantIssuance,
        4 => AccountKind::MerchantSettlement,
        5 => AccountKind::ExpirySink,
        6 => AccountKind::Operator,
        _ => return Err(DecodeError::Invalid("account kind")),
    })
}

fn status(tag: u8) -> Result<AccountStatus, DecodeError> {
    Ok(match tag {
        1 => AccountStatus::Active,
        2 => AccountStatus::Frozen,
        3 => AccountStatus::Closed,
        4 => AccountStatus::Pending,
        5 => AccountStatus::Blocked,
        6 => AccountStatus::Deactivated,
        _ => return Err(DecodeError::Invalid("account status")),
    })
}

/// Zero is "no code" (allowed in requests only).
fn code(tag: u16) -> Result<Option<TransferCode>, DecodeError> {
    use TransferCode as C;
    Ok(Some(match tag {
        0 => return Ok(None),
        1 => C::Earn,
        2 => C::Burn,
        3 => C::Load,
        4 => C::Redeem,
        5 => C::Refund,
        6 => C::Reversal,
        7 => C::Adjustment,
        8 => C::Transfer,
        9 => C::Expiry,
        10 => C::Clear,
        11 => C::HoldTimeout,
        _ => return Err(DecodeError::Invalid("transfer code")),
    }))
}

fn state(tag: u8) -> Result<TransferState, DecodeError> {
    Ok(match tag {
        1 => TransferState::Final,
        2 => TransferState::Pending,
        3 => TransferState::Posted,
        4 => TransferState::Voided,
        5 => TransferState::Expired,
        _ => return Err(DecodeError::Invalid("transfer state")),
    })
}

fn boolean(tag: u8) -> Result<bool, DecodeError> {
    match tag {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid("boolean")),
    }
}

impl Decode for Balances {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            debits_pending: r.u128()?,
            debits_posted: r.u128()?,
            credits_pending: r.u128()?,
            credits_posted: r.u128()?,
        })
    }
}

impl Decode for Asset {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: AssetId(r.u32()?),
            code: r.bytes()?,
            scale: r.u8()?,
            expiry_account: AccountId(r.u128()?),
            timestamp: Timestamp(r.u64()?),
        })
    }
}

impl Decode for Account {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: AccountId(r.u128()?),
            asset: AssetId(r.u32()?),
            kind: kind(r.u8()?)?,
            flags: AccountFlags(r.u16()?),
            status: status(r.u8()?)?,
            overdraft_limit: r.u128()?,
            overdraft_forced: r.u128()?,
            lots_total: r.u128()?,
            merchant: MerchantId(r.u64()?),
            external_ref: r.bytes()?,
            metadata: r.bytes()?,
            code_hash: CodeHash(r.array()?),
            erased: boolean(r.u8()?)?,
            timestamp: Timestamp(r.u64()?),
            balances: Balances::decode(r)?,
        })
    }
}

impl Decode for Transfer {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let id = TransferId(r.u128()?);
        let debit_account = AccountId(r.u128()?);
        let credit_account = AccountId(r.u128()?);
        let amount = r.u128()?;
        let asset = AssetId(r.u32()?);
        let code = code(r.u16()?)?.ok_or(DecodeError::Invalid("transfer code"))?;
        let flags = TransferFlags(r.u16()?);
        let pending_id = TransferId(r.u128()?);
        let reverses = TransferId(r.u128()?);
        let timeout = r.u32()?;
        let expires_at = Timestamp(r.u64()?);
        let (user_data_128, user_data_64, user_data_32) = (r.u128()?, r.u64()?, r.u32()?);
        let timestamp = Timestamp(r.u64()?);
        let state = state(r.u8()?)?;
        let amount_reversed = r.u128()?;
        let parts = usize::from(r.u16()?);
        if parts > ACCOUNT_LOTS_MAX {
            return Err(DecodeError::Invalid("lot parts"));
        }
        let lots_consumed = (0..parts)
            .map(|_| Ok(LotPart { expires_at: Timestamp(r.u64()?), amount: r.u128()? }))
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self {
            id,
            debit_account,
            credit_account,
            amount,
            asset,
            code,
            flags,
            pending_id,
            reverses,
            timeout,
            expires_at,
            user_data_128,
            user_data_64,
            user_data_32,
            timestamp,
            state,
            amount_reversed,
            lots_consumed,
            debit_balances: Balances::decode(r)?,
            credit_balances: Balances::decode(r)?,
        })
    }
}

impl Decode for NewTransfer {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: TransferId(r.u128()?),
            debit_account: AccountId(r.u128()?),
            credit_account: AccountId(r.u128()?),
            amount: r.u128()?,
            asset: AssetId(r.u32()?),
            code: code(r.u16()?)?,
            flags: TransferFlags(r.u16()?),
            pending_id: TransferId(r.u128()?),
            reverses: TransferId(r.u128()?),
            timeout: r.u32()?,
            expires_at: Timestamp(r.u64()?),
            user_data_128: r.u128()?,
            user_data_64: r.u64()?,
            user_data_32: r.u32()?,
        })
    }
}

impl Decode for FailedTransfer {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let transfer = NewTransfer::decode(r)?;
        let result = *TransferResult::ALL
            .get(usize::from(r.u16()?))
            .ok_or(DecodeError::Invalid("transfer result"))?;
        Ok(Self { transfer, result, timestamp: Timestamp(r.u64()?) })
    }
}

impl Decode for Lot {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: AccountId(r.u128()?),
            expires_at: Timestamp(r.u64()?),
            amount: r.u128()?,
        })
    }
}

impl Decode for Meta {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            timestamp_last: Timestamp(r.u64()?),
            event_seq_next: EventSeq(r.u64()?),
            batches_applied: r.u64()?,
            state_hash: r.u128()?,
            chain: r.array()?,
            // Absent in stores written before the outbox could be compacted: nothing was.
            events_first: EventSeq(if r.is_empty() { 0 } else { r.u64()? }),
        })
    }
}

impl Decode for Event {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let seq = EventSeq(r.u64()?);
        let timestamp = Timestamp(r.u64()?);
        let tag = r.u8()?;
        let kind = match tag {
            1 => EventKind::AssetCreated(AssetId(r.u32()?)),
            2 => EventKind::AccountCreated(AccountId(r.u128()?)),
            3..=8 => {
                let id = TransferId(r.u128()?);
                match tag {
                    3 => EventKind::TransferPosted(id),
                    4 => EventKind::HoldCreated(id),
                    5 => EventKind::HoldPosted(id),
                    6 => EventKind::HoldVoided(id),
                    7 => EventKind::HoldExpired(id),
                    _ => EventKind::LotExpired(id),
                }
            }
            9 => EventKind::StatusChanged {
                account: AccountId(r.u128()?),
                from: status(r.u8()?)?,
                to: status(r.u8()?)?,
            },
            10 => EventKind::AccountChanged {
                account: AccountId(r.u128()?),
                flags: AccountFlags(r.u16()?),
                overdraft_limit: r.u128()?,
            },
            11 => EventKind::Erased(AccountId(r.u128()?)),
            _ => return Err(DecodeError::Invalid("event kind")),
        };
        Ok(Self { seq, timestamp, kind })
    }
}

impl Decode for NewAsset {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: AssetId(r.u32()?),
            code: r.bytes()?,
            scale: r.u8()?,
            expiry_account: AccountId(r.u128()?),
        })
    }
}

impl Decode for NewAccount {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            id: AccountId(r.u128()?),
            asset: AssetId(r.u32()?),
            kind: kind(r.u8()?)?,
            flags: AccountFlags(r.u16()?),
            overdraft_limit: r.u128()?,
            merchant: MerchantId(r.u64()?),
            external_ref: r.bytes()?,
            metadata: r.bytes()?,
            code_hash: CodeHash(r.array()?),
        })
    }
}

impl Decode for AccountChange {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        let account = AccountId(r.u128()?);
        Ok(match tag {
            1 => Self::Freeze { account },
            2 => Self::Unfreeze { account },
            3 => Self::Close { account },
            4 => Self::SetOverdraftLimit { account, overdraft_limit: r.u128()? },
            5 => Self::SetFlags { account, flags: AccountFlags(r.u16()?) },
            6 => Self::ActivateGiftCard { account },
            7 => Self::BlockGiftCard { account },
            8 => Self::UnblockGiftCard { account },
            9 => Self::DeactivateGiftCard {
                account,
                transfer_id: TransferId(r.u128()?),
                merchant_account: AccountId(r.u128()?),
            },
            _ => return Err(DecodeError::Invalid("account change")),
        })
    }
}

impl Decode for Cursor {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            sink: SinkId(r.array()?),
            next: EventSeq(r.u64()?),
            term: r.u64()?,
            updated_at: Timestamp(r.u64()?),
        })
    }
}

impl Decode for CursorCommand {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        let sink = SinkId(r.array()?);
        Ok(match tag {
            1 => Self::Advance { sink, next: EventSeq(r.u64()?), term: r.u64()? },
            2 => Self::Forget { sink },
            _ => return Err(DecodeError::Invalid("cursor command")),
        })
    }
}

impl Decode for GiftCardIssue {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            account: NewAccount::decode(r)?,
            load_transfer_id: TransferId(r.u128()?),
            load_from: AccountId(r.u128()?),
            load_amount: r.u128()?,
        })
    }
}

fn list<T: Decode>(r: &mut Reader<'_>) -> Result<Vec<T>, DecodeError> {
    // A batch the API accepted holds at most BATCH_EVENTS_MAX events; apply refuses more.
    // Decoding allows one more so that such a batch still decodes and is refused by apply.
    let count = r.count(BATCH_EVENTS_MAX as usize + 1, "event count")?;
    (0..count).map(|_| T::decode(r)).collect()
}

impl Decode for Batch {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.u8()? != ENCODING_VERSION {
            return Err(DecodeError::Invalid("encoding version"));
        }
        let now = Timestamp(r.u64()?);
        let operation = match r.u8()? {
            1 => Operation::CreateAssets(list(r)?),
            2 => Operation::CreateAccounts(list(r)?),
            3 => Operation::CreateTransfers(list(r)?),
            4 => Operation::ChangeAccounts(list(r)?),
            5 => Operation::IssueGiftCards(list(r)?),
            6 => {
                let count = r.count(BATCH_EVENTS_MAX as usize + 1, "event count")?;
                let ids = (0..count).map(|_| Ok(AccountId(r.u128()?)));
                Operation::Erase(ids.collect::<Result<_, DecodeError>>()?)
            }
            7 => Operation::Tick,
            8 => Operation::Cursors(list(r)?),
            _ => return Err(DecodeError::Invalid("operation")),
        };
        Ok(Self { now, operation })
    }
}
