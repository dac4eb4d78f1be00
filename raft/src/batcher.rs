//! The leader's write batcher: group commit. Concurrent client requests wait in a bounded queue
//! (a full queue is backpressure, answered at once, never an unbounded wait); the batcher takes
//! as many as are waiting when an entry can go out and proposes them as one raft entry, so one
//! fsync on a quorum serves them all. A few entries may be in flight at once (openraft
//! pipelines them); while they are, the queue fills and the next entry is larger.
//!
//! Requests merge only when merging cannot change what any of them means: the same operation
//! kind (accounts or transfers), each request's linked chain closed within itself, and at most
//! `BATCH_EVENTS_MAX` events in all. Applying the merged batch is then the same as applying the
//! requests one after another: `ledger-sm` applies events in order, each seeing the ones before.
//! Everything else is proposed alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ledger_sm::command::{Batch, Operation};
use ledger_sm::constants::BATCH_EVENTS_MAX;
use ledger_sm::result::Results;
use ledger_sm::types::{AccountFlags, Timestamp, TransferFlags};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{LedgerRequest, LedgerResponse, RaftHandle, TypeConfig};

/// Why a write was not answered. `Overloaded`, and `NotLeader` from `Node::write`, changed
/// nothing; otherwise it may or may not have applied: a retry with the same ids is safe either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// This node does not lead; the leader, if known: its id and address.
    NotLeader(Option<(u64, String)>),
    /// The write queue is full: back off and retry.
    Overloaded,
    /// The node is shutting down or raft failed.
    Unavailable(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotLeader(Some((id, address))) => {
                write!(f, "not the leader; node {id} at {address} leads")
            }
            Self::NotLeader(None) => write!(f, "not the leader, and no leader is known yet"),
            Self::Overloaded => write!(f, "write queue full; retry with the same ids"),
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl std::error::Error for WriteError {}

pub(crate) type Reply = oneshot::Sender<Result<Results, WriteError>>;

/// A client request waiting in the queue.
#[derive(Debug)]
pub(crate) struct Pending {
    pub operation: Operation,
    pub reply: Reply,
}

/// How a request may merge with its neighbours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Accounts,
    Transfers,
    Alone,
}

fn kind(operation: &Operation) -> Kind {
    match operation {
        Operation::CreateAccounts(events)
            if events.last().is_some_and(|a| !a.flags.has(AccountFlags::LINKED)) =>
        {
            Kind::Accounts
        }
        Operation::CreateTransfers(events)
            if events.last().is_some_and(|t| t.flags.0 & TransferFlags::LINKED == 0) =>
        {
            Kind::Transfers
        }
        _ => Kind::Alone,
    }
}

/// Bytes a merged entry may carry (about its encoded size): a request larger than this goes
/// alone, so an entry is at most one API request or this much.
const MERGE_BYTES_MAX: usize = 8 << 20;

/// About how many bytes `operation` takes in the log.
fn bytes(operation: &Operation) -> usize {
    const RECORD: usize = 160; // Fixed fields of a new account or transfer, with framing.
    match operation {
        Operation::CreateAccounts(events) => {
            events.iter().map(|a| RECORD + a.external_ref.len() + a.metadata.len()).sum()
        }
        other => other.len() * RECORD,
    }
}

fn merge(into: &mut Operation, from: Operation) {
    match (into, from) {
        (Operation::CreateAccounts(into), Operation::CreateAccounts(from)) => into.extend(from),
        (Operation::CreateTransfers(into), Operation::CreateTransfers(from)) => into.extend(from),
        _ => unreachable!("only requests of one mergeable kind merge"),
    }
}

/// Splits the results of a merged entry back into each request's share, in order.
fn split(results: Results, sizes: &[usize]) -> Vec<Results> {
    fn chunks<T>(mut all: Vec<T>, sizes: &[usize], wrap: fn(Vec<T>) -> Results) -> Vec<Results> {
        assert_eq!(all.len(), sizes.iter().sum::<usize>(), "one result per event");
        let mut out = Vec::with_capacity(sizes.len());
        for size in sizes.iter().rev() {
            out.push(wrap(all.split_off(all.len() - size)));
        }
        out.reverse();
        out
    }
    match results {
        Results::CreateAccounts(all) => chunks(all, sizes, Results::CreateAccounts),
        Results::CreateTransfers(all) => chunks(all, sizes, Results::CreateTransfers),
        other => {
            assert_eq!(sizes.len(), 1, "only account and transfer requests merge");
            vec![other]
        }
    }
}

