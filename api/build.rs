//! Compiles the public API's protos with protox (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos =
        ["proto/localplus/ledger/v1/ledger.proto", "proto/localplus/ledger/v1/admin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
