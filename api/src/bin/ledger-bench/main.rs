//! `ledger-bench`: drives a cluster through the Rust client and reports what it sustained.
//!
//! Workers (`--concurrency`) each send requests back to back for `--duration`: a request is a
//! batch of `--batch-size` transfers between random accounts, or — with probability
//! `--read-fraction` — a linearizable lookup of `--batch-size` random accounts' balances.
//! Prints throughput (events and requests per second), request latency P50 / P99 / P99.9, the
//! count of events the ledger refused, and each node's peak memory (from its `/metrics`).
//!
//! `--rate` paces the transfers (per second, all workers together) instead of sending back to
//! back. With `--sync-out-postgres-url` / `--sync-out-kafka-brokers` the local cluster exports
//! to those sinks, and for any cluster that exports, the leader's exporters are sampled while
//! measuring: events exported per second and lag (`sync_out.rs`).
//!
//! `--local` starts its own 3-node cluster of `ledgerd` processes (the binary beside this one)
//! on loopback, with fsync on as always, in a fresh directory it removes afterwards.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::client::{Client, ClientConfig};
use api::convert::pb_u128;
use api::proto::ledger as pb;
use clap::Parser;
use hdrhistogram::Histogram;

mod sync_out;

/// Load generator for a Local-Plus Ledger cluster.
#[derive(Debug, Parser)]
#[command(name = "ledger-bench", version)]
struct Args {
    /// Nodes of a running cluster (host:port, comma-separated). Ignored with --local.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
    addr: Vec<String>,
    /// Start a local 3-node cluster of `ledgerd` processes for the run.
    #[arg(long)]
    local: bool,
    /// First port of the local cluster (it uses three).
    #[arg(long, default_value_t = 7301)]
    local_port: u16,
    /// A bearer token with ledger:read and ledger:write.
    #[arg(long, env = "LEDGER_TOKEN")]
    token: Option<String>,
    /// Accounts transfers move between.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Events per request (transfers, or accounts looked up).
    #[arg(long, default_value_t = 8_190)]
    batch_size: usize,
    /// Requests in flight at once (one worker each).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Share of requests that are balance lookups instead of transfers, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    read_fraction: f64,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Seed of the random accounts and mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Transfers per second, all workers together (0: as fast as the cluster takes them).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// With --local: the nodes export to this PostgreSQL (`sync_out_postgres_url`).
    #[arg(long)]
    sync_out_postgres_url: Option<String>,
    /// With --local: the nodes export to these Kafka brokers (`sync_out_kafka_brokers`).
    #[arg(long)]
    sync_out_kafka_brokers: Option<String>,
    /// How long to wait after the load for the exporters to catch up, in seconds.
    #[arg(long, default_value_t = 120)]
    sync_out_drain: u64,
}

const ASSET: u32 = 7_001;
/// Bench accounts are `ACCOUNT_BASE + 1 ..= ACCOUNT_BASE + accounts`.
const ACCOUNT_BASE: u128 = 7_000_000_000;

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.read_fraction) || args.batch_size == 0 || args.concurrency == 0 {
        eprintln!("ledger-bench: --read-fraction in [0, 1], --batch-size and --concurrency > 0");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ledger-bench: tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ledger-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let local = if args.local { Some(LocalCluster::start(&args).await?) } else { None };
    let addresses = local.as_ref().map_or_else(|| args.addr.clone(), LocalCluster::addresses);
    let outcome = bench(&args, &addresses).await;
    if let Some(local) = local {
        local.stop().await;
    }
    outcome
}