/// The clock a leader stamps its entries with, in nanoseconds since the epoch: the system's,
/// or the simulation's. `ledger-sm` keeps timestamps strictly increasing whatever it does.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    #[must_use]
    pub fn wall() -> Self {
        Self(Arc::new(|| {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            Timestamp(u64::try_from(nanos).unwrap_or(u64::MAX))
        }))
    }

    #[must_use]
    pub fn new(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    #[must_use]
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now().0)
    }
}

/// Upper bounds of the entry-size buckets of `WriteStats`, in events.
pub const ENTRY_EVENTS_BUCKETS: [u64; 8] = [1, 8, 64, 256, 1024, 4096, 8190, u64::MAX];

/// What the batcher has proposed since the node started, for metrics.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Raft entries proposed.
    pub entries: AtomicU64,
    /// Events in them.
    pub events: AtomicU64,
    /// Entries by events in them: bucket `i` counts entries of at most `ENTRY_EVENTS_BUCKETS[i]`.
    pub entry_events: [AtomicU64; ENTRY_EVENTS_BUCKETS.len()],
}

impl WriteStats {
    fn record(&self, events: usize) {
        let events = events as u64;
        self.entries.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        let bucket = ENTRY_EVENTS_BUCKETS.iter().position(|max| events <= *max).unwrap_or(0);
        self.entry_events[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the batcher until every sender is gone.
pub(crate) async fn run(
    raft: RaftHandle<impl storage::Kv + 'static>,
    mut queue: mpsc::Receiver<Pending>,
    inflight: usize,
    stats: Arc<WriteStats>,
    clock: Clock,
) {
    let inflight = Arc::new(Semaphore::new(inflight.max(1)));
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(pending) => pending,
            None => match queue.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let Ok(permit) = Arc::clone(&inflight).acquire_owned().await else { return };
        // Everything queued while we waited for a slot joins this entry, if it may.
        let (operation, replies) = gather(first, &mut queue, &mut carry);
        stats.record(operation.len());
        let raft = raft.clone();
        let now = clock.now();
        tokio::spawn(async move {
            let batch = Batch { now, operation };
            let outcome = raft.client_write(LedgerRequest(batch)).await;
            drop(permit);
            answer(outcome, replies);
        });
    }
}

/// The entry `first` leads: it and every queued request that may merge with it. The first
/// request that may not is left in `carry` for the next entry.
fn gather(
    first: Pending,
    queue: &mut mpsc::Receiver<Pending>,
    carry: &mut Option<Pending>,
) -> (Operation, Vec<(Reply, usize)>) {
    let group_kind = kind(&first.operation);
    let mut events = first.operation.len();
    let mut size_bytes = bytes(&first.operation);
    let mut operation = first.operation;
    let mut replies = vec![(first.reply, events)];
    if group_kind == Kind::Alone {
        return (operation, replies);
    }
    while let Ok(next) = queue.try_recv() {
        if next.reply.is_closed() {
            continue; // Its caller gave up; it will retry with the same ids if it cares.
        }
        let size = next.operation.len();
        let next_bytes = bytes(&next.operation);
        if kind(&next.operation) != group_kind
            || events + size > BATCH_EVENTS_MAX as usize
            || size_bytes + next_bytes > MERGE_BYTES_MAX
        {
            *carry = Some(next);
            break;
        }
        events += size;
        size_bytes += next_bytes;
        merge(&mut operation, next.operation);
        replies.push((next.reply, size));
    }
    (operation, replies)
}

type WriteOutcome = Result<
    openraft::raft::ClientWriteResponse<TypeConfig>,
    RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
>;

fn answer(outcome: WriteOutcome, replies: Vec<(Reply, usize)>) {
    match outcome {
        Ok(response) => {
            let LedgerResponse(results) = response.data;
            let sizes: Vec<usize> = replies.iter().map(|(_, size)| *size).collect();
            for ((reply, _), results) in replies.into_iter().zip(split(results, &sizes)) {
                let _ = reply.send(Ok(results)); // A caller that gave up is not an error.
            }
        }
        Err(error) => {
            let error = write_error(&error);
            for (reply, _) in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

pub(crate) fn write_error(
    error: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
) -> WriteError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => WriteError::NotLeader(
            forward.leader_id.zip(forward.leader_node.as_ref().map(|node| node.addr.clone())),
        ),
        other => WriteError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_sm::command::NewTransfer;
    use ledger_sm::result::{TransferOutcome, TransferResult};
    use ledger_sm::types::TransferId;

    fn transfers(ids: &[u128], linked_last: bool) -> Operation {
        let mut events: Vec<NewTransfer> = ids
            .iter()
            .map(|id| NewTransfer { id: TransferId(*id), ..NewTransfer::default() })
            .collect();
        if linked_last {
            events.last_mut().unwrap().flags = TransferFlags(TransferFlags::LINKED);
        }
        Operation::CreateTransfers(events)
    }

    #[test]
    fn only_closed_chains_of_one_kind_merge() {
        assert_eq!(kind(&transfers(&[1, 2], false)), Kind::Transfers);
        assert_eq!(kind(&transfers(&[1, 2], true)), Kind::Alone);
        assert_eq!(kind(&Operation::CreateTransfers(Vec::new())), Kind::Alone);
        assert_eq!(kind(&Operation::Tick), Kind::Alone);
        let mut merged = transfers(&[1], false);
        merge(&mut merged, transfers(&[2, 3], false));
        assert_eq!(merged, transfers(&[1, 2, 3], false));
    }

    fn pending(operation: Operation) -> (Pending, oneshot::Receiver<Result<Results, WriteError>>) {
        let (reply, answer) = oneshot::channel();
        (Pending { operation, reply }, answer)
    }

    #[test]
    fn merges_stop_at_the_byte_bound_and_at_another_kind() {
        let big = |id: u128| {
            let account = ledger_sm::command::NewAccount {
                id: ledger_sm::types::AccountId(id),
                asset: ledger_sm::types::AssetId(1),
                kind: ledger_sm::types::AccountKind::CustomerWallet,
                flags: AccountFlags(0),
                overdraft_limit: 0,
                merchant: ledger_sm::types::MerchantId(0),
                external_ref: Vec::new(),
                metadata: vec![0; 3 << 20],
                code_hash: ledger_sm::types::CodeHash::ZERO,
            };
            Operation::CreateAccounts(vec![account])
        };
        let (queue_in, mut queue) = mpsc::channel(8);
        let mut answers = Vec::new();
        for operation in [big(2), big(3), big(4), transfers(&[9], false)] {
            let (p, answer) = pending(operation);
            answers.push(answer);
            queue_in.try_send(p).unwrap();
        }
        let (first, answer) = pending(big(1));
        let mut carry = None;
        let (operation, replies) = gather(first, &mut queue, &mut carry);
        assert_eq!((operation.len(), replies.len()), (2, 2), "3 MiB + 3 MiB fit, a third does not");
        assert_eq!(carry.take().map(|p| p.operation), Some(big(3)));
        let (operation, _) = gather(queue.try_recv().unwrap(), &mut queue, &mut carry);
        assert_eq!(operation, big(4), "transfers do not join accounts");
        assert_eq!(carry.map(|p| p.operation), Some(transfers(&[9], false)));
        drop((answer, answers));
    }

    #[test]
    fn results_split_back_in_order() {
        let outcome = |amount| TransferOutcome {
            result: TransferResult::Ok,
            timestamp: Timestamp(amount),
            amount: u128::from(amount),
            debit: None,
            credit: None,
        };
        let all = Results::CreateTransfers((1..=6).map(outcome).collect());
        let parts = split(all, &[1, 3, 2]);
        let amounts: Vec<Vec<u128>> = parts
            .iter()
            .map(|r| match r {
                Results::CreateTransfers(o) => o.iter().map(|o| o.amount).collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(amounts, vec![vec![1], vec![2, 3, 4], vec![5, 6]]);
    }
}
