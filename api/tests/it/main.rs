//! Integration tests of the API crate: real nodes over real gRPC on loopback.

mod bad_input;
mod client;
mod cluster;
mod convenience;
mod fuzz;
mod harness;
mod http;
mod processes;
mod reads;
mod rest;
mod secured;
