//! 1,000 connections opened, used and closed leave no file descriptor
//! behind. One test in this binary, so the fd count sees no other test.

mod common;

use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use common::{LoopClient, TestServer};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use ttrpc_mio::{CallOptions, Registry, ServerConfig};
use ttrpc_testkit::interop::{read_frame, write_request};
use ttrpc_testkit::{SERVICE, fd_count};

#[test]
fn a_thousand_connections_leave_no_fd_behind() {
    let mut registry = Registry::new();
    registry.register_fn(SERVICE, "Echo", |req| Ok(req.payload.clone()));
    // 2,000+ descriptors at once: raise the soft limit if it is lower.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).expect("setrlimit");
    }
    let before = fd_count();
    let server = TestServer::start(registry, ServerConfig::default().max_connections(2000));
    let with_server = fd_count();
    // 1,000 raw connections, all open at once, each used, then closed.
    let mut conns: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&server.socket).expect("connect"))
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write_request(s, 1, "Echo", &i.to_be_bytes());
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let f = read_frame(s).expect("answer");
        assert_eq!(f.stream_id, 1, "connection {i}");
    }
    assert_eq!(server.handle.active(), 1000);
    drop(conns);
    // And mio clients, each with its own Poll, one after another.
    for _ in 0..20 {
        let c = LoopClient::connect(&format!("unix://{}", server.socket.display()));
        c.call_raw("Echo", b"x", &CallOptions::default())
            .expect("echo");
    }
    let t0 = Instant::now();
    while server.handle.active() > 0 || fd_count() > with_server {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "{} connections, {} fds (server alone {with_server})",
            server.handle.active(),
            fd_count()
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.handle.buffered_bytes(), 0);
    server.shutdown(Duration::from_secs(5));
    assert_eq!(fd_count(), before, "the server itself left an fd behind");
}
