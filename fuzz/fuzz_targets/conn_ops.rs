//! A connected client + server pair driven by a structured list of
//! operations: calls, partial deliveries, answers, time, abandons, EOF,
//! local closes and injected garbage, in any interleaving.
//!
//! Checked after every step: no panic; each call completes at most once, and
//! only calls that were started and not abandoned; deadlines expire no
//! earlier than set; each side's `buffered_bytes()` within
//! `Config::memory_bound(largest chunk fed)`; `Closed` at most once per side
//! and nothing after it. In a clean run (no garbage, no close, no EOF, no
//! partial-frame timeout) additionally: the server sees exactly the requests
//! the client sent, rejects nothing, and every answer reaches the client
//! unchanged (or as `ResourceExhausted` when over the limit).
//!
//! Streams (any kind, with data, half-close, finish by Data or Response,
//! receive or not, cancel, tiny receive bounds so stall timeouts fire) are
//! checked for: items only on streams that were opened and not cancelled,
//! nothing after a stream's end, and, once both sides hung up, exactly one
//! end per stream. A run that opens a stream is not "clean" (the server may
//! refuse calls at its bound while a stream awaits data).
//!
//! At the end everything is delivered and answered and time passes every
//! deadline: in a clean run every call that was not abandoned has then
//! completed; after both sides see EOF, in every run, each such call has
//! completed exactly once and each side reported `Closed` exactly once.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ttrpc_core::prost::Message;
use ttrpc_core::{
    Bytes, CallError, CallOptions, ClientConnection, ClientEvent, Code, Config, ConnectionError,
    Metadata, Response, SendError, ServerConnection, ServerEvent, Status, StreamId, StreamItem,
    StreamKind,
};
use ttrpc_fuzz::Clock;

/// Frame size limits; with the smallest, most answers are replaced by a
/// (trimmed) `ResourceExhausted`.
const MAX_DATA_LENS: [u32; 4] = [64, 256, 4096, 64 * 1024];
const MAX_TX: [usize; 4] = [64, 1024, 16 * 1024, 1 << 20];
const MAX_OPS: usize = 300;
const MAX_GARBAGE: usize = 4096;
const MAX_STREAM_BYTES: [usize; 4] = [64, 1024, 64 * 1024, 16 << 20];

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Arbitrary, Debug)]
enum Reply {
    Ok { payload_len: u16 },
    Status { code: u8, message_len: u16 },
}

