//! Streams on one mio loop: server sessions and client streams for each
//! kind, back-pressure both ways (`Busy` then `Writable`/`on_writable`),
//! peers vanishing mid-stream, unknown methods.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token};
use ttrpc_mio::{
    CallOptions, Client, Code, Config, ConnectionError, Error, IncomingRequest, Registry, Server,
    ServerConfig, StreamCtx, StreamEvent, StreamId, StreamItem, StreamKind, StreamSession,
};
use ttrpc_testkit::TempDir;

const SVC: &str = "test.Streams";

fn le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

fn num(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Client-streaming: sums the client's numbers, answers once.
struct Sum(u64);

impl StreamSession for Sum {
    fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
        while let Some(item) = s.recv() {
            match item {
                StreamItem::Message(m) => self.0 += num(&m),
                StreamItem::End(Ok(())) => return s.respond(Ok(le(self.0).into())),
                StreamItem::End(Err(_)) => return,
            }
        }
    }
}

/// Server-streaming: sends 0..n, resuming after `Busy`.
struct Count {
    next: u64,
    n: u64,
}

impl Count {
    fn pump(&mut self, s: &mut StreamCtx<'_>) {
        while self.next < self.n {
            match s.send(&le(self.next)) {
                Ok(()) => self.next += 1,
                Err(Error::Busy) => return, // on_writable resumes
                Err(_) => return s.close(),
            }
        }
        s.close();
    }
}

impl StreamSession for Count {
    fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
        while s.recv().is_some() {}
        self.pump(s);
    }
    fn on_writable(&mut self, s: &mut StreamCtx<'_>) {
        self.pump(s);
    }
}

/// Bidirectional: echoes each message, closes after the client's end;
/// records how the stream ended.
struct Echo(Arc<Mutex<Vec<String>>>);

impl StreamSession for Echo {
    fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
        while let Some(item) = s.recv() {
            match item {
                StreamItem::Message(m) => {
                    let _ = s.send(&m);
                }
                StreamItem::End(result) => {
                    let what = match result {
                        Ok(()) => "end".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    self.0.lock().unwrap().push(what);
                    return s.close();
                }
            }
        }
    }
}

struct Loop {
    poll: Poll,
    server: Server,
    client: Client,
    ends: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

const CLIENT: Token = Token(1);

impl Loop {
    fn new(server_config: ServerConfig, client_config: Config) -> Self {
        let dir = TempDir::new("ttrpc-mio-streams").unwrap();
        let address = format!("unix://{}", dir.path().join("s.sock").display());
        let poll = Poll::new().unwrap();
        let mut unary = Registry::new();
        unary.register_fn(SVC, "Unary", |req| Ok(req.payload.clone()));
        let mut server =
            Server::bind(&address, unary, server_config, poll.registry(), 100..200).unwrap();
        let ends = Arc::new(Mutex::new(Vec::new()));
        server
            .register_stream(SVC, "Sum", |_: &IncomingRequest| Box::new(Sum(0)))
            .register_stream(SVC, "Count", |req: &IncomingRequest| {
                Box::new(Count {
                    next: 0,
                    n: num(&req.payload),
                })
            });
        let e = Arc::clone(&ends);
        server.register_stream(SVC, "Echo", move |_: &IncomingRequest| {
            Box::new(Echo(Arc::clone(&e)))
        });
        let client = Client::connect(&address, client_config, poll.registry(), CLIENT).unwrap();
        Self {
            poll,
            server,
            client,
            ends,
            _dir: dir,
        }
    }

    fn turn(&mut self) {
        let mut events = Events::with_capacity(64);
        let next = [self.server.poll_timeout(), self.client.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map_or(Duration::from_millis(10), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(10))
            });
        self.poll.poll(&mut events, Some(next)).unwrap();
        for event in &events {
            let _ = self.server.handle_event(event) || self.client.handle_event(event);
        }
        self.server.handle_timeout(Instant::now());
        self.client.handle_timeout(Instant::now());
    }

