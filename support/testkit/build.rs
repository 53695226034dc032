//! Generates the stream interop service (`proto/streams.proto`) with
//! ttrpc-core's codegen, as a user's build.rs would.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ttrpc_core::codegen::compile(&["proto/streams.proto"], &["proto"], |_config| {})
}
