//! `ledgerd`: one ledger node. Opens its RocksDB directory, joins raft, serves the internal
//! raft service, `Ledger`, `Admin` and gRPC health on one address, and shuts down gracefully
//! on SIGTERM or Ctrl-C (stops accepting, finishes calls in flight, stops raft, closes the
//! store).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use api::auth::{self, Auth};
use api::config::{Config, LogFormat, Settings};
use api::server::Security;
use clap::Parser;
use raft::NodeConfig;
use storage::{RocksKv, RocksOptions, Store};
use tokio::signal::unix::{signal, SignalKind};

/// A Local-Plus Ledger node. Every setting can come from the TOML file (key as shown with `_`),
/// from the environment (`LEDGERD_<KEY>`), or from a flag; flags win over the environment,
/// which wins over the file.
#[derive(Debug, Parser)]
#[command(name = "ledgerd", version)]
struct Cli {
    /// The TOML configuration file.
    #[arg(long, short, env = "LEDGERD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => match Settings::from_file(path) {
            Ok(file) => file,
            Err(error) => return fail(&error),
        },
        None => Settings::default(),
    };
    let config = match Config::resolve(cli.settings.over(file)) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("tokio runtime: {error}")),
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

/// Loads credentials and TLS: the server's side, and the node's side towards its peers.
fn secure(config: &Config) -> Result<(Security, NodeConfig), String> {
    let mut node = config.node.clone();
    let mut security = Security::default();
    if let Some((tokens, peer)) = &config.auth_files {
        security.auth = Arc::new(Auth::load(tokens, peer)?);
        node.security.peer_secret = Some(auth::read_secret(peer)?);
    }
    if let Some(tls) = &config.tls {
        security.tls = Some(tls.server_config()?);
        node.security.tls = Some(tls.client_config()?);
    }
    Ok((security, node))
}

fn fail(error: &str) -> ExitCode {
    eprintln!("ledgerd: {error}");
    ExitCode::FAILURE
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
    let kv = RocksKv::open(&config.data_dir, RocksOptions::default())
        .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
    let store = Store::open(kv, u128::from(config.node.cluster_id))
        .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    tracing::info!(
        node = config.node.id,
        cluster = config.node.cluster_id,
        listen = %config.listen,
        "ledgerd serving"
    );
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
    };
    let (security, node) = secure(&config)?;
    let sync_out = config.sync_out.clone();
    api::server::run(node, Arc::new(store), listener, security, sync_out, shutdown).await?;
    tracing::info!("ledgerd stopped");
    Ok(())
}
