//! `ledgerctl sync-out`: the exporters' progress as the leader sees it, and the daily
//! reconciliation of the PostgreSQL read model with the ledger.

use std::time::Instant;

use api::proto::ledger as pb;
use clap::Subcommand;

use crate::{admin, on_leader};

#[derive(Debug, Subcommand)]
pub enum SyncOutCommand {
    /// Each sink's progress on the leader (the node that exports), the replicated cursors and
    /// the outbox.
    Status,
    /// Compare every wallet in PostgreSQL with the ledger of the node at --addr, by checksums
    /// per account range; print the differences. Exits 1 when there is any.
    Reconcile {
        /// Accounts per checksummed range.
        #[arg(long, default_value_t = 1024)]
        range: u32,
        /// How long an account changed by events in flight may take to match, in ms.
        #[arg(long, default_value_t = 10_000)]
        settle_ms: u64,
    },
}

pub async fn run(
    address: &str,
    deadline: Instant,
    command: SyncOutCommand,
    json: bool,
) -> Result<(), String> {
    match command {
        SyncOutCommand::Status => status(address, deadline, json).await,
        SyncOutCommand::Reconcile { range, settle_ms } => {
            reconcile(address, range, settle_ms, json).await
        }
    }
}

/// The leader's address, from the node at `address` (itself when there is none yet).
async fn leader_address(address: &str, deadline: Instant) -> Result<String, String> {
    let status =
        on_leader(address, deadline, |mut c| async move { c.status(pb::StatusRequest {}).await })
            .await?;
    let leader = status.leader.and_then(|id| status.members.iter().find(|m| m.id == id));
    Ok(leader.map_or_else(|| address.to_owned(), |m| m.address.clone()))
}

async fn status(address: &str, deadline: Instant, json: bool) -> Result<(), String> {
    let leader = leader_address(address, deadline).await?;
    let mut client = admin(&leader).await?;
    let reply = client
        .sync_out_status(pb::SyncOutStatusRequest {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    if json {
        return print_json(&status_json(&leader, &reply));
    }
    let held = reply.outbox_next.saturating_sub(reply.outbox_first);
    println!(
        "node {leader}  outbox [{}, {})  holds {held} events  high-water {}{}",
        reply.outbox_first,
        reply.outbox_next,
        reply.outbox_high_water,
        if held > reply.outbox_high_water && !reply.sinks.is_empty() { "  OVER" } else { "" }
    );
    if reply.sinks.is_empty() {
        println!("no sink configured on this node");
    } else {
        println!(
            "{:<16} {:<6} {:>10} {:>10} {:>9} {:>12} {:>8}  LAST ERROR",
            "SINK", "ACTIVE", "DELIVERED", "LAG", "LAG MS", "DELIVERED#", "ERRORS"
        );
    }
    for sink in &reply.sinks {
        println!(
            "{:<16} {:<6} {:>10} {:>10} {:>9} {:>12} {:>8}  {}",
            sink.sink,
            if sink.active { "yes" } else { "no" },
            sink.delivered,
            sink.lag_events,
            sink.lag_ms,
            sink.delivered_total,
            sink.errors_total,
            sink.last_error
        );
    }
    for cursor in &reply.cursors {
        println!("cursor {:<16} next {:>10}  term {}", cursor.sink, cursor.next, cursor.term);
    }
    Ok(())
}

async fn reconcile(address: &str, range: u32, settle_ms: u64, json: bool) -> Result<(), String> {
    if !(1..=8190).contains(&range) {
        return Err("--range must lie between 1 and 8190".into());
    }
    let mut client = admin(address).await?;
    let request = pb::SyncOutReconcileRequest { range, settle_ms };
    let reply =
        client.sync_out_reconcile(request).await.map_err(|s| s.message().to_owned())?.into_inner();
    if json {
        let differences: Vec<serde_json::Value> = reply
            .differences
            .iter()
            .map(|d| serde_json::from_str(d).unwrap_or_else(|_| d.as_str().into()))
            .collect();
        print_json(&serde_json::json!({
            "accounts": reply.accounts.to_string(),
            "ranges": reply.ranges.to_string(),
            "ranges_read": reply.ranges_read.to_string(),
            "position": reply.position.to_string(),
            "settled": reply.settled.to_string(),
            "differences": differences,
        }))?;
    } else {
        println!(
            "{} accounts in {} ranges; {} ranges read row by row; read model at event {}; \
             {} accounts settled in flight",
            reply.accounts, reply.ranges, reply.ranges_read, reply.position, reply.settled
        );
        for difference in &reply.differences {
            println!("differs: {difference}");
        }
    }
    match reply.differences.len() {
        0 => {
            if !json {
                println!("the read model matches the ledger");
            }
            Ok(())
        }
        n => Err(format!("{n} accounts differ between PostgreSQL and the ledger")),
    }
}

/// Integers wider than 32 bits as decimal strings, as everywhere in the API's JSON.
fn status_json(node: &str, reply: &pb::SyncOutStatusReply) -> serde_json::Value {
    let sinks: Vec<serde_json::Value> = reply
        .sinks
        .iter()
        .map(|s| {
            serde_json::json!({
                "sink": s.sink,
                "active": s.active,
                "delivered": s.delivered.to_string(),
                "lag_events": s.lag_events.to_string(),
                "lag_ms": s.lag_ms.to_string(),
                "delivered_total": s.delivered_total.to_string(),
                "errors_total": s.errors_total.to_string(),
                "last_error": s.last_error,
            })
        })
        .collect();
    let cursors: Vec<serde_json::Value> = reply
        .cursors
        .iter()
        .map(|c| {
            serde_json::json!({
                "sink": c.sink, "next": c.next.to_string(), "term": c.term.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "node": node,
        "outbox_first": reply.outbox_first.to_string(),
        "outbox_next": reply.outbox_next.to_string(),
        "outbox_high_water": reply.outbox_high_water.to_string(),
        "sinks": sinks,
        "cursors": cursors,
    })
}

fn print_json(value: &serde_json::Value) -> Result<(), String> {
    println!("{}", serde_json::to_string_pretty(value).map_err(|e| e.to_string())?);
    Ok(())
}
