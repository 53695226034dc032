//! Generates the shim API messages and ttrpc stubs from the vendored protos
//! (`proto/`, see `proto/NOTICE`) with ttrpc-core's codegen: protox parses,
//! so no `protoc` is needed. Also writes `schema.rs`, the compact field
//! table the JSON printer walks (`src/schema.rs`): the messages `state`,
//! `pids`, `stats` and `connect` print, and the `Any` payloads they decode.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use ttrpc_core::codegen::prost_types::field_descriptor_proto::{Label, Type};
use ttrpc_core::codegen::prost_types::{DescriptorProto, FileDescriptorSet};
use ttrpc_core::codegen::{Generator, prost_build, protox};

/// The printed responses, by the constant `src/schema.rs` names them with.
const ROOTS: &[(&str, &str)] = &[
    ("TASK_STATE", ".containerd.task.v2.StateResponse"),
    ("TASK_PIDS", ".containerd.task.v2.PidsResponse"),
    ("TASK_STATS", ".containerd.task.v2.StatsResponse"),
    ("TASK_CONNECT", ".containerd.task.v2.ConnectResponse"),
    (
        "V1_STATE",
        ".containerd.runtime.linux.shim.v1.StateResponse",
    ),
    (
        "V1_LIST_PIDS",
        ".containerd.runtime.linux.shim.v1.ListPidsResponse",
    ),
];

/// The `Any` payloads shims answer with (runc `ProcessDetails` in Pids,
/// cgroups `Metrics` in Stats), printed decoded; any other is base64.
const ANY_TYPES: &[&str] = &[
    ".containerd.runc.v1.ProcessDetails",
    ".io.containerd.cgroups.v1.Metrics",
    ".io.containerd.cgroups.v2.Metrics",
];

/// Run from the directory holding `proto/` (cli/): `fuzz/build.rs` runs
/// this same script for the fuzz crate's copy of the messages.
pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    const C: &str = "proto/github.com/containerd/containerd";
    let protos = [
        format!("{C}/runtime/v2/task/shim.proto"),
        format!("{C}/api/runtime/task/v3/shim.proto"),
        format!("{C}/runtime/v1/shim/v1/shim.proto"),
        format!("{C}/api/types/runc/options/oci.proto"),
        "proto/github.com/containerd/cgroups/cgroup1/stats/metrics.proto".to_owned(),
        "proto/github.com/containerd/cgroups/cgroup2/stats/metrics.proto".to_owned(),
    ];
    // Absolute: relative paths are taken from the package being built.
    let proto_dir = std::env::current_dir()?.join("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let fds = protox::compile(&protos, ["proto"])?;
    let out = std::env::var("OUT_DIR")?;
    std::fs::write(format!("{out}/schema.rs"), schema(&fds)?)?;

    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(Generator::new()));
    // Task v3's messages are wire-identical to v2's: reuse the v2 types and
    // generate only the v3 service (prost skips extern types).
    config.extern_path(".containerd.task.v3", "crate::proto::containerd::task::v2");
    // Written by hand in src/proto.rs: a list, not a HashMap (see there).
    for v in ["v2", "v3"] {
        config.extern_path(
            format!(".containerd.task.{v}.UpdateTaskRequest"),
            "crate::proto::containerd::task::v2::UpdateTaskRequest",
        );
    }
    // Our own Any and Timestamp (RFC 3339 and the `Any` the exec spec
    // travels in), without prost-types' JSON and conversions.
    config.extern_path(".google.protobuf.Any", "crate::wkt::Any");
    config.extern_path(".google.protobuf.Timestamp", "crate::wkt::Timestamp");
    // Test builds keep the former serde JSON as the oracle the table-driven
    // printer must match byte for byte (`src/json/oracle.rs`): Go's
    // encoding/json of gogo structs, snake_case names, `omitempty` on every
    // field (set per field: "." would reach enum values).
    config.message_attribute(".", "#[cfg_attr(test, derive(::serde::Serialize))]");
    config.enum_attribute(".", "#[cfg_attr(test, derive(::serde::Serialize))]");
    for path in field_paths(&fds) {
        config.field_attribute(
            path,
            "#[cfg_attr(test, serde(skip_serializing_if = \"crate::json::oracle::is_empty\"))]",
        );
    }
    config.compile_fds(fds)?;
    Ok(())
}

/// Every message by full name (`.package.Name`, nested as `.package.Outer.Inner`).
fn messages(fds: &FileDescriptorSet) -> HashMap<String, &DescriptorProto> {
    let mut all = HashMap::new();
    for file in &fds.file {
        let mut stack: Vec<(String, &DescriptorProto)> = file
            .message_type
            .iter()
            .map(|m| (format!(".{}.{}", file.package(), m.name()), m))
            .collect();
        while let Some((path, msg)) = stack.pop() {
            stack.extend(
                msg.nested_type
                    .iter()
                    .map(|n| (format!("{path}.{}", n.name()), n)),
            );
            all.insert(path, msg);
        }
    }
    all
}

