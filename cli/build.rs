//! Generates the shim API messages and ttrpc stubs from the vendored protos
//! (`proto/`, see `proto/NOTICE`) with ttrpc-core's codegen: protox parses,
//! so no `protoc` is needed.

use ttrpc_core::codegen::prost_types::DescriptorProto;
use ttrpc_core::codegen::{Generator, prost_build, protox};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const C: &str = "proto/github.com/containerd/containerd";
    let protos = [
        format!("{C}/runtime/v2/task/shim.proto"),
        format!("{C}/api/runtime/task/v3/shim.proto"),
        format!("{C}/runtime/v1/shim/v1/shim.proto"),
        format!("{C}/api/types/runc/options/oci.proto"),
        "proto/github.com/containerd/cgroups/cgroup1/stats/metrics.proto".to_owned(),
        "proto/github.com/containerd/cgroups/cgroup2/stats/metrics.proto".to_owned(),
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(&protos, ["proto"])?;

    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(Generator::new()));
    // Task v3's messages are wire-identical to v2's: reuse the v2 types and
    // generate only the v3 service (prost skips extern types).
    config.extern_path(".containerd.task.v3", "crate::proto::containerd::task::v2");
    // Our own Any and Timestamp: JSON output decodes known Any payloads and
    // prints timestamps as RFC 3339.
    config.extern_path(".google.protobuf.Any", "crate::wkt::Any");
    config.extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp");
    // JSON as Go's encoding/json prints gogo structs: snake_case names,
    // `omitempty` on every field (set per field: "." would reach enum values).
    config.message_attribute(".", "#[derive(::serde::Serialize)]");
    config.enum_attribute(".", "#[derive(::serde::Serialize)]");
    for file in &fds.file {
        let pkg = file.package();
        let mut stack: Vec<(String, &DescriptorProto)> = file
            .message_type
            .iter()
            .map(|m| (format!(".{pkg}.{}", m.name()), m))
            .collect();
        while let Some((path, msg)) = stack.pop() {
            for f in &msg.field {
                config.field_attribute(
                    format!("{path}.{}", f.name()),
                    "#[serde(skip_serializing_if = \"crate::json::is_empty\")]",
                );
            }
            stack.extend(
                msg.nested_type
                    .iter()
                    .map(|n| (format!("{path}.{}", n.name()), n)),
            );
        }
    }
    config.compile_fds(fds)?;
    Ok(())
}
