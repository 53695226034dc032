//! The mio server embedded in a loop the test drives on its own thread:
//! stalls, backpressure, panics, answers from the loop and from other
//! threads, the connection cap, credentials, shutdown, socket files.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use prost::Message;
use ttrpc_mio::{
    Code, Config, CredentialCheck, Error, READ_CHUNK, Registry, Responder, Server, ServerConfig,
    Status, UidGid,
};
use ttrpc_testkit::interop::{BytesValue, raw_call, read_frame, write_request};
use ttrpc_testkit::{SERVICE, TempDir};

/// A server in a `Poll` the test owns and drives.
struct Embedded {
    poll: Poll,
    events: Events,
    server: Server,
    socket: PathBuf,
    _dir: TempDir,
}

impl Embedded {
    fn new(registry: Registry, config: ServerConfig) -> Self {
        let dir = TempDir::new("ttrpc-mio-server").expect("dir");
        let socket = dir.path().join("s.sock");
        let poll = Poll::new().expect("poll");
        let server = Server::bind(
            &format!("unix://{}", socket.display()),
            registry,
            config,
            poll.registry(),
            100..10_000,
        )
        .expect("bind");
        Self {
            poll,
            events: Events::with_capacity(64),
            server,
            socket,
            _dir: dir,
        }
    }

    /// One loop turn, waiting at most 10 ms.
    fn turn(&mut self) {
        let cap = Duration::from_millis(10);
        let timeout = self.server.poll_timeout().map_or(cap, |at| {
            at.saturating_duration_since(Instant::now()).min(cap)
        });
        self.poll
            .poll(&mut self.events, Some(timeout))
            .expect("poll");
        for event in &self.events {
            assert!(self.server.handle_event(event), "only server tokens here");
        }
        self.server.handle_timeout(Instant::now());
    }

    /// Drives the loop until `cond` holds; panics after 20 s.
    fn until(&mut self, what: &str, mut cond: impl FnMut(&mut Self) -> bool) {
        let t0 = Instant::now();
        while !cond(self) {
            assert!(t0.elapsed() < Duration::from_secs(20), "never: {what}");
            self.turn();
        }
    }

    /// Drives the loop until the client thread ends; returns its result.
    fn join<T>(&mut self, t: thread::JoinHandle<T>) -> T {
        self.until("client thread done", |_| t.is_finished());
        t.join().expect("client thread")
    }
}

fn echo_payload(data: &[u8]) -> Vec<u8> {
    BytesValue {
        value: data.to_vec().into(),
    }
    .encode_to_vec()
}

fn echo_registry() -> Registry {
    let mut r = Registry::new();
    r.register_fn(SERVICE, "Echo", |req| Ok(req.payload.clone()));
    r
}

fn connect(path: &PathBuf) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

#[test]
fn a_peer_stalled_mid_frame_delays_no_one_and_is_timed_out() {
    let partial = Duration::from_millis(500);
    let config = ServerConfig::default()
        .connection(Config::default().with_partial_frame_timeout(Some(partial)));
    let mut e = Embedded::new(echo_registry(), config);
    // The staller: a header promising 100 bytes, then 3 of them.
    let mut stalled = connect(&e.socket);
    stalled
        .write_all(&[0, 0, 0, 100, 0, 0, 0, 1, 1, 0, 9, 9, 9])
        .unwrap();
    let t0 = Instant::now();
    let socket = e.socket.clone();
    let other = thread::spawn(move || {
        let mut s = connect(&socket);
        let mut slowest = Duration::ZERO;
        for i in 0..50u32 {
            let t = Instant::now();
            write_request(&mut s, 2 * i + 1, "Echo", b"hi");
            let f = read_frame(&mut s).expect("answer");
            assert_eq!(f.stream_id, 2 * i + 1);
            slowest = slowest.max(t.elapsed());
        }
        slowest
    });
    let slowest = e.join(other);
    assert!(slowest < Duration::from_secs(2), "a call took {slowest:?}");
    // The staller is closed once its frame is over the timeout, unanswered.
    stalled.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    e.until("staller closed", |_| {
        matches!(stalled.read(&mut buf), Ok(0))
    });
    assert!(t0.elapsed() >= partial);
    e.until("connections gone", |e| e.server.active() == 0);
    assert_eq!(e.server.buffered_bytes(), 0);
}

