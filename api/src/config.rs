//! `ledgerd`'s configuration: a TOML file, overridden by environment variables
//! (`LEDGERD_<KEY>`), overridden by flags (`--<key>`). One struct names every key once, for all
//! three sources; unknown keys in the file are errors, so a typo never passes silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft::network::Deadlines;
use raft::NodeConfig;
use serde::Deserialize;

/// Every setting of a node. In the file, keys are as below with `_`; as flags, with `-`.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This node's id: non-zero, unique in the cluster.
    #[arg(long, env = "LEDGERD_NODE_ID")]
    pub node_id: Option<u64>,
    /// The cluster's id: non-zero; a data directory of another cluster is refused.
    #[arg(long, env = "LEDGERD_CLUSTER_ID")]
    pub cluster_id: Option<u64>,
    /// Where the node listens for clients and peers [default: 127.0.0.1:7001]. Peers and
    /// forwarded writes reach it at the address its membership entry names (given to
    /// `ledgerctl init` or `add-learner`), which must lead here.
    #[arg(long, env = "LEDGERD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The local address this node connects to its peers from [default: the system's choice]:
    /// on a host with several interfaces, the one replication should use (and firewall rules
    /// can name).
    #[arg(long, env = "LEDGERD_PEER_SOURCE_ADDRESS")]
    pub peer_source_address: Option<std::net::IpAddr>,
    /// The node's RocksDB directory (created if missing).
    #[arg(long, env = "LEDGERD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Leader heartbeat interval [default: 100].
    #[arg(long, env = "LEDGERD_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// A follower starts an election after a random timeout in [min, max] [default: 1000].
    #[arg(long, env = "LEDGERD_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    /// [default: 2000].
    #[arg(long, env = "LEDGERD_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// Build a snapshot after this many applied entries [default: 10000].
    #[arg(long, env = "LEDGERD_SNAPSHOT_AFTER_ENTRIES")]
    pub snapshot_after_entries: Option<u64>,
    /// Entries kept behind a snapshot for followers briefly behind [default: 1000].
    #[arg(long, env = "LEDGERD_LOGS_KEPT_AFTER_SNAPSHOT")]
    pub logs_kept_after_snapshot: Option<u64>,
    /// Deadline of one internal RPC [default: 5000].
    #[arg(long, env = "LEDGERD_RPC_TIMEOUT_MS")]
    pub rpc_timeout_ms: Option<u64>,
    /// Deadline of connecting to a peer [default: 1000].
    #[arg(long, env = "LEDGERD_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: Option<u64>,
    /// Deadline of one whole snapshot transfer [default: 600000].
    #[arg(long, env = "LEDGERD_SNAPSHOT_TIMEOUT_MS")]
    pub snapshot_timeout_ms: Option<u64>,
    /// How often a peer connection is pinged, and how long a ping may go unanswered before
    /// the connection is redialed [default: 2000].
    #[arg(long, env = "LEDGERD_PEER_KEEPALIVE_MS")]
    pub peer_keepalive_ms: Option<u64>,
    /// Client write requests that may wait for the leader's batcher [default: 16384].
    #[arg(long, env = "LEDGERD_WRITE_QUEUE")]
    pub write_queue: Option<usize>,
    /// Raft entries the batcher keeps in flight [default: 4].
    #[arg(long, env = "LEDGERD_ENTRIES_IN_FLIGHT")]
    pub entries_in_flight: Option<usize>,
    /// How often the leader looks for due holds and expiring lots [default: 1000].
    #[arg(long, env = "LEDGERD_TICK_INTERVAL_MS")]
    pub tick_interval_ms: Option<u64>,
    /// Log filter, in `tracing` syntax [default: info].
    #[arg(long, env = "LEDGERD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// `text` or `json` [default: text].
    #[arg(long, env = "LEDGERD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// A TOML file of API tokens (`[[token]]` with name, hash, scopes, and optionally
    /// expires_at, rate_per_second, burst); `ledgerctl token new` makes entries. Without it
    /// the node asks no credentials (a local demo only).
    #[arg(long, env = "LEDGERD_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// A file holding the cluster's peer secret (one line, the same on every node), which
    /// nodes present to each other; required with tokens_file.
    #[arg(long, env = "LEDGERD_PEER_SECRET_FILE")]
    pub peer_secret_file: Option<PathBuf>,
    /// This node's TLS certificate chain (PEM); with it, the node speaks only TLS. Its names
    /// must include the host of the address peers and clients use for it.
    #[arg(long, env = "LEDGERD_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "LEDGERD_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) that signed the peers' certificates, checked when calling them.
    #[arg(long, env = "LEDGERD_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// With it, every client and peer must present a certificate this CA (PEM) signed
    /// (mutual TLS).
    #[arg(long, env = "LEDGERD_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Sync-out to a JSON-lines file (sink `file`): every committed event, once, in order.
    #[arg(long, env = "LEDGERD_SYNC_OUT_FILE")]
    pub sync_out_file: Option<PathBuf>,
    /// Sync-out to the PostgreSQL wallet read model (sink `postgres`): a connection URL,
    /// `postgres://user:password@host:5432/db?sslmode=require`. Keep it in the environment or
    /// a file only the node reads: it may carry a password.
    #[arg(long, env = "LEDGERD_SYNC_OUT_POSTGRES_URL")]
    pub sync_out_postgres_url: Option<String>,
    /// PEM certificates of the authorities signing PostgreSQL's certificate (for TLS).
    #[arg(long, env = "LEDGERD_SYNC_OUT_POSTGRES_CA_FILE")]
    pub sync_out_postgres_ca_file: Option<PathBuf>,
    /// Sync-out to Kafka (sink `kafka`): the bootstrap brokers, `host:port,host:port`. Topics
    /// `ledger.transactions.v1` and `wallet.balance-updated.v1` are created when missing.
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_BROKERS")]
    pub sync_out_kafka_brokers: Option<String>,
    /// A file of librdkafka properties, one `key=value` per line (`#` starts a comment), for
    /// the cluster's security and tuning: `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`, `compression.type`, ... Keep it
    /// readable by the node only: it may carry a password.
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_PROPERTIES_FILE")]
    pub sync_out_kafka_properties_file: Option<PathBuf>,
    /// The CloudEvents `ce_source` of exported events [default: /localplus-ledger].
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_SOURCE")]
    pub sync_out_kafka_source: Option<String>,
    /// Partitions of the topics the sink creates [default: 12].
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_PARTITIONS")]
    pub sync_out_kafka_partitions: Option<i32>,
    /// Replicas of the topics the sink creates [default: 3; `min.insync.replicas` 2].
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_REPLICATION")]
    pub sync_out_kafka_replication: Option<i32>,
    /// How long a record may wait for the brokers' acknowledgement before the delivery is
    /// retried [default: 10000]. A new leader waits 1.5 times this before exporting to Kafka.
    #[arg(long, env = "LEDGERD_SYNC_OUT_KAFKA_DELIVERY_TIMEOUT_MS")]
    pub sync_out_kafka_delivery_timeout_ms: Option<u64>,
    /// Events the outbox may hold (a sink not acknowledging) before the node alarms.
    #[arg(long, env = "LEDGERD_OUTBOX_HIGH_WATER_EVENTS")]
    pub outbox_high_water_events: Option<u64>,
}

