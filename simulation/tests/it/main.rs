//! The seeded simulation (`ledger-sim`) and the chaos harness against real `ledgerd` processes
//! (built by the same `cargo test --workspace`, next to this test binary).

mod chaos;
mod sim;

/// The tests here each keep both cores busy: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
