//! openraft's log storage over `storage::Store`: entries, vote, committed and purged ids, each
//! encoded by `codec` and synced before openraft is told the write is done.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use storage::{Kv, LogEntry, RaftMeta, Store};

use crate::codec;
use crate::{Entry, LogId, TypeConfig, Vote};

/// Shares the node's store with the state machine; cloning is cheap.
#[derive(Debug)]
pub struct LogStore<K: Kv> {
    store: Arc<Store<K>>,
}

impl<K: Kv> Clone for LogStore<K> {
    fn clone(&self) -> Self {
        Self { store: Arc::clone(&self.store) }
    }
}

impl<K: Kv> LogStore<K> {
    #[must_use]
    pub fn new(store: Arc<Store<K>>) -> Self {
        Self { store }
    }
}

pub(crate) fn io_error(error: storage::StorageError) -> io::Error {
    let kind = match error {
        storage::StorageError::Corrupted { .. } | storage::StorageError::LogGap { .. } => {
            io::ErrorKind::InvalidData
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error)
}

/// `[from, to)` for a range of log indexes.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(from) => *from,
        Bound::Excluded(from) => from.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(to) => to.saturating_add(1),
        Bound::Excluded(to) => *to,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl<K: Kv + 'static> RaftLogReader<TypeConfig> for LogStore<K> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (from, to) = bounds(&range);
        let entries = self.store.log_entries(from, to).map_err(io_error)?;
        entries
            .iter()
            .map(|entry| {
                let decoded = codec::entry_decode(&entry.payload)?;
                // The key and the entry's own index must agree: a misplaced entry is corruption.
                if decoded.log_id.index != entry.index {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "entry index mismatch"));
                }
                Ok(decoded)
            })
            .collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let vote = self.store.raft_meta(RaftMeta::Vote).map_err(io_error)?;
        vote.map(|bytes| codec::vote_decode(&bytes)).transpose()
    }
}

impl<K: Kv + 'static> RaftLogStorage<TypeConfig> for LogStore<K> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let purged = self.store.raft_meta(RaftMeta::Purged).map_err(io_error)?;
        let last_purged_log_id: Option<LogId> =
            purged.map(|bytes| codec::log_id_decode(&bytes)).transpose()?;
        let last = self.store.log_bounds().map_err(io_error)?;
        let last_log_id = match last {
            Some((_, last)) => Some(codec::entry_decode(&last.payload)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.store.raft_meta_save(RaftMeta::Vote, &codec::vote_bytes(vote)).map_err(io_error)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let bytes = committed.map(|log_id| codec::log_id_bytes(&log_id)).unwrap_or_default();
        self.store.raft_meta_save(RaftMeta::Committed, &bytes).map_err(io_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        match self.store.raft_meta(RaftMeta::Committed).map_err(io_error)? {
            Some(bytes) if !bytes.is_empty() => Ok(Some(codec::log_id_decode(&bytes)?)),
            _ => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<LogEntry> = entries
            .into_iter()
            .map(|entry| LogEntry {
                index: entry.log_id.index,
                payload: codec::entry_bytes(&entry),
            })
            .collect();
        // `log_append` returns only once the entries are synced: only then is raft told.
        let result = self.store.log_append(&entries).map_err(io_error);
        match &result {
            Ok(()) => callback.io_completed(Ok(())),
            Err(error) => {
                callback.io_completed(Err(io::Error::new(error.kind(), error.to_string())))
            }
        }
        result
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |log_id| log_id.index + 1);
        self.store.log_truncate(from).map_err(io_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.store.log_purge(log_id.index, &codec::log_id_bytes(&log_id)).map_err(io_error)
    }
}