#[derive(Arbitrary, Debug)]
enum Op {
    StartCall {
        method: u8,
        payload_len: u16,
        timeout_ms: Option<u16>,
        metadata: bool,
    },
    /// Moves up to `max_bytes` of `from`'s transmit queue to the other side.
    Deliver {
        from: Side,
        max_bytes: u16,
    },
    Answer {
        which: u8,
        reply: Reply,
    },
    AdvanceTime {
        ms: u16,
    },
    Abandon {
        which: u8,
    },
    Eof {
        side: Side,
    },
    Close {
        side: Side,
    },
    InjectGarbage {
        side: Side,
        bytes: Vec<u8>,
    },
    OpenStream {
        kind: u8,
        first_len: u16,
        timeout_ms: Option<u16>,
    },
    StreamSend {
        side: Side,
        which: u8,
        len: u16,
    },
    /// Client: half-close. Server: finish with Data (close_send) or with a
    /// Response.
    StreamClose {
        side: Side,
        which: u8,
        by_response: bool,
    },
    StreamRecv {
        side: Side,
        which: u8,
        max: u8,
    },
    StreamCancel {
        which: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_data_len: u8,
    max_in_flight: u8,
    max_tx: u8,
    partial_frame_timeout_ms: Option<u16>,
    stream_queue_len: u8,
    max_stream_bytes: u8,
    ops: Vec<Op>,
}

/// A stream as the client sees it.
#[derive(Debug, Default)]
struct FStream {
    ended: bool,
    cancelled: bool,
}

/// What the client should get for a call in a clean run.
#[derive(Debug, Clone)]
enum Expect {
    Payload(Bytes),
    Code(Code),
}

#[derive(Debug)]
struct Call {
    deadline: Option<Instant>,
    service: String,
    method: String,
    payload: Bytes,
    timeout_nano: i64,
    metadata: Metadata,
    answer: Option<Expect>,
    done: bool,
    abandoned: bool,
}

struct Pair {
    client: ClientConnection,
    server: ServerConnection,
    config: Config,
    clock: Clock,
    calls: BTreeMap<StreamId, Call>,
    /// Requests the server handed out and that are not answered yet.
    requests: Vec<StreamId>,
    answered: BTreeSet<StreamId>,
    last_request_id: u32,
    max_chunk: usize,
    client_closed: usize,
    server_closed: usize,
    client_input_ended: bool,
    server_input_ended: bool,
    /// `close` called on the server, or its partial-frame timeout fired.
    server_closed_locally: bool,
    /// Counts events, answers and delivered bytes, to tell when settled.
    progress: u64,
    /// Garbage, a local close, an EOF or a timeout close happened, or a
    /// stream was opened.
    dirty: bool,
    streams: BTreeMap<StreamId, FStream>,
    /// Streams the server handed out (ended or not): it may send on these.
    server_streams: Vec<StreamId>,
    /// Server streams whose client side ended (End item taken).
    server_ended: BTreeSet<StreamId>,
}

impl Pair {
    fn check(&self) {
        for (name, held, bound) in [
            (
                "client",
                self.client.buffered_bytes(),
                self.config.memory_bound(self.max_chunk),
            ),
            (
                "server",
                self.server.buffered_bytes(),
                self.config.memory_bound(self.max_chunk),
            ),
        ] {
            assert!(
                held <= bound,
                "{name} holds {held} bytes > memory_bound {bound}"
            );
        }
        // Every completion comes out as an event, and events are drained
        // after every step, so the client's in-flight set is the model's.
        let pending = self
            .calls
            .values()
            .filter(|c| !c.done && !c.abandoned)
            .count();
        assert_eq!(
            self.client.in_flight(),
            pending + self.client.open_streams(),
            "client in_flight() disagrees"
        );
        assert!(self.client.open_streams() <= self.streams.len());
    }

    fn open_stream(&mut self, kind: u8, first_len: u16, timeout_ms: Option<u16>) {
        let kind = [
            StreamKind::ClientStreaming,
            StreamKind::ServerStreaming,
            StreamKind::Bidirectional,
        ][usize::from(kind % 3)];
        let opts = CallOptions {
            timeout: timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
            metadata: Metadata::new(),
        };
        let first = vec![1u8; usize::from(first_len)];
        self.dirty = true;
        match self
            .client
            .open_stream(self.clock.now(), "fuzz.Svc", "S", kind, &first, &opts)
        {
            Ok(id) => {
                assert!(self.streams.insert(id, FStream::default()).is_none());
            }
            Err(SendError::Closed(_)) => {
                assert!(self.client_input_ended || self.client_closed > 0);
            }
            Err(SendError::TooLarge { len, max }) => assert!(len > max as usize),
            Err(SendError::TransmitQueueFull) => assert!(self.client.wants_write()),
            Err(e) => panic!("open_stream: {e}"),
        }
    }

    fn pick<T: Copy>(items: &[T], which: u8) -> Option<T> {
        items.get(usize::from(which) % items.len().max(1)).copied()
    }

    fn client_stream_ids(&self) -> Vec<StreamId> {
        self.streams
            .iter()
            .filter(|(_, s)| !s.ended && !s.cancelled)
            .map(|(id, _)| *id)
            .collect()
    }

    fn stream_send(&mut self, side: Side, which: u8, len: u16) {
        let payload = vec![2u8; usize::from(len)];
        let result = match side {
            Side::Client => {
                let Some(id) = Self::pick(&self.client_stream_ids(), which) else {
                    return;
                };
                self.client.send_data(id, &payload)
            }
            Side::Server => {
                let Some(id) = Self::pick(&self.server_streams, which) else {
                    return;
                };
                self.server.send_data(id, &payload)
            }
        };
        match result {
            Ok(()) => self.progress += 1,
            Err(SendError::TooLarge { len, max }) => assert!(len > max as usize),
            Err(
                SendError::TransmitQueueFull
                | SendError::UnknownStream(_)
                | SendError::StreamClosed(_)
                | SendError::Closed(_),
            ) => {}
            Err(e) => panic!("send_data: {e}"),
        }
    }

