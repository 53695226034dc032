//! The hostile-peer suite: what a misbehaving or malicious client does to a
//! server, as raw bytes on a socket, so the same cases run against every
//! server in the project (std, mio, `shimctl serve`).
//!
//! The server under test must serve [`crate::interop::register_interop`]'s
//! service. Each case runs while a well-behaved client (the canary) keeps
//! calling on its own connection; afterwards the process's fd count must be
//! back where it was and the server's buffered bytes within its bound.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use prost::Message;
use ttrpc_core::{Code, Response, Status};

use crate::fd_count;
use crate::interop::{BytesValue, Int64Value, RawFrame, read_frame, write_request};

/// The server under test.
pub struct Target<'a> {
    /// Its socket.
    pub socket: &'a Path,
    /// The bytes its connections' cores hold now.
    pub buffered: &'a (dyn Fn() -> u64 + Sync),
    /// The most `buffered` may ever be (e.g. `Config::memory_bound` times
    /// the connections a case opens).
    pub bound_per_connection: u64,
    /// The server's partial-frame timeout, if configured.
    pub partial_frame_timeout: Option<Duration>,
}

fn connect(t: &Target<'_>) -> UnixStream {
    let s = UnixStream::connect(t.socket).expect("connect to the server under test");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    s
}

fn frame(id: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(10 + data.len());
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[kind, 0]);
    f.extend_from_slice(data);
    f
}

fn status_of(f: &RawFrame) -> Option<Status> {
    assert_eq!(f.kind, 2, "a Response frame");
    Response::decode(&f.data[..])
        .expect("a valid Response")
        .status
        .map(Status::from)
}

fn expect_status(s: &mut UnixStream, id: u32, code: Code, message: &str) {
    let f = read_frame(s).expect("an answer");
    assert_eq!(f.stream_id, id, "answer on the offending stream");
    let st = status_of(&f).expect("a status");
    assert_eq!(
        (st.code, st.message.as_str()),
        (code, message),
        "answer on stream {id}"
    );
}

/// Calls Echo on `id` and checks the answer.
fn echo(s: &mut UnixStream, id: u32) {
    let payload = BytesValue {
        value: vec![7; 16].into(),
    }
    .encode_to_vec();
    write_request(s, id, "Echo", &payload);
    let f = read_frame(s).expect("echo answer");
    assert_eq!(f.stream_id, id);
    assert_eq!(status_of(&f), None, "echo succeeded");
}

/// Reads until the server closes the connection; fails if it sends a frame
/// or stays open past `within`.
fn expect_closed_without_answer(s: &mut UnixStream, within: Duration) {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("server sent {n} bytes instead of closing"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("server did not close the connection: {e}"),
    }
}

/// A well-behaved client calling Echo in a loop on its own connection.
struct Canary {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<Duration>>,
}

impl Canary {
    fn start(t: &Target<'_>) -> Self {
        let mut s = connect(t);
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let (stop2, calls2) = (stop.clone(), calls.clone());
        let handle = thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            let mut id = 1u32;
            while !stop2.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                echo(&mut s, id);
                slowest = slowest.max(t0.elapsed());
                calls2.fetch_add(1, Ordering::Relaxed);
                id += 2;
                thread::sleep(Duration::from_millis(5));
            }
            slowest
        });
        // Make sure it is being served before the attack starts.
        let t0 = Instant::now();
        while calls.load(Ordering::Relaxed) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "canary never answered"
            );
            thread::sleep(Duration::from_millis(5));
        }
        Self {
            stop,
            calls,
            handle: Some(handle),
        }
    }

    /// Stops the canary; asserts it kept getting answers, none slow.
    fn finish(mut self, case: &str) {
        // Still being answered: another call completes (within a window
        // generous enough for a loaded 2-core machine; the per-call bound
        // below is what measures latency).
        let before = self.calls.load(Ordering::Relaxed);
        assert!(
            eventually(Duration::from_secs(2), || self
                .calls
                .load(Ordering::Relaxed)
                > before),
            "{case}: canary starved after the attack"
        );
        self.stop.store(true, Ordering::Relaxed);
        let slowest = self
            .handle
            .take()
            .expect("once")
            .join()
            .unwrap_or_else(|_| panic!("{case}: canary failed"));
        assert!(
            slowest < Duration::from_secs(2),
            "{case}: a canary call took {slowest:?}"
        );
    }
}

