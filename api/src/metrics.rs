//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! - `ledger_request_duration_seconds{protocol,method,result}`: a histogram of every API call
//!   (its count is the request count), `result` being the gRPC status name or the HTTP status.
//! - Read at scrape time from the node: raft term, leader, log indexes and each follower's
//!   replication lag (on the leader), the batcher's entries and their sizes, the write queue's
//!   depth, the store's sizes, and this process's memory.
//!
//! - Sync-out, per sink (`sink` label): whether this node's exporter runs, events and seconds
//!   of lag, events delivered and errors; the outbox's size and its high-water alarm.
//!
//! No label ever carries a request's content: methods and routes are templates, never ids.

use std::sync::Arc;
use std::time::Duration;

use ledger_sm::state::StateRead;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use raft::Node;
use storage::Kv;
use sync_out::SinkStatus;

use crate::sync_out::SyncOut;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub protocol: &'static str,
    pub method: String,
    pub result: String,
}

/// The node's metrics: a registry to render and the request histogram to record into.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
}

/// Request latency buckets: 250 µs doubling to about 16 s.
fn request_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 17)
}

impl Metrics {
    #[must_use]
    pub fn new<K: Kv + 'static>(node: Node<K>, sync_out: Arc<SyncOut>) -> Arc<Self> {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(request_buckets())
        });
        registry.register(
            "ledger_request_duration_seconds",
            "API calls by protocol, method and result, and how long they took",
            requests.clone(),
        );
        let outbox = OutboxCollector { node: node.clone(), sync_out };
        registry.register_collector(Box::new(NodeCollector { node }));
        registry.register_collector(Box::new(outbox));
        registry.register_collector(Box::new(ProcessCollector));
        Arc::new(Self { registry, requests })
    }

    pub fn record(&self, protocol: &'static str, method: String, result: String, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { protocol, method, result })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text of every metric now.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "metrics failed to encode");
        }
        text
    }
}

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}

struct NodeCollector<K: Kv + 'static> {
    node: Node<K>,
}

impl<K: Kv + 'static> std::fmt::Debug for NodeCollector<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").field("node", &self.node.id()).finish()
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl<K: Kv + 'static> Collector for NodeCollector<K> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(status) = self.node.status() else {
            return Ok(());
        };
        let e = &mut encoder;
        gauge(e, "ledger_raft_term", "The node's current raft term", signed(status.term))?;
        let leader = status.leader.map_or(0, signed);
        gauge(e, "ledger_raft_leader", "The leader's node id, 0 when none is known", leader)?;
        let is_leader = i64::from(status.leader == Some(status.id));
        gauge(e, "ledger_raft_is_leader", "1 on the leader", is_leader)?;
        let index = |i: Option<u64>| i.map_or(0, signed);
        let last = index(status.last_log_index);
        gauge(e, "ledger_raft_last_log_index", "The last index in this node's log", last)?;
        let committed = index(status.committed);
        gauge(e, "ledger_raft_committed_index", "The last index known committed", committed)?;
        let applied = index(status.applied);
        gauge(e, "ledger_raft_applied_index", "The last index applied to the ledger", applied)?;
        let lags: Vec<_> = status
            .members
            .iter()
            .filter(|m| m.id != status.id)
            .filter_map(|m| {
                let matched = m.matched?;
                Some((m.id.to_string(), signed(status.last_log_index?.saturating_sub(matched))))
            })
            .collect();
        if !lags.is_empty() {
            let mut family = e.encode_descriptor(
                "ledger_raft_replication_lag_entries",
                "On the leader: entries each follower is behind its log",
                None,
                MetricType::Gauge,
            )?;
            for (follower, lag) in lags {
                family.encode_family(&[("follower", follower)])?.encode_gauge(&lag)?;
            }
        }
        let depth = signed(self.node.write_queue_depth() as u64);
        gauge(e, "ledger_write_queue_depth", "Client writes waiting for the batcher", depth)?;
        self.encode_batches(e)?;
        let mut sizes = e.encode_descriptor(
            "ledger_storage_bytes",
            "The store's size estimates by part",
            None,
            MetricType::Gauge,
        )?;
        for (part, bytes) in self.node.store().kv().sizes() {
            sizes.encode_family(&[("part", part)])?.encode_gauge(&signed(bytes))?;
        }
        Ok(())
    }
}