    fn stream_close(&mut self, side: Side, which: u8, by_response: bool) {
        let result = match side {
            Side::Client => {
                let Some(id) = Self::pick(&self.client_stream_ids(), which) else {
                    return;
                };
                self.client.close_send(id)
            }
            Side::Server => {
                let Some(id) = Self::pick(&self.server_streams, which) else {
                    return;
                };
                let r = if by_response {
                    self.server.send_response(id, Ok(Bytes::from_static(b"r")))
                } else {
                    self.server.close_send(id)
                };
                if r.is_ok() {
                    self.requests.retain(|x| *x != id);
                    self.answered.insert(id);
                }
                r
            }
        };
        match result {
            Ok(()) => self.progress += 1,
            Err(
                SendError::UnknownStream(_) | SendError::StreamClosed(_) | SendError::Closed(_),
            ) => {}
            Err(e) => panic!("close: {e}"),
        }
    }

    /// Takes up to `max` items from a stream on one side.
    fn stream_recv(&mut self, side: Side, id: StreamId, max: usize) {
        for _ in 0..max {
            let item = match side {
                Side::Client => self.client.recv_stream(id),
                Side::Server => self.server.recv_stream(id),
            };
            let Some(item) = item else { return };
            self.progress += 1;
            match side {
                Side::Client => {
                    let s = self
                        .streams
                        .get_mut(&id)
                        .expect("item on a stream never opened");
                    assert!(!s.cancelled, "item on cancelled stream {id}");
                    assert!(!s.ended, "item after the end of stream {id}");
                    s.ended = matches!(item, StreamItem::End(_));
                }
                Side::Server => {
                    assert!(self.server_streams.contains(&id), "item on unknown stream");
                    assert!(!self.server_ended.contains(&id), "item after the end");
                    if matches!(item, StreamItem::End(_)) {
                        self.server_ended.insert(id);
                    }
                }
            }
        }
    }

    fn recv_everything(&mut self) {
        for id in self.streams.keys().copied().collect::<Vec<_>>() {
            self.stream_recv(Side::Client, id, usize::MAX);
        }
        for id in self.server_streams.clone() {
            self.stream_recv(Side::Server, id, usize::MAX);
        }
    }

    fn start_call(&mut self, method: u8, payload_len: u16, timeout_ms: Option<u16>, md: bool) {
        let now = self.clock.now();
        let mut opts = CallOptions {
            timeout: timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
            metadata: Metadata::new(),
        };
        if md {
            opts.metadata.append("k", format!("v{method}"));
        }
        let method = format!("M{method}");
        let payload = Bytes::from(vec![method.len() as u8; usize::from(payload_len)]);
        match self
            .client
            .send_request(now, "fuzz.Svc", &method, &payload, &opts)
        {
            Ok(id) => {
                assert!(!self.client_input_ended && self.client_closed == 0);
                let prev = self.calls.last_key_value().map(|(id, _)| *id);
                assert!(prev.is_none_or(|p| id > p), "ids not increasing");
                let call = Call {
                    deadline: opts.timeout.and_then(|t| now.checked_add(t)),
                    service: "fuzz.Svc".into(),
                    method,
                    payload,
                    timeout_nano: opts.timeout.map_or(0, |t| {
                        i64::try_from(t.as_nanos()).unwrap_or(i64::MAX).max(1)
                    }),
                    metadata: opts.metadata,
                    answer: None,
                    done: false,
                    abandoned: false,
                };
                self.calls.insert(id, call);
            }
            Err(SendError::Closed(_)) => {
                assert!(
                    self.client_input_ended || self.client_closed > 0,
                    "spurious Closed"
                );
            }
            Err(SendError::TooLarge { len, max }) => assert!(len > max as usize),
            Err(SendError::TransmitQueueFull) => assert!(self.client.wants_write()),
            Err(e) => panic!("send_request: {e}"),
        }
    }

