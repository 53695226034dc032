//! The server: handlers, panics, shutdown, limits, partial frames.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{TestServer, echo_registry, wait_until, within};
use ttrpc_std::{
    CallOptions, Client, Code, Config, ConnectionError, Error, IncomingRequest, Registry,
    Responder, ServerConfig, Status,
};

fn call(c: &Client, method: &str, payload: &[u8]) -> Result<Bytes, Error> {
    c.call_raw("test.Echo", method, payload, &CallOptions::default())
}

#[test]
fn handlers_see_metadata_and_deadline() {
    let seen = Arc::new(Mutex::new(None));
    let s = Arc::clone(&seen);
    let mut r = Registry::new();
    r.register_fn("test.Echo", "Look", move |req| {
        let md: Vec<(String, String)> = req
            .metadata
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let left = req
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        *s.lock().unwrap() = Some((md, req.timeout_nano, left));
        Ok(Bytes::new())
    });
    let server = TestServer::start(r, ServerConfig::default());
    let client = server.client();
    let mut opts = CallOptions::with_timeout(Duration::from_secs(3));
    opts.metadata.append("Key", "v1").append("key", "v2");
    client.call_raw("test.Echo", "Look", b"", &opts).unwrap();
    let (md, nanos, left) = seen.lock().unwrap().take().unwrap();
    assert_eq!(
        md,
        [("key".into(), "v1".into()), ("key".into(), "v2".into())]
    );
    assert_eq!(nanos, 3_000_000_000);
    let left = left.expect("a deadline");
    assert!(
        left > Duration::from_secs(1) && left <= Duration::from_secs(3),
        "{left:?}"
    );
}

fn panicky_registry() -> Registry {
    let mut r = echo_registry();
    r.register_fn("test.Echo", "Panic", |_| {
        panic!("handler bug (expected by the test)")
    });
    r
}

#[test]
fn a_panicking_handler_answers_internal_and_the_server_goes_on() {
    for handlers in [1, 16] {
        let server = TestServer::start(
            panicky_registry(),
            ServerConfig::default().max_concurrent_handlers(handlers),
        );
        let client = server.client();
        let err = call(&client, "Panic", b"").unwrap_err();
        assert_eq!(err.code(), Code::Internal, "{err}");
        // The same connection and a new one still work.
        assert_eq!(&call(&client, "Echo", b"after").unwrap()[..], b"after");
        assert_eq!(&call(&server.client(), "Echo", b"new").unwrap()[..], b"new");
    }
}

fn sleepy_registry(started: Arc<AtomicUsize>, ms: u64) -> Registry {
    let mut r = echo_registry();
    r.register_fn("test.Echo", "Sleep", move |req| {
        started.fetch_add(1, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(ms));
        Ok(req.payload.clone())
    });
    r
}

#[test]
fn graceful_shutdown_flushes_answers_in_flight() {
    for handlers in [1, 16] {
        let started = Arc::new(AtomicUsize::new(0));
        let mut server = TestServer::start(
            sleepy_registry(Arc::clone(&started), 400),
            ServerConfig::default().max_concurrent_handlers(handlers),
        );
        let client = Arc::new(server.client());
        let c = Arc::clone(&client);
        let t = thread::spawn(move || call(&c, "Sleep", b"in flight"));
        wait_until(Duration::from_secs(5), "handler start", || {
            started.load(Ordering::SeqCst) == 1
        });
        assert!(
            server.server.shutdown(Duration::from_secs(10)),
            "graceful in time"
        );
        let got = within(Duration::from_secs(10), move || t.join().unwrap());
        assert_eq!(&got.unwrap()[..], b"in flight");
        // Everything is closed: the listener's file is gone, calls fail.
        server.join().unwrap();
        assert!(!server.socket.exists());
        wait_until(Duration::from_secs(5), "client sees close", || {
            client.is_closed()
        });
        assert!(matches!(call(&client, "Echo", b""), Err(Error::Closed(_))));
        assert_eq!(server.server.stats().active, 0);
        assert!(matches!(
            server.server.serve(
                ttrpc_std::Address::parse("@ttrpc-std-unused")
                    .unwrap()
                    .bind()
                    .unwrap()
            ),
            Err(Error::ShutDown)
        ));
    }
}

#[test]
fn graceful_shutdown_gives_up_after_its_deadline() {
    let mut r = echo_registry();
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&started);
    r.register("test.Echo", "Never", move |_req, responder| {
        s.fetch_add(1, Ordering::SeqCst);
        // Keep the responder forever: the answer never comes.
        std::mem::forget(responder);
    });
    let server = TestServer::start(r, ServerConfig::default());
    let client = Arc::new(server.client());
    let c = Arc::clone(&client);
    let t = thread::spawn(move || call(&c, "Never", b""));
    wait_until(Duration::from_secs(5), "handler start", || {
        started.load(Ordering::SeqCst) == 1
    });
    let start = Instant::now();
    assert!(!server.server.shutdown(Duration::from_millis(300)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let r = within(Duration::from_secs(10), move || t.join().unwrap());
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
}

#[test]
fn immediate_shutdown_closes_connections_in_flight() {
    let started = Arc::new(AtomicUsize::new(0));
    let mut server = TestServer::start(
        sleepy_registry(Arc::clone(&started), 3000),
        ServerConfig::default(),
    );
    let client = Arc::new(server.client());
    let c = Arc::clone(&client);
    let t = thread::spawn(move || call(&c, "Sleep", b""));
    wait_until(Duration::from_secs(5), "handler start", || {
        started.load(Ordering::SeqCst) == 1
    });
    let start = Instant::now();
    assert!(server.server.shutdown_now());
    let r = within(Duration::from_secs(10), move || t.join().unwrap());
    assert!(
        matches!(r, Err(Error::Closed(ConnectionError::PeerClosed))),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "did not wait for the handler"
    );
    server.join().unwrap();
}

#[test]
fn a_blocked_handler_does_not_stall_its_connection() {
    let mut r = echo_registry();
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let g = Arc::clone(&gate);
    r.register_fn("test.Echo", "Wait", move |_| {
        let (lock, cond) = &*g;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cond.wait(open).unwrap();
        }
        Ok(Bytes::from_static(b"waited"))
    });
    let server = TestServer::start(r, ServerConfig::default());
    let client = Arc::new(server.client());
    let c = Arc::clone(&client);
    let waiter = thread::spawn(move || call(&c, "Wait", b""));
    // Many quick calls on the same connection while Wait blocks a worker.
    for i in 0..50u8 {
        assert_eq!(&call(&client, "Echo", &[i]).unwrap()[..], &[i]);
    }
    assert!(!waiter.is_finished());
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    let got = within(Duration::from_secs(10), move || waiter.join().unwrap());
    assert_eq!(&got.unwrap()[..], b"waited");
}

