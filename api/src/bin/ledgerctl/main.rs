//! `ledgerctl`: the operator's command line for a Local-Plus Ledger cluster: initialize it,
//! show its status as a table, change its membership, move leadership, take snapshots, watch
//! and reconcile sync-out, and run the demo. Calls that must reach the leader follow the leader's address from a refusal.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use clap::{Parser, Subcommand};
use tonic::transport::Channel;

mod client;
mod demo;
mod sync_out;

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
    /// A bearer token (ledger scopes for client commands, admin for cluster commands).
    #[arg(long, global = true, env = "LEDGERCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The cluster's CA (PEM): speak TLS.
    #[arg(long, global = true, env = "LEDGERCTL_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for mutual TLS, with --key-file.
    #[arg(long, global = true, env = "LEDGERCTL_CERT_FILE")]
    cert_file: Option<std::path::PathBuf>,
    #[arg(long, global = true, env = "LEDGERCTL_KEY_FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Print client commands' replies as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// How ledgerctl reaches nodes: TLS and the token, set once from the flags.
#[derive(Debug, Default)]
struct Connection {
    tls: Option<tonic::transport::ClientTlsConfig>,
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

static CONNECTION: std::sync::OnceLock<Connection> = std::sync::OnceLock::new();

fn connection(cli: &Cli) -> Result<Connection, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let tls = match (&cli.ca_file, &cli.cert_file, &cli.key_file) {
        (None, None, None) => None,
        (Some(ca), cert, key) => {
            let mut tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
            match (cert, key) {
                (Some(cert), Some(key)) => {
                    tls =
                        tls.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
                }
                (None, None) => {}
                _ => return Err("--cert-file and --key-file go together".into()),
            }
            Some(tls)
        }
        (None, _, _) => return Err("--cert-file and --key-file need --ca-file".into()),
    };
    let token = match &cli.token {
        Some(token) => Some(
            format!("Bearer {token}").parse().map_err(|_| "--token: not a valid header value")?,
        ),
        None => None,
    };
    Ok(Connection { tls, token })
}

fn api_client(cli: &Cli) -> Result<api::client::Client, String> {
    let mut config =
        api::client::ClientConfig::new(cli.addr.split(',').map(str::to_owned).collect());
    config.token.clone_from(&cli.token);
    config.tls = CONNECTION.get().and_then(|c| c.tls.clone());
    config.retry_for = Duration::from_secs(cli.wait);
    api::client::Client::new(config).map_err(|e| e.to_string())
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
    /// Make API tokens for a node's tokens file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Sync-out: the exporters' progress; reconcile the PostgreSQL read model with the ledger.
    #[command(subcommand)]
    SyncOut(sync_out::SyncOutCommand),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// A fresh secret (printed once; give it to the caller) and its entry for the tokens file.
    New {
        #[arg(long)]
        name: String,
        /// ledger:read, ledger:write or admin; repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Requests per second on each node.
        #[arg(long)]
        rate_per_second: Option<u32>,
    },
    /// The hash of a secret read from standard input (for the tokens file).
    Hash,
    /// A fresh peer secret, for every node's peer_secret_file.
    PeerSecret,
}

fn token(command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::New { name, scopes, rate_per_second } => {
            let secret = api::auth::new_secret()?;
            let entry = api::auth::TokenEntry {
                name: name.clone(),
                hash: api::auth::hash_secret(&secret),
                scopes: scopes.clone(),
                expires_at: None,
                rate_per_second,
                burst: None,
            };
            // Refuse what a node would refuse, before anyone relies on it.
            api::auth::Auth::new(std::slice::from_ref(&entry), &secret)?;
            eprintln!("secret (shown once): {secret}");
            println!("[[token]]");
            println!("name = {name:?}");
            println!("hash = {:?}", entry.hash);
            println!("scopes = {scopes:?}");
            if let Some(rate) = rate_per_second {
                println!("rate_per_second = {rate}");
            }
            Ok(())
        }
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map_err(|e| format!("standard input: {e}"))?;
            println!("{}", api::auth::hash_secret(line.trim()));
            Ok(())
        }
        TokenCommand::PeerSecret => {
            println!("{}", api::auth::new_secret()?);
            Ok(())
        }
    }
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
    match connection(&cli) {
        Ok(connection) => {
            let _ = CONNECTION.set(connection);
        }
        Err(error) => {
            eprintln!("ledgerctl: {error}");
            return ExitCode::FAILURE;
        }
    }
    let client = match &cli.command {
        Command::Client(_) => match api_client(&cli) {
            Ok(client) => Some(client),
            Err(error) => {
                eprintln!("ledgerctl: {error}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
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
        Command::Token(command) => token(command),
        Command::SyncOut(command) => sync_out::run(&cli.addr, deadline, command, cli.json).await,
        Command::Client(command) => match client {
            Some(client) => client::run(&client, command, cli.json).await,
            None => Err("no client".into()),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledgerctl: {error}");
            ExitCode::FAILURE
        }
    }
}

type Admin = AdminClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

fn with_token(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(token) = CONNECTION.get().and_then(|c| c.token.clone()) {
        request.metadata_mut().insert("authorization", token);
    }
    Ok(request)
}

async fn admin(address: &str) -> Result<Admin, String> {
    let tls = CONNECTION.get().and_then(|c| c.tls.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{address}"))
        .map_err(|e| format!("address {address:?}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
    }
    let channel = endpoint.connect().await.map_err(|e| format!("cannot reach {address}: {e}"))?;
    let interceptor: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> =
        with_token;
    Ok(AdminClient::with_interceptor(channel, interceptor))
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
    F: Fn(Admin) -> Fut,
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
    F: Fn(Admin) -> Fut,
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
