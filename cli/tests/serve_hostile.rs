//! Issue #7's hostile-peer suite against the real `shimctl serve` process:
//! raw ttrpc frames that break the protocol, task requests that try to hurt
//! the shim, and peers that stall, flood or exhaust descriptors.
//!
//! Each case runs while a canary (a well-behaved client on its own
//! connection) calls `State` in a loop and must get each answer — NotFound
//! "container not created" — within 2 s. Afterwards the serve process's fd
//! count (`/proc/PID/fd`) must be back to its baseline, and its SIGUSR1
//! report must show no attacker connection, no buffered byte, no task and
//! no zombie child. Every answer is checked exactly (code and message).
//!
//! Small helpers are copied from `ttrpc-testkit`'s `hostile.rs` rather than
//! shared, and the task messages are declared here (prost), since
//! `shimctl` is a binary crate.

use std::io::{BufRead as _, BufReader, ErrorKind, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use prost::Message;
use ttrpc_core::{Code, Response, Status};
use ttrpc_shimkit::{TempDir, wait_until};
use ttrpc_testkit::interop::read_frame;

const BIN: &str = env!("CARGO_BIN_EXE_shimctl");
const V2: &str = "containerd.task.v2.Task";
const V3: &str = "containerd.task.v3.Task";
/// The longest a canary call may take.
const CALL_LIMIT: Duration = Duration::from_secs(2);
/// Frame types.
const REQUEST: u8 = 1;
const RESPONSE: u8 = 2;
const DATA: u8 = 3;

/// What one connection of the shim may hold: the shim serves with
/// `ServerConfig::default()`, i.e. `ttrpc_core::Config::default()`.
fn bound_per_connection() -> u64 {
    ttrpc_core::Config::default().memory_bound(ttrpc_mio::READ_CHUNK) as u64
}

/// What the server reads from a socket at once.
const READ_CHUNK: u64 = ttrpc_mio::READ_CHUNK as u64;

// ------------------------------------------------------------ task messages

/// `StateRequest`, and every request that is just `id` and `exec_id`
/// (Start, Delete, Wait; Connect reads only `id`).
#[derive(Clone, PartialEq, Message)]
struct IdRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    exec_id: String,
}

fn ids(id: &str, exec_id: &str) -> IdRequest {
    IdRequest {
        id: id.to_owned(),
        exec_id: exec_id.to_owned(),
    }
}

#[derive(Clone, PartialEq, Message)]
struct CreateTaskRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    bundle: String,
    #[prost(bool, tag = "4")]
    terminal: bool,
    #[prost(string, tag = "5")]
    stdin: String,
    #[prost(string, tag = "6")]
    stdout: String,
    #[prost(string, tag = "7")]
    stderr: String,
}

fn create_request(id: &str, bundle: &str, stdout: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        id: id.to_owned(),
        bundle: bundle.to_owned(),
        stdout: stdout.to_owned(),
        ..Default::default()
    }
}

#[derive(Clone, PartialEq, Message)]
struct KillRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    exec_id: String,
    #[prost(uint32, tag = "3")]
    signal: u32,
    #[prost(bool, tag = "4")]
    all: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct ExecProcessRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    exec_id: String,
    #[prost(bool, tag = "3")]
    terminal: bool,
    #[prost(message, optional, tag = "7")]
    spec: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct ResizePtyRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    exec_id: String,
    #[prost(uint32, tag = "3")]
    width: u32,
    #[prost(uint32, tag = "4")]
    height: u32,
}

/// `CreateTaskResponse` and `StartResponse`.
#[derive(Clone, PartialEq, Message)]
struct PidResponse {
    #[prost(uint32, tag = "1")]
    pid: u32,
}

#[derive(Clone, PartialEq, Message)]
struct DeleteResponse {
    #[prost(uint32, tag = "1")]
    pid: u32,
    #[prost(uint32, tag = "2")]
    exit_status: u32,
}

/// `google.protobuf.Int64Value`: a message that is no task request.
#[derive(Clone, PartialEq, Message)]
struct Int64Value {
    #[prost(int64, tag = "1")]
    value: i64,
}

// ------------------------------------------------------------ wire helpers

fn frame(id: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(10 + data.len());
    f.extend_from_slice(
        &u32::try_from(data.len())
            .expect("small frame")
            .to_be_bytes(),
    );
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[kind, 0]);
    f.extend_from_slice(data);
    f
}