#[test]
fn a_peer_that_never_reads_is_bounded_and_stops_being_read() {
    // Small limits, so that the bound is tight enough to mean something.
    let conn = Config::default()
        .with_max_data_len(32 * 1024)
        .with_max_in_flight(8)
        .with_max_tx_bytes(64 * 1024);
    let bound = conn.memory_bound(READ_CHUNK);
    let mut e = Embedded::new(echo_registry(), ServerConfig::default().connection(conn));
    let socket = e.socket.clone();
    // Writes requests with 16 KiB payloads and never reads the answers.
    let flood = thread::spawn(move || {
        let mut s = connect(&socket);
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let payload = echo_payload(&[5; 16 * 1024]);
        let mut sent = 0u32;
        for i in 0..10_000u32 {
            let mut frame = Vec::new();
            let req = ttrpc_mio::core::Request {
                service: SERVICE.into(),
                method: "Echo".into(),
                payload: payload.clone().into(),
                ..Default::default()
            }
            .encode_to_vec();
            frame.extend_from_slice(&(req.len() as u32).to_be_bytes());
            frame.extend_from_slice(&(2 * i + 1).to_be_bytes());
            frame.extend_from_slice(&[1, 0]);
            frame.extend_from_slice(&req);
            if s.write_all(&frame).is_err() {
                break; // the server stopped reading us
            }
            sent += 1;
        }
        (s, sent)
    });
    let mut most = 0;
    let t0 = Instant::now();
    while !flood.is_finished() {
        e.turn();
        most = most.max(e.server.buffered_bytes());
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "flood never blocked"
        );
    }
    let (_flooder, sent) = flood.join().unwrap();
    assert!(
        sent < 10_000,
        "the server kept reading a peer that never reads"
    );
    assert!(most <= bound, "held {most} bytes > bound {bound}");
    // Everyone else is still served.
    let socket = e.socket.clone();
    let other = thread::spawn(move || raw_call(&socket, "Echo", b"x").1);
    let resp = e.join(other);
    assert!(resp.status.is_none());
    assert!(e.server.buffered_bytes() <= bound);
}

#[test]
fn a_panicking_handler_answers_internal_and_the_server_goes_on() {
    let mut r = echo_registry();
    r.register_fn(SERVICE, "Panic", |_| panic!("handler bug"));
    let mut e = Embedded::new(r, ServerConfig::default());
    let socket = e.socket.clone();
    let t = thread::spawn(move || {
        let (_, bad) = raw_call(&socket, "Panic", b"");
        let (_, good) = raw_call(&socket, "Echo", b"ok");
        (bad, good)
    });
    let (bad, good) = e.join(t);
    assert_eq!(bad.status.unwrap().code, Code::Internal.as_i32());
    assert!(good.status.is_none());
}

#[test]
fn answers_later_from_the_loop_and_from_other_threads() {
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut r = echo_registry();
    let p = Arc::clone(&parked);
    r.register(SERVICE, "Later", move |_req, resp: Responder| {
        p.lock().unwrap().push(resp);
    });
    let mut e = Embedded::new(r, ServerConfig::default());
    let socket = e.socket.clone();
    let t = thread::spawn(move || {
        let mut s = connect(&socket);
        write_request(&mut s, 1, "Later", b"");
        write_request(&mut s, 3, "Later", b"");
        write_request(&mut s, 5, "Echo", b"now");
        let mut ids: Vec<u32> = (0..3)
            .map(|_| read_frame(&mut s).unwrap().stream_id)
            .collect();
        ids.sort_unstable();
        ids
    });
    e.until("both parked", |_| parked.lock().unwrap().len() == 2);
    // One answered from the loop thread, between turns.
    let first = parked.lock().unwrap().remove(0);
    first.ok(&b"from the loop"[..]);
    // The other from another thread, waking the loop through its waker.
    let second = parked.lock().unwrap().remove(0);
    let other = thread::spawn(move || second.error(Status::new(Code::NotFound, "later")));
    other.join().unwrap();
    assert_eq!(e.join(t), vec![1, 3, 5]);
}