    fn deliver(&mut self, from: Side, max_bytes: usize) {
        let now = self.clock.now();
        let (pending, receiver_reads, receiver_gone) = match from {
            Side::Client => (
                self.client.poll_transmit(),
                self.server.wants_read(),
                self.server_input_ended || self.server.is_closed(),
            ),
            Side::Server => (
                self.server.poll_transmit(),
                self.client.wants_read(),
                self.client_input_ended || self.client.is_closed(),
            ),
        };
        let Some(pending) = pending else { return };
        let n = pending.len().min(max_bytes.max(1));
        if receiver_gone {
            // Nobody reads any more: the write fails, the bytes are lost.
        } else if receiver_reads {
            let chunk = pending[..n].to_vec();
            self.max_chunk = self.max_chunk.max(n);
            match from {
                Side::Client => self.server.handle_input(now, &chunk),
                Side::Server => self.client.handle_input(now, &chunk),
            }
        } else {
            return; // Back-pressure: the bytes wait.
        }
        self.progress += 1;
        match from {
            Side::Client => self.client.advance_transmit(n),
            Side::Server => self.server.advance_transmit(n),
        }
    }

    fn answer(&mut self, which: usize, reply: &Reply) {
        if self.requests.is_empty() {
            return;
        }
        self.progress += 1;
        let id = self.requests.swap_remove(which % self.requests.len());
        let max = self.config.max_data_len;
        let result = match *reply {
            Reply::Ok { payload_len } => Ok(Bytes::from(vec![7u8; usize::from(payload_len)])),
            Reply::Status { code, message_len } => Err(Status::new(
                Code::from_i32(i32::from(code % 16) + 1),
                "e".repeat(usize::from(message_len)),
            )),
        };
        let msg = match &result {
            Ok(p) => Response {
                status: None,
                payload: p.clone(),
            },
            Err(s) => Response {
                status: Some(s.clone().into()),
                payload: Bytes::new(),
            },
        };
        let expect = match &result {
            _ if msg.encoded_len() > max as usize => Expect::Code(Code::ResourceExhausted),
            Ok(p) => Expect::Payload(p.clone()),
            Err(s) => Expect::Code(s.code),
        };
        match self.server.send_response(id, result.clone()) {
            Ok(()) => {
                assert!(!self.server_closed_locally, "answer accepted after close");
                if let Some(call) = self.calls.get_mut(&id) {
                    call.answer = Some(expect);
                }
            }
            Err(SendError::Closed(_)) => assert!(self.server_closed_locally, "spurious Closed"),
            // The core already finished it (stall timeout) or the handler did.
            Err(SendError::UnknownStream(_)) if self.server_streams.contains(&id) => {}
            Err(e) => panic!("first send_response for {id}: {e}"),
        }
        assert!(self.answered.insert(id), "request {id} handed out twice");
        assert!(
            self.server.send_response(id, result).is_err(),
            "second answer for {id} accepted"
        );
    }

    fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.timers();
    }

    fn timers(&mut self) {
        let now = self.clock.now();
        if self.client.poll_timeout().is_some_and(|d| d <= now) {
            self.client.handle_timeout(now);
        }
        // The first call may only start the timer (after a pause the core
        // asks to be woken at once); a second one at the same instant must
        // leave nothing due unless it closed the connection.
        let was_closed = self.server.is_closed();
        for _ in 0..2 {
            if self.server.is_closed() || self.server.poll_timeout().is_none_or(|d| d > now) {
                break;
            }
            self.server.handle_timeout(now);
        }
        if self.server.is_closed() && !was_closed {
            self.server_closed_locally = true;
            self.dirty = true;
        }
        assert!(
            self.server.is_closed() || self.server.poll_timeout().is_none_or(|d| d > now),
            "handle_timeout left the partial-frame timer due"
        );
    }

