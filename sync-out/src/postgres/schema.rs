//! The read model's schema and its migrations. Every sink runs them when it connects, under a
//! transaction-scoped advisory lock, so that several nodes (or a rolling upgrade) starting at
//! once apply each migration exactly once. Migrations are append-only: a released one is never
//! edited, a change is a new version.

use tokio_postgres::Client;

/// The advisory lock key the migrations hold (ASCII "lpledger").
const MIGRATION_LOCK: i64 = 0x6c70_6c65_6467_6572;

/// `(version, SQL)`, in order.
const MIGRATIONS: &[(i32, &str)] = &[(1, V1)];

/// Version 1: wallets, their history and snapshots, and the sinks' cursors.
///
/// Ids and amounts are `NUMERIC(39,0)` (the ledger's are 128-bit). Every row written from an
/// event carries the event's sequence number, which makes a repeated delivery change nothing:
/// transfers and entries are inserted once, a wallet moves only forward (`last_seq`).
const V1: &str = r"
CREATE TABLE sync_cursor (
    sink          text PRIMARY KEY,
    -- The first event the read model does not hold: written in the transaction that applies
    -- the events before it.
    next_seq      bigint NOT NULL,
    -- The raft term of the last leader that wrote: a lower term is fenced.
    term          bigint NOT NULL,
    last_event_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE wallets (
    account_id      numeric(39,0) PRIMARY KEY,
    asset           integer,
    kind            text,
    status          text,
    flags           integer,
    overdraft_limit numeric(39,0),
    merchant        numeric(20,0),
    debits_pending  numeric(39,0) NOT NULL DEFAULT 0,
    debits_posted   numeric(39,0) NOT NULL DEFAULT 0,
    credits_pending numeric(39,0) NOT NULL DEFAULT 0,
    credits_posted  numeric(39,0) NOT NULL DEFAULT 0,
    -- Personal fields: set to NULL when the account is erased.
    external_ref    bytea,
    metadata        bytea,
    erased          boolean NOT NULL DEFAULT false,
    created_at      timestamptz,
    updated_at      timestamptz NOT NULL,
    -- The last event applied to this row.
    last_seq        bigint NOT NULL
);

CREATE TABLE transactions (
    transfer_id    numeric(39,0) PRIMARY KEY,
    seq            bigint NOT NULL UNIQUE,
    type           text NOT NULL,
    code           text NOT NULL,
    debit_account  numeric(39,0) NOT NULL,
    credit_account numeric(39,0) NOT NULL,
    amount         numeric(39,0) NOT NULL,
    asset          integer NOT NULL,
    flags          text[] NOT NULL,
    pending_id     numeric(39,0),
    reverses       numeric(39,0),
    timeout_s      bigint NOT NULL,
    expires_at     timestamptz,
    user_data_128  numeric(39,0) NOT NULL,
    user_data_64   numeric(20,0) NOT NULL,
    user_data_32   bigint NOT NULL,
    occurred_at    timestamptz NOT NULL
);
CREATE INDEX transactions_debit_account ON transactions (debit_account, seq);
CREATE INDEX transactions_credit_account ON transactions (credit_account, seq);

-- Double entry: each transfer's debit line and credit line, with the account's balances right
-- after it.
CREATE TABLE ledger_entries (
    transfer_id     numeric(39,0) NOT NULL,
    side            char(1) NOT NULL CHECK (side IN ('D', 'C')),
    account_id      numeric(39,0) NOT NULL,
    asset           integer NOT NULL,
    amount          numeric(39,0) NOT NULL,
    debits_pending  numeric(39,0) NOT NULL,
    debits_posted   numeric(39,0) NOT NULL,
    credits_pending numeric(39,0) NOT NULL,
    credits_posted  numeric(39,0) NOT NULL,
    seq             bigint NOT NULL,
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (transfer_id, side)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, seq);

-- A snapshot holds every wallet's balances as of `snapshot_seq` (events below it applied).
-- Daily ones close a UTC day of ledger time (`taken_for`); on-demand ones have no day.
CREATE TABLE balance_snapshot_runs (
    snapshot_seq bigint PRIMARY KEY,
    taken_for    date,
    taken_at     timestamptz NOT NULL DEFAULT now(),
    accounts     bigint NOT NULL
);
CREATE TABLE balance_snapshots (
    snapshot_seq    bigint NOT NULL REFERENCES balance_snapshot_runs,
    account_id      numeric(39,0) NOT NULL,
    asset           integer,
    debits_pending  numeric(39,0) NOT NULL,
    debits_posted   numeric(39,0) NOT NULL,
    credits_pending numeric(39,0) NOT NULL,
    credits_posted  numeric(39,0) NOT NULL,
    PRIMARY KEY (snapshot_seq, account_id)
);

-- Takes a snapshot at `p_seq` unless one exists there; answers the accounts it holds.
CREATE FUNCTION ledger_balance_snapshot_at(p_seq bigint, p_day date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    INSERT INTO balance_snapshot_runs (snapshot_seq, taken_for, accounts)
    SELECT p_seq, p_day, count(*) FROM wallets
    ON CONFLICT (snapshot_seq) DO NOTHING;
    IF NOT FOUND THEN
        SELECT accounts INTO n FROM balance_snapshot_runs WHERE snapshot_seq = p_seq;
        RETURN n;
    END IF;
    INSERT INTO balance_snapshots
    SELECT p_seq, account_id, asset, debits_pending, debits_posted, credits_pending,
           credits_posted
    FROM wallets;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- An on-demand snapshot at a sink's position: `SELECT ledger_balance_snapshot('postgres')`.
-- It holds the sink's cursor row, so no export interleaves with it.
CREATE FUNCTION ledger_balance_snapshot(p_sink text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    s bigint;
BEGIN
    SELECT next_seq INTO s FROM sync_cursor WHERE sink = p_sink FOR SHARE;
    IF s IS NULL THEN
        RAISE EXCEPTION 'no sync cursor for sink %', p_sink;
    END IF;
    PERFORM ledger_balance_snapshot_at(s, NULL);
    RETURN s;
END $$;
";

/// Brings the schema up to date.
///
/// # Errors
/// PostgreSQL's error; a failed migration is rolled back whole.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ledger_schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM ledger_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut now_applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO ledger_schema_migrations (version) VALUES ($1)", &[version])
            .await?;
        now_applied.push(*version);
    }
    tx.commit().await?;
    Ok(now_applied)
}
