//! The in-memory engine, modelling a disk behind a page cache, for tests and the simulation.
//!
//! Writes land in the cache (`current`) and reach the disk (`durable`) when synced. `crash`
//! keeps only the disk. Faults: a sync can fail (the write stays cached, not durable); a crash can
//! tear the last unsynced batch (a prefix of it reaches the disk, its last value damaged); any
//! stored value can be corrupted. Framing catches the damage on read. And a disk that lies:
//! syncs that succeed without making anything durable (a volatile write cache), which no
//! correct ledger survives — the simulation plants it to prove its checkers notice.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use crate::error::StorageError;
use crate::kv::{Kv, Op, Rows, Table, WriteBatch};

type Tables = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub struct MemKv {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    current: Tables,
    durable: Tables,
    /// Batches written but not yet synced, oldest first.
    unsynced: Vec<WriteBatch>,
    /// The next this many syncs fail.
    syncs_failing: u32,
    /// Syncs succeed without reaching the disk.
    syncs_lie: bool,
}

fn apply(tables: &mut Tables, op: &Op) {
    match op {
        Op::Put(table, key, value) => {
            tables.entry(*table).or_default().insert(key.clone(), value.clone());
        }
        Op::Delete(table, key) => {
            tables.entry(*table).or_default().remove(key);
        }
        Op::DeleteRange(table, from, to) => {
            let rows = tables.entry(*table).or_default();
            let doomed: Vec<Vec<u8>> = rows
                .range::<[u8], _>((
                    Bound::Included(from.as_slice()),
                    Bound::Excluded(to.as_slice()),
                ))
                .map(|(key, _)| key.clone())
                .collect();
            doomed.iter().for_each(|key| drop(rows.remove(key)));
        }
    }
}

impl MemKv {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock is a test failure already; keep going to report it.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next `count` syncs fail, as an fsync error would.
    pub fn fail_syncs(&self, count: u32) {
        self.inner().syncs_failing = count;
    }

    /// From now on syncs succeed without making anything durable, as a disk with a volatile
    /// write cache does: a crash loses every write since.
    pub fn lie_about_syncs(&self) {
        self.inner().syncs_lie = true;
    }

    /// What survives a power cut: the synced state only; with `tear`, the oldest unsynced batch
    /// half-written with its last value damaged.
    #[must_use]
    pub fn crash(&self, tear: bool) -> Self {
        let inner = self.inner();
        let mut durable = inner.durable.clone();
        if let (true, Some(batch)) = (tear, inner.unsynced.first()) {
            let half = batch.ops.len().div_ceil(2);
            batch.ops[..half].iter().for_each(|op| apply(&mut durable, op));
            if let Some(Op::Put(table, key, _)) = batch.ops[..half].last() {
                if let Some(value) = durable.get_mut(table).and_then(|rows| rows.get_mut(key)) {
                    value.truncate(value.len() / 2);
                }
            }
        }
        let state = Inner {
            current: durable.clone(),
            durable,
            syncs_lie: inner.syncs_lie,
            ..Inner::default()
        };
        Self { inner: Mutex::new(state) }
    }

    /// Flips one bit of a stored value, in the cache and on disk. Returns whether it existed.
    pub fn corrupt(&self, table: Table, key: &[u8]) -> bool {
        let mut inner = self.inner();
        let Inner { current, durable, .. } = &mut *inner;
        let mut found = false;
        for tables in [current, durable] {
            if let Some(value) = tables.get_mut(&table).and_then(|rows| rows.get_mut(key)) {
                if let Some(byte) = value.last_mut() {
                    *byte ^= 0x10;
                    found = true;
                }
            }
        }
        found
    }
}

impl Kv for MemKv {
    type View = MemKv;

    fn view(&self) -> Result<MemKv, StorageError> {
        let current = self.inner().current.clone();
        Ok(MemKv {
            inner: Mutex::new(Inner { durable: current.clone(), current, ..Inner::default() }),
        })
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner().current.get(&table).and_then(|rows| rows.get(key)).cloned())
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
        descending: bool,
        limit: usize,
    ) -> Result<Rows, StorageError> {
        let inner = self.inner();
        let Some(rows) = inner.current.get(&table) else { return Ok(Vec::new()) };
        if from >= to {
            return Ok(Vec::new());
        }
        let range = rows.range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)));
        let pick = |(key, value): (&Vec<u8>, &Vec<u8>)| (key.clone(), value.clone());
        Ok(if descending {
            range.rev().take(limit).map(pick).collect()
        } else {
            range.take(limit).map(pick).collect()
        })
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut inner = self.inner();
        batch.ops.iter().for_each(|op| apply(&mut inner.current, op));
        inner.unsynced.push(batch);
        if !sync || inner.syncs_lie {
            return Ok(());
        }
        if inner.syncs_failing > 0 {
            inner.syncs_failing -= 1;
            return Err(StorageError::Io("injected fsync failure".into()));
        }
        let unsynced = std::mem::take(&mut inner.unsynced);
        for batch in &unsynced {
            batch.ops.iter().for_each(|op| apply(&mut inner.durable, op));
        }
        Ok(())
    }
}