/// A Request frame carrying `payload` (already encoded).
fn request_bytes(id: u32, service: &str, method: &str, payload: Vec<u8>) -> Vec<u8> {
    let envelope = ttrpc_core::Request {
        service: service.to_owned(),
        method: method.to_owned(),
        payload: payload.into(),
        ..Default::default()
    };
    frame(id, REQUEST, &envelope.encode_to_vec())
}

/// A Request frame for `service/method` with `msg`.
fn request(id: u32, service: &str, method: &str, msg: &impl Message) -> Vec<u8> {
    request_bytes(id, service, method, msg.encode_to_vec())
}

type Answer = Result<Vec<u8>, Status>;

/// Reads one Response frame: its stream id, and its payload or status.
fn read_answer(s: &mut UnixStream) -> (u32, Answer) {
    let f = read_frame(s).expect("an answer");
    assert_eq!(f.kind, RESPONSE, "a Response frame");
    let r = Response::decode(&f.data[..]).expect("a valid Response");
    let answer = match r.status.map(Status::from) {
        Some(st) if st.code != Code::Ok => Err(st),
        _ => Ok(r.payload.to_vec()),
    };
    (f.stream_id, answer)
}

#[track_caller]
fn assert_status(answer: &Answer, code: Code, message: &str) {
    match answer {
        Err(st) => assert_eq!((st.code, st.message.as_str()), (code, message)),
        Ok(p) => panic!(
            "expected {code:?} {message:?}, got success ({} bytes)",
            p.len()
        ),
    }
}

/// Reads the answer on `id` and checks its status.
#[track_caller]
fn expect_status(s: &mut UnixStream, id: u32, code: Code, message: &str) {
    let (got, answer) = read_answer(s);
    assert_eq!(got, id, "answer on the offending stream");
    assert_status(&answer, code, message);
}

/// The canary's question and answer: State of a task that does not exist.
fn not_created(answer: &Answer) {
    assert_status(answer, Code::NotFound, "container not created");
}

/// Reads until the peer closes; fails on a frame or on a timeout.
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

/// A client on its own connection, one call at a time.
struct Client {
    s: UnixStream,
    next: u32,
}

impl Client {
    fn connect(socket: &Path) -> Self {
        let s = UnixStream::connect(socket).expect("connect to serve");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        Self { s, next: 1 }
    }

    fn call_on(&mut self, service: &str, method: &str, msg: &impl Message) -> Answer {
        let id = self.next;
        self.next += 2;
        self.s
            .write_all(&request(id, service, method, msg))
            .expect("write request");
        let (got, answer) = read_answer(&mut self.s);
        assert_eq!(got, id, "answer on the request's stream");
        answer
    }

    fn call(&mut self, method: &str, msg: &impl Message) -> Answer {
        self.call_on(V2, method, msg)
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
        thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------ the process

/// The counters `shimctl serve` prints on SIGUSR1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Report {
    /// Connections open now.
    connections: u64,
    /// Bytes all connections' cores hold (input and queued output).
    buffered_bytes: u64,
    /// The most one connection holds now (`Server::max_buffered_bytes`).
    max_buffered_bytes: u64,
    /// What one connection may hold at most (`Config::memory_bound`).
    bound_per_connection: u64,
    tasks: u64,
    pumps: u64,
}

const REPORT_PREFIX: &str = "shimctl serve: ";

impl Report {
    fn parse(line: &str) -> Self {
        let mut r = Self::default();
        let mut seen = 0;
        for field in line.trim_start_matches(REPORT_PREFIX).split_whitespace() {
            let (key, value) = field.split_once('=').expect("key=value");
            let value: u64 = value.parse().expect("a number");
            *match key {
                "connections" => &mut r.connections,
                "buffered_bytes" => &mut r.buffered_bytes,
                "max_buffered_bytes" => &mut r.max_buffered_bytes,
                "bound_per_connection" => &mut r.bound_per_connection,
                "tasks" => &mut r.tasks,
                "pumps" => &mut r.pumps,
                _ => panic!("unknown field in {line:?}"),
            } = value;
            seen += 1;
        }
        assert_eq!(seen, 6, "report line {line:?}");
        r
    }

