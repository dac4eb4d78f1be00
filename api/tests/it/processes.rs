//! Real `ledgerd` processes driven by `ledgerctl`, as the run command does. Goal: a TOML config
//! starts a node; `ledgerctl init` forms the cluster; `ledgerctl demo` through a follower prints
//! the expected balances; SIGTERM stops every node cleanly (exit 0); restarted on the same data,
//! the cluster recovers, the demo answers `exists` and the balances are unchanged. And: a leader
//! SIGKILLed in the middle of writes is replaced, acknowledged writes survive and retried ones
//! answer `exists`, and the killed node restarts, rejoins and ends with the same state hash.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use api::convert::{pb_u128, u128_of};
use api::proto::ledger as pb;
use api::proto::ledger::admin_client::AdminClient;
use api::proto::ledger::ledger_client::LedgerClient;

const LEDGERD: &str = env!("CARGO_BIN_EXE_ledgerd");
const LEDGERCTL: &str = env!("CARGO_BIN_EXE_ledgerctl");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, id: u64, port: u16) -> Child {
    start_with(dir, id, port, "")
}

/// Starts node `id` with `extra` lines appended to its config file.
fn start_with(dir: &Path, id: u64, port: u16, extra: &str) -> Child {
    let node = dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&node).unwrap();
    let config = node.join("ledgerd.toml");
    let toml = format!(
        "node_id = {id}\ncluster_id = 3\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n\
         heartbeat_ms = 50\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n{extra}",
        node.join("data")
    );
    std::fs::write(&config, toml).unwrap();
    let log = std::fs::File::create(node.join("ledgerd.log")).unwrap();
    Command::new(LEDGERD)
        .arg("--config")
        .arg(&config)
        .env("LEDGERD_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn ledgerctl(port: u16, args: &[&str]) -> Output {
    let output = Command::new(LEDGERCTL)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--wait", "30"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ledgerctl {args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn terminate(children: Vec<Child>) {
    for child in &children {
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        assert!(status.unwrap().success());
    }
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "ledgerd exited with {status} after SIGTERM");
    }
}

fn start_all(dir: &Path, ports: &[u16]) -> Vec<Child> {
    (1..).zip(ports).map(|(id, port)| start(dir, id, *port)).collect()
}

#[test]
fn ledgerd_processes_run_the_demo_and_stop_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let members: Vec<String> =
        (1..).zip(ports).map(|(id, port)| format!("{id}=127.0.0.1:{port}")).collect();
    let mut init = vec!["init"];
    for member in &members {
        init.extend(["--member", member]);
    }

    let nodes = start_all(dir.path(), &ports);
    ledgerctl(ports[0], &init);
    let demo = ledgerctl(ports[1], &["demo"]);
    let text = String::from_utf8(demo.stdout).unwrap();
    assert!(text.contains("alice (points)                    380"), "{text}");
    assert!(text.contains("gift card (cents)                3750"), "{text}");
    let status = String::from_utf8(ledgerctl(ports[2], &["status"]).stdout).unwrap();
    assert_eq!(status.lines().filter(|l| l.contains("127.0.0.1")).count(), 3, "{status}");
    terminate(nodes);

    let nodes = start_all(dir.path(), &ports);
    ledgerctl(ports[0], &init); // Same members: a no-op.
    let again = String::from_utf8(ledgerctl(ports[2], &["demo"]).stdout).unwrap();
    assert!(again.contains("earn: alice 500, bob 300: exists, exists"), "{again}");
    assert!(again.contains("alice (points)                    380"), "{again}");
    terminate(nodes);
}

fn init_args(ports: &[u16]) -> Vec<String> {
    let mut args = vec!["init".to_owned()];
    for (id, port) in (1..).zip(ports) {
        args.extend(["--member".to_owned(), format!("{id}=127.0.0.1:{port}")]);
    }
    args
}

async fn status(port: u16) -> Option<pb::StatusReply> {
    let channel = crate::harness::channel(&format!("127.0.0.1:{port}")).await;
    let reply = AdminClient::new(channel).status(pb::StatusRequest {}).await.ok()?;
    Some(reply.into_inner())
}

