//! Streams end to end on a virtual clock: each kind, half-close, status,
//! cancel, deadlines, the per-stream receive bound and its stall timeout,
//! and peers without stream support.

// One real instant as the epoch of a virtual clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use common::{drain_client, drain_server, frame};
use prost::Message;
use ttrpc_core::{
    Bytes, CallError, CallOptions, ClientConnection, ClientEvent, Code, Config, ConnectionError,
    FrameHeader, FrameType, Request, SendError, ServerConnection, ServerEvent, Status, StreamId,
    StreamItem, StreamKind,
};

struct Pair {
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    /// Every frame header the client sent, in order.
    c2s: Vec<FrameHeader>,
    /// Every frame header the server sent, in order.
    s2c: Vec<FrameHeader>,
}

fn headers(bytes: &[u8]) -> Vec<FrameHeader> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(h) = FrameHeader::parse(rest) {
        rest = &rest[10 + h.len as usize..];
        out.push(h);
    }
    out
}

impl Pair {
    fn new(config: Config) -> Self {
        Self {
            now: Instant::now(),
            client: ClientConnection::new(config.clone()),
            server: ServerConnection::new(config),
            c2s: Vec::new(),
            s2c: Vec::new(),
        }
    }

    /// Moves every queued byte both ways until nothing moves.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            if self.server.wants_read() {
                if let Some(b) = self.client.take_transmit() {
                    self.c2s.extend(headers(&b));
                    self.server.handle_input(self.now, &b);
                    moved = true;
                }
            }
            if self.client.wants_read() {
                if let Some(b) = self.server.take_transmit() {
                    self.s2c.extend(headers(&b));
                    self.client.handle_input(self.now, &b);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn open(&mut self, kind: StreamKind, payload: &[u8]) -> (StreamId, ServerReq) {
        let id = self
            .client
            .open_stream(
                self.now,
                "s.Svc",
                "M",
                kind,
                payload,
                &CallOptions::default(),
            )
            .unwrap();
        self.flush();
        let events = drain_server(&mut self.server);
        let req = events
            .into_iter()
            .find_map(|e| match e {
                ServerEvent::Request(r) => Some(r),
                _ => None,
            })
            .expect("a request");
        assert_eq!(req.id, id);
        (id, req)
    }

    fn server_items(&mut self, id: StreamId) -> Vec<StreamItem> {
        std::iter::from_fn(|| self.server.recv_stream(id)).collect()
    }

    fn client_items(&mut self, id: StreamId) -> Vec<StreamItem> {
        std::iter::from_fn(|| self.client.recv_stream(id)).collect()
    }
}

type ServerReq = ttrpc_core::IncomingRequest;

fn msg(b: &'static [u8]) -> StreamItem {
    StreamItem::Message(Bytes::from_static(b))
}

fn flags_of(hs: &[FrameHeader]) -> Vec<(FrameType, u8)> {
    hs.iter().map(|h| (h.kind, h.flags.0)).collect()
}

#[test]
fn client_streaming_many_in_one_answer() {
    let mut p = Pair::new(Config::default());
    let (id, req) = p.open(StreamKind::ClientStreaming, b"");
    assert!(req.is_stream() && req.client_sends());
    for m in [&b"a"[..], b"bb", b""] {
        p.client.send_data(id, m).unwrap();
    }
    p.client.close_send(id).unwrap();
    assert_eq!(
        p.client.send_data(id, b"x"),
        Err(SendError::StreamClosed(id))
    );
    p.flush();
    let events = drain_server(&mut p.server);
    assert_eq!(events, vec![ServerEvent::StreamReadable { id }]);
    assert_eq!(
        p.server_items(id),
        vec![msg(b"a"), msg(b"bb"), msg(b""), StreamItem::End(Ok(()))]
    );
    p.server
        .send_response(id, Ok(Bytes::from_static(b"sum")))
        .unwrap();
    p.flush();
    assert_eq!(
        drain_client(&mut p.client),
        vec![ClientEvent::StreamReadable { id }]
    );
    assert_eq!(
        p.client_items(id),
        vec![msg(b"sum"), StreamItem::End(Ok(()))]
    );
    assert_eq!(p.client.in_flight(), 0);
    assert_eq!(p.server.in_flight(), 0);
    // On the wire: Request RO|ND, Data x3 (flags 0), Data RC|ND; one Response.
    assert_eq!(
        flags_of(&p.c2s),
        vec![
            (FrameType::Request, 0x06),
            (FrameType::Data, 0),
            (FrameType::Data, 0),
            (FrameType::Data, 0),
            (FrameType::Data, 0x05)
        ]
    );
    assert_eq!(flags_of(&p.s2c), vec![(FrameType::Response, 0)]);
}

#[test]
fn server_streaming_ends_with_data_remote_closed() {
    let mut p = Pair::new(Config::default());
    let (id, req) = p.open(StreamKind::ServerStreaming, b"req");
    assert!(req.is_stream() && !req.client_sends());
    assert_eq!(&req.payload[..], b"req");
    assert_eq!(p.server_items(id), vec![StreamItem::End(Ok(()))]);
    assert_eq!(
        p.client.send_data(id, b"x"),
        Err(SendError::StreamClosed(id))
    );
    for m in [&b"1"[..], b"22", b"333"] {
        p.server.send_data(id, m).unwrap();
    }
    p.server.close_send(id).unwrap();
    assert_eq!(
        p.server.send_data(id, b"x"),
        Err(SendError::UnknownStream(id))
    );
    p.flush();
    assert_eq!(
        drain_client(&mut p.client),
        vec![ClientEvent::StreamReadable { id }]
    );
    assert_eq!(
        p.client_items(id),
        vec![msg(b"1"), msg(b"22"), msg(b"333"), StreamItem::End(Ok(()))]
    );
    assert_eq!(flags_of(&p.c2s), vec![(FrameType::Request, 0x01)]);
    assert_eq!(flags_of(&p.s2c).last(), Some(&(FrameType::Data, 0x05)));
}

#[test]
fn bidirectional_interleaves_and_the_first_message_rides_the_request() {
    let mut p = Pair::new(Config::default());
    let (id, req) = p.open(StreamKind::Bidirectional, b"first");
    assert_eq!(p.c2s[0].flags.0, 0x02, "remote-open, with data");
    assert!(req.client_sends());
    assert_eq!(drain_server(&mut p.server), vec![]);
    assert_eq!(p.server_items(id), vec![msg(b"first")]);
    for i in 0..5u8 {
        p.client.send_data(id, &[i]).unwrap();
        p.flush();
        let _ = drain_server(&mut p.server);
        let got = p.server_items(id);
        assert_eq!(got, vec![StreamItem::Message(Bytes::from(vec![i]))]);
        p.server.send_data(id, &[i, i]).unwrap();
        p.flush();
        let _ = drain_client(&mut p.client);
        assert_eq!(
            p.client_items(id),
            vec![StreamItem::Message(Bytes::from(vec![i, i]))]
        );
    }
    p.client.close_send(id).unwrap();
    p.flush();
    let _ = drain_server(&mut p.server);
    assert_eq!(p.server_items(id), vec![StreamItem::End(Ok(()))]);
    p.server.close_send(id).unwrap();
    p.flush();
    let _ = drain_client(&mut p.client);
    assert_eq!(p.client_items(id), vec![StreamItem::End(Ok(()))]);
    assert_eq!((p.client.in_flight(), p.server.in_flight()), (0, 0));
}

#[test]
fn a_status_ends_the_stream_and_later_data_is_inactive() {
    let mut p = Pair::new(Config::default());
    let (id, _) = p.open(StreamKind::Bidirectional, b"");
    p.server.send_data(id, b"m").unwrap();
    p.server
        .send_response(id, Err(Status::new(Code::NotFound, "gone")))
        .unwrap();
    p.flush();
    let _ = drain_client(&mut p.client);
    let items = p.client_items(id);
    assert_eq!(items[0], msg(b"m"));
    assert!(
        matches!(&items[1], StreamItem::End(Err(CallError::Status(s))) if s.code == Code::NotFound)
    );
    // The client's stream is gone; sending fails locally.
    assert_eq!(
        p.client.send_data(id, b"x"),
        Err(SendError::UnknownStream(id))
    );
    // A raw Data frame on the finished stream is answered InvalidArgument.
    p.server
        .handle_input(p.now, &frame(id.get(), 3, 0, b"late"));
    let events = drain_server(&mut p.server);
    assert!(matches!(events[..], [ServerEvent::Rejected { .. }]));
}

#[test]
fn a_stream_deadline_fails_it_locally() {
    let mut p = Pair::new(Config::default());
    let id = p
        .client
        .open_stream(
            p.now,
            "s.Svc",
            "M",
            StreamKind::ServerStreaming,
            b"",
            &CallOptions::with_timeout(Duration::from_millis(50)),
        )
        .unwrap();
    p.flush();
    let _ = drain_server(&mut p.server);
    p.server.send_data(id, b"early").unwrap();
    p.flush();
    assert_eq!(
        drain_client(&mut p.client),
        vec![ClientEvent::StreamReadable { id }]
    );
    assert_eq!(
        p.client.poll_timeout(),
        Some(p.now + Duration::from_millis(50))
    );
    p.advance(Duration::from_millis(50));
    assert_eq!(drain_client(&mut p.client), vec![]);
    assert_eq!(
        p.client_items(id),
        vec![
            msg(b"early"),
            StreamItem::End(Err(CallError::DeadlineExceeded))
        ]
    );
    p.server.send_data(id, b"late").unwrap();
    p.flush();
    assert_eq!(drain_client(&mut p.client), vec![]);
    assert_eq!(p.client.stats().unknown_stream_ids, 1);
}

#[test]
fn cancel_forgets_the_stream() {
    let mut p = Pair::new(Config::default());
    let (id, _) = p.open(StreamKind::ServerStreaming, b"");
    p.server.send_data(id, b"1").unwrap();
    p.flush();
    assert!(p.client.abandon(id));
    assert!(!p.client.abandon(id));
    assert_eq!(drain_client(&mut p.client), vec![]);
    assert_eq!(p.client.recv_stream(id), None);
    assert_eq!(p.client.buffered_bytes(), 0);
}

#[test]
fn a_slow_consumer_fails_after_the_stall_timeout_while_unary_calls_go_on() {
    let config = Config::default().with_stream_queue_len(4);
    let mut p = Pair::new(config);
    let (slow, _) = p.open(StreamKind::ServerStreaming, b"");
    for i in 0..10u8 {
        p.server.send_data(slow, &[i; 100]).unwrap();
    }
    p.flush();
    assert_eq!(
        drain_client(&mut p.client),
        vec![ClientEvent::StreamReadable { id: slow }]
    );
    // The consumer takes nothing. Unary calls still get through.
    let stall_at = p.now + Duration::from_secs(1);
    assert_eq!(p.client.poll_timeout(), Some(stall_at));
    for _ in 0..3 {
        let call = p
            .client
            .send_request(p.now, "s.Svc", "U", b"q", &CallOptions::default())
            .unwrap();
        p.flush();
        let events = drain_server(&mut p.server);
        assert!(matches!(&events[..], [ServerEvent::Request(r)] if r.id == call));
        p.server
            .send_response(call, Ok(Bytes::from_static(b"a")))
            .unwrap();
        p.flush();
        assert_eq!(
            drain_client(&mut p.client),
            vec![ClientEvent::Response {
                id: call,
                result: Ok(Bytes::from_static(b"a"))
            }]
        );
        p.advance(Duration::from_millis(300));
    }
    // 900 ms in: still alive. Then it fails, freeing its messages.
    assert!(p.client.buffered_bytes() >= 1000);
    p.advance(Duration::from_millis(100));
    assert_eq!(drain_client(&mut p.client), vec![]);
    let items = p.client_items(slow);
    assert!(matches!(
        &items[..],
        [StreamItem::End(Err(CallError::Status(s)))] if s.code == Code::ResourceExhausted
    ));
    assert_eq!(p.client.buffered_bytes(), 0);
    assert_eq!(p.client.stats().stalled_streams, 1);
}

#[test]
fn a_consumer_that_catches_up_in_time_keeps_its_stream() {
    let config = Config::default().with_stream_queue_len(2);
    let mut p = Pair::new(config);
    let (id, _) = p.open(StreamKind::ServerStreaming, b"");
    for round in 0..5u8 {
        for _ in 0..3 {
            p.server.send_data(id, &[round]).unwrap();
        }
        p.flush();
        let _ = drain_client(&mut p.client);
        p.advance(Duration::from_millis(900));
        assert_eq!(p.client_items(id).len(), 3, "round {round}");
    }
    p.advance(Duration::from_secs(5));
    p.server.close_send(id).unwrap();
    p.flush();
    let _ = drain_client(&mut p.client);
    assert_eq!(p.client_items(id), vec![StreamItem::End(Ok(()))]);
}

#[test]
fn the_server_answers_a_stalled_stream_resource_exhausted() {
    let config = Config::default().with_stream_queue_len(3);
    let mut p = Pair::new(config);
    let (id, _) = p.open(StreamKind::ClientStreaming, b"");
    for _ in 0..5 {
        p.client.send_data(id, b"x").unwrap();
    }
    p.flush();
    let _ = drain_server(&mut p.server);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.server.stats().stalled_streams, 1);
    assert_eq!(p.server.in_flight(), 0);
    let items = p.server_items(id);
    assert!(
        matches!(&items[..], [StreamItem::End(Err(CallError::Status(s)))] if s.code == Code::ResourceExhausted)
    );
    p.flush();
    let _ = drain_client(&mut p.client);
    let items = p.client_items(id);
    assert!(
        matches!(&items[..], [StreamItem::End(Err(CallError::Status(s)))] if s.code == Code::ResourceExhausted)
    );
}

