//! Generates ttrpc-rust's async stubs for testkit's `streams.proto` with
//! ttrpc-codegen's pure-Rust parser (no `protoc`), plus `modules.rs`
//! declaring them (the generated files start with inner attributes, which
//! `include!` cannot take, so they are modules by `#[path]`).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=../testkit/proto/streams.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    ttrpc_codegen::Codegen::new()
        .out_dir(&out)
        .input("../testkit/proto/streams.proto")
        .include("../testkit/proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .run()?;
    let mut modules = String::new();
    for name in ["streams", "streams_ttrpc"] {
        let path = out.join(format!("{name}.rs"));
        modules.push_str(&format!(
            "#[path = {:?}]\npub mod {name};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out.join("modules.rs"), modules)
}
