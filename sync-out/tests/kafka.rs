//! The Kafka sink against the real Tansu broker (`scripts/test` installs the pinned build and
//! names it in `LEDGER_TANSU`; each test starts its own, in memory) and the real state machine
//! over a store. A consumer assigned every partition reads the topics back; the checks are
//! those of a consumer deduplicating by `ce_id`: each event exactly once, in order per account.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, until, Ledger};
use ledger_sm::command::{CursorCommand, Operation};
use ledger_sm::query;
use ledger_sm::state::StateRead;
use ledger_sm::types::{EventSeq, SinkId};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sync_out::kafka::{BalanceUpdated, KafkaConfig, KafkaSink, BALANCES_TOPIC, TRANSACTIONS_TOPIC};
use sync_out::payload::Payload;
use sync_out::{Exporter, SinkStatus};

const PARTITIONS: i32 = 3;

/// A Tansu broker on a port of its own, storing in memory; killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tansu.log");
        let child = spawn(port, &log);
        let broker = Self { child, port, log, _dir: dir };
        broker.wait_listening();
        broker
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the process where it stands (requests in flight get no answer).
    fn freeze(&self) {
        let status = Command::new("kill").arg("-STOP").arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success());
    }

    /// SIGKILL, then a new broker on the same port: what the old one held is gone (memory).
    fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(self.port, &self.log);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16, log: &std::path::Path) -> Child {
    let tansu = std::env::var("LEDGER_TANSU")
        .expect("LEDGER_TANSU names the tansu broker binary (scripts/test installs it)");
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(tansu)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("tansu starts")
}

fn sink(broker: &Broker) -> KafkaSink {
    let mut config = KafkaConfig::new(&broker.address());
    config.partitions = PARTITIONS;
    config.replication = 1;
    config.delivery_timeout = Duration::from_secs(2);
    KafkaSink::new(SinkId::new("kafka").unwrap(), config).unwrap()
}

/// A second cursor held at 0 keeps the whole outbox: the checks compare Kafka with it.
fn keep_outbox(ledger: &Ledger) {
    let hold =
        CursorCommand::Advance { sink: SinkId::new("hold").unwrap(), next: EventSeq(0), term: 1 };
    ledger.execute(Operation::Cursors(vec![hold]));
}

fn delivered(status: &Arc<Mutex<SinkStatus>>) -> u64 {
    status.lock().unwrap().delivered
}

/// One record as a consumer reads it.
#[derive(Clone, Debug)]
struct Received {
    topic: String,
    key: String,
    headers: BTreeMap<String, String>,
    value: Vec<u8>,
}

impl Received {
    fn id(&self) -> u64 {
        self.headers["ce_id"].parse().unwrap()
    }
}

/// The documents' JSON Schemas, as published in `docs/schemas`.
struct Schemas {
    schemas: boon::Schemas,
    transactions: boon::SchemaIndex,
    balances: boon::SchemaIndex,
}

impl Schemas {
    fn load() -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let mut compile = |topic: &str| {
            let path = dir.join(format!("{topic}.json"));
            let path = path.canonicalize().unwrap();
            compiler.compile(path.to_str().unwrap(), &mut schemas).unwrap()
        };
        let transactions = compile(TRANSACTIONS_TOPIC);
        let balances = compile(BALANCES_TOPIC);
        Self { schemas, transactions, balances }
    }

    fn validate(&self, record: &Received) {
        let index =
            if record.topic == TRANSACTIONS_TOPIC { self.transactions } else { self.balances };
        let document: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
        if let Err(error) = self.schemas.validate(&document, index) {
            panic!("{} record breaks its schema: {error}\n{document}", record.topic);
        }
    }
}

/// What the ledger's events must put in Kafka: (topic, key, seq) of every record.
fn expected(ledger: &Ledger) -> BTreeSet<(String, String, u64)> {
    let mut out = BTreeSet::new();
    for payload in payloads(ledger).values() {
        let seq = payload.seq();
        let mut keys: Vec<String> = payload.accounts().into_iter().map(str::to_owned).collect();
        if keys.is_empty() {
            keys.push(format!("asset-{}", payload.asset.unwrap()));
        }
        for key in keys {
            out.insert((TRANSACTIONS_TOPIC.to_owned(), key.clone(), seq));
            if payload.transfer.is_some() {
                out.insert((BALANCES_TOPIC.to_owned(), key, seq));
            }
        }
    }
    out
}