macro_rules! overlay {
    ($top:expr, $bottom:expr, $($field:ident),+ $(,)?) => {
        Settings { $($field: $top.$field.or($bottom.$field)),+ }
    };
}

impl Settings {
    /// `self` where set, else `under`.
    #[must_use]
    pub fn over(self, under: Self) -> Self {
        overlay!(
            self,
            under,
            node_id,
            cluster_id,
            listen,
            peer_source_address,
            data_dir,
            heartbeat_ms,
            election_timeout_min_ms,
            election_timeout_max_ms,
            snapshot_after_entries,
            logs_kept_after_snapshot,
            rpc_timeout_ms,
            connect_timeout_ms,
            snapshot_timeout_ms,
            peer_keepalive_ms,
            write_queue,
            entries_in_flight,
            tick_interval_ms,
            log_level,
            log_format,
            tokens_file,
            peer_secret_file,
            tls_cert_file,
            tls_key_file,
            tls_ca_file,
            tls_client_ca_file,
            sync_out_file,
            sync_out_postgres_url,
            sync_out_postgres_ca_file,
            sync_out_kafka_brokers,
            sync_out_kafka_properties_file,
            sync_out_kafka_source,
            sync_out_kafka_partitions,
            sync_out_kafka_replication,
            sync_out_kafka_delivery_timeout_ms,
            outbox_high_water_events,
        )
    }

