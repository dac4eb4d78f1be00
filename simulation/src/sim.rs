//! The seeded simulation: N nodes (3 or 5, by the seed) of the real `raft` + `ledger-sm` +
//! `api` code over `storage::mem`, on turmoil's simulated network, in one thread. The seed
//! picks the node count, the network's latency, the fault schedule and every client's
//! operations; openraft's random numbers and tokio's come from it too, and entries are stamped
//! with simulated time, so a seed replays a run exactly (`trace_hash`).
//!
//! A run has two phases. Safety: clients earn, burn, retry (the same request, and the same id
//! with another amount) and read (linearizably, and with bounded staleness) through
//! `api::client` while faults come and go, one at a time: network partitions both ways and one
//! way, held messages, message loss, delay, crashes that lose unsynced writes (some tearing the
//! last one), fsync failures, corrupted rows, leadership transfers and node replacements (a
//! membership change out and back in). Every node's state is checked against the ledger's
//! invariants whenever it applies something. Liveness: every fault healed, all nodes must reach
//! one applied index and one state hash within `CONVERGE_WITHIN`, and answer a final read of
//! every account. Then the history is judged by the checker against the bank model, per account.

mod net;
mod node;
mod operator;
mod workload;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use storage::mem::MemKv;
use storage::{Store, Table};

use crate::bank::{self, Bank, Finding, Op, Ret};
use crate::checker::Call;
use crate::rng::Rng;
use operator::Request;
pub use workload::Recorded;

const PORT: u16 = 7000;
const CLUSTER_ID: u64 = 21;
/// Faults start and stop within this much simulated time; then liveness is checked.
const SAFETY_PHASE: Duration = Duration::from_secs(20);
/// After the faults stop, the cluster must converge within this much simulated time.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// A run that has not ended by then is a liveness failure.
const SIMULATION_MAX: Duration = Duration::from_secs(150);
const CONFIGURATIONS_MAX: usize = 1_000_000;

/// A bug the simulation can plant, to prove that its checkers notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// Every node's disk acknowledges syncs without making anything durable.
    LyingFsync,
}

impl std::str::FromStr for PlantedBug {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "lying-fsync" => Ok(Self::LyingFsync),
            other => Err(format!("unknown planted bug {other:?} (known: lying-fsync)")),
        }
    }
}

impl std::fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LyingFsync => f.write_str("lying-fsync"),
        }
    }
}

/// What the seed chose and what happened.
#[derive(Debug)]
pub struct SimReport {
    pub seed: u64,
    pub nodes: usize,
    pub calls: usize,
    pub unanswered: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// What the cluster did about them, by kind (nodes that stopped themselves, replacements).
    pub outcomes: BTreeMap<&'static str, u32>,
    pub finding: Finding,
    /// The first state that broke the ledger's invariants, if any.
    pub invariant_violation: Option<String>,
    /// Each node's state hash at the end (all equal when the run passed).
    pub state_hashes: Vec<String>,
    /// A hash of everything the clients saw, the faults and the final states: equal for equal
    /// seeds.
    pub trace_hash: u64,
    /// The clients' history as checked: a bounded-staleness read may reflect any earlier state,
    /// so it is checked as if invoked at time 0. `recorded` has the calls as made.
    pub history: Vec<Call<Op, Ret>>,
    pub recorded: Vec<Recorded>,
    /// Faults and operator actions with their simulated times, for a readable trace.
    pub events: Vec<String>,
}

impl SimReport {
    /// Whether the run broke nothing.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.finding == Finding::Linearizable && self.invariant_violation.is_none()
    }
}

/// Why a run failed outright (before the history could be judged).
#[derive(Debug)]
pub struct SimFailure {
    pub seed: u64,
    pub reason: String,
    /// Whether an assertion of the real code failed (a safety failure), rather than the
    /// cluster not converging in time (a liveness failure).
    pub panicked: bool,
    pub events: Vec<String>,
}

/// What the hosts share. Turmoil runs every host in this thread, so `Rc` and `RefCell` do.
struct World {
    seed: u64,
    nodes: usize,
    planted: Option<PlantedBug>,
    /// Each host's store, kept across crashes: a restart opens what a crash left on "disk".
    stores: RefCell<Vec<Option<Arc<Store<MemKv>>>>>,
    /// A disk whose store failed to open, for the next boot to try again.
    unopened: RefCell<Vec<Option<MemKv>>>,
    /// The node id each host runs as (a replacement gets a new one).
    ids: RefCell<Vec<u64>>,
    next_id: Cell<u64>,
    /// The next boot of a host starts from a blank disk / tears the last unsynced write.
    wipe: RefCell<Vec<bool>>,
    tear: RefCell<Vec<bool>>,
    boots: RefCell<Vec<u64>>,
    /// Nodes that stopped by themselves, and why: the driver restarts or replaces them.
    stopped: RefCell<Vec<(usize, String)>>,
    /// Hosts the operator wants restarted (onto a wiped disk).
    reboots: RefCell<Vec<usize>>,
    requests: RefCell<VecDeque<Request>>,
    operator_busy: Cell<bool>,
    ready: Cell<bool>,
    clients_done: Cell<usize>,
    healed: Cell<bool>,
    finished: Cell<bool>,
    history: RefCell<Vec<Recorded>>,
    state_hashes: RefCell<Vec<String>>,
    events: RefCell<Vec<String>>,
    /// Simulated time as the driver last saw it (for what it logs between steps).
    now: Cell<Duration>,
}

