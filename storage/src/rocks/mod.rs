//! The RocksDB engine: one database per node, one column family per table. Synced writes set
//! `WriteOptions::sync` (RocksDB's default does not fsync), so a write is on disk when `write`
//! returns.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, DB};

use crate::error::StorageError;
use crate::kv::{Kv, Op, Rows, Table, WriteBatch};

/// Memory the engine may use, stated and bounded.
#[derive(Clone, Copy, Debug)]
pub struct RocksOptions {
    /// Shared block cache for reads.
    pub block_cache_bytes: usize,
    /// Memtable size per column family before a flush.
    pub write_buffer_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self { block_cache_bytes: 256 << 20, write_buffer_bytes: 64 << 20 }
    }
}

#[derive(Debug)]
pub struct RocksKv {
    db: DB,
    path: std::path::PathBuf,
    options: RocksOptions,
}

/// A checkpoint of a `RocksKv`, opened; its directory is removed when it is dropped.
#[derive(Debug)]
pub struct RocksView {
    kv: Option<RocksKv>,
    path: std::path::PathBuf,
}

impl Drop for RocksView {
    fn drop(&mut self) {
        drop(self.kv.take());
        // Best effort: a checkpoint left by a crash is only disk space, never read again.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl RocksView {
    fn kv(&self) -> &RocksKv {
        self.kv.as_ref().expect("open until dropped")
    }
}

impl Kv for RocksView {
    type View = RocksView;

    fn view(&self) -> Result<RocksView, StorageError> {
        self.kv().view()
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.kv().get(table, key)
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
        descending: bool,
        limit: usize,
    ) -> Result<Rows, StorageError> {
        self.kv().range(table, from, to, descending, limit)
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        self.kv().write(batch, sync)
    }
}

fn io(error: &rocksdb::Error) -> StorageError {
    StorageError::Io(error.to_string())
}

impl RocksKv {
    /// Opens (or creates) the database at `path`.
    ///
    /// # Errors
    /// When RocksDB cannot open it.
    pub fn open(path: &Path, options: RocksOptions) -> Result<Self, StorageError> {
        let cache = rocksdb::Cache::new_lru_cache(options.block_cache_bytes);
        let mut table_options = rocksdb::BlockBasedOptions::default();
        table_options.set_block_cache(&cache);
        table_options.set_bloom_filter(10.0, false);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        db_options.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
        db_options.set_write_buffer_size(options.write_buffer_bytes);
        db_options.set_block_based_table_factory(&table_options);
        // A bloom filter over each memtable's whole keys: applying a batch looks up every new
        // transfer id, which is absent, and the filter answers that without a skip-list search.
        db_options.set_memtable_whole_key_filtering(true);
        db_options.set_memtable_prefix_bloom_ratio(0.02);
        // Catch damaged blocks on read (paranoid checks) and keep a bounded info log.
        db_options.set_paranoid_checks(true);
        // After a crash the WAL may end in a torn record: always an unacknowledged write, since
        // acknowledged ones are synced. Tolerate that tail, but refuse to open on corruption
        // anywhere else (the default mode would silently drop everything after it).
        db_options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
        db_options.set_keep_log_file_num(4);
        let families = Table::ALL
            .iter()
            .map(|table| ColumnFamilyDescriptor::new(table.name(), db_options.clone()));
        let db = DB::open_cf_descriptors(&db_options, path, families).map_err(|e| io(&e))?;
        Ok(Self { db, path: path.to_path_buf(), options })
    }

    fn family(&self, table: Table) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(table.name()).expect("every table's column family is opened")
    }

    /// Flushes every memtable to table files (for tests and before a backup).
    ///
    /// # Errors
    /// When RocksDB cannot flush.
    pub fn flush(&self) -> Result<(), StorageError> {
        for table in Table::ALL {
            self.db.flush_cf(self.family(table)).map_err(|e| io(&e))?;
        }
        Ok(())
    }

    /// An online, consistent copy of the database at `path` (hard links where possible).
    ///
    /// # Errors
    /// When RocksDB cannot create it.
    pub fn checkpoint(&self, path: &Path) -> Result<(), StorageError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(|e| io(&e))?;
        checkpoint.create_checkpoint(path).map_err(|e| io(&e))
    }
}

/// The table and key an op writes (range deletes are never sorted).
fn op_key(op: &Op) -> (Table, &[u8]) {
    match op {
        Op::Put(table, key, _) | Op::Delete(table, key) => (*table, key),
        Op::DeleteRange(table, from, _) => (*table, from),
    }
}

impl Kv for RocksKv {
    type View = RocksView;

    /// A checkpoint beside the database (hard-linked table files, so cheap), opened.
    fn view(&self) -> Result<RocksView, StorageError> {
        static VIEWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = VIEWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".view-{}-{number}", std::process::id()));
        let path = self.path.with_file_name(name);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| StorageError::Io(e.to_string()))?;
        }
        self.checkpoint(&path)?;
        let kv = RocksKv::open(&path, self.options)?;
        Ok(RocksView { kv: Some(kv), path })
    }

    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let value = self.db.get_pinned_cf(self.family(table), key).map_err(|e| io(&e))?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn range(
        &self,
        table: Table,
        from: &[u8],
        to: &[u8],
        descending: bool,
        limit: usize,
    ) -> Result<Rows, StorageError> {
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_lower_bound(from.to_vec());
        read_options.set_iterate_upper_bound(to.to_vec());
        let mode = if descending {
            IteratorMode::End
        } else {
            IteratorMode::From(from, Direction::Forward)
        };
        let mut rows = Vec::new();
        for row in self.db.iterator_cf_opt(self.family(table), read_options, mode) {
            if rows.len() >= limit {
                break;
            }
            let (key, value) = row.map_err(|e| io(&e))?;
            rows.push((key.to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    fn sizes(&self) -> Vec<(&'static str, u64)> {
        const PER_TABLE: [(&str, &str); 3] = [
            ("sst_files", "rocksdb.total-sst-files-size"),
            ("live_data", "rocksdb.estimate-live-data-size"),
            ("memtables", "rocksdb.cur-size-all-mem-tables"),
        ];
        // The block cache is shared by every table: asked once.
        let block_cache = self.db.property_int_value("rocksdb.block-cache-usage").ok().flatten();
        PER_TABLE
            .iter()
            .map(|(name, property)| {
                let total = Table::ALL
                    .iter()
                    .filter_map(|table| {
                        self.db.property_int_value_cf(self.family(*table), *property).ok().flatten()
                    })
                    .sum();
                (*name, total)
            })
            .chain(std::iter::once(("block_cache", block_cache.unwrap_or(0))))
            .collect()
    }

    fn write(&self, mut batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        // The memtable is a skip list: keys inserted in order reuse the previous insert's
        // position, where random order searches from the top each time (most of a batch's
        // cost). The sort is stable, so writes to one key keep their order; a batch with a
        // range delete keeps its order as given.
        if !batch.ops.iter().any(|op| matches!(op, Op::DeleteRange(..))) {
            batch.ops.sort_by(|a, b| op_key(a).cmp(&op_key(b)));
        }
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                Op::Put(table, key, value) => rocks_batch.put_cf(self.family(table), key, value),
                Op::Delete(table, key) => rocks_batch.delete_cf(self.family(table), key),
                Op::DeleteRange(table, from, to) => {
                    rocks_batch.delete_range_cf(self.family(table), from, to);
                }
            }
        }
        let mut write_options = rocksdb::WriteOptions::default();
        write_options.set_sync(sync);
        self.db.write_opt(rocks_batch, &write_options).map_err(|e| io(&e))
    }
}
