//! Sync-out on a node: one exporter per configured sink, running beside raft on every node and
//! working while the node leads; their progress for `/metrics` and `ledgerctl sync-out`; the
//! outbox's high-water alarm. With no sink configured nothing runs and the outbox is never
//! compacted (ADR 0016, ADR 0017).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ledger_sm::command::{CursorCommand, Operation};
use ledger_sm::result::{CursorResult, Results};
use ledger_sm::state::StateRead;
use raft::{Consistency, Node};
use storage::{Kv, Store};
use sync_out::file::FileSink;
use sync_out::kafka::{KafkaConfig, KafkaSink};
use sync_out::postgres::{PostgresConfig, PostgresSink};
use sync_out::{sink_id, Exporter, ExporterConfig, Leadership, Sink, SinkStatus};

/// The sink names: the keys of their replicated cursors.
pub const FILE_SINK: &str = "file";
pub const POSTGRES_SINK: &str = "postgres";
pub const KAFKA_SINK: &str = "kafka";

/// What a node exports, and where.
#[derive(Clone, Debug)]
pub struct SyncOutConfig {
    /// A JSON-lines file of every event.
    pub file: Option<PathBuf>,
    /// The wallet read model.
    pub postgres: Option<PostgresConfig>,
    /// The event streams.
    pub kafka: Option<KafkaConfig>,
    /// Events the outbox may hold before the node alarms (logs an error every minute and
    /// sets `ledger_outbox_over_high_water`).
    pub outbox_high_water: u64,
    pub exporter: ExporterConfig,
}

impl Default for SyncOutConfig {
    fn default() -> Self {
        Self {
            file: None,
            postgres: None,
            kafka: None,
            outbox_high_water: 10_000_000,
            exporter: ExporterConfig::default(),
        }
    }
}

/// The node's exporters, as their status reports them. The default runs none.
#[derive(Debug, Default)]
pub struct SyncOut {
    sinks: Vec<Arc<Mutex<SinkStatus>>>,
    postgres: Option<PostgresConfig>,
    high_water: u64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for SyncOut {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

impl SyncOut {
    /// Starts an exporter per configured sink, and the outbox alarm.
    ///
    /// # Errors
    /// A sink's configuration cannot be used.
    pub fn start<K: Kv + 'static>(node: &Node<K>, config: SyncOutConfig) -> Result<Self, String> {
        let leadership = Arc::new(RaftLeadership { node: node.clone() });
        let store = Arc::clone(node.store());
        let mut exporters = Vec::new();
        if let Some(path) = &config.file {
            let sink = FileSink::new(sink_id(FILE_SINK)?, path.clone());
            exporters.push(export(&store, &leadership, config.exporter, sink));
        }
        if let Some(postgres) = &config.postgres {
            let sink = PostgresSink::new(sink_id(POSTGRES_SINK)?, postgres.clone())?;
            exporters.push(export(&store, &leadership, config.exporter, sink));
        }
        if let Some(kafka) = &config.kafka {
            let sink = KafkaSink::new(sink_id(KAFKA_SINK)?, kafka.clone())?;
            exporters.push(export(&store, &leadership, config.exporter, sink));
        }
        let (sinks, mut tasks): (Vec<_>, Vec<_>) = exporters.into_iter().unzip();
        // With no sink the outbox is never compacted (nothing reads it): no alarm then.
        if !sinks.is_empty() {
            tasks.push(tokio::spawn(alarm(node.clone(), config.outbox_high_water)));
        }
        Ok(Self { sinks, postgres: config.postgres, high_water: config.outbox_high_water, tasks })
    }

    /// Every sink's status, as this node sees it.
    #[must_use]
    pub fn statuses(&self) -> Vec<SinkStatus> {
        let read =
            |s: &Arc<Mutex<SinkStatus>>| s.lock().unwrap_or_else(PoisonError::into_inner).clone();
        self.sinks.iter().map(read).collect()
    }

    #[must_use]
    pub fn postgres(&self) -> Option<&PostgresConfig> {
        self.postgres.as_ref()
    }

    /// Whether this node exports anything (only then does the outbox's size matter).
    #[must_use]
    pub fn exporting(&self) -> bool {
        !self.sinks.is_empty()
    }

    #[must_use]
    pub fn high_water(&self) -> u64 {
        self.high_water
    }
}

/// Starts `sink`'s exporter: its status and its task.
fn export<K: Kv + 'static, S: Sink + Sync>(
    store: &Arc<Store<K>>,
    leadership: &Arc<RaftLeadership<K>>,
    config: ExporterConfig,
    sink: S,
) -> (Arc<Mutex<SinkStatus>>, tokio::task::JoinHandle<()>) {
    let exporter = Exporter::new(Arc::clone(store), sink, Arc::clone(leadership), config);
    (exporter.status(), tokio::spawn(exporter.run()))
}

/// Logs an error every minute while the outbox holds more than `high_water` events: a sink
/// that stopped acknowledging keeps every event on every node's disk until it resumes.
async fn alarm<K: Kv + 'static>(node: Node<K>, high_water: u64) {
    loop {
        if let Ok(meta) = node.store().meta() {
            let held = meta.event_seq_next.0.saturating_sub(meta.events_first.0);
            if held > high_water {
                tracing::error!(
                    held,
                    high_water,
                    "the outbox is over its high-water mark: a sink is not acknowledging; \
                     see `ledgerctl sync-out status` (runbook: sync-out lag)"
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// Leadership as the raft node knows it; cursors go through the raft log.
#[derive(Debug)]
struct RaftLeadership<K: Kv + 'static> {
    node: Node<K>,
}

impl<K: Kv + 'static> Leadership for RaftLeadership<K> {
    fn leading(&self) -> Option<u64> {
        let status = self.node.status().ok()?;
        (status.leader == Some(status.id)).then_some(status.term)
    }

    async fn confirm(&self, term: u64) -> bool {
        // A read barrier on the leader is a round of heartbeats acknowledged by a quorum.
        self.node.read_barrier(Consistency::Linearizable).await.is_ok()
            && self.leading() == Some(term)
    }

    async fn propose(&self, commands: Vec<CursorCommand>) -> Result<Vec<CursorResult>, String> {
        match self.node.write(Operation::Cursors(commands)).await {
            Ok(Results::Cursors(results)) => Ok(results),
            Ok(other) => Err(format!("cursor results expected, got {other:?}")),
            Err(error) => Err(format!("{error:?}")),
        }
    }
}
