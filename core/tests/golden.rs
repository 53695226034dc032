//! Byte-for-byte agreement with Go ttrpc 1.1.1.
//!
//! `golden/` holds frames recorded from the real Go client and server
//! (`support/go/golden`, regenerate with its `regen.sh`) and a manifest of
//! the values Go sent. Each test builds the frame from the manifest with our
//! types and compares bytes, then decodes Go's bytes and compares fields, so
//! a wrong field number cannot pass either way.

// Tests take one real instant as the epoch of a virtual clock, and read
// golden data from disk: both are fine outside the sans-IO core itself.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use ttrpc_core::{
    Bytes, CallOptions, ClientConnection, Code, Config, Decoded, FrameDecoder, FrameType, KeyValue,
    Metadata, Registry, Request, Responder, Response, ServerConnection, ServerEvent, Status,
    StreamId,
};

mod common;
use common::{drain_server, hex, request_frame};

struct Golden {
    name: String,
    bytes: Vec<u8>,
    entry: Value,
}

fn load() -> Vec<Golden> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    manifest
        .as_array()
        .expect("array")
        .iter()
        .map(|e| Golden {
            name: e["name"].as_str().expect("name").to_owned(),
            bytes: std::fs::read(dir.join(e["file"].as_str().expect("file"))).expect("frame"),
            entry: e.clone(),
        })
        .collect()
}

fn golden(name: &str) -> Golden {
    load()
        .into_iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no golden frame {name}"))
}

fn single_frame(bytes: &[u8]) -> (ttrpc_core::FrameHeader, Bytes) {
    let mut d = FrameDecoder::new(ttrpc_core::DEFAULT_MAX_DATA_LEN);
    d.push(bytes);
    let Some(Decoded::Frame { header, data }) = d.decode() else {
        panic!("not one frame")
    };
    assert!(
        d.decode().is_none() && !d.in_partial_frame(),
        "trailing bytes"
    );
    (header, data)
}

fn manifest_metadata(v: &Value) -> Vec<KeyValue> {
    v.as_array()
        .expect("metadata")
        .iter()
        .map(|kv| KeyValue {
            key: kv["key"].as_str().expect("key").into(),
            value: kv["value"].as_str().expect("value").into(),
        })
        .collect()
}

fn manifest_status(v: &Value) -> Option<Status> {
    if v.is_null() {
        return None;
    }
    Some(Status {
        code: Code::from_i32(v["code"].as_i64().expect("code") as i32),
        message: v["message"].as_str().expect("message").into(),
        details: v["details"]
            .as_array()
            .expect("details")
            .iter()
            .map(|d| prost_types::Any {
                type_url: d["type_url"].as_str().expect("type_url").into(),
                value: hex(d["value_hex"].as_str().expect("value_hex")),
            })
            .collect(),
    })
}

#[test]
fn requests_match_go_client_bytes_and_decode_to_the_manifest() {
    let now = Instant::now();
    let mut checked = 0;
    for g in load().into_iter().filter(|g| g.entry["kind"] == "request") {
        let m = &g.entry["request"];
        let service = m["service"].as_str().expect("service");
        let method = m["method"].as_str().expect("method");
        let payload = hex(m["payload_hex"].as_str().expect("payload"));
        let timeout_nano = m["timeout_nano"].as_i64().expect("timeout");
        let metadata = manifest_metadata(&m["metadata"]);
        let stream_id = g.entry["stream_id"].as_u64().expect("id") as u32;

        // Ours, built from the manifest.
        let options = CallOptions {
            timeout: (timeout_nano > 0).then(|| Duration::from_nanos(timeout_nano as u64)),
            metadata: Metadata::from(metadata.clone()),
        };
        let mut client = ClientConnection::new(Config::default());
        let mut id = StreamId::new(0);
        while id.get() < stream_id {
            if let Some(b) = client.take_transmit() {
                drop(b);
            }
            id = client
                .send_request(now, service, method, &payload, &options)
                .expect("send");
        }
        let ours = client.take_transmit().expect("bytes");
        assert_eq!(
            &ours[..],
            &g.bytes[..],
            "{}: bytes differ from Go's",
            g.name
        );

        // Go's, decoded with our types.
        let (header, data) = single_frame(&g.bytes);
        assert_eq!(header.kind, FrameType::Request);
        assert_eq!(header.stream_id.get(), stream_id);
        assert_eq!(header.flags.0, 0);
        let req = Request::decode(data).expect("decode Go request");
        assert_eq!(req.service, service, "{}", g.name);
        assert_eq!(req.method, method, "{}", g.name);
        assert_eq!(&req.payload[..], &payload[..], "{}", g.name);
        assert_eq!(req.timeout_nano, timeout_nano, "{}", g.name);
        assert_eq!(req.metadata, metadata, "{}", g.name);
        checked += 1;
    }
    assert_eq!(checked, 5, "every request golden was checked");
}

