//! The real-process chaos harness: three `ledgerd` processes on loopback, clients earning,
//! burning, refunding, retrying and reading through `api::client`, and under them nodes SIGKILLed (then
//! restarted on their data), SIGSTOPped (then continued), or cut off, slowed down or made
//! lossy by the TCP proxy between the nodes (`proxy`). The recorded history is then judged by
//! the linearizability checker against the bank model, and the nodes must converge to one
//! state hash.
//!
//! Bounded: one node faulted at a time (a quorum stays up), a fixed load time, a handful of
//! clients, loopback only. Reproducible in its choices (the seed picks every operation, node and
//! pause), not in its timing: real processes race, so a seed replays the plan, not the run.

pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use api::client::{Client, ClientConfig};
use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;

use crate::bank::{self, Bank, Finding, Op, Ret, Reversal, Transfer};
use crate::checker::Call;
use crate::ledger;
use crate::rng::Rng;

/// Configurations the checker may visit per partition before calling it undecided.
pub const CONFIGURATIONS_MAX: usize = 2_000_000;
/// How long the cluster gets to converge once faults stop.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct ChaosOptions {
    /// The `ledgerd` binary to run.
    pub ledgerd: PathBuf,
    /// Where the nodes keep their data and logs.
    pub dir: PathBuf,
    pub seed: u64,
    pub clients: u32,
    pub wallets: u32,
    /// How long clients send load while faults happen.
    pub load: Duration,
    /// Time between the end of one fault and the start of the next.
    pub fault_gap: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL, then a restart on the same data.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// The node cut off from both peers, both ways.
    Partition,
    /// Nothing from the node reaches one peer; the other way works.
    OneWay,
    /// Every byte between the node and its peers delayed.
    Delay,
    /// Connections between the node and its peers reset at random.
    Loss,
}

/// Every kind, in the order a run takes them (from a place the seed picks): a run of six
/// faults or more has each.
pub const FAULTS: [Fault; 6] =
    [Fault::Kill, Fault::Pause, Fault::Partition, Fault::OneWay, Fault::Delay, Fault::Loss];

#[derive(Debug)]
pub struct ChaosReport {
    pub seed: u64,
    pub calls: usize,
    pub unanswered: usize,
    /// Answers by result name (`ok`, `exists`, `exceeds_credits`, `balance`, …).
    pub answers: BTreeMap<String, u32>,
    pub faults: BTreeMap<Fault, u32>,
    /// Connections between the nodes that went through the fault proxy.
    pub peer_connections: u64,
    pub finding: Finding,
    /// Each node's state hash once they converged.
    pub state_hashes: Vec<String>,
    /// What the clients saw, and the model it was judged with.
    pub history: Vec<Call<Op, Ret>>,
    pub bank: Bank,
}

/// Runs the harness once.
///
/// # Errors
/// A node could not start, the cluster could not be formed or set up, an answer the model
/// does not know, or no convergence after the faults stopped.
pub async fn run(options: &ChaosOptions) -> Result<ChaosReport, String> {
    assert!(options.wallets >= 1);
    let mut rng = Rng::new(options.seed);
    let mut cluster = Processes::start(options, rng.next_u64()).await?;
    cluster.next_fault = rng.index(FAULTS.len());
    let client = cluster.client();
    cluster.initialize().await?;
    setup(&client, options.wallets).await?;

    let started = Instant::now();
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..options.clients {
        let mut load = Load {
            client: client.clone(),
            worker,
            rng: Rng::new(rng.next_u64() ^ u64::from(worker)),
            wallets: options.wallets,
            started,
            history: Arc::clone(&history),
            sent: Vec::new(),
            ids: 0,
        };
        let until = started + options.load;
        workers.push(tokio::spawn(async move { load.run(until).await }));
    }
    let mut faults = BTreeMap::new();
    while started.elapsed() < options.load {
        tokio::time::sleep(options.fault_gap).await;
        let fault = cluster.fault(&mut rng).await?;
        *faults.entry(fault).or_insert(0) += 1;
    }
    for worker in workers {
        worker.await.map_err(|e| format!("a client task failed: {e}"))??;
    }
    let state_hashes = cluster.converge().await?;
    let history = std::mem::take(&mut *history.lock().unwrap_or_else(PoisonError::into_inner));

    let bank = Bank::new(ledger::guarded(options.wallets as usize));
    let finding = bank::check_per_account(&bank, &history, CONFIGURATIONS_MAX);
    let answers = bank::answer_counts(&history);
    Ok(ChaosReport {
        seed: options.seed,
        calls: history.len(),
        unanswered: history.iter().filter(|c| c.answered.is_none()).count(),
        answers,
        faults,
        peer_connections: cluster.proxy.peer_connections(),
        finding,
        state_hashes,
        history,
        bank,
    })
}

