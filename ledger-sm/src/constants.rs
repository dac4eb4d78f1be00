//! Every limit of the state machine, with the reason for its size. Limits relate to each other
//! through compile-time checks, so changing one without the others fails the build.

/// Events (accounts, transfers, changes) in one batch. Sized so that one batch of transfers, in
/// its encoded form, fits one raft entry and one gRPC message (see `MESSAGE_BODY_BYTES_MAX`).
pub const BATCH_EVENTS_MAX: u32 = 8_190;

/// Bytes of one encoded new transfer inside a command (fixed layout, see `codec`).
pub const NEW_TRANSFER_SIZE_BYTES: u64 = 128;

/// The largest message body the transport will carry; a batch must fit with room for framing.
pub const MESSAGE_BODY_BYTES_MAX: u64 = 4 * 1024 * 1024;

const _: () = assert!(BATCH_EVENTS_MAX as u64 * NEW_TRANSFER_SIZE_BYTES <= MESSAGE_BODY_BYTES_MAX);

/// Bytes of an account's pseudonymous external reference (e.g. a hashed customer id). Bounded so
/// that account records stay small; erasure clears it.
pub const EXTERNAL_REF_BYTES_MAX: usize = 64;

/// Bytes of an account's free-form metadata. Small on purpose: the ledger is not a document store.
pub const ACCOUNT_METADATA_BYTES_MAX: usize = 128;

/// Bytes of an asset code such as `PTS-M42` or `EUR`.
pub const ASSET_CODE_BYTES_MAX: usize = 16;

/// Decimal places an asset may declare: 10^18 still fits a u64 with room to spare.
pub const ASSET_SCALE_MAX: u8 = 18;

/// Open lots (distinct expiry dates) on one account. Lots with the same expiry merge, so this
/// bounds the prefetch of an account's lots and the consumption record of one transfer.
pub const ACCOUNT_LOTS_MAX: usize = 512;

/// Lots expired and holds voided by one `Tick`; the rest wait for the next tick, so a tick after a
/// long outage stays bounded in time and size.
pub const TICK_EXPIRIES_MAX: u32 = BATCH_EVENTS_MAX;

/// Rows one query returns; callers page with the last timestamp they saw.
pub const QUERY_LIMIT_MAX: u32 = 8_190;

/// The latest time a batch may carry: a leader clock beyond it (year 2262) is taken as this, so
/// a broken clock can never exhaust timestamps and stop every replica.
pub const TIMESTAMP_NOW_MAX: u64 = (1 << 63) - 1;

/// Nanoseconds in a second; hold timeouts are given in seconds.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

// A hold's deadline (timestamp + timeout) cannot overflow: timestamps stay near the clamped
// clock, and the longest timeout is u32::MAX seconds.
const _: () = assert!(
    TIMESTAMP_NOW_MAX as u128 + u32::MAX as u128 * NANOS_PER_SECOND as u128 + (1 << 62)
        <= u64::MAX as u128
);

/// Ids at or above this are minted by the state machine itself (expiry transfers, hold timeouts);
/// callers may not use them, so system ids never collide with caller ids.
pub const SYSTEM_ID_MIN: u128 = 1 << 127;

const _: () = assert!(ACCOUNT_LOTS_MAX <= BATCH_EVENTS_MAX as usize);
const _: () = assert!(QUERY_LIMIT_MAX <= BATCH_EVENTS_MAX);
const _: () = assert!(EXTERNAL_REF_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(ACCOUNT_METADATA_BYTES_MAX <= u8::MAX as usize);