    /// Reads a TOML file of settings.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has an unknown key or a wrong type.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A node's configuration, complete and checked.
#[derive(Clone, Debug)]
pub struct Config {
    pub node: NodeConfig,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub log_format: LogFormat,
    /// The tokens file and the peer secret's file, when the node checks credentials.
    pub auth_files: Option<(PathBuf, PathBuf)>,
    pub tls: Option<crate::tls::TlsFiles>,
    pub sync_out: crate::sync_out::SyncOutConfig,
}

fn required<T>(value: Option<T>, key: &str) -> Result<T, String> {
    value.ok_or_else(|| {
        format!(
            "{key} is required (config key {key}, LEDGERD_{}, or --{})",
            key.to_uppercase(),
            key.replace('_', "-")
        )
    })
}

/// The raft node's part of `settings`, with defaults, checked.
fn node_config(settings: &Settings, node_id: u64, cluster_id: u64) -> Result<NodeConfig, String> {
    let mut node = NodeConfig::new(node_id, cluster_id);
    let set = |value: Option<u64>, default: u64| value.unwrap_or(default);
    node.heartbeat_ms = set(settings.heartbeat_ms, node.heartbeat_ms);
    node.election_timeout_min_ms =
        set(settings.election_timeout_min_ms, node.election_timeout_min_ms);
    node.election_timeout_max_ms =
        set(settings.election_timeout_max_ms, node.election_timeout_max_ms);
    node.snapshot_after_entries = set(settings.snapshot_after_entries, node.snapshot_after_entries);
    node.logs_kept_after_snapshot =
        set(settings.logs_kept_after_snapshot, node.logs_kept_after_snapshot);
    let millis =
        |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
    node.deadlines = Deadlines {
        connect: millis(settings.connect_timeout_ms, node.deadlines.connect),
        rpc: millis(settings.rpc_timeout_ms, node.deadlines.rpc),
        snapshot: millis(settings.snapshot_timeout_ms, node.deadlines.snapshot),
        keepalive: millis(settings.peer_keepalive_ms, node.deadlines.keepalive),
    };
    node.write_queue = settings.write_queue.unwrap_or(node.write_queue);
    node.entries_in_flight = settings.entries_in_flight.unwrap_or(node.entries_in_flight);
    node.tick_interval = millis(settings.tick_interval_ms, node.tick_interval);
    node.peer_source_address = settings.peer_source_address;
    if node.heartbeat_ms == 0 || node.election_timeout_min_ms <= node.heartbeat_ms {
        return Err("heartbeat_ms must be non-zero and below election_timeout_min_ms".into());
    }
    if node.write_queue == 0 || node.entries_in_flight == 0 || node.tick_interval.is_zero() {
        return Err("write_queue, entries_in_flight and tick_interval_ms must be non-zero".into());
    }
    let Deadlines { connect, rpc, snapshot, keepalive } = node.deadlines;
    if [connect, rpc, snapshot, keepalive].iter().any(Duration::is_zero) {
        return Err("connect_timeout_ms, rpc_timeout_ms, snapshot_timeout_ms and \
                    peer_keepalive_ms must be non-zero"
            .into());
    }
    Ok(node)
}

/// The sync-out part of `settings`, checked (a bad PostgreSQL URL is a configuration error).
fn sync_out_config(settings: &Settings) -> Result<crate::sync_out::SyncOutConfig, String> {
    let mut sync_out = crate::sync_out::SyncOutConfig {
        file: settings.sync_out_file.clone(),
        ..crate::sync_out::SyncOutConfig::default()
    };
    if let Some(high_water) = settings.outbox_high_water_events {
        if high_water == 0 {
            return Err("outbox_high_water_events must be non-zero".into());
        }
        sync_out.outbox_high_water = high_water;
    }
    match (settings.sync_out_postgres_url.clone(), settings.sync_out_postgres_ca_file.clone()) {
        (Some(url), tls_ca_file) => {
            let postgres = sync_out::postgres::PostgresConfig {
                url,
                tls_ca_file,
                connect_timeout: Duration::from_secs(5),
            };
            // Checked now: a bad URL is a configuration error, not a sink that retries.
            sync_out::postgres::PostgresSink::new(
                sync_out::sink_id(crate::sync_out::POSTGRES_SINK)?,
                postgres.clone(),
            )?;
            sync_out.postgres = Some(postgres);
        }
        (None, Some(_)) => {
            return Err("sync_out_postgres_ca_file needs sync_out_postgres_url".into())
        }
        (None, None) => {}
    }
    sync_out.kafka = kafka_config(settings)?;
    Ok(sync_out)
}

/// The Kafka sink's part of `settings`, checked; `None` without brokers.
fn kafka_config(settings: &Settings) -> Result<Option<sync_out::kafka::KafkaConfig>, String> {
    let Some(brokers) = &settings.sync_out_kafka_brokers else {
        let set = settings.sync_out_kafka_properties_file.is_some()
            || settings.sync_out_kafka_source.is_some()
            || settings.sync_out_kafka_partitions.is_some()
            || settings.sync_out_kafka_replication.is_some()
            || settings.sync_out_kafka_delivery_timeout_ms.is_some();
        if set {
            return Err("the sync_out_kafka_* settings need sync_out_kafka_brokers".into());
        }
        return Ok(None);
    };
    let mut kafka = sync_out::kafka::KafkaConfig::new(brokers);
    if let Some(path) = &settings.sync_out_kafka_properties_file {
        kafka.properties = properties(path)?;
    }
    if let Some(source) = &settings.sync_out_kafka_source {
        kafka.source.clone_from(source);
    }
    kafka.partitions = settings.sync_out_kafka_partitions.unwrap_or(kafka.partitions);
    kafka.replication = settings.sync_out_kafka_replication.unwrap_or(kafka.replication);
    if let Some(ms) = settings.sync_out_kafka_delivery_timeout_ms {
        kafka.delivery_timeout = Duration::from_millis(ms);
    }
    // Checked now: a bad property is a configuration error, not a sink that retries.
    kafka.client_config()?;
    Ok(Some(kafka))
}

/// A Java-style properties file: `key=value` lines, blank lines and `#` comments.
fn properties(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("sync_out_kafka_properties_file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "sync_out_kafka_properties_file {} line {}: expected key=value",
                path.display(),
                number + 1
            ));
        };
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