impl World {
    fn new(seed: u64, nodes: usize, planted: Option<PlantedBug>) -> Self {
        World {
            seed,
            nodes,
            planted,
            stores: RefCell::new(vec![None; nodes]),
            unopened: RefCell::new((0..nodes).map(|_| None).collect()),
            ids: RefCell::new((1..=nodes as u64).collect()),
            next_id: Cell::new(nodes as u64 + 1),
            wipe: RefCell::new(vec![false; nodes]),
            tear: RefCell::new(vec![false; nodes]),
            boots: RefCell::new(vec![0; nodes]),
            stopped: RefCell::new(Vec::new()),
            reboots: RefCell::new(Vec::new()),
            requests: RefCell::new(VecDeque::new()),
            operator_busy: Cell::new(false),
            ready: Cell::new(false),
            clients_done: Cell::new(0),
            healed: Cell::new(false),
            finished: Cell::new(false),
            history: RefCell::new(Vec::new()),
            state_hashes: RefCell::new(Vec::new()),
            events: RefCell::new(Vec::new()),
            now: Cell::new(Duration::ZERO),
        }
    }

    fn log(&self, event: String) {
        let at = turmoil::sim_elapsed().unwrap_or(self.now.get());
        self.events.borrow_mut().push(format!("{:>9.3}s {event}", at.as_secs_f64()));
    }
}

/// Runs one seed, with `planted` bug if any.
///
/// # Errors
/// The run did not finish (a liveness failure, or a node that could not start), with its seed.
pub fn run(seed: u64, planted: Option<PlantedBug>) -> Result<SimReport, SimFailure> {
    let mut rng = Rng::new(seed);
    let nodes = if rng.below(2) == 0 { 3 } else { 5 };
    let clients = 2 + rng.index(3);
    let latency_max = Duration::from_millis(1 + rng.below(20));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(SIMULATION_MAX)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(latency_max)
        // A fixed epoch (2026-01-01): the ledger's timestamps, and so its state hash, must not
        // depend on when the simulation ran.
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build();
    let world = Rc::new(World::new(seed, nodes, planted));
    for host in 0..nodes {
        let world = Rc::clone(&world);
        sim.host(host_name(host), move || node::node_main(host, Rc::clone(&world)));
    }
    for client in 0..clients {
        let world = Rc::clone(&world);
        let rng = Rng::new(rng.next_u64());
        sim.client(format!("client-{client}"), workload::client(client, clients, rng, world));
    }
    sim.client("operator", operator::operator(Rng::new(rng.next_u64()), Rc::clone(&world)));
    sim.client("auditor", operator::auditor(clients, Rc::clone(&world)));

    let mut driver = Driver {
        world: &world,
        rng,
        latency_max,
        faults: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        applied: vec![None; nodes],
        invariant_violation: None,
    };
    // A panic is an assertion in the real code (ours or openraft's) that caught a broken
    // invariant: a safety failure, reported with the trace so far.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.run(&mut sim)));
    let failure = match ran {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some((reason, false)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Some((format!("a task panicked: {message}"), true))
        }
    };
    if let Some((reason, panicked)) = failure {
        let events = world.events.borrow().clone();
        if panicked {
            // Leak the hosts rather than run their destructors after a panic left them
            // half-updated (a second panic while unwinding would abort the report).
            std::mem::forget(sim);
        }
        return Err(SimFailure { seed, reason, panicked, events });
    }
    Ok(judge(seed, nodes, &world, driver))
}

