//! Streams over real sockets: each kind, unary calls beside a slow stream,
//! a peer vanishing mid-stream on either side, graceful shutdown with a
//! client still sending, unknown methods.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::{TestServer, within};
use ttrpc_std::{
    CallOptions, Client, Code, ConnectionError, Error, IncomingRequest, Registry, ServerConfig,
    ServerStream, Status, StreamKind,
};

const SVC: &str = "test.Streams";

fn le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn num(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Sum (client-streaming), Count (server-streaming: 0..n), Echo (bidi),
/// Drop (returns without finishing), Hold (reports the stream's end on
/// `ends`).
fn registry(ends: Option<mpsc::Sender<String>>) -> Registry {
    let mut r = Registry::new();
    r.register_stream(SVC, "Sum", |_req: IncomingRequest, mut s: ServerStream| {
        let mut sum = 0;
        while let Some(m) = s.recv().expect("client stream") {
            sum += num(&m);
        }
        s.respond(Ok(le(sum).into()));
    });
    r.register_stream(SVC, "Count", |req: IncomingRequest, mut s: ServerStream| {
        for i in 0..num(&req.payload) {
            if s.send(&le(i)).is_err() {
                return;
            }
        }
        s.close();
    });
    r.register_stream(SVC, "Echo", |_req: IncomingRequest, mut s: ServerStream| {
        while let Ok(Some(m)) = s.recv() {
            s.send(&m).expect("send");
        }
        s.close();
    });
    r.register_stream(SVC, "Drop", |_req: IncomingRequest, _s: ServerStream| {});
    let ends = ends.map(std::sync::Mutex::new);
    r.register_stream(SVC, "Hold", move |_req, mut s: ServerStream| {
        if let Some(tx) = &ends {
            let _ = tx.lock().unwrap().send("started".to_owned());
        }
        let end = loop {
            match s.recv() {
                Ok(Some(_)) => {}
                Ok(None) => break "end".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        if let Some(tx) = &ends {
            let _ = tx.lock().unwrap().send(end);
        }
        s.respond(Ok(Bytes::from_static(b"held")));
    });
    r.register_fn(SVC, "Unary", |req| Ok(req.payload.clone()));
    r
}

fn opts() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

#[test]
fn client_streaming_sums_what_was_sent() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Sum", StreamKind::ClientStreaming, b"", &opts())
        .unwrap();
    for i in 1..=100 {
        s.send(&le(i)).unwrap();
    }
    s.close_send().unwrap();
    assert!(matches!(s.send(&le(1)), Err(Error::StreamClosed(_))));
    assert_eq!(num(&s.recv().unwrap().unwrap()), 5050);
    assert_eq!(s.recv().unwrap(), None);
    assert_eq!(s.recv().unwrap(), None, "stays ended");
}

#[test]
fn client_streaming_with_a_first_message_in_the_request() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Sum", StreamKind::ClientStreaming, &le(7), &opts())
        .unwrap();
    s.send(&le(3)).unwrap();
    s.close_send().unwrap();
    assert_eq!(num(&s.recv().unwrap().unwrap()), 10);
}

#[test]
fn server_streaming_delivers_every_message_then_the_end() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(500), &opts())
        .unwrap();
    assert!(matches!(s.send(b"x"), Err(Error::StreamClosed(_))));
    let mut got = Vec::new();
    while let Some(m) = s.recv().unwrap() {
        got.push(num(&m));
    }
    assert_eq!(got, (0..500).collect::<Vec<_>>());
}

#[test]
fn bidirectional_echo_from_two_threads() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Echo", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..1000 {
                s.send(&le(i)).unwrap();
            }
            s.close_send().unwrap();
        });
        let mut n = 0;
        while let Some(m) = s.recv().unwrap() {
            assert_eq!(num(&m), n);
            n += 1;
        }
        assert_eq!(n, 1000);
    });
}

#[test]
fn unary_calls_continue_beside_a_stream_nobody_reads() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    // 50 messages wait unread (below the 64-message bound).
    let s = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(50), &opts())
        .unwrap();
    for i in 0..20u64 {
        let got = client.call_raw(SVC, "Unary", &le(i), &opts()).unwrap();
        assert_eq!(num(&got), i);
    }
    assert_eq!(num(&s.recv().unwrap().unwrap()), 0);
}

#[test]
fn a_consumer_that_stalls_fails_its_stream_not_the_connection() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let config = ttrpc_std::Config::default()
        .with_stream_queue_len(4)
        .with_stream_stall_timeout(Duration::from_millis(200));
    let sock = UnixStream::connect(&server.socket).unwrap();
    let client = Client::with_config(sock, config).unwrap();
    let s = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(100), &opts())
        .unwrap();
    thread::sleep(Duration::from_millis(600));
    let err = loop {
        match s.recv() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stalled stream ended well"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(
        num(&client.call_raw(SVC, "Unary", &le(9), &opts()).unwrap()),
        9
    );
}