#[test]
fn the_connection_byte_bound_pauses_decoding_at_most_the_stall_timeout() {
    let config = Config::default()
        .with_stream_queue_len(1000)
        .with_max_stream_bytes(10_000);
    let mut p = Pair::new(config.clone());
    let (hog, _) = p.open(StreamKind::ServerStreaming, b"");
    for _ in 0..30 {
        p.server.send_data(hog, &[0; 1000]).unwrap();
    }
    let call = p
        .client
        .send_request(p.now, "s.Svc", "U", b"", &CallOptions::default())
        .unwrap();
    p.flush();
    let _ = drain_server(&mut p.server);
    p.server.send_response(call, Ok(Bytes::new())).unwrap();
    p.flush();
    let _ = drain_client(&mut p.client);
    // The unary answer is behind the hog's messages: decoding paused at
    // the bound, and the connection holds no more than the bound allows.
    assert!(p.client.buffered_bytes() <= config.memory_bound(1 << 20));
    assert!(!p.client.wants_read());
    assert_eq!(p.client.in_flight(), 2);
    p.advance(Duration::from_secs(1));
    let mut events = Vec::new();
    for _ in 0..3 {
        p.flush();
        events.extend(drain_client(&mut p.client));
    }
    assert!(events.contains(&ClientEvent::Response {
        id: call,
        result: Ok(Bytes::new())
    }));
    let items = p.client_items(hog);
    assert!(
        matches!(&items[..], [StreamItem::End(Err(CallError::Status(s)))] if s.code == Code::ResourceExhausted)
    );
}