impl<K: Kv + 'static> NodeCollector<K> {
    fn encode_batches(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.node.write_stats();
        let buckets: Vec<(f64, u64)> = raft::ENTRY_EVENTS_BUCKETS
            .iter()
            .zip(&stats.entry_events)
            .map(|(max, count)| {
                #[allow(clippy::cast_precision_loss)] // Bucket bounds are small.
                let bound = if *max == u64::MAX { f64::MAX } else { *max as f64 };
                (bound, count.load(Relaxed))
            })
            .collect();
        let count: u64 = buckets.iter().map(|(_, n)| n).sum();
        #[allow(clippy::cast_precision_loss)] // A sum of events: precision past 2^53 is moot.
        let sum = stats.events.load(Relaxed) as f64;
        e.encode_descriptor(
            "ledger_write_entry_events",
            "Events in each raft entry the leader's batcher proposed (group commit)",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }
}

/// A per-sink metric: name, help, type and how to read it off a status.
type SinkFamily = (&'static str, &'static str, MetricType, fn(&SinkStatus) -> i64);

/// Sync-out's progress and the outbox.
struct OutboxCollector<K: Kv + 'static> {
    node: Node<K>,
    sync_out: Arc<SyncOut>,
}

impl<K: Kv + 'static> std::fmt::Debug for OutboxCollector<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxCollector").field("node", &self.node.id()).finish()
    }
}

impl<K: Kv + 'static> Collector for OutboxCollector<K> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        if let Ok(meta) = self.node.store().meta() {
            let held = meta.event_seq_next.0.saturating_sub(meta.events_first.0);
            let high_water = self.sync_out.high_water();
            gauge(e, "ledger_outbox_events", "Events the outbox holds", signed(held))?;
            let help = "Events the outbox may hold before the node alarms";
            gauge(e, "ledger_outbox_high_water_events", help, signed(high_water))?;
            let over = i64::from(self.sync_out.exporting() && held > high_water);
            let help = "1 while a node that exports holds more than its high-water mark";
            gauge(e, "ledger_outbox_over_high_water", help, over)?;
        }
        let sinks = self.sync_out.statuses();
        if sinks.is_empty() {
            return Ok(());
        }
        let families: [SinkFamily; 5] = [
            (
                "ledger_sync_out_active",
                "1 where this node's exporter runs (on the leader)",
                MetricType::Gauge,
                |s| i64::from(s.active),
            ),
            (
                "ledger_sync_out_lag_events",
                "Committed events the sink does not hold yet",
                MetricType::Gauge,
                |s| signed(s.lag_events),
            ),
            (
                "ledger_sync_out_lag_milliseconds",
                "Age of the oldest event the sink does not hold",
                MetricType::Gauge,
                |s| signed(s.lag_ms),
            ),
            (
                "ledger_sync_out_delivered",
                "Events this node's exporter delivered",
                MetricType::Counter,
                |s| signed(s.delivered_total),
            ),
            (
                "ledger_sync_out_errors",
                "Failed deliveries and sink errors (each retried)",
                MetricType::Counter,
                |s| signed(s.errors_total),
            ),
        ];
        for (name, help, kind, value) in families {
            let mut family = e.encode_descriptor(name, help, None, kind)?;
            for sink in &sinks {
                let labels = [("sink", sink.sink.as_str())];
                let mut metric = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => metric
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                            &u64::try_from(value(sink)).unwrap_or(0),
                            None,
                        )?,
                    _ => metric.encode_gauge(&value(sink))?,
                }
            }
        }
        Ok(())
    }
}

/// This process's resident and peak resident memory, from `/proc/self/status`.
#[derive(Debug)]
struct ProcessCollector;

/// `VmRSS` and `VmHWM` of `/proc/self/status`, in bytes.
#[must_use]
pub fn process_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let kib = line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim();
            kib.parse::<u64>().ok().map(|kib| kib * 1024)
        })
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((resident, peak)) = process_memory() {
            let e = &mut encoder;
            gauge(e, "process_resident_memory_bytes", "Resident memory", signed(resident))?;
            gauge(e, "process_peak_resident_memory_bytes", "Peak resident memory", signed(peak))?;
        }
        Ok(())
    }
}
