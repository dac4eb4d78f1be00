//! Integration tests of the API crate: real nodes over real gRPC on loopback.

mod bad_input;
mod cluster;
mod harness;
mod processes;
mod reads;