    /// Only the canary (or nothing) connected; nothing held.
    fn is_quiet(&self, canaries: u64) -> bool {
        *self
            == Self {
                connections: canaries,
                bound_per_connection: self.bound_per_connection,
                ..Self::default()
            }
    }
}

/// A foreground `shimctl serve --socket unix://DIR/shim.sock`, stderr
/// read by a thread (report lines apart); SIGTERM on drop.
struct Serve {
    child: Child,
    path: PathBuf,
    dir: TempDir,
    reports: Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Serve {
    /// Starts serve, with a soft and hard `RLIMIT_NOFILE` of `nofile` if
    /// given (through `sh`'s `ulimit`, then `exec`: same pid).
    fn start(nofile: Option<u32>) -> Self {
        let dir = TempDir::new("shimctl-hostile").expect("temp dir");
        let path = dir.path().join("shim.sock");
        let socket = format!("unix://{}", path.display());
        let mut cmd = match nofile {
            None => {
                let mut c = Command::new(BIN);
                c.args(["serve", "--socket", &socket]);
                c
            }
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -n {n} && exec \"$0\" serve --socket \"$1\""
                    ))
                    .args([BIN, &socket]);
                c
            }
        };
        let mut child = cmd
            .env_remove("SHIMCTL_TEST_PANIC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, reports) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with(REPORT_PREFIX) {
                    let _ = tx.send(line);
                } else if let Ok(mut log) = log2.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let s = Self {
            child,
            path,
            dir,
            reports,
            log,
        };
        assert!(
            wait_until(Duration::from_secs(10), || s.path.exists()),
            "serve did not listen; stderr: {}",
            s.log()
        );
        s
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn socket(&self) -> &Path {
        &self.path
    }

    fn address(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::connect(&self.path)
    }

    fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(Iterator::count)
            .unwrap_or(0)
    }

    /// Sends SIGUSR1 and parses the line serve prints.
    fn report(&self) -> Report {
        while self.reports.try_recv().is_ok() {}
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("pid"));
        kill(pid, Signal::SIGUSR1).expect("SIGUSR1 to serve");
        let line = self
            .reports
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no SIGUSR1 report; stderr: {}", self.log()));
        Report::parse(&line)
    }

    /// Writes a bundle whose `config.json` is `config`; returns its path.
    fn bundle_with(&self, name: &str, config: &[u8]) -> String {
        let b = self.dir.path().join(name);
        std::fs::create_dir_all(&b).expect("bundle dir");
        std::fs::write(b.join("config.json"), config).expect("config.json");
        b.display().to_string()
    }

    /// Writes a bundle running `args`; returns its path.
    fn bundle(&self, name: &str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        let config = format!(
            r#"{{"ociVersion":"1.0.2","process":{{"args":[{}],"env":["PATH=/usr/bin:/bin"],"cwd":"/"}}}}"#,
            args.join(",")
        );
        self.bundle_with(name, config.as_bytes())
    }

    fn path_in_dir(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Children of serve that are zombies.
    fn zombies(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let state = f.next().unwrap_or("?");
            if state == "Z" && f.next().and_then(|p| p.parse().ok()) == Some(self.pid()) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ canary

/// A well-behaved client calling State in a loop on its own connection.
struct Canary {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    handle: Option<thread::JoinHandle<Duration>>,
}

impl Canary {
    fn start(serve: &Serve) -> Self {
        let mut c = serve.client();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let (stop2, calls2) = (Arc::clone(&stop), Arc::clone(&calls));
        let handle = thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !stop2.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                not_created(&c.call("State", &ids("canary", "")));
                slowest = slowest.max(t0.elapsed());
                calls2.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
            slowest
        });
        assert!(
            wait_until(Duration::from_secs(10), || calls.load(Ordering::Relaxed)
                > 0),
            "canary never answered"
        );
        Self {
            stop,
            calls,
            handle: Some(handle),
        }
    }

    /// Asserts it is still answered, then stops it: no call took longer
    /// than [`CALL_LIMIT`].
    fn finish(mut self, case: &str) {
        let before = self.calls.load(Ordering::Relaxed);
        assert!(
            eventually(CALL_LIMIT, || self.calls.load(Ordering::Relaxed) > before),
            "{case}: canary starved after the attack"
        );
        self.stop.store(true, Ordering::Relaxed);
        let slowest = self
            .handle
            .take()
            .expect("once")
            .join()
            .unwrap_or_else(|_| panic!("{case}: the canary failed"));
        assert!(
            slowest < CALL_LIMIT,
            "{case}: a canary call took {slowest:?}"
        );
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Runs one case with the canary, then checks: attackers gone and nothing
/// buffered (SIGUSR1), the canary answered throughout, fds back to the
/// baseline, no task, no zombie.
fn run_case(serve: &Serve, name: &str, attackers: u64, case: impl FnOnce(&Serve)) {
    let t0 = Instant::now();
    let fds = serve.fd_count();
    let canary = Canary::start(serve);
    case(serve);
    let bound = bound_per_connection() * (attackers + 1);
    let r = serve.report();
    assert!(r.buffered_bytes <= bound, "{name}: {r:?} over {bound}");
    let mut last = r;
    assert!(
        eventually(Duration::from_secs(10), || {
            last = serve.report();
            last.is_quiet(1)
        }),
        "{name}: after every attacker closed: {last:?}"
    );
    canary.finish(name);
    assert!(
        eventually(Duration::from_secs(10), || serve.fd_count() == fds),
        "{name}: {} fds after, {fds} before",
        serve.fd_count()
    );
    let r = serve.report();
    assert!(r.is_quiet(0), "{name}: {r:?}");
    assert!(
        eventually(Duration::from_secs(5), || serve.zombies().is_empty()),
        "{name}: zombies {:?}",
        serve.zombies()
    );
    eprintln!("case {name}: {:?}", t0.elapsed());
}

// ------------------------------------------------------------ protocol cases

/// A length field of 4 GiB − 1: answered ResourceExhausted, never buffered.
fn case_huge_length(serve: &Serve) {
    let mut s = serve.client().s;
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, REQUEST, 0])
        .expect("write header");
    s.write_all(&vec![0u8; 1 << 20]).expect("write body part");
    expect_status(
        &mut s,
        1,
        Code::ResourceExhausted,
        "message length 4294967295 exceed maximum message size of 4194304",
    );
    // The 1 MiB of body sent is skipped as it comes, not held.
    let r = serve.report();
    assert!(r.buffered_bytes <= 2 * READ_CHUNK, "{r:?}");
}