/// Judges what the run recorded: the history against the bank model, the trace hash.
fn judge(seed: u64, nodes: usize, world: &World, driver: Driver<'_>) -> SimReport {
    let Driver { faults, outcomes, invariant_violation, .. } = driver;
    let recorded = world.history.borrow().clone();
    let history: Vec<Call<Op, Ret>> = recorded
        .iter()
        .map(|r| if r.stale { Call { invoked: 0, ..r.call.clone() } } else { r.call.clone() })
        .collect();
    let state_hashes = world.state_hashes.borrow().clone();
    let events = world.events.borrow().clone();
    let bank = Bank::new(crate::ledger::guarded(workload::WALLETS));
    let finding = bank::check_per_account(&bank, &history, CONFIGURATIONS_MAX);
    let mut hasher = std::hash::DefaultHasher::new();
    format!("{recorded:?}").hash(&mut hasher);
    state_hashes.hash(&mut hasher);
    events.hash(&mut hasher);
    SimReport {
        seed,
        nodes,
        calls: history.len(),
        unanswered: history.iter().filter(|c| c.answered.is_none()).count(),
        faults,
        outcomes,
        finding,
        invariant_violation,
        state_hashes,
        trace_hash: hasher.finish(),
        history,
        recorded,
        events,
    }
}

fn host_name(host: usize) -> String {
    format!("node-{}", host + 1)
}

/// One fault in force, ended by `heal`.
enum Active {
    Partition(String, String),
    OneWay(String, String),
    Hold(String, String),
    Loss(String, String),
    Delay(String, String),
    Crash(String),
    FailSyncs(usize),
    /// The operator is on it (a transfer or a replacement); over when the operator is idle.
    Operator,
    /// A corrupted row, waiting to be read; the replacement follows when a node notices.
    Corrupt(usize),
}

/// Steps the simulation and plays the world around the cluster: injects faults, restarts the
/// nodes that stop, checks invariants.
struct Driver<'w> {
    world: &'w World,
    rng: Rng,
    latency_max: Duration,
    faults: BTreeMap<&'static str, u32>,
    outcomes: BTreeMap<&'static str, u32>,
    /// Each host's applied marker when its invariants were last checked.
    applied: Vec<Option<Vec<u8>>>,
    invariant_violation: Option<String>,
}

