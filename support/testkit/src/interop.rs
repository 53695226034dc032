//! The transport-agnostic half of the Go interop proof.
//!
//! - [`register_interop`]: **our** implementation of the Go peer's
//!   `ttrpc.interop.Interop` service (see `support/go/peer/README.md`) on a
//!   core [`Registry`], for a transport's server to serve.
//! - The client cases (`case_*`, or all of them with [`run_client_cases`]),
//!   written against [`UnaryCall`] so that every transport's client runs the
//!   same checks against the Go peer server (and against our own server).
//! - [`run_go_client_cases`]: every `peer client` case against a server
//!   serving [`register_interop`], with the outputs checked.
//! - [`raw_call`]: one hand-framed call on a fresh socket, for checks that
//!   need the bytes on the wire (e.g. the size of a response frame).
//!
//! Every check panics with a message naming the case on failure.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use serde_json::Value;
use ttrpc_core::{CallOptions, Code, Metadata, Registry, Request, Response, Status};

use crate::{SERVICE, run_peer_client};

/// ttrpc's frame data limit (4 MiB, inclusive).
pub const MAX_DATA_LEN: usize = 4 << 20;

/// `google.protobuf.BytesValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesValue {
    /// The bytes.
    #[prost(bytes = "bytes", tag = "1")]
    pub value: Bytes,
}

/// `google.protobuf.StringValue`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StringValue {
    /// The string.
    #[prost(string, tag = "1")]
    pub value: String,
}

/// `google.protobuf.Int64Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64Value {
    /// The number.
    #[prost(int64, tag = "1")]
    pub value: i64,
}

/// `n` bytes where byte `i` is `i % 251` (the Go peer's pattern).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The largest `Large` the service answers (64 MiB, as the Go peer).
const MAX_LARGE: i64 = 64 << 20;

/// How long our `Block` waits for `Release` when the call has no deadline.
const BLOCK_BOUND: Duration = Duration::from_secs(30);

/// Wakes every `Block` in flight when `Release` is called.
#[derive(Default)]
struct Releaser {
    generation: Mutex<u64>,
    cond: Condvar,
}

fn bad_payload(e: prost::DecodeError) -> Status {
    Status::new(
        Code::Internal,
        format!("ttrpc: error unmarshalling payload: {e}"),
    )
}