fn payloads(ledger: &Ledger) -> BTreeMap<u64, Payload> {
    let mut out = BTreeMap::new();
    loop {
        let next = out.last_key_value().map_or(0, |(seq, _)| seq + 1);
        let events = query::events(&*ledger.store, EventSeq(next), 1000).unwrap();
        if events.is_empty() {
            return out;
        }
        out.extend(events.iter().map(|record| (record.event.seq.0, Payload::new(record))));
    }
}

/// Reads both topics from the beginning until every record of `want` was seen (or 30 s).
async fn consume(broker: &Broker, want: BTreeSet<(String, String, u64)>) -> Vec<Received> {
    let address = broker.address();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("group.id", "ledger-test")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        for topic in [TRANSACTIONS_TOPIC, BALANCES_TOPIC] {
            for partition in 0..PARTITIONS {
                partitions.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
            }
        }
        consumer.assign(&partitions).unwrap();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !want.is_subset(&seen) && Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
            let Ok(message) = message else { continue };
            let headers = message.headers().map_or_else(BTreeMap::new, |headers| {
                headers
                    .iter()
                    .map(|h| {
                        (h.key.to_owned(), String::from_utf8(h.value.unwrap().to_vec()).unwrap())
                    })
                    .collect()
            });
            let received = Received {
                topic: message.topic().to_owned(),
                key: String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
                headers,
                value: message.payload().unwrap().to_vec(),
            };
            seen.insert((received.topic.clone(), received.key.clone(), received.id()));
            out.push(received);
        }
        let missing: Vec<_> = want.difference(&seen).take(10).collect();
        if !missing.is_empty() {
            eprintln!("consumer: {} records read; missing e.g. {missing:?}", out.len());
        }
        out
    })
    .await
    .unwrap()
}

/// The consumer's view: every record well-formed and equal to the ledger's event; per topic
/// and key, the `ce_id`s first seen are strictly increasing and are exactly the events of
/// that key (nothing lost, nothing reordered, each once after deduplication).
fn check(ledger: &Ledger, records: &[Received]) {
    let payloads = payloads(ledger);
    let schemas = Schemas::load();
    let mut firsts: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for record in records {
        let seq = record.id();
        let h = &record.headers;
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["ce_subject"], record.key);
        assert!(h["ce_time"].ends_with('Z'), "{h:?}");
        let payload = &payloads[&seq];
        schemas.validate(record);
        if record.topic == TRANSACTIONS_TOPIC {
            let got: Payload = serde_json::from_slice(&record.value).unwrap();
            assert_eq!(h["ce_source"], "/localplus-ledger");
            assert_eq!(h["ce_type"], format!("localplus.ledger.{}.v1", payload.kind));
            // An account's fields are exported as they stand then: later changes differ.
            if got.kind == "account_created" {
                assert_eq!((&got.seq, &got.account), (&payload.seq, &payload.account));
            } else {
                assert_eq!(&got, payload);
            }
        } else {
            let got: BalanceUpdated = serde_json::from_slice(&record.value).unwrap();
            let transfer = payload.transfer.as_ref().unwrap();
            assert_eq!(h["ce_source"], format!("/localplus-ledger/accounts/{}", record.key));
            assert_eq!(
                (got.seq.as_str(), got.account.as_str()),
                (payload.seq.as_str(), record.key.as_str())
            );
            let balances = if got.side == "debit" {
                assert_eq!(got.account, transfer.debit_account);
                &transfer.debit_balances
            } else {
                assert_eq!(got.account, transfer.credit_account);
                &transfer.credit_balances
            };
            assert_eq!(&got.balances, balances);
            assert_eq!((&got.transfer_id, &got.amount), (&transfer.id, &transfer.amount));
        }
        let firsts = firsts.entry((record.topic.clone(), record.key.clone())).or_default();
        if !firsts.contains(&seq) {
            assert!(
                firsts.last().is_none_or(|last| *last < seq),
                "{} key {}: event {seq} first seen after {firsts:?}",
                record.topic,
                record.key
            );
            firsts.push(seq);
        }
    }
    let mut want: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for (topic, key, seq) in expected(ledger) {
        want.entry((topic, key)).or_default().push(seq);
    }
    assert_eq!(firsts.len(), want.len());
    for (key, seqs) in &want {
        assert_eq!(firsts.get(key), Some(seqs), "{key:?}");
    }
}