#[test]
fn a_peer_without_streams_fails_the_stream_with_unimplemented() {
    // What Go ttrpc 1.1.1 answers to a stream request: its method table
    // has no such method, flags are ignored.
    let mut client = ClientConnection::new(Config::default());
    let now = Instant::now();
    let id = client
        .open_stream(
            now,
            "s.Svc",
            "Watch",
            StreamKind::ServerStreaming,
            b"",
            &CallOptions::default(),
        )
        .unwrap();
    let status = ttrpc_core::proto::google::rpc::Status {
        code: 12,
        message: "method Watch".into(),
        details: vec![],
    };
    let resp = ttrpc_core::Response {
        status: Some(status),
        payload: Bytes::new(),
    };
    client.handle_input(now, &frame(id.get(), 2, 0, &resp.encode_to_vec()));
    assert_eq!(
        drain_client(&mut client),
        vec![ClientEvent::StreamReadable { id }]
    );
    let item = client.recv_stream(id).unwrap();
    assert!(
        matches!(item, StreamItem::End(Err(CallError::Status(s))) if s.code == Code::Unimplemented && s.message == "method Watch")
    );
}

#[test]
fn unary_requests_stay_flagless() {
    let mut client = ClientConnection::new(Config::default());
    client
        .send_request(Instant::now(), "s", "m", b"", &CallOptions::default())
        .unwrap();
    let bytes = client.take_transmit().unwrap();
    assert_eq!(bytes[9], 0);
}