/// Registers our implementation of `ttrpc.interop.Interop` (Echo, Metadata,
/// Status, Deadline, Sleep, Block/Release, Large; same payload types and
/// answers as the Go peer's server) on `registry`.
///
/// `Block` waits for a `Release`, the call's deadline (answering
/// `DeadlineExceeded` "context deadline exceeded", as Go's handler does),
/// or at most 30 s without a deadline (then also `DeadlineExceeded`). It
/// blocks its thread: a transport must run it off its event loop.
pub fn register_interop(registry: &mut Registry) {
    let releaser = Arc::new(Releaser::default());
    registry.register_fn(SERVICE, "Echo", |req| {
        let v = BytesValue::decode(req.payload.clone()).map_err(bad_payload)?;
        Ok(v.encode_to_vec().into())
    });
    registry.register_fn(SERVICE, "Metadata", |req| {
        let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in req.metadata.iter() {
            map.entry(k).or_default().push(v);
        }
        let json = serde_json::to_string(&map)
            .map_err(|e| Status::new(Code::Internal, format!("marshal metadata: {e}")))?;
        Ok(StringValue { value: json }.encode_to_vec().into())
    });
    registry.register_fn(SERVICE, "Status", |req| {
        let v = StringValue::decode(req.payload.clone()).map_err(bad_payload)?;
        let (code, msg) = v.value.split_once(':').unwrap_or((&v.value, ""));
        let Ok(code) = code.parse::<u32>() else {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("bad status request {:?}", v.value),
            ));
        };
        if code == 0 {
            return Ok(Bytes::new());
        }
        Err(Status::new(Code::from_i32(code as i32), msg))
    });
    registry.register_fn(SERVICE, "Deadline", |req| {
        let remaining = req.deadline.map_or(-1, |d| {
            i64::try_from(d.saturating_duration_since(Instant::now()).as_nanos())
                .unwrap_or(i64::MAX)
        });
        Ok(Int64Value { value: remaining }.encode_to_vec().into())
    });
    registry.register_fn(SERVICE, "Sleep", |req| {
        let v = Int64Value::decode(req.payload.clone()).map_err(bad_payload)?;
        if v.value > 0 {
            thread::sleep(Duration::from_millis(v.value.unsigned_abs()));
        }
        Ok(v.encode_to_vec().into())
    });
    let rel = Arc::clone(&releaser);
    registry.register_fn(SERVICE, "Block", move |req| {
        let until = req.deadline.unwrap_or_else(|| Instant::now() + BLOCK_BOUND);
        let mut generation = rel.generation.lock().unwrap_or_else(|e| e.into_inner());
        let start = *generation;
        while *generation == start {
            let now = Instant::now();
            if now >= until {
                return Err(Status::new(
                    Code::DeadlineExceeded,
                    "context deadline exceeded",
                ));
            }
            generation = rel
                .cond
                .wait_timeout(generation, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(Bytes::new())
    });
    let rel = releaser;
    registry.register_fn(SERVICE, "Release", move |_req| {
        *rel.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        rel.cond.notify_all();
        Ok(Bytes::new())
    });
    registry.register_fn(SERVICE, "Large", |req| {
        let v = Int64Value::decode(req.payload.clone()).map_err(bad_payload)?;
        if !(0..=MAX_LARGE).contains(&v.value) {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("Large: size {} out of range 0..={MAX_LARGE}", v.value),
            ));
        }
        let data = pattern(usize::try_from(v.value).unwrap_or(0));
        Ok(BytesValue { value: data.into() }.encode_to_vec().into())
    });
}

// ------------------------------------------------------------ client side

/// How a call failed, in the terms the cases check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The server answered with a non-OK status.
    Status {
        /// The code.
        code: Code,
        /// The message.
        message: String,
    },
    /// The call's deadline passed (enforced locally).
    DeadlineExceeded,
    /// The request was refused locally for being over the message size
    /// limit, before anything was written.
    TooLarge,
    /// Anything else, described.
    Other(String),
}

/// A transport's client, reduced to what the cases need: one unary call
/// on [`SERVICE`], from any thread (the same client shared by all).
pub trait UnaryCall: Sync {
    /// Calls `SERVICE`/`method` with `payload` and returns the answer's
    /// payload.
    fn call(&self, method: &str, payload: &[u8], opts: &CallOptions) -> Result<Bytes, CallFailure>;
}

fn no_opts() -> CallOptions {
    CallOptions::default()
}

/// The encoded length of a length-delimited field `tag` of `len` bytes
/// (proto3: omitted when empty).
fn field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + prost::length_delimiter_len(len) + len
    }
}

/// The data length of an Echo Request frame (no timeout, no metadata)
/// carrying `n` bytes.
fn echo_request_len(n: usize) -> usize {
    field_len(SERVICE.len()) + field_len("Echo".len()) + field_len(field_len(n))
}

/// The Echo payload size whose Request frame data is exactly `frame` bytes.
pub fn echo_size_for_request_frame(frame: usize) -> usize {
    (frame - 64..frame)
        .find(|&n| echo_request_len(n) == frame)
        .expect("some payload size gives the frame length")
}

/// The `Large` size whose Response frame data is exactly `frame` bytes.
pub fn large_size_for_response_frame(frame: usize) -> usize {
    (frame - 64..frame)
        .find(|&n| field_len(field_len(n)) == frame)
        .expect("some size gives the frame length")
}

