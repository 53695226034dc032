//! The client against hand-written raw servers: closed connections,
//! cancel, oversized requests, stream-fd clients.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{TestServer, echo_registry, wait_until, within};
use ttrpc_std::{CallOptions, Client, Config, ConnectionError, Error, ServerConfig};
use ttrpc_testkit::TempDir;
use ttrpc_testkit::interop::{RawFrame, read_frame};

/// A raw listener and a client connected to it, with the server's end.
fn raw_pair() -> (Client, UnixStream, TempDir) {
    let dir = TempDir::new("ttrpc-client").unwrap();
    let path = dir.path().join("raw.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = Client::connect(&format!("unix://{}", path.display())).unwrap();
    let (server, _) = listener.accept().unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (client, server, dir)
}

fn response_frame(id: u32, payload: &[u8]) -> Vec<u8> {
    // Response { payload = 2 } with a one-byte length (payload < 128).
    let mut body = vec![0x12, payload.len() as u8];
    body.extend_from_slice(payload);
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[2, 0]);
    f.extend_from_slice(&body);
    f
}

#[test]
fn peer_close_fails_every_pending_and_later_call_with_the_cause() {
    let (client, mut server, _dir) = raw_pair();
    let client = Arc::new(client);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&client);
            thread::spawn(move || c.call_raw("s.S", "M", b"x", &CallOptions::default()))
        })
        .collect();
    for _ in 0..4 {
        let f: RawFrame = read_frame(&mut server).unwrap();
        assert_eq!(f.kind, 1);
    }
    drop(server);
    let results = within(Duration::from_secs(10), move || {
        calls
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    for r in results {
        match r {
            Err(e @ Error::Closed(ConnectionError::PeerClosed)) => {
                assert_eq!(
                    e.to_string(),
                    "connection closed: connection closed by peer"
                );
            }
            other => panic!("expected PeerClosed, got {other:?}"),
        }
    }
    let later = client.call_raw("s.S", "M", b"", &CallOptions::default());
    assert!(
        matches!(later, Err(Error::Closed(ConnectionError::PeerClosed))),
        "{later:?}"
    );
    assert!(client.is_closed());
}

#[test]
fn close_in_the_middle_of_a_frame_is_named() {
    let (client, mut server, _dir) = raw_pair();
    let t = thread::spawn(move || client.call_raw("s.S", "M", b"", &CallOptions::default()));
    read_frame(&mut server).unwrap();
    server.write_all(&[0, 0, 0, 20, 0, 0, 0, 1, 2]).unwrap();
    drop(server);
    let r = within(Duration::from_secs(10), move || t.join().unwrap());
    assert!(
        matches!(r, Err(Error::Closed(ConnectionError::UnexpectedEof))),
        "{r:?}"
    );
}

#[test]
fn local_close_fails_pending_calls() {
    let (client, mut server, _dir) = raw_pair();
    let client = Arc::new(client);
    let c = Arc::clone(&client);
    let t = thread::spawn(move || c.call_raw("s.S", "M", b"", &CallOptions::default()));
    read_frame(&mut server).unwrap();
    client.close();
    let r = within(Duration::from_secs(10), move || t.join().unwrap());
    assert!(
        matches!(r, Err(Error::Closed(ConnectionError::LocallyClosed))),
        "{r:?}"
    );
    // The server sees the connection end.
    let mut buf = [0; 1];
    assert_eq!(server.read(&mut buf).unwrap(), 0);
}

#[test]
fn cancel_wakes_the_caller_and_drops_the_late_answer() {
    let (client, mut server, _dir) = raw_pair();
    let client = Arc::new(client);
    let pending = client
        .start_raw("s.S", "Slow", b"", &CallOptions::default())
        .unwrap();
    let id = pending.id().get();
    let canceller = pending.canceller();
    let start = Instant::now();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        canceller.cancel()
    });
    let r = pending.wait();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(t.join().unwrap(), "the call was pending when cancelled");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(client.in_flight(), 0);

    // The server answers anyway: dropped, and the next call gets its own.
    assert_eq!(read_frame(&mut server).unwrap().stream_id, id);
    server.write_all(&response_frame(id, b"late")).unwrap();
    let c = Arc::clone(&client);
    let next = thread::spawn(move || c.call_raw("s.S", "M", b"", &CallOptions::default()));
    let f = read_frame(&mut server).unwrap();
    server
        .write_all(&response_frame(f.stream_id, b"mine"))
        .unwrap();
    let got = within(Duration::from_secs(10), move || next.join().unwrap()).unwrap();
    assert_eq!(&got[..], b"mine");
    assert_eq!(client.stats().unknown_stream_ids, 1);
}