/// A header, part of its body, then EOF: closed without an answer.
fn case_header_then_eof(serve: &Serve) {
    let mut s = serve.client().s;
    let f = request(1, V2, "State", &ids("x", ""));
    s.write_all(&f[..15]).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    expect_closed_without_answer(&mut s, Duration::from_secs(10));
}

/// Unknown frame types and a client-sent Response frame are skipped; a Data
/// frame on no open stream is refused; the connection goes on.
fn case_unknown_and_unexpected_types(serve: &Serve) {
    let mut c = serve.client();
    c.s.write_all(&frame(1, 7, b"from the future"))
        .expect("write");
    c.s.write_all(&frame(3, 0xff, b"")).expect("write");
    c.s.write_all(&frame(5, RESPONSE, b"\x0a\x00"))
        .expect("write");
    c.s.write_all(&frame(9, DATA, b"data")).expect("write");
    expect_status(
        &mut c.s,
        9,
        Code::InvalidArgument,
        "StreamID is no longer active",
    );
    c.next = 11;
    not_created(&c.call("State", &ids("x", "")));
}

/// 8 KiB of garbage then EOF: no crash, no hang; the connection ends.
fn case_garbage(serve: &Serve) {
    let mut s = serve.client().s;
    let mut x = 0x1234_5678_u32;
    let garbage: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect();
    s.write_all(&garbage).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("garbage: the server kept the connection open: {e}"),
    }
}

/// A Request frame whose data is no ttrpc envelope: InvalidArgument, and the
/// connection goes on.
fn case_undecodable_envelope(serve: &Serve) {
    let mut c = serve.client();
    c.s.write_all(&frame(1, REQUEST, &[0xff, 0xff, 0xff]))
        .expect("write");
    expect_status(
        &mut c.s,
        1,
        Code::InvalidArgument,
        "unmarshal request error: failed to decode Protobuf message: invalid varint",
    );
    c.next = 3;
    not_created(&c.call("State", &ids("x", "")));
}

/// A State envelope whose payload is no StateRequest: bytes that are no
/// protobuf and a message whose field 1 is a varint are InvalidArgument
/// naming the method; a message with compatible fields (a KillRequest) is
/// read as a StateRequest, unknown fields skipped, as protobuf wants.
fn case_state_payload_not_a_state_request(serve: &Serve) {
    let mut c = serve.client();
    c.s.write_all(&request_bytes(1, V2, "State", vec![0xff, 0xff, 0xff]))
        .expect("write");
    expect_status(
        &mut c.s,
        1,
        Code::InvalidArgument,
        "containerd.task.v2.Task/State: malformed request: failed to decode Protobuf message: invalid varint",
    );
    c.next = 3;
    assert_status(
        &c.call("State", &Int64Value { value: 7 }),
        Code::InvalidArgument,
        "containerd.task.v2.Task/State: malformed request: failed to decode Protobuf message: StateRequest.id: invalid wire type: Varint (expected LengthDelimited)",
    );
    // Under task v3 (served by v2's handlers) the error names v3.
    c.s.write_all(&request_bytes(c.next, V3, "State", vec![0xff, 0xff, 0xff]))
        .expect("write");
    expect_status(
        &mut c.s,
        c.next,
        Code::InvalidArgument,
        "containerd.task.v3.Task/State: malformed request: failed to decode Protobuf message: invalid varint",
    );
    c.next += 2;
    let kill = KillRequest {
        id: "x".into(),
        signal: 9,
        all: true,
        ..Default::default()
    };
    not_created(&c.call("State", &kill));
}