/// Earns 5 points for the demo's alice (account 2001) from its merchant (1001), through `port`,
/// retrying while the cluster elects a leader.
async fn earn_alice(port: u16, id: u128) -> String {
    let mut transfer = crate::harness::earn(id, 2_001, 5);
    transfer.debit_account = pb_u128(1_001);
    let request = pb::CreateTransfersRequest { transfers: vec![transfer] };
    let deadline = Instant::now() + crate::harness::WAIT;
    loop {
        let channel = crate::harness::channel(&format!("127.0.0.1:{port}")).await;
        match LedgerClient::new(channel).create_transfers(request.clone()).await {
            Ok(reply) => return reply.into_inner().results[0].result.clone(),
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("earn {id} via {port}: {status:?}"),
        }
    }
}

/// Waits until every node applied at least what `port`'s node logged; returns the hashes.
async fn converge(ports: &[u16], index: u64) -> Vec<String> {
    let mut hashes = Vec::new();
    for port in ports {
        let deadline = Instant::now() + crate::harness::WAIT;
        loop {
            let status = status(*port).await;
            if let Some(status) = status.as_ref().filter(|s| s.applied >= Some(index)) {
                hashes.push(status.state_hash.clone());
                break;
            }
            assert!(Instant::now() < deadline, "node on {port} stuck at {status:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    hashes
}

/// Initializes the cluster on `ports` and runs the demo; names the leader: its id, its index
/// in `ports`, and the other two nodes' ports.
async fn form(ports: &[u16; 3]) -> (u64, usize, Vec<u16>) {
    let init = init_args(ports);
    ledgerctl(ports[0], &init.iter().map(String::as_str).collect::<Vec<_>>());
    ledgerctl(ports[0], &["demo"]);
    let leader = status(ports[0]).await.unwrap().leader.unwrap();
    let leader_at = usize::try_from(leader - 1).unwrap();
    let others = (0..3).filter(|i| *i != leader_at).map(|i| ports[i]).collect();
    (leader, leader_at, others)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_write_loses_nothing_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = start_all(dir.path(), &ports);
    let (leader, leader_at, others) = form(&ports).await;

    for n in 0..20 {
        assert_eq!(earn_alice(others[n % 2], 50_000 + n as u128).await, "ok");
    }
    let killed = Command::new("kill").arg("-KILL").arg(nodes[leader_at].id().to_string()).status();
    assert!(killed.unwrap().success());
    nodes[leader_at].wait().unwrap();
    assert_eq!(earn_alice(others[1], 50_019).await, "exists", "acknowledged before the kill");
    for n in 20..40 {
        assert_eq!(earn_alice(others[n % 2], 50_000 + n as u128).await, "ok");
    }

    nodes[leader_at] = start(dir.path(), leader, ports[leader_at]);
    let index = status(others[0]).await.unwrap().last_log_index.unwrap();
    let hashes = converge(&ports, index).await;
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let request =
        pb::LookupAccountsRequest { ids: vec![pb_u128(2_001).unwrap()], consistency: None };
    let channel = crate::harness::channel(&format!("127.0.0.1:{}", ports[leader_at])).await;
    let reply = LedgerClient::new(channel).lookup_accounts(request).await.unwrap().into_inner();
    let credits = u128_of(reply.accounts[0].balances.unwrap().credits_posted.as_ref());
    assert_eq!(credits, 500 + 40 * 5, "the demo's 500 and each earn once");
    terminate(nodes);
}

/// A PostgreSQL 15 of the test's own in a temporary directory (`scripts/pg-instance`;
/// `scripts/test` installs the server); stopped when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    url: String,
}

impl Postgres {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(pg_instance()).arg("start").arg(dir.path()).output().unwrap();
        assert!(
            output.status.success(),
            "scripts/pg-instance start (scripts/test installs PostgreSQL 15): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        Self { dir, url }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ =
            Command::new(pg_instance()).arg("stop").arg(self.dir.path()).arg("immediate").output();
    }
}

fn pg_instance() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-instance")
}

/// `count` earns of 1 point for the demo's alice and bob, in one request through `port`,
/// retried while the cluster elects a leader (a retry may find them done: `exists`).
async fn earn_burst(port: u16, first: u128, count: u128) {
    let transfers = (first..first + count)
        .map(|id| {
            let mut transfer = crate::harness::earn(id, 2_001 + id % 2, 1);
            transfer.debit_account = pb_u128(1_001);
            transfer
        })
        .collect();
    let request = pb::CreateTransfersRequest { transfers };
    let deadline = Instant::now() + crate::harness::WAIT;
    loop {
        let channel = crate::harness::channel(&format!("127.0.0.1:{port}")).await;
        match LedgerClient::new(channel).create_transfers(request.clone()).await {
            Ok(reply) => {
                let results = reply.into_inner().results;
                let done = |r: &pb::TransferResult| r.result == "ok" || r.result == "exists";
                assert!(results.iter().all(done), "{:?}", results[0]);
                return;
            }
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("earns from {first} via {port}: {status:?}"),
        }
    }
}

/// The leader's `sync-out status` as JSON, through `port`.
fn sync_out_status(port: u16) -> serde_json::Value {
    let output = ledgerctl(port, &["--json", "sync-out", "status"]);
    serde_json::from_slice(&output.stdout).unwrap()
}

fn number(value: &serde_json::Value) -> u64 {
    value.as_u64().unwrap_or_else(|| value.as_str().unwrap_or("0").parse().unwrap())
}

/// Goal: `ledgerd` nodes exporting to PostgreSQL, the leader SIGKILLed while it takes a burst
/// of events out: the new leader resumes, and `ledgerctl sync-out reconcile` finds every
/// wallet in PostgreSQL equal to the ledger. Method: three processes configured with
/// `sync_out_postgres_url`, 1000 earns in bursts through a follower, the leader killed right
/// after them, more earns, the killed node restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_mid_export_leaves_the_read_model_exact() {
    let postgres = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let extra = format!("sync_out_postgres_url = {:?}\n", postgres.url);
    let mut nodes: Vec<Child> =
        (1..).zip(ports).map(|(id, port)| start_with(dir.path(), id, port, &extra)).collect();
    let (leader, leader_at, others) = form(&ports).await;

    for burst in 0..10 {
        earn_burst(others[0], 60_000 + burst * 100, 100).await;
    }
    let killed = Command::new("kill").arg("-KILL").arg(nodes[leader_at].id().to_string()).status();
    assert!(killed.unwrap().success());
    nodes[leader_at].wait().unwrap();
    for burst in 10..15 {
        earn_burst(others[1], 60_000 + burst * 100, 100).await;
    }
    nodes[leader_at] = start_with(dir.path(), leader, ports[leader_at], &extra);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sync_out_status(others[0]);
        let postgres = &status["sinks"][0];
        assert_eq!(postgres["sink"], "postgres", "{status}");
        if number(&postgres["delivered"]) == number(&status["outbox_next"]) {
            break;
        }
        assert!(Instant::now() < deadline, "the export did not catch up: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let index = status(others[0]).await.unwrap().last_log_index.unwrap();
    converge(&ports, index).await;
    for port in ports {
        let output = ledgerctl(port, &["sync-out", "reconcile"]);
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("the read model matches the ledger"), "{text}");
    }
    let table = String::from_utf8(ledgerctl(others[1], &["sync-out", "status"]).stdout).unwrap();
    assert!(table.contains("cursor postgres"), "{table}");
    terminate(nodes);
}

#[test]
fn ledgerd_help_documents_every_setting() {
    let help = Command::new(LEDGERD).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let source = include_str!("../../src/config.rs");
    let settings = source.split("pub struct Settings {").nth(1).unwrap();
    let settings = settings.split("\n}\n").next().unwrap();
    let keys: Vec<&str> = settings
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub "))
        .filter_map(|line| line.split_once(": Option<").map(|(key, _)| key))
        .collect();
    assert!(keys.len() >= 23, "{keys:?}");
    for key in keys {
        let flag = format!("--{}", key.replace('_', "-"));
        let env = format!("LEDGERD_{}", key.to_uppercase());
        assert!(help.contains(&flag) && help.contains(&env), "{key} missing from --help:\n{help}");
    }
}
