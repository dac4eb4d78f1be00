//! `ledgerctl`: the operator's command line for a Local-Plus Ledger cluster: initialize it,
//! show its status as a table, change its membership, move leadership, take snapshots, and run
//! the demo. Calls that must reach the leader follow the leader's address from a refusal.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use clap::{Parser, Subcommand};
use tonic::transport::Channel;

mod demo;

/// Operate a Local-Plus Ledger cluster.
#[derive(Debug, Parser)]
#[command(name = "ledgerctl", version)]
struct Cli {
    /// Any node of the cluster (host:port).
    #[arg(long, global = true, env = "LEDGERCTL_ADDR", default_value = "127.0.0.1:7001")]
    addr: String,
    /// How long to keep retrying while the cluster has no leader, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    wait: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialize a new cluster with its first voters: `--member 1=127.0.0.1:7001 ...`.
    Init {
        #[arg(long = "member", required = true, value_parser = parse_member)]
        members: Vec<(u64, String)>,
    },
    /// Every member's role, term, log, commit, applied index and state hash.
    Status,
    /// Add a node as a learner; waits until it has caught up.
    AddLearner { id: u64, address: String },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a node (refused if it leads or if it would cost the quorum).
    Remove { id: u64 },
    /// Hand leadership to a voter.
    TransferLeader { id: u64 },
    /// Build a snapshot on the node at --addr.
    Snapshot,
    /// Earn, burn, a hold and its capture, and a gift card, then print balances.
    Demo,
}

fn parse_member(text: &str) -> Result<(u64, String), String> {
    let (id, address) = text.split_once('=').ok_or("expected ID=HOST:PORT")?;
    let id = id.parse().map_err(|_| format!("node id {id:?} is not a number"))?;
    Ok((id, address.to_owned()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let deadline = Instant::now() + Duration::from_secs(cli.wait);
    let outcome = match cli.command {
        Command::Init { members } => init(&cli.addr, members.into_iter().collect(), deadline).await,
        Command::Status => status(&cli.addr).await,
        Command::AddLearner { id, address } => {
            let request = pb::AddLearnerRequest { id, address };
            membership(&cli.addr, deadline, move |mut c| {
                let request = request.clone();
                async move { c.add_learner(request).await }
            })
            .await
        }
        Command::Promote { id } => {
            membership(&cli.addr, deadline, move |mut c| async move {
                c.promote(pb::PromoteRequest { id }).await
            })
            .await
        }
        Command::Remove { id } => {
            membership(&cli.addr, deadline, move |mut c| async move {
                c.remove(pb::RemoveRequest { id }).await
            })
            .await
        }
        Command::TransferLeader { id } => {
            membership(&cli.addr, deadline, move |mut c| async move {
                c.transfer_leader(pb::TransferLeaderRequest { to: id }).await
            })
            .await
        }
        Command::Snapshot => snapshot(&cli.addr).await,
        Command::Demo => demo::run(&cli.addr, deadline).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledgerctl: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn admin(address: &str) -> Result<AdminClient<Channel>, String> {
    let endpoint = Channel::from_shared(format!("http://{address}"))
        .map_err(|e| format!("address {address:?}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60));
    let channel = endpoint.connect().await.map_err(|e| format!("cannot reach {address}: {e}"))?;
    Ok(AdminClient::new(channel))
}

/// The leader's address from a refusal, if it names one.
fn leader_hint(status: &tonic::Status) -> Option<String> {
    let value = status.metadata().get(api::ledger_service::LEADER)?;
    value.to_str().ok().map(str::to_owned)
}

/// Runs `call` against the leader: follows leader hints, and retries while there is no leader
/// (or a node is unreachable) until `deadline`.
async fn on_leader<T, F, Fut>(start: &str, deadline: Instant, call: F) -> Result<T, String>
where
    F: Fn(AdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut address = start.to_owned();
    loop {
        let error = match admin(&address).await {
            Ok(client) => match call(client).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) => {
                    if let Some(leader) = leader_hint(&status) {
                        if Instant::now() >= deadline {
                            return Err(status.message().to_owned());
                        }
                        address = leader;
                        continue;
                    }
                    if !matches!(status.code(), tonic::Code::Unavailable) {
                        return Err(format!("{}: {}", code_name(status.code()), status.message()));
                    }
                    status.message().to_owned()
                }
            },
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(error);
        }
        address = start.to_owned();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn code_name(code: tonic::Code) -> String {
    api::convert::snake(&format!("{code:?}"))
}

async fn init(
    address: &str,
    members: BTreeMap<u64, String>,
    deadline: Instant,
) -> Result<(), String> {
    let request = pb::InitializeRequest { members: members.into_iter().collect() };
    on_leader(address, deadline, |mut c| {
        let request = request.clone();
        async move { c.initialize(request).await }
    })
    .await?;
    println!("initialized");
    // Wait for the election so that the next command finds a leader.
    on_leader(address, deadline, |mut c| async move {
        let status = c.status(pb::StatusRequest {}).await?;
        match status.get_ref().leader {
            Some(_) => Ok(status),
            None => Err(tonic::Status::unavailable("electing a leader")),
        }
    })
    .await?;
    status(address).await
}

async fn membership<F, Fut>(address: &str, deadline: Instant, call: F) -> Result<(), String>
where
    F: Fn(AdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<pb::MembershipReply>, tonic::Status>>,
{
    on_leader(address, deadline, call).await?;
    status(address).await
}

async fn snapshot(address: &str) -> Result<(), String> {
    let mut client = admin(address).await?;
    let reply =
        client.snapshot(pb::SnapshotRequest {}).await.map_err(|s| s.message().to_owned())?;
    println!("snapshot at log index {}", reply.into_inner().index);
    Ok(())
}

fn opt(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Every member's own status, as a table; the members come from the node at `address`.
async fn status(address: &str) -> Result<(), String> {
    let mut client = admin(address).await?;
    let first = client.status(pb::StatusRequest {}).await.map_err(|s| s.message().to_owned())?;
    let first = first.into_inner();
    println!(
        "cluster {:x}  leader {}  membership {}",
        first.cluster_id,
        opt(first.leader),
        if first.membership_settled { "settled" } else { "changing" }
    );
    println!(
        "{:>4}  {:<21} {:<6} {:<9} {:>5} {:>9} {:>9} {:>9} {:>9}  {:<32}",
        "ID",
        "ADDRESS",
        "VOTER",
        "ROLE",
        "TERM",
        "LAST LOG",
        "COMMIT",
        "APPLIED",
        "SNAPSHOT",
        "STATE HASH"
    );
    for member in &first.members {
        let row = match admin(&member.address).await {
            Ok(mut c) => c.status(pb::StatusRequest {}).await.map(tonic::Response::into_inner).ok(),
            Err(_) => None,
        };
        let voter = if member.voter { "yes" } else { "no" };
        match row {
            Some(s) => println!(
                "{:>4}  {:<21} {:<6} {:<9} {:>5} {:>9} {:>9} {:>9} {:>9}  {}",
                member.id,
                member.address,
                voter,
                s.role,
                s.term,
                opt(s.last_log_index),
                opt(s.committed),
                opt(s.applied),
                opt(s.snapshot),
                s.state_hash
            ),
            None => println!("{:>4}  {:<21} {:<6} unreachable", member.id, member.address, voter),
        }
    }
    Ok(())
}