/// Even stream ids and id 0: InvalidArgument on that id.
fn case_even_stream_ids(serve: &Serve) {
    let mut c = serve.client();
    for id in [2, 0] {
        c.s.write_all(&request(id, V2, "State", &ids("x", "")))
            .expect("write");
        expect_status(
            &mut c.s,
            id,
            Code::InvalidArgument,
            "StreamID must be odd for client initiated streams",
        );
    }
    not_created(&c.call("State", &ids("x", "")));
}

/// A reused (or lower) stream id: InvalidArgument; later ids still work.
fn case_reused_stream_id(serve: &Serve) {
    let mut c = serve.client();
    c.next = 7;
    not_created(&c.call("State", &ids("x", "")));
    for id in [7, 5] {
        c.s.write_all(&request(id, V2, "State", &ids("x", "")))
            .expect("write");
        expect_status(
            &mut c.s,
            id,
            Code::InvalidArgument,
            "StreamID cannot be re-used and must increment",
        );
    }
    not_created(&c.call("State", &ids("x", "")));
}

/// Unknown service and method: Unimplemented with Go's messages, under
/// task v2 and v3 alike (v3's State is served).
fn case_unknown_service_and_method(serve: &Serve) {
    let mut c = serve.client();
    let req = ids("x", "");
    for service in ["no.Such", "containerd.task.v4.Task", ""] {
        assert_status(
            &c.call_on(service, "State", &req),
            Code::Unimplemented,
            &format!("service {service}"),
        );
    }
    for service in [V2, V3] {
        assert_status(
            &c.call_on(service, "NoSuchMethod", &req),
            Code::Unimplemented,
            "method NoSuchMethod",
        );
        assert_status(
            &c.call_on(service, "", &req),
            Code::Unimplemented,
            "method ",
        );
        not_created(&c.call_on(service, "State", &req));
    }
}

/// One byte every 100 ms for about 5 s: nobody else is delayed, and the
/// request, once whole, is answered (serve sets no partial-frame timeout).
fn case_slowloris(serve: &Serve) {
    let mut s = serve.client().s;
    let f = request(1, V2, "State", &ids("slow", ""));
    assert!(f.len() >= 40, "a frame of {} bytes", f.len());
    for b in &f {
        s.write_all(&[*b]).expect("serve closed a slow peer");
        thread::sleep(Duration::from_millis(100));
    }
    let (id, answer) = read_answer(&mut s);
    assert_eq!(id, 1);
    not_created(&answer);
}

/// Thousands of requests whose answers are never read: serve stops reading
/// the connection once its transmit queue is at its bound (8 MiB by
/// default), and holds no more than the bound while stalled.
fn case_never_reads(serve: &Serve) {
    let mut s = serve.client().s;
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    // Create on a missing bundle answers an error naming the ~1 KiB path:
    // a cheap request with an answer as large as itself.
    let bundle = format!("/nonexistent{}", "/b".repeat(500));
    let mut sent = 0u32;
    let mut stalled = false;
    for i in 0..100_000u32 {
        let req = create_request(&format!("never-{i}"), &bundle, "");
        if s.write_all(&request(2 * i + 1, V2, "Create", &req))
            .is_err()
        {
            stalled = true;
            break;
        }
        sent += 1;
    }
    assert!(stalled, "serve read all {sent} requests and never stalled");
    assert!(sent > 1000, "only {sent} requests went out");
    let max_tx = ttrpc_core::Config::default().max_tx_bytes as u64;
    let r1 = serve.report();
    thread::sleep(Duration::from_millis(500));
    let r2 = serve.report();
    for r in [r1, r2] {
        assert!(
            r.buffered_bytes >= max_tx && r.buffered_bytes <= bound_per_connection(),
            "after {sent} requests: {r:?}, tx bound {max_tx}, connection bound {}",
            bound_per_connection()
        );
        assert!(r.max_buffered_bytes <= r.bound_per_connection, "{r:?}");
        assert_eq!(r.bound_per_connection, bound_per_connection());
    }
    assert_eq!(r1.buffered_bytes, r2.buffered_bytes, "still growing");
    eprintln!("never reads: {sent} requests sent before the stall; {r2:?}");
    assert_eq!(r2.tasks, 0);
}