    fn drain(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            self.progress += 1;
            assert_eq!(self.server_closed, 0, "server event after Closed: {ev:?}");
            match ev {
                ServerEvent::Request(req) => {
                    assert!(
                        req.id.get() > self.last_request_id,
                        "request ids not increasing"
                    );
                    self.last_request_id = req.id.get();
                    if req.is_stream() {
                        assert!(self.streams.contains_key(&req.id) || self.dirty);
                        self.server_streams.push(req.id);
                    }
                    if !self.dirty {
                        let call = self
                            .calls
                            .get(&req.id)
                            .expect("server got a call never sent");
                        assert_eq!(
                            (&req.service, &req.method, &req.payload, req.timeout_nano),
                            (
                                &call.service,
                                &call.method,
                                &call.payload,
                                call.timeout_nano
                            )
                        );
                        assert_eq!(&req.metadata, &call.metadata);
                    }
                    self.requests.push(req.id);
                }
                ServerEvent::Rejected { id, error } => {
                    assert!(
                        self.dirty,
                        "clean run: server rejected stream {id}: {error}"
                    );
                }
                ServerEvent::Closed { .. } => self.server_closed += 1,
                ServerEvent::StreamReadable { id } => {
                    assert!(self.server_streams.contains(&id), "readable {id} unknown");
                }
                other => panic!("unknown server event {other:?}"),
            }
        }
        let now = self.clock.now();
        while let Some(ev) = self.client.poll_event() {
            self.progress += 1;
            assert_eq!(self.client_closed, 0, "client event after Closed: {ev:?}");
            match ev {
                ClientEvent::Response { id, result } => {
                    let dirty = self.dirty;
                    let call = self
                        .calls
                        .get_mut(&id)
                        .expect("response for a call never started");
                    assert!(!call.abandoned, "response for abandoned call {id}");
                    assert!(!call.done, "call {id} completed twice");
                    call.done = true;
                    match (&result, &call.answer) {
                        (Err(CallError::DeadlineExceeded), _) => {
                            assert!(
                                call.deadline.is_some_and(|d| d <= now),
                                "deadline {id} early"
                            );
                        }
                        (Err(CallError::ConnectionClosed(_)), _) => {
                            assert!(dirty, "clean run: call {id} failed with {result:?}");
                        }
                        _ if dirty => {}
                        (Ok(p), Some(Expect::Payload(want))) => assert_eq!(p, want),
                        (Err(CallError::Status(s)), Some(Expect::Code(c))) => {
                            assert_eq!(s.code, *c)
                        }
                        (got, want) => panic!("call {id}: got {got:?}, answered {want:?}"),
                    }
                }
                ClientEvent::Closed { .. } => self.client_closed += 1,
                ClientEvent::StreamReadable { id } => {
                    let s = self
                        .streams
                        .get(&id)
                        .expect("readable: stream never opened");
                    assert!(!s.cancelled && !s.ended, "readable {id} after cancel/end");
                }
                other => panic!("unknown client event {other:?}"),
            }
        }
        self.check();
    }

    fn settle(&mut self) {
        // Deliver both ways and answer everything until nothing moves.
        for _ in 0..100_000 {
            let before = self.progress;
            self.deliver(Side::Client, usize::MAX);
            self.drain();
            self.recv_everything();
            while !self.requests.is_empty() {
                self.answer(0, &Reply::Ok { payload_len: 3 });
            }
            self.deliver(Side::Server, usize::MAX);
            self.drain();
            self.recv_everything();
            if self.progress == before {
                return;
            }
        }
        panic!("pair never settles");
    }
}