    /// Turns the loop until `id` yields an item (5 s at most).
    fn recv(&mut self, id: StreamId) -> StreamItem {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(item) = self.client.recv(id) {
                return item;
            }
            assert!(Instant::now() < deadline, "no item on stream {id}");
            self.turn();
        }
    }

    /// Every message of `id`, and how it ended.
    fn collect(&mut self, id: StreamId) -> (Vec<Bytes>, Result<(), Error>) {
        let mut got = Vec::new();
        loop {
            match self.recv(id) {
                StreamItem::Message(m) => got.push(m),
                StreamItem::End(r) => return (got, r.map_err(Error::from)),
            }
        }
    }
}

fn opts() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

#[test]
fn client_streaming_sums_what_was_sent() {
    let mut l = Loop::new(ServerConfig::default(), Config::default());
    let id = l
        .client
        .open_stream(SVC, "Sum", StreamKind::ClientStreaming, &le(5), &opts())
        .unwrap();
    for i in 1..=100 {
        l.client.send(id, &le(i)).unwrap();
    }
    l.client.close_send(id).unwrap();
    assert!(matches!(
        l.client.send(id, &le(1)),
        Err(Error::StreamClosed(_))
    ));
    let (got, end) = l.collect(id);
    assert_eq!(got.len(), 1);
    assert_eq!(num(&got[0]), 5055);
    end.unwrap();
}

#[test]
fn server_streaming_resumes_after_busy() {
    // A small transmit bound makes the session hit `Busy` and resume.
    let config = ServerConfig::default().connection(Config::default().with_max_tx_bytes(256));
    let mut l = Loop::new(config, Config::default());
    let id = l
        .client
        .open_stream(
            SVC,
            "Count",
            StreamKind::ServerStreaming,
            &le(2000),
            &opts(),
        )
        .unwrap();
    let (got, end) = l.collect(id);
    end.unwrap();
    let got: Vec<u64> = got.iter().map(|m| num(m)).collect();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
}