/// Waits until `cond` holds, for up to `limit`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs one case with the canary and the after-checks.
fn run_case(t: &Target<'_>, name: &str, connections: u64, case: impl FnOnce(&Target<'_>)) {
    let fds = fd_count();
    let canary = Canary::start(t);
    let fds_with_canary = fd_count();
    case(t);
    let bound = t.bound_per_connection * (connections + 1);
    let held = (t.buffered)();
    assert!(
        held <= bound,
        "{name}: server holds {held} bytes > bound {bound}"
    );
    canary.finish(name);
    assert!(
        eventually(Duration::from_secs(10), || fd_count() <= fds),
        "{name}: fds {} after, {fds} before ({fds_with_canary} with canary)",
        fd_count()
    );
    assert!(
        eventually(Duration::from_secs(10), || (t.buffered)() == 0),
        "{name}: {} bytes still buffered after every connection closed",
        (t.buffered)()
    );
}

/// A length field of 4 GiB − 1: answered `ResourceExhausted`, never buffered.
pub fn case_huge_length(t: &Target<'_>) {
    let mut s = connect(t);
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0])
        .expect("write");
    s.write_all(&vec![0u8; 1 << 20]).expect("write body part");
    expect_status(
        &mut s,
        1,
        Code::ResourceExhausted,
        "message length 4294967295 exceed maximum message size of 4194304",
    );
}

/// A header, part of its body, then EOF: closed without an answer.
pub fn case_header_then_eof(t: &Target<'_>) {
    let mut s = connect(t);
    let f = frame(1, 1, &[0; 100]);
    s.write_all(&f[..15]).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    expect_closed_without_answer(&mut s, Duration::from_secs(10));
}

/// Unknown frame types and client-sent Response frames are skipped; the
/// connection goes on.
pub fn case_unknown_and_unexpected_types(t: &Target<'_>) {
    let mut s = connect(t);
    s.write_all(&frame(1, 7, b"from the future"))
        .expect("write");
    s.write_all(&frame(3, 2, b"")).expect("write");
    echo(&mut s, 5);
}

/// A Data frame on a stream that is not open: `InvalidArgument`.
pub fn case_data_on_inactive_stream(t: &Target<'_>) {
    let mut s = connect(t);
    s.write_all(&frame(9, 3, b"data")).expect("write");
    expect_status(
        &mut s,
        9,
        Code::InvalidArgument,
        "StreamID is no longer active",
    );
    echo(&mut s, 11);
}

