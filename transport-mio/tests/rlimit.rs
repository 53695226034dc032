//! With RLIMIT_NOFILE lowered, connections over the limit wait (the
//! server's accept fails with EMFILE and retries on a timer, never
//! spinning), and the server recovers when others close. One test in this
//! binary: the limit is process-wide.

mod common;

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::TestServer;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
use ttrpc_mio::{Registry, ServerConfig};
use ttrpc_testkit::interop::{read_frame, write_request};
use ttrpc_testkit::{SERVICE, fd_count};

/// Whether an answer arrives on `s` within `wait`.
fn answered(s: &mut UnixStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    match read_frame(s) {
        Ok(f) => {
            assert_eq!(f.stream_id, 1);
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("read: {e}"),
    }
}

#[test]
fn over_the_fd_limit_connections_wait_and_the_server_recovers() {
    let mut registry = Registry::new();
    registry.register_fn(SERVICE, "Echo", |req| Ok(req.payload.clone()));
    let server = TestServer::start(registry, ServerConfig::default());
    // Client sockets are created before the limit drops, so that the
    // clients take no descriptor from what the server may use.
    let sockets: Vec<_> = (0..100)
        .map(|_| {
            socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .expect("socket")
        })
        .collect();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    // Room for about 20 more descriptors in this process.
    let limit = (fd_count() + 20) as u64;
    setrlimit(Resource::RLIMIT_NOFILE, limit, hard).expect("setrlimit");

    let addr = UnixAddr::new(&server.socket).expect("address");
    let mut clients = Vec::new();
    for fd in sockets {
        connect(fd.as_raw_fd(), &addr).expect("connect");
        let mut s = UnixStream::from(fd);
        write_request(&mut s, 1, "Echo", b"hi");
        clients.push(s);
    }
    // Those the server accepted are answered; the rest wait in the backlog.
    let (mut served, mut waiting): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for mut s in clients {
        // Backlog order: after the first one left waiting, all wait.
        if waiting.is_empty() && answered(&mut s, Duration::from_secs(2)) {
            served.push(s);
        } else {
            waiting.push(s);
        }
    }
    let stats = server.handle.stats();
    assert!(served.len() >= 5, "{} served: {stats:?}", served.len());
    assert!(waiting.len() >= 60, "{} waiting: {stats:?}", waiting.len());
    assert!(stats.accept_errors >= 1, "{stats:?}");
    // Backoff, not spinning: 1 ms doubling to 1 s.
    assert!(stats.accept_calls < 200, "accept spun: {stats:?}");

    // Recovery: as clients leave, the waiting ones are accepted (in
    // backlog order) on the next retry and answered.
    drop(served);
    let t0 = Instant::now();
    for (i, mut s) in waiting.drain(..).enumerate() {
        let left = Duration::from_secs(30).saturating_sub(t0.elapsed());
        assert!(
            answered(&mut s, left.max(Duration::from_millis(1))),
            "waiting client {i} never served: {:?}",
            server.handle.stats()
        );
    }
    drop(waiting);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore rlimit");
    server.shutdown(Duration::from_secs(5));
}