/// 1,000 connections opened and dropped at once; a new client is served.
fn case_thousand_connections(serve: &Serve) {
    let conns: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(serve.socket()).expect("connect"))
        .collect();
    drop(conns);
    not_created(&serve.client().call("State", &ids("x", "")));
}

/// 100 connections, each with 16 State requests in flight at once: every
/// one answered, on its own stream.
fn case_hundred_connections_in_flight(serve: &Serve) {
    const PER_CONNECTION: u32 = 16;
    let mut conns: Vec<Client> = (0..100).map(|_| serve.client()).collect();
    for c in &mut conns {
        let batch: Vec<u8> = (0..PER_CONNECTION)
            .flat_map(|i| request(2 * i + 1, V2, "State", &ids(&format!("t{i}"), "")))
            .collect();
        c.s.write_all(&batch).expect("write batch");
    }
    for c in &mut conns {
        let mut got: Vec<u32> = (0..PER_CONNECTION)
            .map(|_| {
                let (id, answer) = read_answer(&mut c.s);
                not_created(&answer);
                id
            })
            .collect();
        got.sort_unstable();
        let want: Vec<u32> = (0..PER_CONNECTION).map(|i| 2 * i + 1).collect();
        assert_eq!(got, want);
    }
}

// ------------------------------------------------------------ shim cases

/// Create of a bundle that does not exist: Unknown naming the path.
fn case_create_missing_bundle(serve: &Serve) {
    let bundle = serve.path_in_dir("no-such-bundle");
    assert_status(
        &create(serve, &bundle, ""),
        Code::Unknown,
        &format!("open {bundle}/config.json: no such file or directory"),
    );
}

/// Create with a config.json that is not JSON.
fn case_create_config_not_json(serve: &Serve) {
    let bundle = serve.bundle_with("not-json", b"process: {args: [sh]}\n");
    assert_status(
        &create(serve, &bundle, ""),
        Code::Unknown,
        "config.json: invalid JSON at byte 0: expected a value",
    );
}

/// Create with a config.json nested 100,000 levels deep: refused at depth
/// 128, the shim's stack untouched.
fn case_create_config_deeply_nested(serve: &Serve) {
    let depth = 100_000;
    let mut config = br#"{"process":{"args":"#.to_vec();
    config.extend(std::iter::repeat_n(b'[', depth));
    config.extend(std::iter::repeat_n(b']', depth));
    config.extend(b"}}");
    let bundle = serve.bundle_with("deep", &config);
    assert_status(
        &create(serve, &bundle, ""),
        Code::Unknown,
        "config.json: invalid JSON at byte 145: nested deeper than 128",
    );
}

/// Create with `process.args` empty.
fn case_create_args_empty(serve: &Serve) {
    let bundle = serve.bundle("no-args", &[]);
    assert_status(
        &create(serve, &bundle, ""),
        Code::Unknown,
        "args must not be empty",
    );
}

