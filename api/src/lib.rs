//! Local-Plus Ledger's interfaces: the `Ledger` and `Admin` gRPC services over a raft node,
//! the conversions between their protobuf messages and `ledger-sm`, `ledgerd`'s configuration,
//! and the server that mounts it all on one address. The binaries are `ledgerd` (a node) and
//! `ledgerctl` (the operator's CLI).

pub mod admin_service;
pub mod auth;
pub mod client;
pub mod config;
pub mod convert;
pub mod json;
pub mod ledger_service;
pub mod metrics;
pub mod openapi;
pub mod rest;
pub mod server;
pub mod sync_out;
pub mod tls;

/// Largest gRPC message a node sends or takes: a full batch of 8,190 events with room to spare.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// The generated code of `localplus.ledger.v1`.
pub mod proto {
    #[allow(clippy::pedantic, clippy::all, missing_debug_implementations)]
    pub mod ledger {
        tonic::include_proto!("localplus.ledger.v1");
    }

    /// The encoded descriptors of `localplus.ledger.v1`, for reflection and the OpenAPI document.
    pub const DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ledger_descriptor.bin"));
}