fn echo(c: &impl UnaryCall, data: &[u8]) -> Result<Vec<u8>, CallFailure> {
    let req = BytesValue {
        value: Bytes::copy_from_slice(data),
    };
    let out = c.call("Echo", &req.encode_to_vec(), &no_opts())?;
    let v = BytesValue::decode(out).map_err(|e| CallFailure::Other(format!("decode: {e}")))?;
    Ok(v.value.to_vec())
}

/// Echo round trips whose frames have data lengths 0 (the empty answer),
/// 16 B, 64 KiB, 1 MiB and a Request of exactly 4,194,304 bytes; then a
/// Request of 4,194,305 bytes must fail with [`CallFailure::TooLarge`] and
/// the connection must still work.
pub fn case_echo_sizes(c: &impl UnaryCall) {
    for n in [0, 16, 64 << 10, 1 << 20] {
        let data = pattern(n);
        let got = echo(c, &data).unwrap_or_else(|e| panic!("echo {n} B: {e:?}"));
        assert!(got == data, "echo {n} B: answer differs");
    }
    let exact = echo_size_for_request_frame(MAX_DATA_LEN);
    assert_eq!(echo_request_len(exact), MAX_DATA_LEN);
    let data = pattern(exact);
    let got = echo(c, &data).unwrap_or_else(|e| panic!("echo of a 4 MiB frame: {e:?}"));
    assert!(got == data, "echo of a 4 MiB frame: answer differs");

    let over = pattern(exact + 1);
    assert_eq!(echo_request_len(exact + 1), MAX_DATA_LEN + 1);
    assert_eq!(
        echo(c, &over).map(|v| v.len()),
        Err(CallFailure::TooLarge),
        "a 4,194,305-byte request frame must be refused locally"
    );
    let got = echo(c, b"after").expect("the connection works after a refused request");
    assert_eq!(got, b"after");
}

/// `Large` answers of exactly 4,194,304 bytes arrive; one of 4,194,305
/// fails with `ResourceExhausted` (the Go 1.1.1 server sends it, our
/// server replaces it), and the connection still works.
pub fn case_large_responses(c: &impl UnaryCall) {
    let exact = large_size_for_response_frame(MAX_DATA_LEN);
    let req = Int64Value {
        value: exact as i64,
    };
    let out = c
        .call("Large", &req.encode_to_vec(), &no_opts())
        .unwrap_or_else(|e| panic!("Large({exact}): {e:?}"));
    let v = BytesValue::decode(out).expect("decode Large");
    assert!(v.value.len() == exact && v.value[..] == pattern(exact)[..]);

    let req = Int64Value {
        value: exact as i64 + 1,
    };
    match c.call("Large", &req.encode_to_vec(), &no_opts()) {
        Err(CallFailure::Status { code, message }) => {
            assert_eq!(code, Code::ResourceExhausted, "{message}");
            assert!(
                message.contains("4194305") && message.contains("4194304"),
                "{message}"
            );
        }
        other => panic!("oversized answer: expected ResourceExhausted, got {other:?}"),
    }
    assert_eq!(echo(c, b"ok").expect("echo after oversized answer"), b"ok");
}

/// Metadata with several values per (lower-case) key arrives intact,
/// compared as a multimap: value order within a key kept, key order ignored.
pub fn case_metadata(c: &impl UnaryCall) {
    let sent: &[(&str, &str)] = &[
        ("k1", "a"),
        ("k2", "c"),
        ("k1", "b"),
        ("containerd-namespace-ttrpc", "default"),
        ("k1", "third value, with spaces"),
        ("empty", ""),
    ];
    let mut opts = no_opts();
    opts.metadata = sent.iter().copied().collect::<Metadata>();
    let out = c
        .call("Metadata", &[], &opts)
        .unwrap_or_else(|e| panic!("Metadata: {e:?}"));
    let json = StringValue::decode(out).expect("decode StringValue").value;
    let got: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("metadata JSON {json:?}: {e}"));
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in sent {
        want.entry((*k).into()).or_default().push((*v).into());
    }
    assert_eq!(got, want);

    let out = c.call("Metadata", &[], &no_opts()).expect("Metadata");
    assert_eq!(StringValue::decode(out).expect("decode").value, "{}");
}