async fn bench(args: &Args, addresses: &[String]) -> Result<(), String> {
    let mut config = ClientConfig::new(addresses.to_vec());
    config.token.clone_from(&args.token);
    config.timeout = Duration::from_secs(30);
    config.retry_for = Duration::from_secs(60);
    let client = Client::new(config).map_err(|e| e.to_string())?;
    setup(&client, args.accounts).await?;
    println!(
        "ledger-bench: {} nodes, {} accounts, batch {}, concurrency {}, read fraction {}, {} s (+{} s warm-up)",
        addresses.len(),
        args.accounts,
        args.batch_size,
        args.concurrency,
        args.read_fraction,
        args.duration,
        args.warmup
    );
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let warmup = Duration::from_secs(args.warmup);
    let end = started + warmup + Duration::from_secs(args.duration);
    let monitor = tokio::spawn(sync_out::monitor(addresses.to_vec(), started + warmup, end));
    // Each worker's share of the rate, as the time between its requests.
    #[allow(clippy::cast_precision_loss)] // A pace, not an amount.
    let pace = (args.rate > 0).then(|| {
        Duration::from_secs_f64(args.batch_size as f64 * args.concurrency as f64 / args.rate as f64)
    });
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let seed = args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (worker as u64 + 1);
        workers.push(tokio::spawn(work(
            client.clone(),
            WorkerPlan {
                seed,
                accounts: args.accounts,
                batch_size: args.batch_size,
                read_fraction: args.read_fraction,
                measure_from: started + warmup,
                end,
                pace,
            },
            Arc::clone(&shared),
        )));
    }
    let mut writes = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut reads = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for worker in workers {
        let (w, r) = worker.await.map_err(|e| format!("worker: {e}"))??;
        writes.add(w).map_err(|e| e.to_string())?;
        reads.add(r).map_err(|e| e.to_string())?;
    }
    let seconds = Duration::from_secs(args.duration).as_secs_f64();
    report("transfers", &writes, args.batch_size, seconds);
    report("balance lookups", &reads, args.batch_size, seconds);
    let exported = monitor.await.map_err(|e| format!("monitor: {e}"))??;
    exported.print(Duration::from_secs(args.sync_out_drain)).await;
    let refused = shared.refused.load(Ordering::Relaxed);
    println!("events the ledger refused: {refused}");
    if shared.failed.load(Ordering::Relaxed) {
        println!("some requests failed for good (see above)");
    }
    for address in addresses {
        match peak_memory(address).await {
            Ok(bytes) => println!("node {address}: peak memory {:.1} MiB", mib(bytes)),
            Err(error) => println!("node {address}: peak memory unknown ({error})"),
        }
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // Reporting only.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[allow(clippy::cast_precision_loss)] // Reporting only.
fn report(what: &str, latencies: &Histogram<u64>, batch: usize, seconds: f64) {
    let requests = latencies.len();
    if requests == 0 {
        return;
    }
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{what}: {:.0}/s ({:.0} requests/s of {batch}); request latency ms: P50 {:.2}, P99 {:.2}, P99.9 {:.2}, max {:.2}",
        (requests * batch as u64) as f64 / seconds,
        requests as f64 / seconds,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        latencies.max() as f64 / 1000.0,
    );
}