#[test]
fn dropping_a_pending_call_abandons_it() {
    let (client, mut server, _dir) = raw_pair();
    let p = client
        .start_raw("s.S", "M", b"", &CallOptions::default())
        .unwrap();
    assert_eq!(client.in_flight(), 1);
    drop(p);
    assert_eq!(client.in_flight(), 0);
    read_frame(&mut server).unwrap();
}

#[test]
fn oversized_request_is_refused_before_anything_is_written() {
    let (client, mut server, _dir) = raw_pair();
    let big = vec![0u8; 4 << 20];
    let err = client
        .call_raw("s.S", "M", &big, &CallOptions::default())
        .unwrap_err();
    match err {
        Error::TooLarge { len, max } => {
            assert!(len > 4 << 20);
            assert_eq!(max, 4 << 20);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Not a byte reached the server...
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 16];
    let e = server.read(&mut buf).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    // ...and no stream id was used: the next call is stream 1.
    let t = thread::spawn(move || client.call_raw("s.S", "M", b"ok", &CallOptions::default()));
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let f = read_frame(&mut server).unwrap();
    assert_eq!(f.stream_id, 1);
    server.write_all(&response_frame(1, b"fine")).unwrap();
    assert_eq!(&t.join().unwrap().unwrap()[..], b"fine");
}

#[test]
fn deadline_is_enforced_without_any_answer() {
    let (client, mut server, _dir) = raw_pair();
    let start = Instant::now();
    let r = client.call_raw(
        "s.S",
        "M",
        b"",
        &CallOptions::with_timeout(Duration::from_millis(150)),
    );
    assert!(matches!(r, Err(Error::DeadlineExceeded)), "{r:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // timeout_nano went on the wire.
    let f = read_frame(&mut server).unwrap();
    let req = <ttrpc_std::core::Request as prost::Message>::decode(&f.data[..]).unwrap();
    assert_eq!(req.timeout_nano, 150_000_000);
}

#[test]
fn client_over_a_handed_over_fd() {
    let server = TestServer::start(echo_registry(), ServerConfig::default());
    let (ours, theirs) = UnixStream::pair().unwrap();
    server.server.serve_connection(theirs).unwrap();
    let client = Client::from_fd(OwnedFd::from(ours), Config::default()).unwrap();
    let got = client
        .call_raw("test.Echo", "Echo", b"over an fd", &CallOptions::default())
        .unwrap();
    assert_eq!(&got[..], b"over an fd");
    wait_until(Duration::from_secs(5), "accepted count", || {
        server.server.stats().active == 1
    });
}

#[test]
fn typed_calls_with_prost_messages() {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Msg {
        #[prost(string, tag = "1")]
        text: String,
    }
    let server = TestServer::start(echo_registry(), ServerConfig::default());
    let client = server.client();
    let got: Msg = client
        .call(
            "test.Echo",
            "Echo",
            &Msg {
                text: "typed".into(),
            },
            &CallOptions::default(),
        )
        .unwrap();
    assert_eq!(got.text, "typed");
    let err = client
        .call::<Msg, Msg>(
            "test.Echo",
            "Nope",
            &Msg::default(),
            &CallOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.code(), ttrpc_std::Code::Unimplemented);
    assert_eq!(err.status().unwrap().message, "method Nope");
}

/// Calls waiting together share one reader: whichever holds the reader
/// role, a call's deadline is enforced on time, and the role passes on so
/// the other call still gets its answer.
#[test]
fn a_deadline_and_an_answer_among_calls_sharing_the_reader() {
    for short_first in [false, true] {
        let (client, mut server, _dir) = raw_pair();
        let client = Arc::new(client);
        let long = |c: Arc<Client>| {
            thread::spawn(move || c.call_raw("s.S", "Long", b"", &CallOptions::default()))
        };
        let short = |c: Arc<Client>| {
            thread::spawn(move || {
                let start = Instant::now();
                let opts = CallOptions::with_timeout(Duration::from_millis(100));
                (c.call_raw("s.S", "Short", b"", &opts), start.elapsed())
            })
        };
        let (l, s) = if short_first {
            let s = short(Arc::clone(&client));
            read_frame(&mut server).unwrap();
            (long(Arc::clone(&client)), s)
        } else {
            let l = long(Arc::clone(&client));
            read_frame(&mut server).unwrap();
            (l, short(Arc::clone(&client)))
        };
        let second = read_frame(&mut server).unwrap();
        let (r, took) = within(Duration::from_secs(10), move || s.join().unwrap());
        assert!(matches!(r, Err(Error::DeadlineExceeded)), "{r:?}");
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(3),
            "{took:?}"
        );
        let long_id = if short_first { second.stream_id } else { 1 };
        server.write_all(&response_frame(long_id, b"long")).unwrap();
        let got = within(Duration::from_secs(10), move || l.join().unwrap()).unwrap();
        assert_eq!(&got[..], b"long");
        assert_eq!(client.in_flight(), 0);
    }
}