/// Creates the points asset, the issuance and settlement accounts and the wallets.
async fn setup(client: &Client, wallets: u32) -> Result<(), String> {
    let (asset, accounts) = ledger::setup_requests(wallets as usize);
    let results = client.create_assets(vec![asset]).await.map_err(|e| e.to_string())?;
    expect_created("asset", results.iter().map(String::as_str))?;
    let results = client.create_accounts(accounts).await.map_err(|e| e.to_string())?;
    expect_created("accounts", results.iter().map(|r| r.result.as_str()))
}

fn expect_created<'a>(
    what: &str,
    mut results: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    match results.find(|r| *r != "ok" && *r != "exists") {
        None => Ok(()),
        Some(bad) => Err(format!("creating the {what}: {bad}")),
    }
}

/// One client: a loop of calls, each recorded with when it was made and answered.
struct Load {
    client: Client,
    worker: u32,
    rng: Rng,
    wallets: u32,
    started: Instant,
    history: Arc<Mutex<Vec<Call<Op, Ret>>>>,
    /// Transfers this client sent, for retries and refunds.
    sent: Vec<Transfer>,
    /// Ids this client used.
    ids: u128,
}

impl Load {
    async fn run(&mut self, until: Instant) -> Result<(), String> {
        while Instant::now() < until {
            let wallet = 2 + self.rng.index(self.wallets as usize);
            let amount = 1 + u128::from(self.rng.below(8));
            let op = match self.rng.below(11) {
                0..=3 => Op::Transfer(self.fresh(0, wallet, amount.min(5))),
                4..=6 => Op::Transfer(self.fresh(wallet, 1, amount)),
                7 | 8 => Op::Read(wallet),
                // A refund of a burn or a reversal of an earn: all that is left, or part.
                9 => match self.sent.get(self.rng.index(self.sent.len() + 1)).copied() {
                    Some(original) => {
                        let amount = u128::from(self.rng.below(3));
                        Op::Reverse(Reversal { id: self.id(), original, amount })
                    }
                    None => Op::Read(wallet),
                },
                _ => match self.sent.get(self.rng.index(self.sent.len() + 1)) {
                    // The same request again, or the same id with another amount.
                    Some(sent) if self.rng.below(2) == 0 => Op::Transfer(*sent),
                    Some(sent) => Op::Transfer(Transfer { amount: sent.amount + 1, ..*sent }),
                    None => Op::Read(wallet),
                },
            };
            let invoked = self.now();
            let ret = self.call(op).await?;
            let call = match ret {
                Some(ret) => Call::answered(self.worker, invoked, self.now(), op, ret),
                None => Call::unanswered(self.worker, invoked, op),
            };
            self.history.lock().unwrap_or_else(PoisonError::into_inner).push(call);
        }
        Ok(())
    }

    fn fresh(&mut self, debit: usize, credit: usize, amount: u128) -> Transfer {
        let transfer = Transfer { id: self.id(), debit, credit, amount };
        self.sent.push(transfer);
        transfer
    }