/// The asset and the accounts, created idempotently (a rerun finds them).
async fn setup(client: &Client, accounts: u64) -> Result<(), String> {
    let asset = pb::NewAsset {
        id: ASSET,
        code: "BENCH".into(),
        scale: 0,
        expiry_account: pb_u128(ACCOUNT_BASE),
    };
    let results =
        client.create_assets(vec![asset]).await.map_err(|e| format!("create asset: {e}"))?;
    let result = results.first().map_or("no result", String::as_str);
    if !matches!(result, "ok" | "exists") {
        return Err(format!("create asset: {result}"));
    }
    let ids: Vec<u128> = (1..=u128::from(accounts)).map(|i| ACCOUNT_BASE + i).collect();
    for chunk in ids.chunks(8_190) {
        let batch = chunk
            .iter()
            .map(|id| pb::NewAccount {
                id: pb_u128(*id),
                asset: ASSET,
                kind: pb::AccountKind::CustomerWallet as i32,
                ..pb::NewAccount::default()
            })
            .collect();
        let results =
            client.create_accounts(batch).await.map_err(|e| format!("create accounts: {e}"))?;
        if let Some(bad) = results.iter().find(|r| !matches!(r.result.as_str(), "ok" | "exists")) {
            return Err(format!("create accounts: {}", bad.result));
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Shared {
    refused: AtomicU64,
    failed: AtomicBool,
}

#[derive(Debug, Clone, Copy)]
struct WorkerPlan {
    seed: u64,
    accounts: u64,
    batch_size: usize,
    read_fraction: f64,
    measure_from: Instant,
    end: Instant,
    /// Time between this worker's requests (`None`: back to back).
    pace: Option<Duration>,
}

/// xorshift64*: the workload's randomness, seeded, so runs are repeatable.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    #[allow(clippy::cast_precision_loss)] // A fraction: 53 bits are plenty.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

async fn work(
    client: Client,
    plan: WorkerPlan,
    shared: Arc<Shared>,
) -> Result<(Histogram<u64>, Histogram<u64>), String> {
    let mut random = Random(plan.seed.max(1));
    let mut writes = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let mut reads = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    let account = |r: &mut Random| ACCOUNT_BASE + 1 + u128::from(r.below(plan.accounts));
    let mut next_send = Instant::now();
    while Instant::now() < plan.end {
        if let Some(pace) = plan.pace {
            tokio::time::sleep_until(next_send.into()).await;
            next_send += pace;
        }
        let read = plan.read_fraction > 0.0 && random.unit() < plan.read_fraction;
        let sent = Instant::now();
        if read {
            let ids: Vec<u128> = (0..plan.batch_size).map(|_| account(&mut random)).collect();
            if let Err(error) = client.lookup_accounts(&ids, Duration::ZERO).await {
                eprintln!("lookup failed: {error}");
                shared.failed.store(true, Ordering::Relaxed);
                continue;
            }
        } else {
            let transfers: Vec<pb::NewTransfer> = (0..plan.batch_size)
                .map(|_| {
                    let debit = account(&mut random);
                    let mut credit = account(&mut random);
                    if credit == debit {
                        credit = if debit == ACCOUNT_BASE + 1 { debit + 1 } else { debit - 1 };
                    }
                    pb::NewTransfer {
                        debit_account: pb_u128(debit),
                        credit_account: pb_u128(credit),
                        amount: pb_u128(1 + u128::from(random.below(100))),
                        asset: ASSET,
                        code: pb::TransferCode::Transfer as i32,
                        ..pb::NewTransfer::default()
                    }
                })
                .collect();
            match client.create_transfers(transfers).await {
                Ok(results) => {
                    let refused = results.iter().filter(|r| r.result != "ok").count();
                    shared.refused.fetch_add(refused as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    eprintln!("transfers failed: {error}");
                    shared.failed.store(true, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let done = Instant::now();
        if sent >= plan.measure_from && done <= plan.end {
            let micros = u64::try_from(done.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
            let histogram = if read { &mut reads } else { &mut writes };
            histogram.record(micros.max(1)).map_err(|e| e.to_string())?;
        }
    }
    Ok((writes, reads))
}

/// `process_peak_resident_memory_bytes` from the node's `/metrics`.
async fn peak_memory(address: &str) -> Result<u64, String> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get("/metrics")
        .header(http::header::HOST, address)
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix("process_peak_resident_memory_bytes "))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| "no process_peak_resident_memory_bytes in /metrics".into())
}

/// Three `ledgerd` processes on loopback, initialized, in a directory of their own.
struct LocalCluster {
    dir: std::path::PathBuf,
    ports: Vec<u16>,
    children: Vec<tokio::process::Child>,
}

impl LocalCluster {
    async fn start(args: &Args) -> Result<Self, String> {
        let first_port = args.local_port;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let ledgerd = exe.with_file_name("ledgerd");
        if !ledgerd.exists() {
            return Err(format!(
                "--local needs {} (cargo build --release --bins)",
                ledgerd.display()
            ));
        }
        let dir = std::env::temp_dir().join(format!("ledger-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ports: Vec<u16> = (0..3).map(|i| first_port + i).collect();
        let mut children = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let mut command = tokio::process::Command::new(&ledgerd);
            if let Some(url) = &args.sync_out_postgres_url {
                command.args(["--sync-out-postgres-url", url]);
            }
            if let Some(brokers) = &args.sync_out_kafka_brokers {
                command.args(["--sync-out-kafka-brokers", brokers]);
            }
            let child = command
                .args(["--node-id", &(i + 1).to_string(), "--cluster-id", "7"])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--data-dir")
                .arg(dir.join(format!("node-{}", i + 1)))
                .args(["--log-level", "warn"])
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("{}: {e}", ledgerd.display()))?;
            children.push(child);
        }
        let cluster = Self { dir, ports, children };
        cluster.initialize().await?;
        Ok(cluster)
    }

    fn addresses(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    async fn initialize(&self) -> Result<(), String> {
        use api::proto::ledger::admin_client::AdminClient;
        let members: std::collections::HashMap<u64, String> = (1_u64..)
            .zip(&self.ports)
            .map(|(id, port)| (id, format!("127.0.0.1:{port}")))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let channel = tonic::transport::Channel::from_shared(format!(
                    "http://127.0.0.1:{}",
                    self.ports[0]
                ))
                .map_err(|e| e.to_string())?
                .connect()
                .await
                .map_err(|e| e.to_string())?;
                AdminClient::new(channel)
                    .initialize(pb::InitializeRequest { members: members.clone() })
                    .await
                    .map_err(|e| e.to_string())
            };
            match attempt.await {
                Ok(_) => return Ok(()),
                Err(error) if Instant::now() >= deadline => {
                    return Err(format!("initialize: {error}"))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