fuzz_target!(|input: Input| {
    let config = Config::default()
        .with_max_data_len(MAX_DATA_LENS[usize::from(input.max_data_len & 3)])
        .with_max_in_flight(usize::from(input.max_in_flight % 8) + 1)
        .with_max_tx_bytes(MAX_TX[usize::from(input.max_tx & 3)])
        .with_partial_frame_timeout(
            input
                .partial_frame_timeout_ms
                .map(|ms| Duration::from_millis(u64::from(ms))),
        )
        .with_stream_queue_len(usize::from(input.stream_queue_len % 8) + 1)
        .with_max_stream_bytes(MAX_STREAM_BYTES[usize::from(input.max_stream_bytes & 3)]);
    let mut p = Pair {
        client: ClientConnection::new(config.clone()),
        server: ServerConnection::new(config.clone()),
        config,
        clock: Clock::new(),
        calls: BTreeMap::new(),
        requests: Vec::new(),
        answered: BTreeSet::new(),
        last_request_id: 0,
        max_chunk: 1,
        client_closed: 0,
        server_closed: 0,
        client_input_ended: false,
        server_input_ended: false,
        server_closed_locally: false,
        progress: 0,
        dirty: false,
        streams: BTreeMap::new(),
        server_streams: Vec::new(),
        server_ended: BTreeSet::new(),
    };

    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::StartCall {
                method,
                payload_len,
                timeout_ms,
                metadata,
            } => {
                p.start_call(*method, *payload_len, *timeout_ms, *metadata);
            }
            Op::Deliver { from, max_bytes } => p.deliver(*from, usize::from(*max_bytes)),
            Op::Answer { which, reply } => p.answer(usize::from(*which), reply),
            Op::AdvanceTime { ms } => p.advance(Duration::from_millis(u64::from(*ms))),
            Op::Abandon { which } => {
                let open: Vec<StreamId> = p
                    .calls
                    .iter()
                    .filter(|(_, c)| !c.done && !c.abandoned)
                    .map(|(id, _)| *id)
                    .collect();
                if let Some(&id) = open.get(usize::from(*which) % open.len().max(1)) {
                    assert!(p.client.abandon(id), "call {id} open but not pending");
                    p.calls.get_mut(&id).expect("listed").abandoned = true;
                }
            }
            Op::Eof { side } => {
                p.dirty = true;
                let now = p.clock.now();
                match side {
                    Side::Client => {
                        p.client_input_ended = true;
                        p.client.handle_eof(now);
                    }
                    Side::Server => {
                        p.server_input_ended = true;
                        p.server.handle_eof(now);
                    }
                }
            }
            Op::Close { side } => {
                p.dirty = true;
                match side {
                    Side::Client => p.client.close(ConnectionError::LocallyClosed),
                    Side::Server => {
                        p.server_closed_locally = true;
                        p.server.close(ConnectionError::LocallyClosed);
                    }
                }
            }
            Op::InjectGarbage { side, bytes } => {
                let bytes = &bytes[..bytes.len().min(MAX_GARBAGE)];
                let now = p.clock.now();
                p.dirty = true;
                p.max_chunk = p.max_chunk.max(bytes.len());
                match side {
                    Side::Client if p.client.wants_read() => p.client.handle_input(now, bytes),
                    Side::Server if p.server.wants_read() => p.server.handle_input(now, bytes),
                    _ => {}
                }
            }
            Op::OpenStream {
                kind,
                first_len,
                timeout_ms,
            } => p.open_stream(*kind, *first_len, *timeout_ms),
            Op::StreamSend { side, which, len } => p.stream_send(*side, *which, *len),
            Op::StreamClose {
                side,
                which,
                by_response,
            } => p.stream_close(*side, *which, *by_response),
            Op::StreamRecv { side, which, max } => {
                let id = match side {
                    Side::Client => {
                        Pair::pick(&p.streams.keys().copied().collect::<Vec<_>>(), *which)
                    }
                    Side::Server => Pair::pick(&p.server_streams, *which),
                };
                if let Some(id) = id {
                    p.stream_recv(*side, id, usize::from(*max));
                }
            }
            Op::StreamCancel { which } => {
                if let Some(id) = Pair::pick(&p.client_stream_ids(), *which) {
                    assert!(p.client.abandon(id), "stream {id} open but not pending");
                    p.streams.get_mut(&id).expect("listed").cancelled = true;
                }
            }
        }
        p.drain();
    }

    // Deliver everything, answer everything, let every deadline pass.
    p.settle();
    let last_deadline = p.calls.values().filter_map(|c| c.deadline).max();
    if let Some(at) = last_deadline {
        p.clock.advance_to(at);
    }
    p.advance(Duration::from_millis(1));
    p.settle();
    if !p.dirty {
        for (id, call) in &p.calls {
            assert!(
                call.done || call.abandoned,
                "clean run: call {id} never completed"
            );
        }
        assert_eq!(p.client.in_flight(), 0);
        assert_eq!(p.server.in_flight(), 0);
        assert!(p.server.is_idle());
    }

    // Both sides hang up.
    let now = p.clock.now();
    p.client_input_ended = true;
    p.client.handle_eof(now);
    p.drain();
    p.server_input_ended = true;
    p.server.handle_eof(now);
    p.settle();
    for (id, call) in &p.calls {
        assert!(
            call.done != call.abandoned,
            "call {id}: done {} abandoned {}",
            call.done,
            call.abandoned
        );
    }
    for (id, s) in &p.streams {
        assert!(
            s.ended != s.cancelled,
            "stream {id}: ended {} cancelled {}",
            s.ended,
            s.cancelled
        );
    }
    assert_eq!(p.client_closed, 1, "client Closed count");
    assert_eq!(p.server_closed, 1, "server Closed count");
    assert_eq!(p.client.in_flight(), 0);
});