/// A config.json over 4 MiB is refused before it is parsed (the shim reads
/// it on its loop).
fn case_create_config_too_large(serve: &Serve) {
    let big = "x".repeat(5 << 20);
    let config = format!(r#"{{"process":{{"args":["true"],"env":["BIG={big}"],"cwd":"/"}}}}"#);
    let bundle = serve.bundle_with("huge", config.as_bytes());
    assert_status(
        &create(serve, &bundle, ""),
        Code::Unknown,
        &format!("{bundle}/config.json: larger than 4194304 bytes"),
    );
}

/// A 3 MiB config.json (one 3 MiB environment variable): Create holds the
/// process, Start answers execve's E2BIG, Delete reaps it (exit 127).
fn case_create_config_3mib(serve: &Serve) {
    let big = "x".repeat(3 << 20);
    let config = format!(
        r#"{{"process":{{"args":["true"],"env":["PATH=/usr/bin:/bin","BIG={big}"],"cwd":"/"}}}}"#
    );
    assert!(config.len() > 3 << 20);
    let bundle = serve.bundle_with("big", config.as_bytes());
    let mut c = serve.client();
    let created = c
        .call("Create", &create_request("big", &bundle, ""))
        .expect("Create reads a 3 MiB config");
    let pid = PidResponse::decode(&created[..]).expect("pid").pid;
    assert!(pid > 0);
    assert_status(
        &c.call("Start", &ids("big", "")),
        Code::Unknown,
        "exec: argument list too long",
    );
    let deleted = c.call("Delete", &ids("big", "")).expect("Delete");
    let deleted = DeleteResponse::decode(&deleted[..]).expect("DeleteResponse");
    assert_eq!((deleted.pid, deleted.exit_status), (pid, 127));
    not_created(&c.call("State", &ids("big", "")));
}

/// Create with a stdout path that does not exist: Unknown, no process.
fn case_create_missing_stdout(serve: &Serve) {
    let bundle = serve.bundle("stdout", &["true"]);
    let out = serve.path_in_dir("no/such/dir/out");
    assert_status(
        &create(serve, &bundle, &out),
        Code::Unknown,
        &format!("open {out}: no such file or directory"),
    );
}

/// Create of task "h" from `bundle` with stdout to `stdout`, on a new
/// connection.
fn create(serve: &Serve, bundle: &str, stdout: &str) -> Answer {
    serve
        .client()
        .call("Create", &create_request("h", bundle, stdout))
}

/// Runs `f` with a client and the id of a running `sleep 60` task, then
/// kills, waits for and deletes the task.
fn with_running_task(serve: &Serve, f: impl FnOnce(&mut Client, &str)) {
    let id = "victim";
    let bundle = serve.bundle("victim", &["sleep", "60"]);
    let mut c = serve.client();
    c.call("Create", &create_request(id, &bundle, ""))
        .expect("Create");
    c.call("Start", &ids(id, "")).expect("Start");
    f(&mut c, id);
    let kill = KillRequest {
        id: id.into(),
        signal: 9,
        ..Default::default()
    };
    c.call("Kill", &kill).expect("Kill");
    c.call("Wait", &ids(id, "")).expect("Wait");
    let deleted = c.call("Delete", &ids(id, "")).expect("Delete");
    let deleted = DeleteResponse::decode(&deleted[..]).expect("DeleteResponse");
    assert_eq!(deleted.exit_status, 137);
}

fn exec_request(id: &str, spec: &[u8]) -> ExecProcessRequest {
    ExecProcessRequest {
        id: id.to_owned(),
        exec_id: "e".to_owned(),
        terminal: false,
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".to_owned(),
            value: spec.to_vec(),
        }),
    }
}

/// Exec with a spec that is not JSON: InvalidArgument.
fn case_exec_spec_not_json(serve: &Serve) {
    with_running_task(serve, |c, id| {
        assert_status(
            &c.call("Exec", &exec_request(id, b"\xff\xfe not json")),
            Code::InvalidArgument,
            "process spec: invalid JSON at byte 0: expected a value",
        );
    });
}

/// Exec with a spec nested 100,000 levels deep: InvalidArgument at 128.
fn case_exec_spec_deeply_nested(serve: &Serve) {
    let mut spec = vec![b'['; 100_000];
    spec.extend(vec![b']'; 100_000]);
    with_running_task(serve, |c, id| {
        assert_status(
            &c.call("Exec", &exec_request(id, &spec)),
            Code::InvalidArgument,
            "process spec: invalid JSON at byte 128: nested deeper than 128",
        );
    });
}

