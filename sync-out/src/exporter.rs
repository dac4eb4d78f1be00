//! The exporter: on the leader, takes the outbox to one sink, in order, and keeps the sink's
//! replicated cursor moving behind it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ledger_sm::command::CursorCommand;
use ledger_sm::query;
use ledger_sm::result::CursorResult;
use ledger_sm::state::StateRead;
use ledger_sm::types::{EventSeq, SinkId};
use storage::{Kv, Store};

use crate::payload::Payload;
use crate::sink::{Sink, SinkError};

/// What the exporter needs of the raft node it runs beside.
pub trait Leadership: Send + Sync + 'static {
    /// `Some(term)` while this node is the leader of `term`.
    fn leading(&self) -> Option<u64>;

    /// Whether this node still leads `term`, confirmed with a quorum (a leader cut off from
    /// its peers answers false, or not before a new leader could have been elected).
    fn confirm(&self, term: u64) -> impl Future<Output = bool> + Send;

    /// Proposes cursor commands and answers their results once applied.
    fn propose(
        &self,
        commands: Vec<CursorCommand>,
    ) -> impl Future<Output = Result<Vec<CursorResult>, String>> + Send;
}

#[derive(Clone, Copy, Debug)]
pub struct ExporterConfig {
    /// Events per delivery, at most.
    pub batch_events: u32,
    /// How often an idle exporter looks for new events (and for leadership).
    pub poll: Duration,
    /// The replicated cursor moves at most this often while events flow (each move is a raft
    /// entry); an idle exporter moves it at once.
    pub advance_every: Duration,
    /// Retries back off exponentially from `backoff_min` to `backoff_max`, with full jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            batch_events: 4096,
            poll: Duration::from_millis(50),
            advance_every: Duration::from_millis(250),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// A sink's progress as this node sees it, for metrics and `sync-out status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStatus {
    pub sink: String,
    /// Whether this node's exporter is running (it leads).
    pub active: bool,
    /// The first event the sink does not hold, as far as this node knows.
    pub delivered: u64,
    /// The replicated cursor.
    pub cursor: u64,
    /// Events committed but not yet delivered.
    pub lag_events: u64,
    /// Age of the oldest event not yet delivered, in milliseconds (0: none waiting).
    pub lag_ms: u64,
    pub delivered_total: u64,
    pub errors_total: u64,
    pub last_error: Option<String>,
}

/// One sink's exporter. `run` it as a task on every node: it works only while the node leads.
#[derive(Debug)]
pub struct Exporter<K: Kv, S, L> {
    store: Arc<Store<K>>,
    sink: S,
    leadership: Arc<L>,
    config: ExporterConfig,
    status: Arc<Mutex<SinkStatus>>,
}

/// Why a term's export ended.
enum Ended {
    /// Leadership moved; wait to lead again.
    Deposed,
    /// The sink cannot continue until an operator acts (rebuild); retried slowly.
    Stuck(SinkError),
}