#[test]
fn at_the_connection_cap_newcomers_wait_and_are_served_later() {
    let mut e = Embedded::new(echo_registry(), ServerConfig::default().max_connections(2));
    let a = connect(&e.socket);
    let b = connect(&e.socket);
    e.until("two accepted", |e| e.server.active() == 2);
    let socket = e.socket.clone();
    let third = thread::spawn(move || raw_call(&socket, "Echo", b"3").1);
    for _ in 0..20 {
        e.turn();
    }
    assert!(!third.is_finished(), "a third connection was served");
    assert_eq!(e.server.active(), 2);
    assert!(e.server.stats().at_capacity >= 1);
    drop(a);
    let resp = e.join(third);
    assert!(resp.status.is_none());
    drop(b);
    e.until("all closed", |e| e.server.active() == 0);
}

#[test]
fn the_credential_check_refuses_other_users() {
    let me = nix::unistd::geteuid().as_raw();
    let other = UidGid {
        uid: Some(me.wrapping_add(1)),
        gid: None,
    };
    let config = ServerConfig::default().credentials(CredentialCheck::Allow(vec![other]));
    let mut e = Embedded::new(echo_registry(), config);
    let mut s = connect(&e.socket);
    e.until("refused", |e| e.server.stats().refused == 1);
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "closed without a frame");
    assert_eq!(e.server.stats().accepted, 0);

    let mut e = Embedded::new(
        echo_registry(),
        ServerConfig::default().credentials(CredentialCheck::SameUser),
    );
    let socket = e.socket.clone();
    let t = thread::spawn(move || raw_call(&socket, "Echo", b"me").1);
    assert!(e.join(t).status.is_none());
}

#[test]
fn graceful_shutdown_finishes_in_flight_calls_then_closes() {
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut r = echo_registry();
    let p = Arc::clone(&parked);
    r.register(SERVICE, "Later", move |_req, resp: Responder| {
        p.lock().unwrap().push(resp);
    });
    let mut e = Embedded::new(r, ServerConfig::default());
    let socket = e.socket.clone();
    let t = thread::spawn(move || {
        let mut s = connect(&socket);
        write_request(&mut s, 1, "Later", b"");
        let f = read_frame(&mut s).expect("the in-flight call is answered");
        let mut buf = [0u8; 8];
        (f.stream_id, s.read(&mut buf).unwrap())
    });
    e.until("parked", |_| parked.lock().unwrap().len() == 1);
    e.server.shutdown(Duration::from_secs(20));
    assert!(!e.socket.exists(), "socket file removed at once");
    assert!(
        UnixStream::connect(&e.socket).is_err(),
        "no longer accepting"
    );
    for _ in 0..10 {
        e.turn();
    }
    assert!(!e.server.is_finished(), "waits for the call in flight");
    let resp = parked.lock().unwrap().pop().unwrap();
    thread::spawn(move || resp.ok(&b"done"[..])).join().unwrap();
    assert_eq!(e.join(t), (1, 0), "answered, then closed");
    e.until("finished", |e| e.server.is_finished());
}

#[test]
fn the_shutdown_deadline_closes_calls_that_never_finish() {
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut r = echo_registry();
    let p = Arc::clone(&parked);
    r.register(SERVICE, "Never", move |_req, resp: Responder| {
        p.lock().unwrap().push(resp);
    });
    let mut e = Embedded::new(r, ServerConfig::default());
    let mut s = connect(&e.socket);
    write_request(&mut s, 1, "Never", b"");
    e.until("parked", |_| parked.lock().unwrap().len() == 1);
    let t0 = Instant::now();
    e.server.shutdown(Duration::from_millis(300));
    e.until("finished", |e| e.server.is_finished());
    assert!(t0.elapsed() >= Duration::from_millis(300));
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap(), 0);
}