#[test]
fn bidirectional_echo_with_unary_calls_between() {
    let mut l = Loop::new(ServerConfig::default(), Config::default());
    let id = l
        .client
        .open_stream(SVC, "Echo", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    for i in 0..50u64 {
        l.client.send(id, &le(i)).unwrap();
        match l.recv(id) {
            StreamItem::Message(m) => assert_eq!(num(&m), i),
            other => panic!("{other:?}"),
        }
        let call = l.client.call(SVC, "Unary", &le(i), &opts()).unwrap();
        let answer = loop {
            if let Some((done, result)) = l.client.poll_completion() {
                assert_eq!(done, call);
                break result.unwrap();
            }
            l.turn();
        };
        assert_eq!(num(&answer), i);
    }
    l.client.close_send(id).unwrap();
    let (rest, end) = l.collect(id);
    assert!(rest.is_empty());
    end.unwrap();
    assert_eq!(*l.ends.lock().unwrap(), ["end"]);
    // Readable events were reported for the stream.
    let mut readable = false;
    while let Some(ev) = l.client.poll_stream_event() {
        readable |= ev == StreamEvent::Readable(id);
    }
    assert!(readable);
}

#[test]
fn unknown_stream_methods_are_unimplemented() {
    let mut l = Loop::new(ServerConfig::default(), Config::default());
    let id = l
        .client
        .open_stream(SVC, "Nope", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    let (_, end) = l.collect(id);
    let err = end.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.to_string(), "Unimplemented: method Nope");
}

#[test]
fn a_client_that_vanishes_mid_stream_ends_the_session_with_an_error() {
    let mut l = Loop::new(ServerConfig::default(), Config::default());
    let id = l
        .client
        .open_stream(SVC, "Echo", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    l.client.send(id, &le(1)).unwrap();
    assert!(matches!(l.recv(id), StreamItem::Message(_)));
    l.client.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    while l.ends.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the session never saw the end");
        l.turn();
    }
    assert_eq!(*l.ends.lock().unwrap(), ["connection closed by peer"]);
}

/// A client over one end of a socket pair; the test plays the server.
fn raw_client(config: Config) -> (Poll, Client, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let poll = Poll::new().unwrap();
    let client = Client::new(ours, config, poll.registry(), CLIENT).unwrap();
    (poll, client, theirs)
}

fn turn(poll: &mut Poll, client: &mut Client) {
    let mut events = Events::with_capacity(8);
    poll.poll(&mut events, Some(Duration::from_millis(10)))
        .unwrap();
    for event in &events {
        client.handle_event(event);
    }
    client.handle_timeout(Instant::now());
}

#[test]
fn a_full_transmit_queue_says_busy_then_writable() {
    let (mut poll, mut client, mut peer) = raw_client(Config::default().with_max_tx_bytes(4096));
    let id = client
        .open_stream(SVC, "Sum", StreamKind::ClientStreaming, b"", &opts())
        .unwrap();
    let chunk = vec![7u8; 1024];
    let mut sent = 0;
    // The peer reads nothing: the socket buffer fills, then our queue.
    loop {
        match client.send(id, &chunk) {
            Ok(()) => sent += 1,
            Err(Error::Busy) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 100_000, "never busy");
    }
    assert_eq!(client.poll_stream_event(), None);
    // The peer drains the socket: the client's queue empties.
    peer.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(5);
    let writable = loop {
        while let Ok(n) = peer.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        turn(&mut poll, &mut client);
        if let Some(ev) = client.poll_stream_event() {
            break ev;
        }
        assert!(Instant::now() < deadline, "never writable");
    };
    assert_eq!(writable, StreamEvent::Writable);
    client.send(id, &chunk).unwrap();
}

#[test]
fn a_server_that_vanishes_mid_stream_fails_the_stream() {
    let (mut poll, mut client, mut peer) = raw_client(Config::default());
    let id = client
        .open_stream(SVC, "Count", StreamKind::ServerStreaming, &le(3), &opts())
        .unwrap();
    // The peer takes the request (so closing is not a reset), then goes.
    let mut buf = [0u8; 256];
    assert!(peer.read(&mut buf).unwrap() > 10);
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(5);
    let item = loop {
        turn(&mut poll, &mut client);
        if let Some(item) = client.recv(id) {
            break item;
        }
        assert!(Instant::now() < deadline, "the stream never ended");
    };
    let StreamItem::End(Err(e)) = item else {
        panic!("{item:?}")
    };
    let e = Error::from(e);
    assert!(
        matches!(e, Error::Closed(ConnectionError::PeerClosed)),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "connection closed: connection closed by peer"
    );
    assert!(client.is_closed());
}

#[test]
fn graceful_shutdown_lets_a_sending_client_finish() {
    let mut l = Loop::new(ServerConfig::default(), Config::default());
    let id = l
        .client
        .open_stream(SVC, "Echo", StreamKind::Bidirectional, b"", &opts())
        .unwrap();
    l.client.send(id, &le(0)).unwrap();
    assert!(matches!(l.recv(id), StreamItem::Message(_)));
    l.server.shutdown(Duration::from_secs(10));
    // The stream still carries the client's messages during the drain.
    for i in 1..6u64 {
        l.client.send(id, &le(i)).unwrap();
        match l.recv(id) {
            StreamItem::Message(m) => assert_eq!(num(&m), i),
            other => panic!("{other:?}"),
        }
    }
    l.client.close_send(id).unwrap();
    let (rest, end) = l.collect(id);
    assert!(rest.is_empty());
    end.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !l.server.is_finished() {
        assert!(Instant::now() < deadline, "the server never finished");
        l.turn();
    }
}