impl Config {
    /// Completes `settings` with defaults and checks them.
    ///
    /// # Errors
    /// A missing required key, or a value out of range (says which).
    pub fn resolve(settings: Settings) -> Result<Self, String> {
        let sync_out = sync_out_config(&settings)?;
        let node_id = required(settings.node_id, "node_id")?;
        let cluster_id = required(settings.cluster_id, "cluster_id")?;
        if node_id == 0 || cluster_id == 0 {
            return Err("node_id and cluster_id must be non-zero".into());
        }
        let listen = settings.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7001)));
        let node = node_config(&settings, node_id, cluster_id)?;
        let log_format = match settings.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(format!("log_format {other:?}: expected text or json")),
        };
        let auth_files = match (settings.tokens_file, settings.peer_secret_file) {
            (Some(tokens), Some(peer)) => Some((tokens, peer)),
            (None, None) => None,
            _ => return Err("tokens_file and peer_secret_file go together".into()),
        };
        let tls = match (
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_ca_file,
            settings.tls_client_ca_file,
        ) {
            (Some(cert), Some(key), Some(ca), client_ca) => {
                Some(crate::tls::TlsFiles { cert, key, ca, client_ca })
            }
            (None, None, None, None) => None,
            _ => {
                return Err("tls_cert_file, tls_key_file and tls_ca_file go together \
                            (tls_client_ca_file needs them too)"
                    .into())
            }
        };
        Ok(Self {
            sync_out,
            auth_files,
            tls,
            node,
            listen,
            data_dir: required(settings.data_dir, "data_dir")?,
            log_level: settings.log_level.unwrap_or_else(|| "info".into()),
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults() {
        let file: Settings = toml::from_str(
            "node_id = 2\ncluster_id = 9\ndata_dir = \"/tmp/n2\"\nheartbeat_ms = 50\nlisten = \"127.0.0.1:7002\"",
        )
        .unwrap();
        let flags = Settings { heartbeat_ms: Some(70), ..Settings::default() };
        let config = Config::resolve(flags.over(file)).unwrap();
        assert_eq!(config.node.heartbeat_ms, 70);
        assert_eq!((config.node.id, config.node.cluster_id), (2, 9));
        assert_eq!(config.listen.to_string(), "127.0.0.1:7002");
        assert_eq!(config.node.election_timeout_max_ms, 2_000);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let typo = toml::from_str::<Settings>("node_idd = 1");
        assert!(typo.unwrap_err().to_string().contains("node_idd"));
        let missing = Config::resolve(Settings { node_id: Some(1), ..Settings::default() });
        assert!(missing.unwrap_err().contains("cluster_id is required"));
        let zero = Settings { node_id: Some(0), cluster_id: Some(1), ..Settings::default() };
        assert!(Config::resolve(zero).unwrap_err().contains("non-zero"));
        let keepalive = Settings {
            node_id: Some(1),
            cluster_id: Some(1),
            peer_keepalive_ms: Some(0),
            ..Settings::default()
        };
        assert!(Config::resolve(keepalive).unwrap_err().contains("peer_keepalive_ms"));
        let format = Settings {
            node_id: Some(1),
            cluster_id: Some(1),
            data_dir: Some("d".into()),
            log_format: Some("xml".into()),
            ..Settings::default()
        };
        assert!(Config::resolve(format).unwrap_err().contains("xml"));
    }

    #[test]
    fn kafka_settings_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kafka.properties");
        std::fs::write(&file, "# managed cluster\nsecurity.protocol = SASL_SSL\n\nlinger.ms=20\n")
            .unwrap();
        let settings = Settings {
            sync_out_kafka_brokers: Some("b1:9092,b2:9092".into()),
            sync_out_kafka_properties_file: Some(file.clone()),
            sync_out_kafka_partitions: Some(6),
            ..Settings::default()
        };
        let kafka = kafka_config(&settings).unwrap().unwrap();
        let properties = [("security.protocol", "SASL_SSL"), ("linger.ms", "20")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(kafka.properties, properties);
        assert_eq!((kafka.partitions, kafka.replication), (6, 3));

        std::fs::write(&file, "acks=1\n").unwrap();
        assert!(kafka_config(&settings).unwrap_err().contains("acks"));
        std::fs::write(&file, "linger.ms\n").unwrap();
        assert!(kafka_config(&settings).unwrap_err().contains("line 1"));
        let orphan = Settings { sync_out_kafka_partitions: Some(3), ..Settings::default() };
        assert!(kafka_config(&orphan).unwrap_err().contains("sync_out_kafka_brokers"));
        assert!(kafka_config(&Settings::default()).unwrap().is_none());
    }
}