#[test]
fn socket_file_rules_are_ttrpc_std_rules() {
    let dir = TempDir::new("ttrpc-mio-addr").unwrap();
    let poll = Poll::new().unwrap();
    let path = dir.path().join("s.sock");
    let addr = format!("unix://{}", path.display());
    let server = Server::bind(
        &addr,
        Registry::new(),
        ServerConfig::default(),
        poll.registry(),
        0..10,
    )
    .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A live socket is in use.
    let again = Server::bind(
        &addr,
        Registry::new(),
        ServerConfig::default(),
        poll.registry(),
        10..20,
    );
    assert!(
        matches!(again, Err(Error::Address(ttrpc_std::Error::AddrInUse(_)))),
        "{again:?}"
    );
    drop(server);
    assert!(!path.exists(), "removed when the server goes");
    // A stale socket file is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let poll = Poll::new().unwrap();
    let server = Server::bind(
        &addr,
        Registry::new(),
        ServerConfig::default(),
        poll.registry(),
        0..10,
    );
    assert!(server.is_ok(), "{server:?}");
    drop(server);
    // A legacy abstract name is refused for listening; too few tokens too.
    let refused = Server::bind(
        "some-name",
        Registry::new(),
        ServerConfig::default(),
        poll.registry(),
        0..10,
    );
    assert!(matches!(
        refused,
        Err(Error::Address(ttrpc_std::Error::AbstractRefused(_)))
    ));
    let few = Server::bind(
        &addr,
        Registry::new(),
        ServerConfig::default(),
        poll.registry(),
        0..2,
    );
    assert!(matches!(few, Err(Error::Tokens { .. })));
    // An explicit abstract name works.
    let name = format!("@ttrpc-mio-test-{}", std::process::id());
    let poll = Poll::new().unwrap();
    assert!(
        Server::bind(
            &name,
            Registry::new(),
            ServerConfig::default(),
            poll.registry(),
            0..10
        )
        .is_ok()
    );
}

#[test]
fn a_server_can_share_the_callers_waker() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut r = echo_registry();
    let p = Arc::clone(&parked);
    r.register(SERVICE, "Later", move |_req, resp: Responder| {
        p.lock().unwrap().push(resp);
    });
    let dir = TempDir::new("ttrpc-mio-waker").unwrap();
    let socket = dir.path().join("s.sock");
    let mut poll = Poll::new().unwrap();
    // The caller's own waker, on the caller's own token 0.
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
    let listener = ttrpc_mio::Address::Path(socket.clone()).bind().unwrap();
    let mut server = Server::with_waker(
        listener,
        r,
        ServerConfig::default(),
        poll.registry(),
        100..200,
        Arc::clone(&waker),
    )
    .unwrap();
    let mut s = connect(&socket);
    write_request(&mut s, 1, "Later", b"");
    let mut events = Events::with_capacity(16);
    let t0 = Instant::now();
    while parked.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for e in &events {
            server.handle_event(e);
        }
        server.handle_timeout(Instant::now());
    }
    // Answered from another thread, 100 ms later; the loop sleeps with no
    // timeout of its own (5 s cap) and must be woken by the shared waker.
    let resp = parked.lock().unwrap().pop().unwrap();
    let wakes = Arc::new(AtomicUsize::new(0));
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        resp.ok(&b"late"[..]);
    });
    let t0 = Instant::now();
    let mut woken = false;
    while !woken {
        assert_eq!(server.poll_timeout(), None);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        for e in &events {
            if e.token() == mio::Token(0) {
                woken = true;
                wakes.fetch_add(1, Ordering::Relaxed);
            } else {
                server.handle_event(e);
            }
        }
        server.handle_timeout(Instant::now());
        assert!(t0.elapsed() < Duration::from_secs(4), "never woken");
    }
    t.join().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let f = read_frame(&mut s).expect("answer written after the wake");
    assert_eq!(f.stream_id, 1);
    assert_eq!(wakes.load(Ordering::Relaxed), 1);
}

#[test]
fn a_half_closed_peer_still_gets_its_answers() {
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut r = echo_registry();
    let p = Arc::clone(&parked);
    r.register(SERVICE, "Later", move |_req, resp: Responder| {
        p.lock().unwrap().push(resp);
    });
    let mut e = Embedded::new(r, ServerConfig::default());
    let mut s = connect(&e.socket);
    write_request(&mut s, 1, "Later", b"");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    e.until("parked", |_| parked.lock().unwrap().len() == 1);
    for _ in 0..10 {
        e.turn(); // the EOF is read; the call stays in flight
    }
    assert_eq!(e.server.active(), 1);
    parked.lock().unwrap().pop().unwrap().ok(&b"after EOF"[..]);
    let socket_reader = thread::spawn(move || {
        let f = read_frame(&mut s).expect("answer after our EOF");
        let mut buf = [0u8; 8];
        (f.stream_id, s.read(&mut buf).unwrap())
    });
    assert_eq!(e.join(socket_reader), (1, 0), "answered, then closed");
    e.until("closed", |e| e.server.active() == 0);
}