#[test]
fn a_vanishing_peer_ends_open_streams_on_both_sides() {
    let mut p = Pair::new(Config::default());
    let (id, _) = p.open(StreamKind::Bidirectional, b"");
    p.server.send_data(id, b"got").unwrap();
    p.flush();
    p.client.handle_eof(p.now);
    let events = drain_client(&mut p.client);
    assert_eq!(
        events,
        vec![
            ClientEvent::StreamReadable { id },
            ClientEvent::Closed {
                reason: ConnectionError::PeerClosed
            }
        ]
    );
    assert_eq!(
        p.client_items(id),
        vec![
            msg(b"got"),
            StreamItem::End(Err(CallError::ConnectionClosed(
                ConnectionError::PeerClosed
            )))
        ]
    );
    // The server sees the client vanish mid-frame.
    p.server.handle_input(p.now, &[0, 0, 0, 5, 0, 0]);
    p.server.handle_eof(p.now);
    let events = drain_server(&mut p.server);
    assert_eq!(events.len(), 2);
    assert_eq!(
        p.server_items(id),
        vec![StreamItem::End(Err(CallError::ConnectionClosed(
            ConnectionError::UnexpectedEof
        )))]
    );
}

#[test]
fn at_the_in_flight_bound_a_request_is_refused_while_a_stream_awaits_data() {
    let config = Config::default().with_max_in_flight(1);
    let mut p = Pair::new(config);
    let (id, _) = p.open(StreamKind::ClientStreaming, b"");
    // A second call, then the stream's data behind it.
    let call = p
        .client
        .send_request(p.now, "s.Svc", "U", b"", &CallOptions::default())
        .unwrap();
    p.client.send_data(id, b"d").unwrap();
    p.client.close_send(id).unwrap();
    p.flush();
    let _ = drain_server(&mut p.server);
    assert_eq!(p.server_items(id), vec![msg(b"d"), StreamItem::End(Ok(()))]);
    p.flush();
    let events = drain_client(&mut p.client);
    assert!(matches!(
        &events[..],
        [ClientEvent::Response { id: got, result: Err(CallError::Status(s)) }]
            if *got == call && s.code == Code::ResourceExhausted
    ));
}

