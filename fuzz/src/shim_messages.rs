//! The `shim_messages` target: arbitrary bytes as every shim API message
//! shimctl and its built-in shim decode — task v2 (v3 shares its messages)
//! and shim v1 requests and responses, cgroups v1/v2 `Metrics`, runc's
//! `ProcessDetails` and options — and as the OCI process spec an Exec
//! carries (`json::Value`). Nothing may panic, and:
//!
//! - a response shimctl prints (`state`, `pids`, `stats`, `connect`) prints
//!   exactly when prost decodes it, and the output is valid JSON;
//! - an `Any` payload shimctl knows is printed decoded exactly when prost
//!   decodes it, else as base64;
//! - a process spec that parses writes back as text that parses equal.
//!
//! Input layout: byte 0 picks the case (modulo the number of cases), the
//! rest is the message.

use prost::Message;

use crate::json::{self, Value};
use crate::proto::containerd::runc::v1 as runc;
use crate::proto::containerd::types;
use crate::proto::containerd::v1::types as v1_types;
use crate::proto::io::containerd::cgroups::{v1 as cgroups_v1, v2 as cgroups_v2};
use crate::proto::{shim_v1 as v1, task};
use crate::schema::{self, MessageId};
use crate::wkt::Any;

type Case = (&'static str, fn(&[u8]));

/// Decodes as `M`; nothing else to check.
fn decode<M: Message + Default>(bytes: &[u8]) {
    let _ = M::decode(bytes);
}

/// Decodes as `M` and prints as `root`: both accept or both refuse, and
/// what prints is JSON.
fn printed<M: Message + Default>(root: MessageId, bytes: &[u8]) {
    let typed = M::decode(bytes);
    let out = json::to_pretty(root, bytes);
    assert_eq!(
        typed.is_ok(),
        out.is_ok(),
        "prost and the printer disagree: {:?} / {:?}",
        typed.err(),
        out.as_ref().err()
    );
    if let Ok(out) = out
        && let Err(e) = Value::parse(out.as_bytes())
    {
        panic!("printed invalid JSON ({e}):\n{out}");
    }
}

/// `bytes` as the payload of a Stats answer's `Any` of type `name`: printed
/// decoded exactly when prost decodes it as `M`.
fn any_payload<M: Message + Default>(name: &str, bytes: &[u8]) {
    let typed = M::decode(bytes).is_ok();
    let answer = task::StatsResponse {
        stats: Some(Any {
            type_url: format!("type.googleapis.com/{name}"),
            value: bytes.to_vec(),
        }),
    };
    let out = json::to_pretty(schema::TASK_STATS, &answer.encode_to_vec())
        .unwrap_or_else(|e| panic!("a well-formed StatsResponse did not print: {e}"));
    let doc = Value::parse(out.as_bytes())
        .unwrap_or_else(|e| panic!("printed invalid JSON ({e}):\n{out}"));
    let value = doc.get("stats").and_then(|s| s.get("value"));
    assert_eq!(
        value.and_then(Value::as_object).is_some(),
        typed,
        "decoded {typed} but printed {value:?}"
    );
}

/// An OCI process spec as the built-in shim reads one: parse, and what
/// parses writes back to the same value.
fn process_spec(bytes: &[u8]) {
    if let Ok(v) = Value::parse(bytes) {
        let text = v.to_string();
        let again = Value::parse(text.as_bytes())
            .unwrap_or_else(|e| panic!("written value does not parse ({e}): {text}"));
        assert!(again == v, "round trip changed the value: {text}");
    }
}

macro_rules! decoders {
    ($($path:ident :: $ty:ident),* $(,)?) => {
        [$((concat!(stringify!($path), "::", stringify!($ty)), decode::<$path::$ty> as fn(&[u8]))),*]
    };
}

const DECODE: [Case; 54] = decoders![
    task::CreateTaskRequest,
    task::CreateTaskResponse,
    task::DeleteRequest,
    task::DeleteResponse,
    task::ExecProcessRequest,
    task::ExecProcessResponse,
    task::ResizePtyRequest,
    task::StateRequest,
    task::StateResponse,
    task::KillRequest,
    task::CloseIoRequest,
    task::PidsRequest,
    task::PidsResponse,
    task::CheckpointTaskRequest,
    task::UpdateTaskRequest,
    task::StartRequest,
    task::StartResponse,
    task::WaitRequest,
    task::WaitResponse,
    task::StatsRequest,
    task::StatsResponse,
    task::ConnectRequest,
    task::ConnectResponse,
    task::ShutdownRequest,
    task::PauseRequest,
    task::ResumeRequest,
    v1::CreateTaskRequest,
    v1::CreateTaskResponse,
    v1::DeleteResponse,
    v1::DeleteProcessRequest,
    v1::ExecProcessRequest,
    v1::ExecProcessResponse,
    v1::ResizePtyRequest,
    v1::StateRequest,
    v1::StateResponse,
    v1::KillRequest,
    v1::CloseIoRequest,
    v1::ListPidsRequest,
    v1::ListPidsResponse,
    v1::CheckpointTaskRequest,
    v1::ShimInfoResponse,
    v1::UpdateTaskRequest,
    v1::StartRequest,
    v1::StartResponse,
    v1::WaitRequest,
    v1::WaitResponse,
    runc::Options,
    runc::CheckpointOptions,
    runc::ProcessDetails,
    cgroups_v1::Metrics,
    cgroups_v2::Metrics,
    types::Mount,
    v1_types::Process,
    v1_types::ProcessInfo,
];

const CHECKED: [Case; 10] = [
    ("print task::StateResponse", |b| {
        printed::<task::StateResponse>(schema::TASK_STATE, b);
    }),
    ("print task::PidsResponse", |b| {
        printed::<task::PidsResponse>(schema::TASK_PIDS, b);
    }),
    ("print task::StatsResponse", |b| {
        printed::<task::StatsResponse>(schema::TASK_STATS, b);
    }),
    ("print task::ConnectResponse", |b| {
        printed::<task::ConnectResponse>(schema::TASK_CONNECT, b);
    }),
    ("print v1::StateResponse", |b| {
        printed::<v1::StateResponse>(schema::V1_STATE, b);
    }),
    ("print v1::ListPidsResponse", |b| {
        printed::<v1::ListPidsResponse>(schema::V1_LIST_PIDS, b);
    }),
    ("Any runc ProcessDetails", |b| {
        any_payload::<runc::ProcessDetails>("containerd.runc.v1.ProcessDetails", b);
    }),
    ("Any cgroups v1 Metrics", |b| {
        any_payload::<cgroups_v1::Metrics>("io.containerd.cgroups.v1.Metrics", b);
    }),
    ("Any cgroups v2 Metrics", |b| {
        any_payload::<cgroups_v2::Metrics>("io.containerd.cgroups.v2.Metrics", b);
    }),
    ("OCI process spec", process_spec),
];

/// The case byte 0 of an input selects.
pub fn case(selector: u8) -> &'static str {
    pick(selector).0
}

fn pick(selector: u8) -> Case {
    let i = usize::from(selector) % (CHECKED.len() + DECODE.len());
    match CHECKED.get(i) {
        Some(c) => *c,
        None => DECODE[i - CHECKED.len()],
    }
}

/// Runs one input (see the module docs for the layout).
pub fn run(data: &[u8]) {
    if let Some((&selector, bytes)) = data.split_first() {
        (pick(selector).1)(bytes);
    }
}