/// `.package.Message.field` for every field of every message.
fn field_paths(fds: &FileDescriptorSet) -> Vec<String> {
    let mut paths: Vec<String> = messages(fds)
        .into_iter()
        .flat_map(|(name, msg)| {
            msg.field
                .iter()
                .map(move |f| format!("{name}.{}", f.name()))
        })
        .collect();
    paths.sort();
    paths
}

/// The table: messages reachable from [`ROOTS`] and [`ANY_TYPES`], numbered
/// in breadth-first order; field names deduplicated into one string.
fn schema(fds: &FileDescriptorSet) -> Result<String, String> {
    let all = messages(fds);
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut queue: VecDeque<String> = ROOTS
        .iter()
        .map(|(_, n)| (*n).to_owned())
        .chain(ANY_TYPES.iter().map(|n| (*n).to_owned()))
        .collect();
    while let Some(name) = queue.pop_front() {
        if index.contains_key(&name) {
            continue;
        }
        let msg = all.get(&name).ok_or_else(|| format!("no message {name}"))?;
        index.insert(name.clone(), order.len());
        order.push(name);
        for f in &msg.field {
            if f.r#type() == Type::Message && !is_wkt(f.type_name()) {
                queue.push_back(f.type_name().to_owned());
            }
        }
    }
    if order.len() > 255 {
        return Err("more than 255 messages for the printer's table".into());
    }

    let mut names = String::new();
    let mut fields = String::new();
    let mut msgs = String::new();
    let mut nfields = 0usize;
    for name in &order {
        let msg = all[name];
        let first = nfields;
        for f in &msg.field {
            let n = f.name();
            if n.is_empty()
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(format!("{name}.{n}: not a snake_case name"));
            }
            let number = u8::try_from(f.number())
                .map_err(|_| format!("{name}.{n}: field number {} above 255", f.number()))?;
            let off = match names.find(n) {
                Some(off) => off,
                None => {
                    names.push_str(n);
                    names.len() - n.len()
                }
            };
            let off = u16::try_from(off).map_err(|_| "field names over 64 KiB")?;
            let repeated = f.label() == Label::Repeated;
            let (kind, sub) = match f.r#type() {
                Type::Bool => ("Bool", 0),
                Type::Uint32 => ("U32", 0),
                Type::Uint64 => ("U64", 0),
                Type::Int32 | Type::Enum => ("I32", 0),
                Type::Int64 => ("I64", 0),
                Type::Double => ("F64", 0),
                Type::String => ("String", 0),
                Type::Message if f.type_name() == ".google.protobuf.Any" => ("Any", 0),
                Type::Message if f.type_name() == ".google.protobuf.Timestamp" => ("Timestamp", 0),
                Type::Message => ("Message", index[f.type_name()]),
                other => return Err(format!("{name}.{n}: the printer has no {other:?}")),
            };
            writeln!(
                fields,
                "    Field {{ name: {off}, len: {}, number: {number}, kind: Kind::{kind}, msg: {sub}, repeated: {repeated} }},",
                n.len()
            )
            .map_err(|e| e.to_string())?;
            nfields += 1;
        }
        writeln!(
            msgs,
            "    Message {{ first: {first}, count: {} }}, // {name}",
            nfields - first
        )
        .map_err(|e| e.to_string())?;
    }

    let mut s =
        String::from("// @generated by build.rs from the vendored protos: see src/schema.rs.\n\n");
    writeln!(s, "static NAMES: &str = {names:?};\n").map_err(|e| e.to_string())?;
    writeln!(s, "static FIELDS: [Field; {nfields}] = [\n{fields}];\n")
        .map_err(|e| e.to_string())?;
    writeln!(
        s,
        "static MESSAGES: [Message; {}] = [\n{msgs}];\n",
        order.len()
    )
    .map_err(|e| e.to_string())?;
    for (constant, name) in ROOTS {
        writeln!(
            s,
            "/// `{name}`\npub(crate) const {constant}: MessageId = MessageId({});",
            index[*name]
        )
        .map_err(|e| e.to_string())?;
    }
    writeln!(s, "\n/// `Any` payloads printed decoded, by type name.\nstatic ANY_TYPES: [(&str, MessageId); {}] = [", ANY_TYPES.len())
        .map_err(|e| e.to_string())?;
    for name in ANY_TYPES {
        writeln!(s, "    ({:?}, MessageId({})),", &name[1..], index[*name])
            .map_err(|e| e.to_string())?;
    }
    s.push_str("];\n");
    Ok(s)
}

fn is_wkt(type_name: &str) -> bool {
    matches!(
        type_name,
        ".google.protobuf.Any" | ".google.protobuf.Timestamp"
    )
}
