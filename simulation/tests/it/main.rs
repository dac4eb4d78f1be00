//! The chaos harness against real `ledgerd` processes (built by the same `cargo test
//! --workspace`, next to this test binary).

mod chaos;