impl Driver<'_> {
    fn run(&mut self, sim: &mut turmoil::Sim<'_>) -> Result<(), String> {
        let mut active: Option<(Active, Duration)> = None;
        let mut next = Duration::from_secs(2);
        loop {
            if sim.step().map_err(|e| e.to_string())? {
                return Ok(());
            }
            self.world.now.set(sim.elapsed());
            self.supervise(sim);
            self.check_invariants();
            let now = sim.elapsed();
            if let Some((fault, until)) = &active {
                let over = match fault {
                    Active::Operator => !self.world.operator_busy.get(),
                    _ => now >= *until || now >= SAFETY_PHASE,
                };
                if over {
                    self.heal(sim, fault);
                    active = None;
                }
            }
            let busy = active.is_some()
                || self.world.operator_busy.get()
                || !self.world.stopped.borrow().is_empty();
            if now >= SAFETY_PHASE {
                self.world.healed.set(!busy);
                continue;
            }
            if !busy && now >= next && self.world.ready.get() {
                let lasts = Duration::from_millis(200 + self.rng.below(2_000));
                active = Some((self.inject(sim), now + lasts));
                next = now + lasts + Duration::from_millis(self.rng.below(1_500));
            }
        }
    }

    /// Restarts the nodes that stopped by themselves (replaces them when their data is
    /// corrupt), and the hosts the operator wiped.
    fn supervise(&mut self, sim: &mut turmoil::Sim<'_>) {
        let stopped = std::mem::take(&mut *self.world.stopped.borrow_mut());
        for (host, reason) in stopped {
            let name = host_name(host);
            self.world.log(format!("{name} stopped: {reason}"));
            if reason.contains("orrupt") {
                *self.outcomes.entry("corruption caught").or_insert(0) += 1;
                self.world.operator_busy.set(true);
                self.world.requests.borrow_mut().push_back(Request::Replace { host });
            } else {
                *self.outcomes.entry("stopped and restarted").or_insert(0) += 1;
                sim.crash(name.as_str());
                sim.bounce(name.as_str());
            }
        }
        let reboots = std::mem::take(&mut *self.world.reboots.borrow_mut());
        for host in reboots {
            *self.outcomes.entry("node replaced").or_insert(0) += 1;
            let name = host_name(host);
            sim.crash(name.as_str());
            sim.bounce(name.as_str());
        }
    }

    /// Checks every node whose applied state moved since the last look.
    fn check_invariants(&mut self) {
        if self.invariant_violation.is_some() {
            return;
        }
        let stores = self.world.stores.borrow().clone();
        for (host, store) in stores.iter().enumerate() {
            let Some(store) = store else { continue };
            let Ok(applied) = store.applied() else { continue };
            if applied == self.applied[host] {
                continue;
            }
            self.applied[host].clone_from(&applied);
            // A corrupted row is the node's to find; the checksums keep it from the check.
            let Ok(records) = store.records() else { continue };
            if let Err(violation) = ledger_sm::invariants::check(&records) {
                let violation =
                    format!("{} at applied {applied:?}: {violation:?}", host_name(host));
                self.world.log(format!("INVARIANT BROKEN on {violation}"));
                self.invariant_violation = Some(violation);
                return;
            }
        }
    }

    fn inject(&mut self, sim: &mut turmoil::Sim<'_>) -> Active {
        let nodes = self.world.nodes;
        let (a, b) = two_hosts(&mut self.rng, nodes);
        let (name_a, name_b) = (host_name(a), host_name(b));
        let (kind, fault) = match self.rng.below(11) {
            0 => {
                sim.partition(name_a.as_str(), name_b.as_str());
                ("partition", Active::Partition(name_a, name_b))
            }
            1 => {
                sim.partition_oneway(name_a.as_str(), name_b.as_str());
                ("one-way partition", Active::OneWay(name_a, name_b))
            }
            2 => {
                sim.hold(name_a.as_str(), name_b.as_str());
                ("held messages", Active::Hold(name_a, name_b))
            }
            3 => {
                let rate = 0.05 + f64::from(u32::try_from(self.rng.below(25)).unwrap_or(0)) / 100.0;
                sim.set_link_fail_rate(name_a.as_str(), name_b.as_str(), rate);
                ("message loss", Active::Loss(name_a, name_b))
            }
            4 => {
                let delay = Duration::from_millis(50 + self.rng.below(400));
                sim.set_link_latency(name_a.as_str(), name_b.as_str(), delay);
                ("delay", Active::Delay(name_a, name_b))
            }
            5 | 6 => {
                let tear = self.rng.below(2) == 0;
                self.world.tear.borrow_mut()[a] = tear;
                sim.crash(name_a.as_str());
                (if tear { "crash with a torn write" } else { "crash" }, Active::Crash(name_a))
            }
            7 => {
                if let Some(store) = &self.world.stores.borrow()[a] {
                    store.kv().fail_syncs(1);
                }
                ("fsync failure", Active::FailSyncs(a))
            }
            8 => {
                let wallet = crate::ledger::ledger_id(2 + self.rng.index(workload::WALLETS));
                if let Some(store) = &self.world.stores.borrow()[a] {
                    store.kv().corrupt(Table::Accounts, &wallet.to_be_bytes());
                }
                ("corruption", Active::Corrupt(a))
            }
            9 => {
                self.world.operator_busy.set(true);
                self.world.requests.borrow_mut().push_back(Request::TransferLeader);
                ("leader transfer", Active::Operator)
            }
            _ => {
                self.world.operator_busy.set(true);
                self.world.requests.borrow_mut().push_back(Request::Replace { host: a });
                ("node replacement", Active::Operator)
            }
        };
        self.world.log(format!("fault: {kind} ({name})", name = fault_hosts(&fault)));
        *self.faults.entry(kind).or_insert(0) += 1;
        fault
    }

    fn heal(&self, sim: &mut turmoil::Sim<'_>, fault: &Active) {
        self.world.log(format!("healing: {}", fault_hosts(fault)));
        match fault {
            Active::Partition(a, b) => sim.repair(a.as_str(), b.as_str()),
            Active::OneWay(a, b) => sim.repair_oneway(a.as_str(), b.as_str()),
            Active::Hold(a, b) => sim.release(a.as_str(), b.as_str()),
            Active::Loss(a, b) => {
                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                sim.repair(a.as_str(), b.as_str());
            }
            Active::Delay(a, b) => {
                sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(1));
                sim.set_link_max_message_latency(a.as_str(), b.as_str(), self.latency_max);
            }
            Active::Crash(a) => sim.bounce(a.as_str()),
            Active::FailSyncs(host) => {
                if let Some(store) = &self.world.stores.borrow()[*host] {
                    store.kv().fail_syncs(0);
                }
            }
            // Found now if no read found it yet: latent damage would otherwise outlive the
            // fault and meet the next one.
            Active::Corrupt(host) => {
                self.world.operator_busy.set(true);
                self.world.requests.borrow_mut().push_back(Request::Scrub { host: *host });
            }
            Active::Operator => {}
        }
    }
}

fn fault_hosts(fault: &Active) -> String {
    match fault {
        Active::Partition(a, b)
        | Active::OneWay(a, b)
        | Active::Hold(a, b)
        | Active::Loss(a, b)
        | Active::Delay(a, b) => format!("{a} {b}"),
        Active::Crash(a) => a.clone(),
        Active::FailSyncs(host) | Active::Corrupt(host) => host_name(*host),
        Active::Operator => "operator".to_owned(),
    }
}

fn two_hosts(rng: &mut Rng, nodes: usize) -> (usize, usize) {
    let a = rng.index(nodes);
    let b = (a + 1 + rng.index(nodes - 1)) % nodes;
    assert_ne!(a, b);
    (a, b)
}
