//! The PostgreSQL sink: the wallet read model other services query.
//!
//! Each delivery is one SQL transaction: it locks the sink's `sync_cursor` row, refuses a
//! leader whose term is below the row's (fencing), skips what the row says is applied, writes
//! the rows with `UNNEST` upserts, closes UTC days with balance snapshots, and moves the row.
//! The row is the sink's position: a new leader resumes exactly where the data ends.

mod batch;
pub mod numeric;
pub mod reconcile;
pub mod schema;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ledger_sm::types::{EventSeq, SinkId};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, Transaction};

use crate::payload::Payload;
use crate::sink::{Sink, SinkError};
use batch::Batch;

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Where the read model lives.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq-style connection string or URL (`postgres://user@host/db?sslmode=require`).
    /// With `sslmode=require` the server's certificate is verified against `tls_ca_file`.
    pub url: String,
    /// PEM certificates of the authorities that sign the server's certificate (managed
    /// PostgreSQL publishes its bundle).
    pub tls_ca_file: Option<PathBuf>,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
}

/// The URL stays out (it may carry a password).
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"(redacted)")
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The PostgreSQL sink. Connects (and migrates) on first use and after a lost connection.
#[derive(Debug)]
pub struct PostgresSink {
    id: SinkId,
    config: PostgresConfig,
    client: Option<Client>,
}

impl PostgresSink {
    /// # Errors
    /// The connection string does not parse.
    pub fn new(id: SinkId, config: PostgresConfig) -> Result<Self, String> {
        config.url.parse::<tokio_postgres::Config>().map_err(|e| format!("postgres url: {e}"))?;
        Ok(Self { id, config, client: None })
    }