/// Exec whose args are not strings: InvalidArgument.
fn case_exec_args_not_strings(serve: &Serve) {
    with_running_task(serve, |c, id| {
        assert_status(
            &c.call("Exec", &exec_request(id, br#"{"args":["sh",1,null]}"#)),
            Code::InvalidArgument,
            "process.args: not a list of strings",
        );
    });
}

/// Kill with signal 99999: InvalidArgument, the task untouched.
fn case_kill_invalid_signal(serve: &Serve) {
    with_running_task(serve, |c, id| {
        let kill = KillRequest {
            id: id.into(),
            signal: 99_999,
            ..Default::default()
        };
        assert_status(
            &c.call("Kill", &kill),
            Code::InvalidArgument,
            "invalid signal 99999",
        );
    });
}

/// ResizePty of a process without a terminal: answered OK and ignored, as
/// the runc shim does (its `Resize` returns nil without a console).
fn case_resize_without_terminal(serve: &Serve) {
    with_running_task(serve, |c, id| {
        let resize = ResizePtyRequest {
            id: id.into(),
            exec_id: String::new(),
            width: 65_535,
            height: 0,
        };
        assert_eq!(c.call("ResizePty", &resize), Ok(Vec::new()));
    });
}

/// Start, Delete, Wait and State of an exec id that does not exist:
/// NotFound, as runc's shim.
fn case_unknown_exec_ids(serve: &Serve) {
    with_running_task(serve, |c, id| {
        for method in ["Start", "Delete", "Wait", "State", "ResizePty"] {
            assert_status(
                &c.call(method, &ids(id, "nope")),
                Code::NotFound,
                "process does not exist nope",
            );
        }
    });
}

// ------------------------------------------------------------ descriptors

/// 200 connections beyond a serve whose RLIMIT_NOFILE is 64: the canary
/// (connected before) keeps being answered while serve is out of
/// descriptors; once they close, a new connection is served.
fn case_beyond_rlimit_nofile(serve: &Serve) {
    let conns: Vec<UnixStream> = (0..200)
        .map(|_| UnixStream::connect(serve.socket()).expect("connect"))
        .collect();
    // Give serve time to accept what it can and hit EMFILE.
    thread::sleep(Duration::from_secs(1));
    let r = serve.report();
    assert!(
        r.connections > 1 && r.connections < 64,
        "the limit did not bite: {r:?}"
    );
    eprintln!("beyond RLIMIT_NOFILE: 200 connecting, {r:?}");
    drop(conns);
    let t0 = Instant::now();
    not_created(&serve.client().call("State", &ids("x", "")));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

// ------------------------------------------------------------ end to end

/// `shimctl --socket S --id ID --timeout 5s ARGS`: its stdout, or a panic.
fn shimctl(serve: &Serve, id: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--socket", &serve.address(), "--id", id, "--timeout", "5s"])
        .args(args)
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run shimctl");
    assert!(
        out.status.success(),
        "shimctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// After the attacks, a real task still runs on the same serve process,
/// and nothing is left: no task, no zombie.
fn real_task_still_works(serve: &Serve) {
    let bundle = serve.bundle("e2e", &["sh", "-c", "exit 4"]);
    let pid = shimctl(serve, "e2e", &["create", "--bundle", &bundle]);
    let pid = pid.trim();
    assert!(pid.parse::<u32>().is_ok(), "create printed {pid:?}");
    assert_eq!(shimctl(serve, "e2e", &["start"]).trim(), pid);
    let waited = shimctl(serve, "e2e", &["wait"]);
    assert!(waited.starts_with("exit status 4 at "), "{waited}");
    assert_eq!(
        shimctl(serve, "e2e", &["delete"]).trim(),
        "container deleted and returned exit status 4"
    );
    assert!(
        eventually(Duration::from_secs(5), || serve.report().is_quiet(0)),
        "{:?}",
        serve.report()
    );
    assert_eq!(serve.zombies(), Vec::<u32>::new());
}

// ------------------------------------------------------------ tests

/// A case: its name, the attacker connections it opens, its body.
type Case = (&'static str, u64, fn(&Serve));

const CASES: &[Case] = &[
    ("huge length", 1, case_huge_length),
    ("header then EOF", 1, case_header_then_eof),
    ("unknown frame types", 1, case_unknown_and_unexpected_types),
    ("garbage", 1, case_garbage),
    ("undecodable envelope", 1, case_undecodable_envelope),
    ("State payload", 1, case_state_payload_not_a_state_request),
    ("even stream ids", 1, case_even_stream_ids),
    ("reused stream id", 1, case_reused_stream_id),
    ("unknown service", 1, case_unknown_service_and_method),
    ("slowloris", 1, case_slowloris),
    ("never reads", 1, case_never_reads),
    ("1000 connections", 1000, case_thousand_connections),
    (
        "100 x 16 in flight",
        100,
        case_hundred_connections_in_flight,
    ),
    ("Create: no bundle", 1, case_create_missing_bundle),
    ("Create: not JSON", 1, case_create_config_not_json),
    ("Create: nested", 1, case_create_config_deeply_nested),
    ("Create: no args", 1, case_create_args_empty),
    ("Create: 3 MiB", 1, case_create_config_3mib),
    ("Create: over 4 MiB", 1, case_create_config_too_large),
    ("Create: no stdout", 1, case_create_missing_stdout),
    ("Exec: not JSON", 1, case_exec_spec_not_json),
    ("Exec: nested", 1, case_exec_spec_deeply_nested),
    ("Exec: args", 1, case_exec_args_not_strings),
    ("Kill: 99999", 1, case_kill_invalid_signal),
    ("ResizePty: no tty", 1, case_resize_without_terminal),
    ("unknown exec ids", 1, case_unknown_exec_ids),
];

#[test]
fn hostile_peers_never_hurt_serve_or_its_clients() {
    let serve = Serve::start(None);
    for &(name, attackers, case) in CASES {
        run_case(&serve, name, attackers, case);
    }
    real_task_still_works(&serve);
}

#[test]
fn connections_beyond_rlimit_nofile_leave_serve_serving() {
    let serve = Serve::start(Some(64));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", serve.pid())).expect("limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("64")),
        "{limits}"
    );
    run_case(
        &serve,
        "beyond RLIMIT_NOFILE",
        200,
        case_beyond_rlimit_nofile,
    );
    real_task_still_works(&serve);
}
