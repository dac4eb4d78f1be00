//! openraft's state machine: applies ledger batches through `ledger-sm` and persists each
//! entry's effects with its applied log id (and membership) in one atomic write; builds and
//! installs snapshots through `storage`.

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use ledger_sm::state::prefetch;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use storage::{Kv, Store};

use crate::log_store::io_error;
use crate::{codec, LedgerRequest, LedgerResponse, LogId, StoredMembership, TypeConfig};

type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// A snapshot as `storage` streams it: verified chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotData(pub Vec<Vec<u8>>);

#[derive(Debug)]
pub struct StateMachine<K: Kv> {
    store: Arc<Store<K>>,
    current: CurrentSnapshot,
}

/// The last snapshot built or installed, served to followers that need one; shared with the
/// snapshot builder, which runs apart from the state machine.
type CurrentSnapshot = Arc<std::sync::Mutex<Option<Snapshot>>>;

fn set_current(current: &CurrentSnapshot, snapshot: Snapshot) {
    *current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot);
}

impl<K: Kv> StateMachine<K> {
    #[must_use]
    pub fn new(store: Arc<Store<K>>) -> Self {
        Self { store, current: CurrentSnapshot::default() }
    }

    fn applied(&self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        match self.store.applied().map_err(io_error)? {
            Some(bytes) => codec::applied_decode(&bytes),
            None => Ok((None, StoredMembership::default())),
        }
    }
}

impl<K: Kv + 'static> RaftStateMachine<TypeConfig> for StateMachine<K> {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder<K>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.applied()
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let (_, mut membership) = self.applied()?;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            let response = match entry.payload {
                EntryPayload::Blank => {
                    let marker = codec::applied_bytes(Some(&log_id), &membership);
                    self.store.persist_applied(&marker).map_err(io_error)?;
                    LedgerResponse(ledger_sm::result::Results::Tick(Default::default()))
                }
                EntryPayload::Normal(LedgerRequest(batch)) => {
                    let prefetched = prefetch(self.store.as_ref(), &batch).map_err(io_error)?;
                    let applied = ledger_sm::apply(prefetched, &batch);
                    let marker = codec::applied_bytes(Some(&log_id), &membership);
                    self.store.persist(&applied.effects, &marker).map_err(io_error)?;
                    LedgerResponse(applied.results)
                }
                EntryPayload::Membership(new) => {
                    membership = StoredMembership::new(Some(log_id), new);
                    let marker = codec::applied_bytes(Some(&log_id), &membership);
                    self.store.persist_applied(&marker).map_err(io_error)?;
                    LedgerResponse(ledger_sm::result::Results::Tick(Default::default()))
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { store: Arc::clone(&self.store), current: Arc::clone(&self.current) }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        self.store.install_snapshot(&snapshot.0).map_err(io_error)?;
        let (applied, _) = self.applied()?;
        if applied != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot's state does not match its metadata",
            ));
        }
        set_current(&self.current, Snapshot { meta: meta.clone(), snapshot });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

/// Builds a snapshot from a point-in-time view of the store.
#[derive(Debug)]
pub struct SnapshotBuilder<K: Kv> {
    store: Arc<Store<K>>,
    current: CurrentSnapshot,
}

impl<K: Kv + 'static> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<K> {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let reader = self.store.snapshot().map_err(io_error)?;
        let applied = reader.applied().map_err(io_error)?;
        let (last_log_id, last_membership) = match applied {
            Some(bytes) => codec::applied_decode(&bytes)?,
            None => (None, StoredMembership::default()),
        };
        let chunks = reader.collect::<Result<Vec<_>, _>>().map_err(io_error)?;
        let meta = SnapshotMeta { last_log_id, last_membership };
        let snapshot = Snapshot { meta, snapshot: SnapshotData(chunks) };
        set_current(&self.current, snapshot.clone());
        Ok(snapshot)
    }
}