    async fn client(&mut self) -> Result<&mut Client, SinkError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = connect(&self.config).await.map_err(unavailable)?;
            let applied = schema::migrate(&mut client).await.map_err(pg)?;
            if !applied.is_empty() {
                tracing::info!(sink = self.id.name(), ?applied, "read model migrated");
            }
            client
                .execute(
                    "INSERT INTO sync_cursor (sink, next_seq, term) VALUES ($1, 0, 0)
                     ON CONFLICT (sink) DO NOTHING",
                    &[&self.id.name()],
                )
                .await
                .map_err(pg)?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f`, dropping the connection when it failed (it is reopened on the next call).
    fn settle<T>(&mut self, result: Result<T, SinkError>) -> Result<T, SinkError> {
        if matches!(result, Err(SinkError::Unavailable(_))) {
            self.client = None;
        }
        result
    }
}

impl Sink for PostgresSink {
    fn id(&self) -> SinkId {
        self.id
    }

    async fn position(&mut self) -> Result<Option<EventSeq>, SinkError> {
        let name = self.id.name().to_owned();
        let result = async {
            let client = self.client().await?;
            let row = client
                .query_one("SELECT next_seq FROM sync_cursor WHERE sink = $1", &[&name])
                .await
                .map_err(pg)?;
            let next: i64 = row.get(0);
            Ok(Some(EventSeq(u64::try_from(next).map_err(|_| corrupt("next_seq"))?)))
        }
        .await;
        self.settle(result)
    }

    async fn deliver(&mut self, term: u64, events: &[Payload]) -> Result<(), SinkError> {
        let name = self.id.name().to_owned();
        let result = async {
            let client = self.client().await?;
            let tx = client.transaction().await.map_err(pg)?;
            write(&tx, &name, term, events).await?;
            tx.commit().await.map_err(pg)
        }
        .await;
        self.settle(result)
    }
}

/// One delivery, inside its transaction.
async fn write(
    tx: &Transaction<'_>,
    sink: &str,
    term: u64,
    events: &[Payload],
) -> Result<(), SinkError> {
    let term = i64::try_from(term).map_err(|_| corrupt("term"))?;
    let row = tx
        .query_one(
            "SELECT next_seq, term, last_event_at FROM sync_cursor WHERE sink = $1 FOR UPDATE",
            &[&sink],
        )
        .await
        .map_err(pg)?;
    let (next, stored_term, last_at): (i64, i64, Option<SystemTime>) =
        (row.get(0), row.get(1), row.get(2));
    if stored_term > term {
        return Err(SinkError::Fenced(format!("term {stored_term} wrote after term {term}")));
    }
    let next = u64::try_from(next).map_err(|_| corrupt("next_seq"))?;
    let events: Vec<&Payload> = events.iter().filter(|e| e.seq() >= next).collect();
    let Some(first) = events.first() else { return Ok(()) };
    if first.seq() != next {
        let outbox_first = EventSeq(first.seq());
        return Err(SinkError::Behind { position: EventSeq(next), outbox_first });
    }
    // Days of ledger time close with a snapshot taken before the first event of the next day.
    let mut day = last_at.map(day_of);
    let mut chunk = Batch::default();
    let mut last_event_at = last_at;
    for event in &events {
        let at = nanos(&event.timestamp)?;
        let event_day = at / NANOS_PER_DAY;
        if day.is_some_and(|d| d < event_day) {
            apply(tx, std::mem::take(&mut chunk)).await?;
            let closed = i32::try_from(event_day - 1).map_err(|_| corrupt("day"))?;
            let seq = i64::try_from(event.seq()).map_err(|_| corrupt("seq"))?;
            tx.execute(
                "SELECT ledger_balance_snapshot_at($1, DATE '1970-01-01' + $2::int4)",
                &[&seq, &closed],
            )
            .await
            .map_err(pg)?;
        }
        day = Some(event_day);
        last_event_at = Some(UNIX_EPOCH + Duration::from_nanos(at));
        chunk.add(event)?;
    }
    apply(tx, chunk).await?;
    let last = events.last().expect("not empty").seq();
    let next = i64::try_from(last + 1).map_err(|_| corrupt("seq"))?;
    tx.execute(
        "UPDATE sync_cursor SET next_seq = $2, term = $3, last_event_at = $4, updated_at = now()
         WHERE sink = $1",
        &[&sink, &next, &term, &last_event_at],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Writes one batch's rows: new wallets, then the others moved forward, then history.
async fn apply(tx: &Transaction<'_>, batch: Batch) -> Result<(), SinkError> {
    apply_wallets(tx, &batch.wallets).await?;
    apply_history(tx, &batch).await
}

async fn apply_wallets(tx: &Transaction<'_>, w: &batch::Wallets) -> Result<(), SinkError> {
    if !w.account_id.is_empty() {
        let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 17] = [
            &w.account_id,
            &w.seq,
            &w.asset,
            &w.kind,
            &w.status,
            &w.flags,
            &w.overdraft_limit,
            &w.merchant,
            &w.debits_pending,
            &w.debits_posted,
            &w.credits_pending,
            &w.credits_posted,
            &w.external_ref,
            &w.metadata,
            &w.erased,
            &w.created_at,
            &w.updated_at,
        ];
        tx.execute(INSERT_WALLETS, &columns).await.map_err(pg)?;
        tx.execute(UPDATE_WALLETS, &columns).await.map_err(pg)?;
    }
    Ok(())
}

async fn apply_history(tx: &Transaction<'_>, batch: &Batch) -> Result<(), SinkError> {
    let t = &batch.transactions;
    if !t.transfer_id.is_empty() {
        tx.execute(
            INSERT_TRANSACTIONS,
            &[
                &t.transfer_id,
                &t.seq,
                &t.kind,
                &t.code,
                &t.debit_account,
                &t.credit_account,
                &t.amount,
                &t.asset,
                &t.flags,
                &t.pending_id,
                &t.reverses,
                &t.timeout_s,
                &t.expires_at,
                &t.user_data_128,
                &t.user_data_64,
                &t.user_data_32,
                &t.occurred_at,
            ],
        )
        .await
        .map_err(pg)?;
        let e = &batch.entries;
        tx.execute(
            INSERT_ENTRIES,
            &[
                &e.transfer_id,
                &e.side,
                &e.account_id,
                &e.asset,
                &e.amount,
                &e.balances[0],
                &e.balances[1],
                &e.balances[2],
                &e.balances[3],
                &e.seq,
                &e.occurred_at,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The wallet columns of a batch, as `u`: the one spelling both wallet statements share
/// (parameters in `apply_wallets`' order).
macro_rules! wallet_rows {
    () => {
        "
    FROM UNNEST($1::numeric[], $2::int8[], $3::int4[], $4::text[],
        $5::text[], $6::int4[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[],
        $11::numeric[], $12::numeric[], $13::bytea[], $14::bytea[], $15::bool[],
        $16::timestamptz[], $17::timestamptz[])
        AS u(account_id, seq, asset, kind, status, flags, overdraft_limit, merchant,
             debits_pending, debits_posted, credits_pending, credits_posted, external_ref,
             metadata, erased, created_at, updated_at)
"
    };
}

const INSERT_WALLETS: &str = concat!(
    "INSERT INTO wallets (account_id, asset, kind, status, flags,
        overdraft_limit, merchant, debits_pending, debits_posted, credits_pending,
        credits_posted, external_ref, metadata, erased, created_at, updated_at, last_seq)
    SELECT u.account_id, u.asset, u.kind, u.status, u.flags, u.overdraft_limit, u.merchant,
        COALESCE(u.debits_pending, 0), COALESCE(u.debits_posted, 0),
        COALESCE(u.credits_pending, 0), COALESCE(u.credits_posted, 0),
        CASE WHEN u.erased THEN NULL ELSE u.external_ref END,
        CASE WHEN u.erased THEN NULL ELSE u.metadata END,
        u.erased, u.created_at, u.updated_at, u.seq",
    wallet_rows!(),
    "    ON CONFLICT (account_id) DO NOTHING"
);

/// Moves existing wallets forward; rows already at or past the batch's event (a repeated
/// delivery, or the rows the insert above just wrote) are left alone.
const UPDATE_WALLETS: &str = concat!(
    "UPDATE wallets AS w SET
        asset = COALESCE(u.asset, w.asset),
        kind = COALESCE(u.kind, w.kind),
        status = COALESCE(u.status, w.status),
        flags = COALESCE(u.flags, w.flags),
        overdraft_limit = COALESCE(u.overdraft_limit, w.overdraft_limit),
        merchant = COALESCE(u.merchant, w.merchant),
        debits_pending = COALESCE(u.debits_pending, w.debits_pending),
        debits_posted = COALESCE(u.debits_posted, w.debits_posted),
        credits_pending = COALESCE(u.credits_pending, w.credits_pending),
        credits_posted = COALESCE(u.credits_posted, w.credits_posted),
        external_ref = CASE WHEN u.erased THEN NULL
            ELSE COALESCE(u.external_ref, w.external_ref) END,
        metadata = CASE WHEN u.erased THEN NULL ELSE COALESCE(u.metadata, w.metadata) END,
        erased = w.erased OR u.erased,
        created_at = COALESCE(w.created_at, u.created_at),
        updated_at = u.updated_at,
        last_seq = u.seq",
    wallet_rows!(),
    "    WHERE w.account_id = u.account_id AND w.last_seq < u.seq"
);

const INSERT_TRANSACTIONS: &str = "INSERT INTO transactions (transfer_id, seq, type, code,
        debit_account, credit_account, amount, asset, flags, pending_id, reverses, timeout_s,
        expires_at, user_data_128, user_data_64, user_data_32, occurred_at)
    SELECT u.transfer_id, u.seq, u.type, u.code, u.debit_account, u.credit_account, u.amount,
        u.asset, string_to_array(u.flags, ','), u.pending_id, u.reverses, u.timeout_s,
        u.expires_at, u.user_data_128, u.user_data_64, u.user_data_32, u.occurred_at
    FROM UNNEST($1::numeric[], $2::int8[], $3::text[], $4::text[], $5::numeric[],
        $6::numeric[], $7::numeric[], $8::int4[], $9::text[], $10::numeric[], $11::numeric[],
        $12::int8[], $13::timestamptz[], $14::numeric[], $15::numeric[], $16::int8[],
        $17::timestamptz[])
        AS u(transfer_id, seq, type, code, debit_account, credit_account, amount, asset, flags,
             pending_id, reverses, timeout_s, expires_at, user_data_128, user_data_64,
             user_data_32, occurred_at)
    ON CONFLICT (transfer_id) DO NOTHING";

const INSERT_ENTRIES: &str = "INSERT INTO ledger_entries (transfer_id, side, account_id, asset,
        amount, debits_pending, debits_posted, credits_pending, credits_posted, seq,
        occurred_at)
    SELECT * FROM UNNEST($1::numeric[], $2::text[], $3::numeric[], $4::int4[], $5::numeric[],
        $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::int8[],
        $11::timestamptz[])
    ON CONFLICT (transfer_id, side) DO NOTHING";

/// Opens a connection (TLS when the connection string asks for it) and drives it on a task.
///
/// # Errors
/// The connection's error, or a TLS configuration that cannot be used.
pub async fn connect(config: &PostgresConfig) -> Result<Client, String> {
    let mut pg: tokio_postgres::Config =
        config.url.parse().map_err(|e| format!("postgres url: {e}"))?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("ledgerd-sync-out");
    }
    // `prefer` without a CA file is plain, as libpq would fall back; `require` needs the CA.
    let plain = pg.get_ssl_mode() == SslMode::Disable
        || (pg.get_ssl_mode() == SslMode::Prefer && config.tls_ca_file.is_none());
    let client = if plain {
        let (client, connection) = pg.connect(NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move { drive(connection.await) });
        client
    } else {
        let tls = tls_connector(config)?;
        let (client, connection) = pg.connect(tls).await.map_err(|e| e.to_string())?;
        tokio::spawn(async move { drive(connection.await) });
        client
    };
    Ok(client)
}

fn drive(result: Result<(), tokio_postgres::Error>) {
    if let Err(error) = result {
        tracing::warn!(%error, "postgres connection ended");
    }
}

fn tls_connector(
    config: &PostgresConfig,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let Some(path) = &config.tls_ca_file else {
        return Err("postgres: TLS needs tls_ca_file (or sslmode=disable)".to_owned());
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("postgres tls_ca_file {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("postgres tls_ca_file {}: {e}", path.display()))?;
        roots.add(cert).map_err(|e| format!("postgres tls_ca_file {}: {e}", path.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
}

fn day_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400)
}

fn nanos(text: &str) -> Result<u64, SinkError> {
    text.parse().map_err(|_| corrupt("timestamp"))
}

fn pg(error: tokio_postgres::Error) -> SinkError {
    SinkError::Unavailable(describe(&error))
}

/// PostgreSQL's error with the server's message (the plain form says only "db error"), fit
/// for logs and status.
#[must_use]
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        // Never the server's detail: it may quote a row, and rows carry personal fields.
        Some(db) => format!("postgres: {} {}: {}", db.severity(), db.code().code(), db.message()),
        None => format!("postgres: {error}"),
    }
}

fn unavailable(error: String) -> SinkError {
    SinkError::Unavailable(error)
}

fn corrupt(what: &str) -> SinkError {
    SinkError::Unavailable(format!("postgres: {what} out of range"))
}