#[test]
fn unknown_stream_methods_are_unimplemented() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Nope", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    let err = s.recv().unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.to_string(), "Unimplemented: method Nope");
    // A unary call to a streaming method is refused the same way.
    let err = client.call_raw(SVC, "Sum", b"", &opts()).unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[test]
fn a_handler_that_drops_its_stream_answers_internal() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Drop", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    assert_eq!(s.recv().unwrap_err().code(), Code::Internal);
}

#[test]
fn a_server_that_vanishes_mid_stream_fails_the_stream() {
    // A raw "server" that accepts, reads the request, then exits.
    let dir = ttrpc_testkit::TempDir::new("ttrpc-std-vanish").unwrap();
    let path = dir.path().join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let peer = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut sock, &mut buf);
        // One message, then gone.
        let header = ttrpc_std::core::FrameHeader {
            len: 8,
            stream_id: ttrpc_std::core::StreamId::new(1),
            kind: ttrpc_std::core::FrameType::Data,
            flags: ttrpc_std::core::Flags::NONE,
        };
        sock.write_all(&header.encode()).unwrap();
        sock.write_all(&le(42)).unwrap();
    });
    let client = Client::connect(path.to_str().unwrap()).unwrap();
    let s = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(9), &opts())
        .unwrap();
    peer.join().unwrap();
    assert_eq!(num(&s.recv().unwrap().unwrap()), 42);
    let err = within(Duration::from_secs(5), move || s.recv()).unwrap_err();
    assert!(
        matches!(err, Error::Closed(ConnectionError::PeerClosed)),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "connection closed: connection closed by peer"
    );
}

#[test]
fn a_client_that_vanishes_mid_stream_fails_the_handlers_stream() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(registry(Some(tx)), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Hold", StreamKind::ClientStreaming, b"", &opts())
        .unwrap();
    s.send(b"one").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "started");
    // Gone without a half-close: the socket closes under the stream.
    std::mem::forget(s);
    drop(client);
    let end = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(end, "connection closed by peer");
}

#[test]
fn graceful_shutdown_lets_a_sending_client_finish() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = Arc::new(server.client());
    let s = client
        .open_stream(SVC, "Echo", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    // One round trip: the server's handler is running.
    s.send(&le(1)).unwrap();
    assert_eq!(num(&s.recv().unwrap().unwrap()), 1);
    let handle = server.server.clone();
    let shutting = thread::spawn(move || handle.shutdown(Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(200));
    // The stream still carries the client's messages during the drain.
    for i in 2..12 {
        s.send(&le(i)).unwrap();
        assert_eq!(num(&s.recv().unwrap().unwrap()), i);
    }
    s.close_send().unwrap();
    assert_eq!(s.recv().unwrap(), None);
    assert!(shutting.join().unwrap(), "shutdown finished within grace");
    // No new calls after the drain.
    assert!(client.call_raw(SVC, "Unary", b"", &opts()).is_err());
}

#[test]
fn dropping_a_client_stream_half_closes_it() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(registry(Some(tx)), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(SVC, "Hold", StreamKind::ClientStreaming, b"", &opts())
        .unwrap();
    s.send(b"one").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "started");
    drop(s);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "end");
    // The connection is fine.
    assert_eq!(
        num(&client.call_raw(SVC, "Unary", &le(3), &opts()).unwrap()),
        3
    );
}

#[test]
fn a_stream_deadline_fails_a_stream_that_waits_too_long() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let client = server.client();
    let s = client
        .open_stream(
            SVC,
            "Hold",
            StreamKind::ClientStreaming,
            b"",
            &CallOptions::with_timeout(Duration::from_millis(200)),
        )
        .unwrap();
    let err = within(Duration::from_secs(5), move || s.recv()).unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded), "{err:?}");
}

#[test]
fn stream_handlers_run_even_with_one_handler_thread() {
    let server = TestServer::start(
        registry(None),
        ServerConfig::default().max_concurrent_handlers(1),
    );
    let client = server.client();
    let s = client
        .open_stream(SVC, "Sum", StreamKind::ClientStreaming, b"", &opts())
        .unwrap();
    s.send(&le(4)).unwrap();
    s.close_send().unwrap();
    assert_eq!(num(&s.recv().unwrap().unwrap()), 4);
    let _ = Status::new(Code::Ok, "");
}

#[test]
fn a_small_stream_byte_bound_pauses_reading_without_losing_messages() {
    let server = TestServer::start(registry(None), ServerConfig::default());
    let config = ttrpc_std::Config::default().with_max_stream_bytes(32);
    let sock = UnixStream::connect(&server.socket).unwrap();
    let client = Client::with_config(sock, config).unwrap();
    let s = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(300), &opts())
        .unwrap();
    let got = within(Duration::from_secs(10), move || {
        let mut got = Vec::new();
        while let Some(m) = s.recv().unwrap() {
            got.push(num(&m));
        }
        got
    });
    assert_eq!(got, (0..300).collect::<Vec<_>>());
    assert_eq!(
        num(&client.call_raw(SVC, "Unary", &le(5), &opts()).unwrap()),
        5
    );
}