    /// Unique per run: the worker in the high bits, a counter in the low ones.
    fn id(&mut self) -> u128 {
        self.ids += 1;
        (u128::from(self.worker) + 1) << 64 | self.ids
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Makes the call; `None` when it was never answered (the client gave up retrying).
    async fn call(&self, op: Op) -> Result<Option<Ret>, String> {
        Ok(ledger::call(&self.client, op, Duration::ZERO).await?.ok())
    }
}

/// The three `ledgerd` processes, and the proxy their peer traffic goes through.
struct Processes {
    ledgerd: PathBuf,
    dir: PathBuf,
    /// Where each node listens (clients come here directly).
    ports: Vec<u16>,
    /// Peers reach each other through it: the membership names the proxy's addresses.
    proxy: proxy::Proxy,
    children: Vec<Child>,
    /// The next fault kind, as an index into `FAULTS`.
    next_fault: usize,
}

impl Processes {
    async fn start(options: &ChaosOptions, seed: u64) -> Result<Processes, String> {
        let mut ports = Vec::new();
        for _ in 0..3 {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            ports.push(listener.local_addr().map_err(|e| e.to_string())?.port());
        }
        let targets: Vec<std::net::SocketAddr> =
            ports.iter().map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], *port))).collect();
        let proxy = proxy::Proxy::start(&targets, seed).await?;
        let mut processes = Processes {
            ledgerd: options.ledgerd.clone(),
            dir: options.dir.clone(),
            ports,
            proxy,
            children: Vec::new(),
            next_fault: 0,
        };
        for node in 0..3 {
            let child = processes.spawn(node)?;
            processes.children.push(child);
        }
        Ok(processes)
    }

    fn spawn(&self, node: usize) -> Result<Child, String> {
        let dir = self.dir.join(format!("node-{}", node + 1));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let config = dir.join("ledgerd.toml");
        let toml = format!(
            "node_id = {}\ncluster_id = 11\nlisten = \"127.0.0.1:{}\"\ndata_dir = {:?}\n\
             heartbeat_ms = 50\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n\
             peer_source_address = \"{}\"\n",
            node + 1,
            self.ports[node],
            dir.join("data"),
            proxy::source_address(node),
        );
        std::fs::write(&config, toml).map_err(|e| e.to_string())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("ledgerd.log"))
            .map_err(|e| e.to_string())?;
        Command::new(&self.ledgerd)
            .arg("--config")
            .arg(&config)
            .env("LEDGERD_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.ledgerd.display()))
    }

    fn address(&self, node: usize) -> String {
        format!("127.0.0.1:{}", self.ports[node])
    }

    fn client(&self) -> Client {
        let mut config = ClientConfig::new((0..3).map(|n| self.address(n)).collect());
        // Short enough that a client gives up on a call now and then during faults: an
        // unanswered call is part of what the checker must handle.
        config.timeout = Duration::from_secs(2);
        config.retry_for = Duration::from_secs(4);
        Client::new(config).expect("three addresses and no token")
    }

    async fn admin(&self, node: usize) -> Option<AdminClient<tonic::transport::Channel>> {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.address(node)))
                .ok()?
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(2));
        Some(AdminClient::new(endpoint.connect().await.ok()?))
    }

    async fn initialize(&self) -> Result<(), String> {
        let members: HashMap<u64, String> =
            (0..3).map(|n| (n as u64 + 1, self.proxy.address(n).to_string())).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = match self.admin(0).await {
                Some(mut admin) => admin
                    .initialize(pb::InitializeRequest { members: members.clone() })
                    .await
                    .map(|_| ())
                    .map_err(|s| s.to_string()),
                None => Err("node 1 is not answering yet".to_owned()),
            };
            match answer {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("initialize: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// One fault on a node the seed picks, for a time it picks; the node is back when this
    /// returns.
    async fn fault(&mut self, rng: &mut Rng) -> Result<Fault, String> {
        let fault = FAULTS[self.next_fault % FAULTS.len()];
        self.next_fault += 1;
        let node = rng.index(3);
        let peers = [(node + 1) % 3, (node + 2) % 3];
        let down = Duration::from_millis(300 + rng.below(1_200));
        let pid = self.children[node].id().to_string();
        let signal = |name: &str| {
            Command::new("kill").args([name, &pid]).status().map_err(|e| e.to_string())
        };
        let both_ways = |link: proxy::Link| {
            for peer in peers {
                self.proxy.set(node, peer, link);
                self.proxy.set(peer, node, link);
            }
        };
        match fault {
            Fault::Kill => {
                self.children[node].kill().map_err(|e| e.to_string())?;
                self.children[node].wait().map_err(|e| e.to_string())?;
                tokio::time::sleep(down).await;
                self.children[node] = self.spawn(node)?;
                return Ok(fault);
            }
            Fault::Pause => {
                signal("-STOP")?;
                tokio::time::sleep(down).await;
                signal("-CONT")?;
                return Ok(fault);
            }
            Fault::Partition => both_ways(proxy::Link::Blocked),
            Fault::OneWay => self.proxy.set(node, peers[rng.index(2)], proxy::Link::Blocked),
            Fault::Delay => {
                both_ways(proxy::Link::Delayed(Duration::from_millis(20 + rng.below(200))));
            }
            Fault::Loss => {
                both_ways(proxy::Link::Lossy(20 + u32::try_from(rng.below(100)).unwrap_or(0)))
            }
        }
        tokio::time::sleep(down).await;
        self.proxy.heal();
        Ok(fault)
    }

    /// Waits until every node applied the same index with the same state hash.
    async fn converge(&self) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + CONVERGE_WITHIN;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let mut seen = Vec::new();
            for node in 0..3 {
                if let Some(mut admin) = self.admin(node).await {
                    if let Ok(status) = admin.status(pb::StatusRequest {}).await {
                        let status = status.into_inner();
                        seen.push((status.applied, status.committed, status.state_hash));
                    }
                }
            }
            let settled = seen.len() == 3
                && seen.iter().all(|s| s.0.is_some() && s.0 == s.1 && s.0 == seen[0].0)
                && seen.iter().all(|s| s.2 == seen[0].2);
            if settled {
                return Ok(seen.into_iter().map(|s| s.2).collect());
            }
            last = seen;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("no convergence within {CONVERGE_WITHIN:?}: {last:?}"))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
