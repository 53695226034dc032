//! Generates the ttrpc envelope messages with protox + prost-build: no system
//! `protoc` is needed (or used: PROTOC is never read).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/ttrpc.proto", "proto/google/rpc/status.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    config.compile_fds(fds)?;
    Ok(())
}
