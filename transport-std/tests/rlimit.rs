//! Running out of file descriptors: with `RLIMIT_NOFILE` lowered, clients
//! over the limit wait in the backlog, the accept loop backs off instead of
//! spinning, and the server recovers when descriptors are freed.
//!
//! The limit is process-wide, so this is the only test in its binary.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::TestServer;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use ttrpc_std::{Client, Registry, ServerConfig};
use ttrpc_testkit::{fd_count, interop::register_interop};

const HOLDER_ENV: &str = "TTRPC_RLIMIT_HOLD_SOCKET";

/// Helper mode, run in a child process by the test below: opens 60
/// connections to the socket named in the environment and holds them until
/// stdin closes. A no-op in a normal test run.
#[test]
fn hold_connections() {
    let Some(socket) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let held: Vec<UnixStream> = (0..60)
        .filter_map(|_| UnixStream::connect(&socket).ok())
        .collect();
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    drop(held);
}

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    let mut registry = Registry::new();
    register_interop(&mut registry);
    let server = TestServer::start(registry, ServerConfig::default());
    let client = server.client();
    client
        .call_raw(ttrpc_testkit::SERVICE, "Echo", b"", &Default::default())
        .expect("served before the squeeze");

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let limit = fd_count() as u64 + 24;
    setrlimit(Resource::RLIMIT_NOFILE, limit, hard).expect("lower the limit");

    // Clients in another process (their own descriptor table) keep
    // connecting; each one the server accepts costs it a descriptor, until
    // accept fails with EMFILE and the rest wait in the backlog.
    let mut holder = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "hold_connections",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, &server.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the connection holder");
    let t0 = Instant::now();
    while server.server.stats().accept_errors == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "accept never hit EMFILE"
        );
        thread::sleep(Duration::from_millis(10));
    }
    // Backing off, not spinning: 1 ms doubling to 1 s is about ten
    // attempts in the first second.
    let calls = server.server.stats().accept_calls;
    thread::sleep(Duration::from_secs(1));
    let during = server.server.stats().accept_calls - calls;
    assert!(
        during < 30,
        "{during} accept calls in one second while out of descriptors"
    );

    // Free descriptors: the server catches up with the backlog and serves a
    // new client.
    drop(holder.stdin.take());
    holder.wait().expect("holder exits");
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore the limit");
    let t0 = Instant::now();
    let fresh = loop {
        if let Ok(c) = Client::connect(&server.address()) {
            break c;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "cannot connect after recovery"
        );
        thread::sleep(Duration::from_millis(20));
    };
    let options = ttrpc_std::CallOptions::with_timeout(Duration::from_secs(10));
    fresh
        .call_raw(ttrpc_testkit::SERVICE, "Echo", b"", &options)
        .expect("served after recovery");
    client
        .call_raw(ttrpc_testkit::SERVICE, "Echo", b"", &options)
        .expect("the old connection was never disturbed");
}