/// Garbage: no crash, no hang; the server answers or closes, and the
/// connection ends when we leave.
pub fn case_garbage(t: &Target<'_>) {
    let mut s = connect(t);
    let mut x = 0x1234_5678_u32;
    let garbage: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    s.write_all(&garbage).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

/// A Request whose data is not a protobuf Request: `InvalidArgument`.
pub fn case_undecodable_request(t: &Target<'_>) {
    let mut s = connect(t);
    s.write_all(&frame(1, 1, &[0xff, 0xff, 0xff]))
        .expect("write");
    let f = read_frame(&mut s).expect("answer");
    let st = status_of(&f).expect("status");
    assert_eq!((f.stream_id, st.code), (1, Code::InvalidArgument));
    assert!(st.message.starts_with("unmarshal request error: "), "{st}");
    echo(&mut s, 3);
}

/// Even stream ids and id 0: `InvalidArgument` on that id.
pub fn case_even_stream_ids(t: &Target<'_>) {
    let mut s = connect(t);
    for id in [2, 0] {
        write_request(&mut s, id, "Echo", b"");
        expect_status(
            &mut s,
            id,
            Code::InvalidArgument,
            "StreamID must be odd for client initiated streams",
        );
    }
    echo(&mut s, 1);
}

/// A reused stream id: the second request is answered `InvalidArgument`.
pub fn case_reused_stream_id(t: &Target<'_>) {
    let mut s = connect(t);
    echo(&mut s, 7);
    write_request(&mut s, 7, "Echo", b"");
    expect_status(
        &mut s,
        7,
        Code::InvalidArgument,
        "StreamID cannot be re-used and must increment",
    );
    write_request(&mut s, 5, "Echo", b"");
    expect_status(
        &mut s,
        5,
        Code::InvalidArgument,
        "StreamID cannot be re-used and must increment",
    );
    echo(&mut s, 9);
}

/// Unknown service and method: `Unimplemented` with Go's messages.
pub fn case_unknown_service_and_method(t: &Target<'_>) {
    let mut s = connect(t);
    let mut req = ttrpc_core::Request {
        service: "no.Such".into(),
        method: "Echo".into(),
        ..Default::default()
    };
    s.write_all(&frame(1, 1, &req.encode_to_vec()))
        .expect("write");
    expect_status(&mut s, 1, Code::Unimplemented, "service no.Such");
    write_request(&mut s, 3, "NoSuchMethod", b"");
    expect_status(&mut s, 3, Code::Unimplemented, "method NoSuchMethod");
    req.service = crate::SERVICE.into();
    req.method = String::new();
    s.write_all(&frame(5, 1, &req.encode_to_vec()))
        .expect("write");
    expect_status(&mut s, 5, Code::Unimplemented, "method ");
}

/// One byte every 100 ms: nobody else is delayed, and with a partial-frame
/// timeout the server closes the connection.
pub fn case_slowloris(t: &Target<'_>) {
    let mut s = connect(t);
    let f = frame(1, 1, &[0; 64]);
    let limit = t
        .partial_frame_timeout
        .map_or(Duration::from_millis(1500), |p| {
            p + Duration::from_millis(1500)
        });
    let t0 = Instant::now();
    for b in &f[..f.len() - 1] {
        if s.write_all(&[*b]).is_err() {
            break; // closed by the server: what a timeout should do
        }
        thread::sleep(Duration::from_millis(100));
        if t0.elapsed() > limit {
            break;
        }
    }
    if let Some(timeout) = t.partial_frame_timeout {
        assert!(t0.elapsed() >= timeout, "closed before the timeout");
        expect_closed_without_answer(&mut s, Duration::from_secs(5));
    }
}

/// Thousands of requests and never a read: the server stops reading this
/// connection when its bound is reached and holds no more than the bound.
pub fn case_never_reads(t: &Target<'_>) {
    let mut s = connect(t);
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let payload = BytesValue {
        value: vec![1; 1024].into(),
    }
    .encode_to_vec();
    let mut id = 1u32;
    let mut sent = 0;
    let mut request = Vec::new();
    for _ in 0..20_000 {
        request.clear();
        let req = ttrpc_core::Request {
            service: crate::SERVICE.into(),
            method: "Echo".into(),
            payload: payload.clone().into(),
            ..Default::default()
        };
        request.extend(frame(id, 1, &req.encode_to_vec()));
        if s.write_all(&request).is_err() {
            break; // the server stopped reading us: backpressure works
        }
        sent += 1;
        id += 2;
    }
    assert!(sent > 100, "only {sent} requests went out");
    let held = (t.buffered)();
    assert!(
        held <= 2 * t.bound_per_connection,
        "never-reading peer made the server hold {held} bytes"
    );
}

/// 1,000 connections opened and dropped at once.
pub fn case_thousand_connections(t: &Target<'_>) {
    let conns: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(t.socket).expect("connect"))
        .collect();
    drop(conns);
    let mut s = connect(t);
    echo(&mut s, 1);
}

/// 100 connections, each with many requests in flight at once.
pub fn case_many_in_flight(t: &Target<'_>, per_connection: u32) {
    let payload = Int64Value { value: 20 }.encode_to_vec(); // Sleep 20 ms
    let mut conns: Vec<UnixStream> = (0..100).map(|_| connect(t)).collect();
    for s in &mut conns {
        for i in 0..per_connection {
            write_request(s, 2 * i + 1, "Sleep", &payload);
        }
    }
    for s in &mut conns {
        let mut ids: Vec<u32> = (0..per_connection)
            .map(|_| read_frame(s).expect("answer").stream_id)
            .collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (0..per_connection).map(|i| 2 * i + 1).collect::<Vec<_>>()
        );
    }
}

/// Every case above, one after another, each with the canary and the
/// fd and memory checks. `per_connection` is the server's in-flight bound.
pub fn run_all(t: &Target<'_>, per_connection: u32) {
    run_case(t, "huge length", 1, case_huge_length);
    run_case(t, "header then EOF", 1, case_header_then_eof);
    run_case(
        t,
        "unknown frame types",
        1,
        case_unknown_and_unexpected_types,
    );
    run_case(
        t,
        "data on inactive stream",
        1,
        case_data_on_inactive_stream,
    );
    run_case(t, "garbage", 1, case_garbage);
    run_case(t, "undecodable request", 1, case_undecodable_request);
    run_case(t, "even stream ids", 1, case_even_stream_ids);
    run_case(t, "reused stream id", 1, case_reused_stream_id);
    run_case(
        t,
        "unknown service and method",
        1,
        case_unknown_service_and_method,
    );
    run_case(t, "slowloris", 1, case_slowloris);
    run_case(t, "never reads", 1, case_never_reads);
    run_case(t, "1000 connections", 1000, case_thousand_connections);
    run_case(t, "100 connections in flight", 100, |t| {
        case_many_in_flight(t, per_connection)
    });
}