/// Goal: a broker killed in the middle of a delivery loses nothing the ledger committed and
/// reorders nothing of an account; deduplicated by `ce_id`, each event is there once.
/// Method: a mixed workload exported while a consumer reads along; the broker is frozen with
/// a delivery in flight, killed and restarted empty (Tansu keeps it in memory, so what it
/// acknowledged before is what the first consumer read); the rest lands on the new broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_mid_delivery_loses_and_reorders_nothing() {
    let mut broker = Broker::start();
    let ledger = Ledger::new();
    ledger.setup();
    keep_outbox(&ledger);
    let mut wallets = 0;
    (0..120).for_each(|step| ledger.step(step, &mut wallets));
    let node = ledger.node(1);
    let exporter =
        Exporter::new(Arc::clone(&ledger.store), sink(&broker), Arc::clone(&node), config());
    let status = exporter.status();
    let task = tokio::spawn(exporter.run());
    until("the first events in kafka", async || delivered(&status) == ledger.events_next()).await;
    let before = consume(&broker, expected(&ledger)).await;

    broker.freeze();
    (120..240).for_each(|step| ledger.step(step, &mut wallets));
    // The delivery in flight times out. (Killed sooner, the broker would come back within
    // the producer's timeout without the producer ids it handed out — a loss of state a
    // durable broker never has, and one the in-memory one answers by dropping records.)
    until("the delivery in flight to fail", async || status.lock().unwrap().errors_total > 0).await;
    broker.kill_and_restart();
    (240..360).for_each(|step| ledger.step(step, &mut wallets));
    until("every event in kafka", async || delivered(&status) == ledger.events_next()).await;

    let seen: BTreeSet<_> =
        before.iter().map(|r| (r.topic.clone(), r.key.clone(), r.id())).collect();
    let after = consume(&broker, expected(&ledger).difference(&seen).cloned().collect()).await;
    let records: Vec<Received> = before.into_iter().chain(after).collect();
    check(&ledger, &records);
    assert!(status.lock().unwrap().errors_total > 0, "the outage was seen");
    task.abort();
}

/// Goal: a change of leader in the middle of an export keeps each account's records in
/// order; the new leader repeats what the replicated cursor had not covered, which
/// deduplication by `ce_id` absorbs. Method: the first leader is deposed while it exports a
/// burst; the second settles (the first's records land meanwhile) and resumes at the cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_resumes_in_order() {
    let broker = Broker::start();
    let ledger = Ledger::new();
    ledger.setup();
    keep_outbox(&ledger);
    let mut wallets = 0;
    (0..100).for_each(|step| ledger.step(step, &mut wallets));
    let first = ledger.node(1);
    let exporter =
        Exporter::new(Arc::clone(&ledger.store), sink(&broker), Arc::clone(&first), config());
    let first_status = exporter.status();
    let first_task = tokio::spawn(exporter.run());
    until("the first leader's export", async || delivered(&first_status) == ledger.events_next())
        .await;

    // The first leader is deposed while it takes this burst out.
    (100..400).for_each(|step| ledger.step(step, &mut wallets));
    first.term.store(0, SeqCst);
    let second = ledger.node(2);
    let exporter =
        Exporter::new(Arc::clone(&ledger.store), sink(&broker), Arc::clone(&second), config());
    let status = exporter.status();
    let task = tokio::spawn(exporter.run());
    (400..500).for_each(|step| ledger.step(step, &mut wallets));
    until("the second leader's export", async || delivered(&status) == ledger.events_next()).await;

    let records = consume(&broker, expected(&ledger)).await;
    check(&ledger, &records);
    let cursor = ledger.store.cursors().unwrap();
    let kafka = cursor.iter().find(|c| c.sink.name() == "kafka").unwrap();
    assert_eq!((kafka.next.0, kafka.term), (ledger.events_next(), 2));
    first_task.abort();
    task.abort();
}