impl<K: Kv + 'static, S: Sink, L: Leadership> Exporter<K, S, L> {
    pub fn new(store: Arc<Store<K>>, sink: S, leadership: Arc<L>, config: ExporterConfig) -> Self {
        let status = SinkStatus { sink: sink.id().name().to_owned(), ..SinkStatus::default() };
        Self { store, sink, leadership, config, status: Arc::new(Mutex::new(status)) }
    }

    /// The sink's progress, shared with whoever reports it.
    #[must_use]
    pub fn status(&self) -> Arc<Mutex<SinkStatus>> {
        Arc::clone(&self.status)
    }

    /// Exports for as long as the task lives.
    pub async fn run(mut self) {
        loop {
            let Some(term) = self.leadership.leading() else {
                self.update(|s| s.active = false);
                tokio::time::sleep(self.config.poll).await;
                continue;
            };
            self.update(|s| s.active = true);
            match self.lead(term).await {
                Ended::Deposed => {
                    tracing::info!(sink = self.name(), term, "export paused");
                    // A fenced leader has not heard of its successor yet: wait until it has.
                    while self.leadership.leading() == Some(term) {
                        tokio::time::sleep(self.config.poll).await;
                    }
                }
                Ended::Stuck(error) => {
                    tracing::error!(sink = self.name(), %error, "export stopped");
                    self.failed(&error);
                    tokio::time::sleep(self.config.backoff_max).await;
                }
            }
        }
    }

    /// Exports while this node leads `term`.
    async fn lead(&mut self, term: u64) -> Ended {
        let mut next = match self.resume(term).await {
            Ok(next) => next,
            Err(ended) => return ended,
        };
        if let Some(settle) = self.sink.settle() {
            // A deposed leader's records still in flight land before this leader's first.
            tracing::info!(sink = self.name(), term, ?settle, "export settling");
            let until = Instant::now() + settle;
            while Instant::now() < until {
                if self.leadership.leading() != Some(term) {
                    return Ended::Deposed;
                }
                tokio::time::sleep(
                    self.config.poll.min(until.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
        tracing::info!(sink = self.name(), term, next = next.0, "export resumed");
        let mut cursor = self.cursor().unwrap_or(EventSeq(0));
        let mut advanced_at = Instant::now();
        loop {
            if self.leadership.leading() != Some(term) {
                return Ended::Deposed;
            }
            let events = match query::events(&*self.store, next, self.config.batch_events) {
                Ok(events) => events,
                Err(error) => return Ended::Stuck(SinkError::Unavailable(format!("{error:?}"))),
            };
            // The outbox may have been compacted past `next` since this term resumed (a sink
            // without a cursor yet holds nothing back): a gap is reported, never skipped.
            if let Some(first) = events.first().map(|e| e.event.seq).filter(|seq| *seq != next) {
                let behind = SinkError::Behind { position: next, outbox_first: first };
                return Ended::Stuck(behind);
            }
            let idle = events.is_empty();
            if !idle {
                let payloads: Vec<Payload> = events.iter().map(Payload::new).collect();
                if let Err(ended) = self.deliver(term, &payloads).await {
                    return ended;
                }
                next = EventSeq(payloads.last().expect("not idle").seq() + 1);
                let count = payloads.len() as u64;
                self.update(|s| {
                    s.delivered = next.0;
                    s.delivered_total += count;
                });
            }
            if next > cursor && (idle || advanced_at.elapsed() >= self.config.advance_every) {
                match self.advance(term, next).await {
                    Ok(true) => cursor = next,
                    Ok(false) => {}
                    Err(ended) => return ended,
                }
                advanced_at = Instant::now();
            }
            self.measure(next);
            if idle {
                tokio::time::sleep(self.config.poll).await;
            }
        }
    }

    /// Where this term's export starts: the sink's own position when it keeps one, else the
    /// replicated cursor, else the outbox's first event.
    async fn resume(&mut self, term: u64) -> Result<EventSeq, Ended> {
        let mut attempt = 0;
        let position = loop {
            if self.leadership.leading() != Some(term) {
                return Err(Ended::Deposed);
            }
            match self.sink.position().await {
                Ok(position) => break position,
                Err(error) => {
                    self.failed(&error);
                    self.backoff(&mut attempt).await;
                }
            }
        };
        let first = self.store.meta().map_err(|e| stuck(&e))?.events_first;
        let next = position.or_else(|| self.cursor()).unwrap_or(first);
        if next < first {
            return Err(Ended::Stuck(SinkError::Behind { position: next, outbox_first: first }));
        }
        Ok(next)
    }

    /// Delivers with retries until it lands, the term ends, or the sink is fenced.
    async fn deliver(&mut self, term: u64, payloads: &[Payload]) -> Result<(), Ended> {
        let mut attempt = 0;
        loop {
            // Unconfirmed (a quorum slow to answer, or this node cut off): nothing is sent;
            // retried with backoff until confirmed or the term ends.
            let unconfirmed = self.sink.settle().is_some() && !self.leadership.confirm(term).await;
            let delivered = if unconfirmed {
                let why = "leadership not confirmed by a quorum; nothing sent".to_owned();
                Err(SinkError::Unavailable(why))
            } else {
                self.sink.deliver(term, payloads).await
            };
            match delivered {
                Ok(()) => return Ok(()),
                Err(error @ SinkError::Fenced(_)) => {
                    tracing::warn!(sink = self.name(), term, %error, "delivery refused");
                    // Shown in status: a node fenced while raft still says it leads waits.
                    self.failed(&error);
                    return Err(Ended::Deposed);
                }
                Err(error @ SinkError::Behind { .. }) => return Err(Ended::Stuck(error)),
                Err(error) => {
                    tracing::warn!(sink = self.name(), %error, attempt, "delivery failed");
                    self.failed(&error);
                }
            }
            if self.leadership.leading() != Some(term) {
                return Err(Ended::Deposed);
            }
            self.backoff(&mut attempt).await;
        }
    }

    /// Moves the replicated cursor to `next`; `Ok(false)` when it could not (retried later).
    async fn advance(&mut self, term: u64, next: EventSeq) -> Result<bool, Ended> {
        let command = CursorCommand::Advance { sink: self.sink.id(), next, term };
        match self.leadership.propose(vec![command]).await.as_deref() {
            Ok([CursorResult::Ok]) => {
                self.update(|s| s.cursor = next.0);
                Ok(true)
            }
            Ok([CursorResult::TermStale]) => Err(Ended::Deposed),
            // The sink resumed below the cursor (it lost data and took it again): the cursor
            // moves once the sink passes it.
            Ok([CursorResult::CursorBehind]) => Ok(false),
            // Another sink let the outbox be compacted past this one before it had a cursor.
            Ok([CursorResult::CursorBelowOutbox]) => {
                let first = self.store.meta().map_err(|e| stuck(&e))?.events_first;
                Err(Ended::Stuck(SinkError::Behind { position: next, outbox_first: first }))
            }
            Ok(other) => {
                let why = format!("cursor {} refused: {other:?}", next.0);
                Err(Ended::Stuck(SinkError::Unavailable(why)))
            }
            Err(error) => {
                tracing::debug!(sink = self.name(), %error, "cursor not moved; retrying later");
                Ok(false)
            }
        }
    }

    fn cursor(&self) -> Option<EventSeq> {
        let cursors = self.store.cursors().ok()?;
        cursors.iter().find(|c| c.sink == self.sink.id()).map(|c| c.next)
    }

    /// Lag behind the outbox's end, in events and in age of the oldest event waiting.
    fn measure(&self, next: EventSeq) {
        let Ok(meta) = self.store.meta() else { return };
        let lag_events = meta.event_seq_next.0.saturating_sub(next.0);
        let oldest = match self.store.events(next, 1) {
            Ok(events) => events.first().map(|e| e.timestamp),
            Err(_) => None,
        };
        let lag_ms = oldest.map_or(0, |at| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            now.saturating_sub(at.0) / 1_000_000
        });
        self.update(|s| {
            s.lag_events = lag_events;
            s.lag_ms = lag_ms;
        });
    }

    async fn backoff(&self, attempt: &mut u32) {
        let ceiling = self
            .config
            .backoff_min
            .saturating_mul(1u32 << (*attempt).min(16))
            .min(self.config.backoff_max);
        *attempt = attempt.saturating_add(1);
        let jitter = getrandom::u64().unwrap_or(0);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX).max(1);
        tokio::time::sleep(Duration::from_nanos(jitter % nanos)).await;
    }

    fn failed(&self, error: &SinkError) {
        self.update(|s| {
            s.errors_total += 1;
            s.last_error = Some(error.to_string());
        });
    }

    fn update(&self, change: impl FnOnce(&mut SinkStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn name(&self) -> String {
        self.sink.id().name().to_owned()
    }
}

fn stuck(error: &storage::StorageError) -> Ended {
    Ended::Stuck(SinkError::Unavailable(error.to_string()))
}

/// The sink id a name stands for, or why it cannot be one.
///
/// # Errors
/// The name breaks the naming rules.
pub fn sink_id(name: &str) -> Result<SinkId, String> {
    SinkId::new(name).ok_or_else(|| {
        format!("sink name {name:?}: 1 to 16 of a-z, 0-9 and -, starting with a letter")
    })
}
