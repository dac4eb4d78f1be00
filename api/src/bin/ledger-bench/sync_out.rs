//! Sync-out under load: samples the leader's exporters while the workload runs, then waits for
//! them to drain what is left. Reports per sink the events exported per second while
//! measuring, the lag (events and the age of the oldest event waiting) at P50 / P99 / max, and
//! how fast the backlog drained once the load stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use hdrhistogram::Histogram;

const SAMPLE: Duration = Duration::from_millis(200);

/// What one sink did in the measured window.
struct Sink {
    lag_ms: Histogram<u64>,
    lag_events: Histogram<u64>,
    delivered_first: Option<(Instant, u64)>,
    delivered_last: Option<(Instant, u64)>,
}

/// The exporting node's (the leader's) sync-out status: the first node with an active sink.
async fn sample(addresses: &[String]) -> Option<pb::SyncOutStatusReply> {
    for address in addresses {
        let Ok(endpoint) = tonic::transport::Channel::from_shared(format!("http://{address}"))
        else {
            continue;
        };
        let Ok(channel) = endpoint.connect_timeout(Duration::from_secs(1)).connect().await else {
            continue;
        };
        let Ok(reply) =
            AdminClient::new(channel).sync_out_status(pb::SyncOutStatusRequest {}).await
        else {
            continue;
        };
        let reply = reply.into_inner();
        if reply.sinks.iter().any(|s| s.active) {
            return Some(reply);
        }
    }
    None
}

/// Samples until `end`, recording from `measure_from`.
pub async fn monitor(
    addresses: Vec<String>,
    measure_from: Instant,
    end: Instant,
) -> Result<Report, String> {
    let mut sinks: BTreeMap<String, Sink> = BTreeMap::new();
    while Instant::now() < end {
        tokio::time::sleep(SAMPLE).await;
        let now = Instant::now();
        let Some(reply) = sample(&addresses).await else { continue };
        if now < measure_from {
            continue;
        }
        for status in reply.sinks.iter().filter(|s| s.active) {
            let sink = match sinks.entry(status.sink.clone()) {
                std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::btree_map::Entry::Vacant(entry) => entry.insert(Sink {
                    lag_ms: Histogram::new(3).map_err(|e| e.to_string())?,
                    lag_events: Histogram::new(3).map_err(|e| e.to_string())?,
                    delivered_first: None,
                    delivered_last: None,
                }),
            };
            sink.lag_ms.record(status.lag_ms).map_err(|e| e.to_string())?;
            sink.lag_events.record(status.lag_events).map_err(|e| e.to_string())?;
            sink.delivered_first.get_or_insert((now, status.delivered_total));
            sink.delivered_last = Some((now, status.delivered_total));
        }
    }
    Ok(Report { addresses, sinks })
}

pub struct Report {
    addresses: Vec<String>,
    sinks: BTreeMap<String, Sink>,
}

impl Report {
    /// Prints the measured window, then waits (up to `drain_for`) for every sink to catch up
    /// and prints how fast the backlog went.
    #[allow(clippy::cast_precision_loss)] // Reporting only.
    pub async fn print(self, drain_for: Duration) {
        if self.sinks.is_empty() {
            println!("sync-out: no active sink seen");
            return;
        }
        for (name, sink) in &self.sinks {
            let rate = match (sink.delivered_first, sink.delivered_last) {
                (Some((t0, d0)), Some((t1, d1))) if t1 > t0 => {
                    (d1 - d0) as f64 / t1.duration_since(t0).as_secs_f64()
                }
                _ => 0.0,
            };
            println!(
                "sync-out {name}: {rate:.0} events/s exported while measuring; lag ms P50 {} P99 {} max {}; lag events P50 {} P99 {} max {}",
                sink.lag_ms.value_at_quantile(0.5),
                sink.lag_ms.value_at_quantile(0.99),
                sink.lag_ms.max(),
                sink.lag_events.value_at_quantile(0.5),
                sink.lag_events.value_at_quantile(0.99),
                sink.lag_events.max(),
            );
        }
        let started = Instant::now();
        let Some(first) = sample(&self.addresses).await else { return };
        let backlog: BTreeMap<String, (u64, u64)> = first
            .sinks
            .iter()
            .map(|s| (s.sink.clone(), (s.lag_events, s.delivered_total)))
            .collect();
        for (sink, (lag, _)) in backlog.iter().filter(|(_, (lag, _))| *lag == 0) {
            println!("sync-out {sink}: nothing waiting when the load stopped (lag {lag} events)");
        }
        let mut pending: Vec<String> =
            backlog.iter().filter(|(_, (lag, _))| *lag > 0).map(|(s, _)| s.clone()).collect();
        while !pending.is_empty() && started.elapsed() < drain_for {
            tokio::time::sleep(SAMPLE).await;
            let Some(reply) = sample(&self.addresses).await else { continue };
            for status in &reply.sinks {
                let Some((lag, delivered)) = backlog.get(&status.sink) else { continue };
                if status.lag_events == 0 && pending.contains(&status.sink) {
                    pending.retain(|s| *s != status.sink);
                    let seconds = started.elapsed().as_secs_f64();
                    let moved = status.delivered_total.saturating_sub(*delivered);
                    println!(
                        "sync-out {}: drained a backlog of {lag} events in {seconds:.1} s ({:.0} events/s)",
                        status.sink,
                        moved as f64 / seconds
                    );
                }
            }
        }
        for sink in pending {
            println!("sync-out {sink}: still behind after {} s", drain_for.as_secs());
        }
    }
}
