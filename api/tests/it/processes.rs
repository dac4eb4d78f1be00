//! Real `ledgerd` processes driven by `ledgerctl`, as the run command does. Goal: a TOML config
//! starts a node; `ledgerctl init` forms the cluster; `ledgerctl demo` through a follower prints
//! the expected balances; SIGTERM stops every node cleanly (exit 0); restarted on the same data,
//! the cluster recovers, the demo answers `exists` and the balances are unchanged.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const LEDGERD: &str = env!("CARGO_BIN_EXE_ledgerd");
const LEDGERCTL: &str = env!("CARGO_BIN_EXE_ledgerctl");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, id: u64, port: u16) -> Child {
    let node = dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&node).unwrap();
    let config = node.join("ledgerd.toml");
    let toml = format!(
        "node_id = {id}\ncluster_id = 3\nlisten = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n\
         heartbeat_ms = 50\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n",
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