#[test]
fn data_flags_from_other_implementations() {
    // Data RC with a payload (allowed by PROTOCOL.md): message, then end.
    let mut client = ClientConnection::new(Config::default());
    let now = Instant::now();
    let id = client
        .open_stream(
            now,
            "s",
            "m",
            StreamKind::ServerStreaming,
            b"",
            &CallOptions::default(),
        )
        .unwrap();
    client.handle_input(now, &frame(id.get(), 3, 0x04, b"ignored: no-data"));
    client.handle_input(now, &frame(id.get(), 3, 0x01, b"last"));
    let _ = drain_client(&mut client);
    let items: Vec<_> = std::iter::from_fn(|| client.recv_stream(id)).collect();
    assert_eq!(items, vec![msg(b"last"), StreamItem::End(Ok(()))]);

    // A Response with OK and no payload ends a server stream without a
    // message; for a client-streaming call it is the (empty) answer.
    let ok = ttrpc_core::Response::default().encode_to_vec();
    let a = client
        .open_stream(
            now,
            "s",
            "m",
            StreamKind::ServerStreaming,
            b"",
            &CallOptions::default(),
        )
        .unwrap();
    let b = client
        .open_stream(
            now,
            "s",
            "m",
            StreamKind::ClientStreaming,
            b"",
            &CallOptions::default(),
        )
        .unwrap();
    client.handle_input(now, &frame(a.get(), 2, 0, &ok));
    client.handle_input(now, &frame(b.get(), 2, 0, &ok));
    let _ = drain_client(&mut client);
    assert_eq!(client.recv_stream(a), Some(StreamItem::End(Ok(()))));
    assert_eq!(client.recv_stream(b), Some(msg(b"")));

    // Server side: a request with RO and a payload (Go client) gets that
    // payload as the first message; RO|ND ignores it.
    let mut server = ServerConnection::new(Config::default());
    let req = Request {
        service: "s".into(),
        method: "m".into(),
        payload: Bytes::from_static(b"p"),
        ..Default::default()
    }
    .encode_to_vec();
    server.handle_input(now, &frame(1, 1, 0x02, &req));
    server.handle_input(now, &frame(3, 1, 0x06, &req));
    let _ = drain_server(&mut server);
    assert_eq!(server.recv_stream(StreamId::new(1)), Some(msg(b"p")));
    assert_eq!(server.recv_stream(StreamId::new(3)), None);
}