/// Every status code 1..=16 with a message comes back as the same code and
/// message; code 0 is a success.
pub fn case_status_codes(c: &impl UnaryCall) {
    for code in 0..=16 {
        let req = StringValue {
            value: format!("{code}:msg-{code}"),
        };
        let got = c.call("Status", &req.encode_to_vec(), &no_opts());
        if code == 0 {
            assert!(got.is_ok(), "Status 0: {got:?}");
            continue;
        }
        assert_eq!(
            got,
            Err(CallFailure::Status {
                code: Code::from_i32(code),
                message: format!("msg-{code}")
            }),
            "Status {code}"
        );
    }
}

/// The server sees the client's deadline (sent as `timeout_nano`), and none
/// when there is none.
pub fn case_deadline(c: &impl UnaryCall) {
    let out = c
        .call(
            "Deadline",
            &[],
            &CallOptions::with_timeout(Duration::from_secs(2)),
        )
        .unwrap_or_else(|e| panic!("Deadline: {e:?}"));
    let ns = Int64Value::decode(out).expect("decode").value;
    assert!(
        ns > 500_000_000 && ns <= 2_000_000_000,
        "server saw {ns} ns left of a 2 s deadline"
    );
    let out = c.call("Deadline", &[], &no_opts()).expect("Deadline");
    assert_eq!(Int64Value::decode(out).expect("decode").value, -1);
}

/// A call past its deadline fails with `DeadlineExceeded` on our side
/// within its deadline (plus slack), and its late answer is dropped: the
/// next calls get their own answers.
pub fn case_timeout(c: &impl UnaryCall) {
    let start = Instant::now();
    let req = Int64Value { value: 500 };
    let got = c.call(
        "Sleep",
        &req.encode_to_vec(),
        &CallOptions::with_timeout(Duration::from_millis(100)),
    );
    let elapsed = start.elapsed();
    assert_eq!(got, Err(CallFailure::DeadlineExceeded));
    assert!(
        elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(450),
        "deadline enforced after {elapsed:?}"
    );
    // Let the late answer arrive, then check it is not mistaken for ours.
    thread::sleep(Duration::from_millis(600).saturating_sub(start.elapsed()));
    for i in 0..3u8 {
        assert_eq!(echo(c, &[i; 3]).expect("echo after timeout"), [i; 3]);
    }
}

