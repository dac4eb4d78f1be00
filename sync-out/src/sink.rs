//! What a destination of the outbox does.

use std::future::Future;
use std::time::Duration;

use ledger_sm::types::{EventSeq, SinkId};

use crate::payload::Payload;

/// Why a sink could not take events. Every error is retried with backoff, except `Behind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// The sink is unreachable or refused the write; nothing of the batch took effect, or
    /// all of it did but the answer was lost (delivery is repeated: sinks must deduplicate).
    Unavailable(String),
    /// The sink's own position is below the outbox's first event: what it misses was
    /// compacted away, and only a rebuild from the ledger's state can bring it back.
    Behind { position: EventSeq, outbox_first: EventSeq },
    /// A newer leader's exporter wrote to the sink: this one is deposed and stops.
    Fenced(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
            Self::Behind { position, outbox_first } => write!(
                f,
                "the sink holds events below {} but the outbox starts at {}: rebuild it",
                position.0, outbox_first.0
            ),
            Self::Fenced(why) => write!(f, "fenced by a newer leader: {why}"),
        }
    }
}

impl std::error::Error for SinkError {}

/// A destination of the outbox. One exporter drives it, one call at a time.
pub trait Sink: Send + 'static {
    /// The sink's name, the key of its replicated cursor.
    fn id(&self) -> SinkId;

    /// Where the sink says delivery must resume, when it keeps its own position durably with
    /// the data (so that its answer is exact); `None` to resume at the replicated cursor.
    fn position(&mut self) -> impl Future<Output = Result<Option<EventSeq>, SinkError>> + Send;

    /// Makes `events` (consecutive, in sequence order) durable in the sink, or none of them.
    /// `term` is the raft term of the leader exporting them, for sinks that fence deposed
    /// leaders. Delivering an event the sink already holds must change nothing.
    fn deliver(
        &mut self,
        term: u64,
        events: &[Payload],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// For a sink that cannot refuse a deposed leader's writes itself: how long after a
    /// delivery is handed over its fate is decided (written or failed). The exporter then
    /// confirms its leadership with a quorum before each delivery and, at the start of each
    /// term, waits this long before its first, so that a deposed leader's last records land
    /// before the new leader's and each account's records stay in order.
    fn settle(&self) -> Option<Duration> {
        None
    }
}