#[test]
fn responses_decode_to_the_manifest() {
    let mut checked = 0;
    for g in load().into_iter().filter(|g| g.entry["kind"] == "response") {
        let m = &g.entry["response"];
        let (header, data) = single_frame(&g.bytes);
        assert_eq!(header.kind, FrameType::Response);
        assert_eq!(
            u64::from(header.stream_id.get()),
            g.entry["stream_id"].as_u64().unwrap()
        );
        let resp = Response::decode(data).expect("decode Go response");
        assert_eq!(
            resp.status.map(Status::from),
            manifest_status(&m["status"]),
            "{}",
            g.name
        );
        assert_eq!(
            &resp.payload[..],
            &hex(m["payload_hex"].as_str().unwrap())[..],
            "{}",
            g.name
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// Runs one request through a server connection and a registry; returns the
/// response frame's bytes.
fn serve(input: &[u8], registry: &Registry, answer: Option<Result<Bytes, Status>>) -> Vec<u8> {
    let now = Instant::now();
    let mut server = ServerConnection::new(Config::default());
    server.handle_input(now, input);
    for event in drain_server(&mut server) {
        if let ServerEvent::Request(req) = event {
            let id = req.id;
            let result = match &answer {
                Some(a) => a.clone(),
                None => {
                    let (tx, rx) = std::sync::mpsc::channel();
                    let sink = Box::new(move |_, r| tx.send(r).expect("send"));
                    registry.dispatch(req, Responder::new(id, sink));
                    rx.recv().expect("reply")
                }
            };
            server.send_response(id, result).expect("respond");
        }
    }
    server
        .take_transmit()
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

#[test]
fn our_server_answers_with_go_server_bytes() {
    let mut registry = Registry::new();
    registry.register_fn("svc.Test", "Known", |_| Ok(Bytes::new()));
    let call = |service: &str, method: &str| request_frame(1, service, method, b"");
    let status = |name: &str| manifest_status(&golden(name).entry["response"]["status"]).unwrap();

    type Case<'a> = (&'a str, Vec<u8>, Option<Result<Bytes, Status>>);
    let cases: Vec<Case<'_>> = vec![
        ("response_empty_success", call("svc.Test", "Known"), None),
        (
            "response_payload",
            call("svc.Test", "Payload"),
            Some(Ok(Bytes::from_static(b"\x0a\x05hello"))),
        ),
        (
            "response_error_status",
            call("svc.Test", "X"),
            Some(Err(status("response_error_status"))),
        ),
        (
            "response_status_details",
            call("svc.Test", "X"),
            Some(Err(status("response_status_details"))),
        ),
        ("response_unknown_service", call("nope.Svc", "Known"), None),
        ("response_unknown_method", call("svc.Test", "Nope"), None),
        (
            "response_even_stream_id",
            request_frame(2, "svc.Test", "Known", b""),
            None,
        ),
        (
            "response_oversized_request",
            {
                let mut f = vec![0x00, 0x40, 0x00, 0x01, 0, 0, 0, 1, 1, 0];
                f.resize(10 + 4_194_305, 0);
                f
            },
            None,
        ),
    ];
    for (name, input, answer) in cases {
        let ours = serve(&input, &registry, answer);
        assert_eq!(
            ours,
            golden(name).bytes,
            "{name}: our response differs from Go's"
        );
    }
}

#[test]
fn undecodable_request_gets_go_code_and_message_prefix() {
    let registry = Registry::new();
    let input = [0, 0, 0, 3, 0, 0, 0, 1, 1, 0, 0xff, 0xff, 0xff];
    let ours = serve(&input, &registry, None);
    let (h, data) = single_frame(&ours);
    assert_eq!(h.stream_id.get(), 1);
    let status = Status::from(Response::decode(data).unwrap().status.expect("status"));
    let go = manifest_status(&golden("response_undecodable_request").entry["response"]["status"])
        .unwrap();
    assert_eq!(status.code, go.code);
    assert!(
        status.message.starts_with("unmarshal request error: "),
        "{status}"
    );
}

#[test]
fn our_client_reads_go_responses() {
    let now = Instant::now();
    for (name, expected) in [
        ("response_empty_success", Ok(Bytes::new())),
        ("response_payload", Ok(Bytes::from_static(b"\x0a\x05hello"))),
        (
            "response_error_status",
            Err(Status::new(Code::NotFound, "thing not found")),
        ),
        (
            "response_unknown_service",
            Err(Status::new(Code::Unimplemented, "service nope.Svc")),
        ),
    ] {
        let mut client = ClientConnection::new(Config::default());
        let id = client
            .send_request(now, "svc.Test", "X", b"", &CallOptions::default())
            .unwrap();
        client.handle_input(now, &golden(name).bytes);
        match client.poll_event() {
            Some(ttrpc_core::ClientEvent::Response { id: got, result }) => {
                assert_eq!(got, id);
                let result = result.map_err(|e| match e {
                    ttrpc_core::CallError::Status(s) => s,
                    other => panic!("{name}: {other}"),
                });
                assert_eq!(result, expected, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}