#[test]
fn max_connections_backs_off_without_spinning() {
    let server = TestServer::start(echo_registry(), ServerConfig::default().max_connections(2));
    let a = server.client();
    let b = server.client();
    assert!(call(&a, "Echo", b"a").is_ok());
    assert!(call(&b, "Echo", b"b").is_ok());
    // The third connects (listen backlog) but is not served at the cap.
    let c = Arc::new(server.client());
    let r = c.call_raw(
        "test.Echo",
        "Echo",
        b"c",
        &CallOptions::with_timeout(Duration::from_millis(300)),
    );
    assert!(matches!(r, Err(Error::DeadlineExceeded)), "{r:?}");
    let calls = server.server.stats().accept_calls;
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.server.stats().accept_calls,
        calls,
        "accept was retried while at the cap"
    );
    assert_eq!(server.server.stats().accepted, 2);
    // A connection ends: the third is accepted and served.
    drop(a);
    let got = within(Duration::from_secs(10), move || {
        call(&c, "Echo", b"served").map(|b| b.to_vec())
    });
    assert_eq!(got.unwrap(), b"served");
    assert_eq!(server.server.stats().accepted, 3);
    drop(b);
}

#[test]
fn partial_frame_timeout_closes_a_stalled_connection() {
    let config = ServerConfig::default()
        .connection(Config::default().with_partial_frame_timeout(Some(Duration::from_millis(200))));
    let server = TestServer::start(echo_registry(), config);
    // A healthy client on another connection is not affected.
    let healthy = server.client();
    let mut s = UnixStream::connect(&server.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    s.write_all(&[0, 0, 0, 50, 0, 0]).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap(), 0, "closed without a frame");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    thread::sleep(Duration::from_millis(300));
    assert_eq!(&call(&healthy, "Echo", b"ok").unwrap()[..], b"ok");
}

fn later_registry() -> Registry {
    let mut r = Registry::new();
    r.register(
        "test.Echo",
        "Later",
        |req: IncomingRequest, responder: Responder| {
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(50));
                let status = Status::new(Code::NotFound, format!("{} later", req.method));
                responder.reply(Err(status));
            });
        },
    );
    r
}

#[test]
fn handler_may_answer_later_from_another_thread() {
    for handlers in [1, 4] {
        let server = TestServer::start(
            later_registry(),
            ServerConfig::default().max_concurrent_handlers(handlers),
        );
        let err = call(&server.client(), "Later", b"").unwrap_err();
        assert_eq!(
            err.status().unwrap(),
            &Status::new(Code::NotFound, "Later later")
        );
    }
}

/// Handlers run inline on the connection's reader while a worker watches;
/// one that blocks there is detected and the worker takes over reading,
/// so the connection's other calls are still answered (repeatedly: every
/// blocked handler displaces the reader of its time).
#[test]
fn a_handler_blocking_inline_does_not_stall_its_connection() {
    let mut r = echo_registry();
    let gate = Arc::new((Mutex::new(0usize), std::sync::Condvar::new()));
    let g = Arc::clone(&gate);
    r.register_fn("test.Echo", "Wait", move |_| {
        let (lock, cond) = &*g;
        let mut open = lock.lock().unwrap();
        while *open == 0 {
            open = cond.wait(open).unwrap();
        }
        *open -= 1;
        Ok(Bytes::from_static(b"waited"))
    });
    let server = TestServer::start(r, ServerConfig::default());
    let client = Arc::new(server.client());
    let mut waiting = Vec::new();
    for round in 0..3 {
        // Warm: a worker exists and watches, so the next calls run inline.
        for _ in 0..50 {
            assert_eq!(&call(&client, "Echo", b"warm").unwrap()[..], b"warm");
        }
        let c = Arc::clone(&client);
        waiting.push(thread::spawn(move || call(&c, "Wait", b"")));
        thread::sleep(Duration::from_millis(20));
        let got = within(Duration::from_secs(5), {
            let c = Arc::clone(&client);
            move || call(&c, "Echo", b"meanwhile")
        });
        assert_eq!(&got.unwrap()[..], b"meanwhile", "round {round}");
    }
    {
        let (lock, cond) = &*gate;
        *lock.lock().unwrap() = waiting.len();
        cond.notify_all();
    }
    for t in waiting {
        let got = within(Duration::from_secs(5), move || t.join().unwrap());
        assert_eq!(&got.unwrap()[..], b"waited");
    }
    assert_eq!(&call(&client, "Echo", b"after").unwrap()[..], b"after");
}