/// 16 concurrent calls over one connection: a `Block` that waits for
/// `Release`, and 15 Echos sent while it blocks, which must all come back
/// while it is still blocked; then `Release` frees it.
pub fn case_concurrent(c: &impl UnaryCall) {
    let done = Mutex::new(None::<Instant>);
    thread::scope(|s| {
        let block = s.spawn(|| {
            let r = c.call(
                "Block",
                &[],
                &CallOptions::with_timeout(Duration::from_secs(20)),
            );
            *done.lock().unwrap() = Some(Instant::now());
            r
        });
        thread::sleep(Duration::from_millis(50));
        let echoes: Vec<_> = (0..15u8)
            .map(|i| {
                let done = &done;
                s.spawn(move || {
                    let data = pattern(16 + usize::from(i));
                    let got = echo(c, &data);
                    (got.map(|g| g == data), done.lock().unwrap().is_some())
                })
            })
            .collect();
        for (i, e) in echoes.into_iter().enumerate() {
            let (got, block_done) = e.join().expect("echo thread");
            assert_eq!(got, Ok(true), "echo {i}");
            assert!(!block_done, "echo {i} returned only after Block did");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while done.lock().unwrap().is_none() {
            assert!(Instant::now() < deadline, "Block never released");
            c.call("Release", &[], &no_opts()).expect("Release");
            thread::sleep(Duration::from_millis(50));
        }
        let r = block.join().expect("block thread");
        assert!(r.is_ok(), "Block: {r:?}");
    });
}

/// A slow call does not hold up a fast one on the same connection.
pub fn case_slow_and_fast(c: &impl UnaryCall) {
    thread::scope(|s| {
        let slow = s.spawn(|| {
            let req = Int64Value { value: 1500 };
            c.call("Sleep", &req.encode_to_vec(), &no_opts())
        });
        thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        assert_eq!(echo(c, b"fast").expect("fast call"), b"fast");
        let fast = start.elapsed();
        assert!(
            fast < Duration::from_millis(1000),
            "fast call took {fast:?}"
        );
        assert!(slow.join().expect("slow thread").is_ok());
    });
}

/// Every client case above, in order.
pub fn run_client_cases(c: &impl UnaryCall) {
    case_echo_sizes(c);
    case_large_responses(c);
    case_metadata(c);
    case_status_codes(c);
    case_deadline(c);
    case_timeout(c);
    case_concurrent(c);
    case_slow_and_fast(c);
}

// ------------------------------------------------------ Go client side

fn go_case(socket: &Path, case: &str, extra: &[&str]) -> Value {
    let out = run_peer_client(socket, case, extra)
        .unwrap_or_else(|e| panic!("Go client case {case} {extra:?}: {e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("case {case}: bad JSON {out:?}: {e}"))
}

/// Runs every `peer client` case (Go ttrpc 1.1.1 as the client) against a
/// server on `socket` that serves [`register_interop`], and checks the
/// answers: Echo of 0 B, 16 B, 64 KiB, 1 MiB and a Request frame of exactly
/// 4,194,304 bytes; a 4,194,305-byte Request answered `ResourceExhausted`
/// with Go's message and the connection kept; metadata as a multimap; every
/// status code; the deadline seen by the handler; the client's own timeout;
/// 16 concurrent calls with one blocked handler.
pub fn run_go_client_cases(socket: &Path) {
    let exact = echo_size_for_request_frame(MAX_DATA_LEN).to_string();
    for size in ["0", "16", "65536", "1048576", exact.as_str()] {
        let v = go_case(socket, "echo", &["-size", size]);
        let want: usize = size.parse().unwrap();
        assert_eq!(
            v,
            serde_json::json!({"len": want, "match": true, "ok": true}),
            "echo {size}"
        );
    }

    let v = go_case(socket, "oversize", &[]);
    assert_eq!(v["first"]["frame_len"], 4_194_305, "{v}");
    assert_eq!(v["first"]["ok"], false, "{v}");
    assert_eq!(v["first"]["code"], 8, "{v}");
    assert_eq!(
        v["first"]["message"], "message length 4194305 exceed maximum message size of 4194304",
        "{v}"
    );
    assert_eq!(
        v["second"],
        serde_json::json!({"len": 16, "match": true, "ok": true}),
        "{v}"
    );

    let v = go_case(socket, "metadata", &[]);
    assert_eq!(
        v,
        serde_json::json!({"metadata": {"k1": ["a", "b"], "k2": ["c"]}, "ok": true})
    );

    let v = go_case(socket, "status", &[]);
    let want: Vec<Value> = (1..=16)
        .map(|c| serde_json::json!({"code": c, "message": format!("msg-{c}")}))
        .collect();
    assert_eq!(v, serde_json::json!({"ok": true, "results": want}));

    let v = go_case(socket, "deadline", &[]);
    assert_eq!(v["ok"], true, "{v}");
    let ns = v["remaining_ns"].as_i64().expect("remaining_ns");
    assert!(
        ns > 500_000_000 && ns <= 2_000_000_000,
        "handler saw {ns} ns of a 2 s deadline"
    );

    let v = go_case(socket, "timeout", &[]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"], "context deadline exceeded", "{v}");
    let ms = v["elapsed_ms"].as_i64().expect("elapsed_ms");
    assert!((100..450).contains(&ms), "{v}");

    let v = go_case(socket, "concurrent", &["-n", "16"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["echo_ok"], 15, "{v}");
    assert_eq!(v["block_err"], Value::Null, "{v}");
    assert!(v.get("echo_errors").is_none(), "{v}");
    let slowest = v["echo_elapsed_ms"].as_i64().expect("echo_elapsed_ms");
    assert!(
        slowest < 2000,
        "an Echo waited {slowest} ms behind Block: {v}"
    );
}

// ------------------------------------------------------- raw frames

/// A frame as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The header's data length.
    pub len: u32,
    /// The stream id.
    pub stream_id: u32,
    /// The message type.
    pub kind: u8,
    /// The data.
    pub data: Vec<u8>,
}

/// Reads one frame from `s`.
pub fn read_frame(s: &mut UnixStream) -> std::io::Result<RawFrame> {
    let mut h = [0u8; 10];
    s.read_exact(&mut h)?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let stream_id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let mut data = vec![0u8; len as usize];
    s.read_exact(&mut data)?;
    Ok(RawFrame {
        len,
        stream_id,
        kind: h[8],
        data,
    })
}

/// Writes one Request frame for `SERVICE`/`method` on stream `id`.
pub fn write_request(s: &mut UnixStream, id: u32, method: &str, payload: &[u8]) {
    let body = Request {
        service: SERVICE.into(),
        method: method.into(),
        payload: Bytes::copy_from_slice(payload),
        timeout_nano: 0,
        metadata: Vec::new(),
    }
    .encode_to_vec();
    let mut frame = Vec::with_capacity(10 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&[1, 0]);
    frame.extend_from_slice(&body);
    s.write_all(&frame).expect("write request frame");
}

/// Connects to `socket`, sends one hand-framed request on stream 1 and
/// returns the raw answer frame and its decoded Response.
pub fn raw_call(socket: &Path, method: &str, payload: &[u8]) -> (RawFrame, Response) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write_request(&mut s, 1, method, payload);
    let frame = read_frame(&mut s).expect("read answer frame");
    let resp = Response::decode(&frame.data[..]).expect("decode Response");
    (frame, resp)
}

/// Our server never sends a frame over 4 MiB: a `Large` answer one byte
/// over the limit arrives as a `ResourceExhausted` status frame within it.
pub fn check_no_oversized_response(socket: &Path) {
    let n = large_size_for_response_frame(MAX_DATA_LEN) + 1;
    let payload = Int64Value { value: n as i64 }.encode_to_vec();
    let (frame, resp) = raw_call(socket, "Large", &payload);
    assert!(
        frame.len as usize <= MAX_DATA_LEN,
        "frame of {} bytes",
        frame.len
    );
    assert_eq!((frame.stream_id, frame.kind), (1, 2));
    let status = resp.status.expect("a status");
    assert_eq!(status.code, Code::ResourceExhausted.as_i32(), "{status:?}");
    assert_eq!(
        status.message,
        "message length 4194305 exceed maximum message size of 4194304"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_length_arithmetic_matches_prost() {
        let n = echo_size_for_request_frame(MAX_DATA_LEN);
        assert_eq!(n, 4_194_265, "the Go peer's oversize case uses n + 1");
        let req = Request {
            service: SERVICE.into(),
            method: "Echo".into(),
            payload: BytesValue {
                value: vec![7; n].into(),
            }
            .encode_to_vec()
            .into(),
            timeout_nano: 0,
            metadata: Vec::new(),
        };
        assert_eq!(req.encoded_len(), MAX_DATA_LEN);
        let m = large_size_for_response_frame(MAX_DATA_LEN);
        let resp = Response {
            status: None,
            payload: BytesValue {
                value: vec![7; m].into(),
            }
            .encode_to_vec()
            .into(),
        };
        assert_eq!(resp.encoded_len(), MAX_DATA_LEN);
    }
}
