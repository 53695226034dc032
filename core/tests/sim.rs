//! A deterministic simulation: a client and a server connection wired back to
//! back on a virtual clock, with random chunking, partial writes, random
//! deadlines and answers (some late). Checks that every call completes
//! exactly once with the right result and that memory stays in bounds.

// Tests take one real instant as the epoch of a virtual clock, and read
// golden data from disk: both are fine outside the sans-IO core itself.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use ttrpc_core::{
    Bytes, CallError, CallOptions, ClientConnection, ClientEvent, Code, Config, ServerConnection,
    ServerEvent, Status, StreamId,
};

/// xorshift64*: a tiny deterministic generator, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The answer the server gives to the call on `id`; a pure function of the
/// id, so the client side can check what it got.
fn answer_for(id: StreamId) -> Result<Bytes, Status> {
    match id.get() % 7 {
        0 => Err(Status::new(Code::NotFound, format!("no {id}"))),
        3 => Err(Status::new(Code::Other(42), "custom")),
        n => Ok(Bytes::from(vec![n as u8; (id.get() as usize * 37) % 3000])),
    }
}

struct Call {
    deadline: Option<Instant>,
    done: Option<(Instant, Result<Bytes, CallError>)>,
}

struct Sim {
    rng: Rng,
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    calls: BTreeMap<StreamId, Call>,
    /// Requests the server has, waiting to be answered, and when.
    pending_answers: VecDeque<(Instant, StreamId)>,
    max_chunk: usize,
    bound: usize,
}

impl Sim {
    fn new(seed: u64, config: Config) -> Self {
        let max_chunk = 1 + (seed as usize * 131) % 8192;
        #[allow(clippy::disallowed_methods)] // the one real instant; all else is virtual
        let now = Instant::now();
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            now,
            client: ClientConnection::new(config.clone()),
            server: ServerConnection::new(config.clone()),
            calls: BTreeMap::new(),
            pending_answers: VecDeque::new(),
            max_chunk,
            bound: config.memory_bound(max_chunk),
        }
    }

    fn start_call(&mut self) {
        let timeout = self
            .rng
            .chance(60)
            .then(|| Duration::from_millis(self.rng.below(400)));
        let payload = vec![7u8; self.rng.below(2000) as usize];
        let opts = CallOptions {
            timeout,
            ..CallOptions::default()
        };
        match self
            .client
            .send_request(self.now, "sim.Svc", "Call", &payload, &opts)
        {
            Ok(id) => {
                let deadline = timeout.and_then(|t| self.now.checked_add(t));
                assert!(
                    self.calls
                        .insert(
                            id,
                            Call {
                                deadline,
                                done: None
                            }
                        )
                        .is_none()
                );
            }
            Err(ttrpc_core::SendError::TransmitQueueFull) => {}
            Err(e) => panic!("send: {e}"),
        }
    }

    /// Moves up to one random chunk from the client to the server and back,
    /// each a possibly partial write.
    fn transfer(&mut self) {
        if let Some(bytes) = self.client.poll_transmit() {
            let n = bytes
                .len()
                .min(1 + self.rng.below(self.max_chunk as u64) as usize);
            if self.server.wants_read() {
                self.server.handle_input(self.now, &bytes[..n]);
                self.client.advance_transmit(n);
            }
        }
        if let Some(bytes) = self.server.poll_transmit() {
            let n = bytes
                .len()
                .min(1 + self.rng.below(self.max_chunk as u64) as usize);
            if self.client.wants_read() {
                self.client.handle_input(self.now, &bytes[..n]);
                self.server.advance_transmit(n);
            }
        }
    }

    fn drain(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::Request(req) => {
                    assert_eq!(req.service, "sim.Svc");
                    let delay = if self.rng.chance(30) {
                        self.rng.below(600)
                    } else {
                        0
                    };
                    self.pending_answers
                        .push_back((self.now + Duration::from_millis(delay), req.id));
                }
                other => panic!("server: {other:?}"),
            }
        }
        // Answer what is due, in random order among the due ones.
        let mut i = 0;
        while i < self.pending_answers.len() {
            if self.pending_answers[i].0 <= self.now && self.rng.chance(70) {
                let (_, id) = self.pending_answers.remove(i).expect("index in range");
                self.server
                    .send_response(id, answer_for(id))
                    .expect("answer once");
            } else {
                i += 1;
            }
        }
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Response { id, result } => {
                    let call = self.calls.get_mut(&id).expect("a call we started");
                    assert!(call.done.is_none(), "call {id} completed twice");
                    call.done = Some((self.now, result));
                }
                other => panic!("client: {other:?}"),
            }
        }
        let held = self.client.buffered_bytes() + self.server.buffered_bytes();
        assert!(
            held <= 2 * self.bound,
            "held {held} > bound {}",
            2 * self.bound
        );
    }

    fn advance(&mut self) {
        let step = Duration::from_millis(self.rng.below(20));
        let mut next = self.now + step;
        if let Some(t) = self.client.poll_timeout() {
            next = next.min(t.max(self.now));
        }
        self.now = next;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn check(&self) {
        for (id, call) in &self.calls {
            let (at, result) = call
                .done
                .as_ref()
                .unwrap_or_else(|| panic!("call {id} never completed"));
            match result {
                Err(CallError::DeadlineExceeded) => {
                    let deadline = call.deadline.expect("only calls with deadlines expire");
                    assert!(*at >= deadline, "call {id} expired early");
                }
                Ok(payload) => {
                    assert_eq!(Ok(payload.clone()), answer_for(*id), "call {id}");
                    if let Some(d) = call.deadline {
                        assert!(*at < d, "call {id} succeeded after its deadline");
                    }
                }
                Err(CallError::Status(s)) => {
                    assert_eq!(Err(s.clone()), answer_for(*id), "call {id}");
                    if let Some(d) = call.deadline {
                        assert!(*at < d, "call {id} answered after its deadline");
                    }
                }
                Err(other) => panic!("call {id}: unexpected {other}"),
            }
        }
    }
}

fn run(seed: u64, config: Config, calls: usize) -> (usize, usize) {
    let mut sim = Sim::new(seed, config);
    let mut started = 0;
    for _ in 0..calls * 20 {
        if started < calls && sim.rng.chance(30) {
            sim.start_call();
            started += 1;
        }
        sim.transfer();
        sim.drain();
        if sim.rng.chance(20) {
            sim.advance();
        }
    }
    // Let everything finish: answer all, deliver all, pass every deadline.
    for _ in 0..10_000 {
        if sim.calls.values().all(|c| c.done.is_some()) && sim.pending_answers.is_empty() {
            break;
        }
        // Flush both ways until nothing moves (a paused server waits for
        // answers that are due only later: then time must advance).
        loop {
            let before = (
                sim.client.poll_transmit().map(<[u8]>::len),
                sim.server.poll_transmit().map(<[u8]>::len),
            );
            sim.transfer();
            sim.drain();
            let after = (
                sim.client.poll_transmit().map(<[u8]>::len),
                sim.server.poll_transmit().map(<[u8]>::len),
            );
            if after == (None, None) || after == before {
                break;
            }
        }
        sim.drain();
        sim.advance();
    }
    sim.check();
    assert_eq!(sim.client.in_flight(), 0, "nothing left pending");
    let expired = sim
        .calls
        .values()
        .filter(|c| matches!(c.done, Some((_, Err(CallError::DeadlineExceeded)))))
        .count();
    (sim.calls.len(), expired)
}

#[test]
fn hundreds_of_calls_complete_exactly_once_under_random_schedules() {
    let (mut total, mut expired) = (0, 0);
    for seed in 0..40 {
        let (t, e) = run(seed, Config::default(), 300);
        total += t;
        expired += e;
    }
    // The schedule must exercise both outcomes, or the test proves little.
    assert!(total > 5_000, "{total} calls");
    assert!(
        expired > 100 && expired < total / 2,
        "{expired} of {total} expired"
    );
}

#[test]
fn tight_limits_still_complete_every_call() {
    let config = Config::default()
        .with_max_in_flight(3)
        .with_max_tx_bytes(4096)
        .with_max_data_len(8192);
    for seed in 100..120 {
        run(seed, config.clone(), 200);
    }
}

// ---------------------------------------------------------------------------
// Streams: every kind at once, a slow consumer, unary calls alongside.

use ttrpc_core::{StreamItem, StreamKind};

/// What one simulated stream did, from both ends.
#[derive(Default)]
struct SimStream {
    kind: Option<StreamKind>,
    /// Messages the client still has to send; then it half-closes.
    client_outbox: VecDeque<Bytes>,
    client_sent: Vec<Bytes>,
    client_closed: bool,
    server_got: Vec<Bytes>,
    server_got_end: bool,
    /// Messages the server still has to send; then it finishes.
    server_outbox: VecDeque<Bytes>,
    server_sent: Vec<Bytes>,
    server_done: bool,
    client_got: Vec<Bytes>,
    client_end: Option<Result<(), CallError>>,
    /// A slow consumer: the client takes nothing until the stream failed.
    slow: bool,
    /// The server has seen the request.
    server_seen: bool,
}

struct StreamSim {
    rng: Rng,
    now: Instant,
    client: ClientConnection,
    server: ServerConnection,
    streams: BTreeMap<StreamId, SimStream>,
    unary: BTreeMap<StreamId, Option<Result<Bytes, CallError>>>,
    /// Calls refused at the in-flight bound while a stream awaited input.
    refused: usize,
    max_chunk: usize,
    bound: usize,
}

fn payload(rng: &mut Rng, tag: u8) -> Bytes {
    Bytes::from(vec![tag; rng.below(600) as usize])
}

impl StreamSim {
    fn new(seed: u64, config: Config) -> Self {
        // Chunks of at least 64 bytes: streams move far more data than the
        // unary simulation, which covers the tiny chunkings.
        let max_chunk = 64 + (seed as usize * 131) % 8192;
        Self {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            now: Instant::now(),
            client: ClientConnection::new(config.clone()),
            server: ServerConnection::new(config.clone()),
            streams: BTreeMap::new(),
            unary: BTreeMap::new(),
            refused: 0,
            max_chunk,
            bound: config.memory_bound(max_chunk),
        }
    }

    fn open(&mut self, kind: StreamKind, slow: bool) {
        let n = 1 + self.rng.below(30) as usize;
        let first = if kind.client_sends() && self.rng.chance(50) {
            Bytes::new()
        } else {
            payload(&mut self.rng, 1)
        };
        let opened = self.client.open_stream(
            self.now,
            "sim.Svc",
            "Stream",
            kind,
            &first,
            &CallOptions::default(),
        );
        let Ok(id) = opened else { return };
        let mut s = SimStream {
            kind: Some(kind),
            ..SimStream::default()
        };
        if kind.client_sends() {
            if !first.is_empty() {
                s.client_sent.push(first);
            }
            for _ in 0..n {
                s.client_outbox.push_back(payload(&mut self.rng, 2));
            }
        }
        s.slow = slow;
        self.streams.insert(id, s);
    }

    fn transfer(&mut self) {
        if let Some(bytes) = self.client.poll_transmit() {
            let n = bytes
                .len()
                .min(1 + self.rng.below(self.max_chunk as u64) as usize);
            if self.server.wants_read() {
                self.server.handle_input(self.now, &bytes[..n]);
                self.client.advance_transmit(n);
            }
        }
        if let Some(bytes) = self.server.poll_transmit() {
            let n = bytes
                .len()
                .min(1 + self.rng.below(self.max_chunk as u64) as usize);
            if self.client.wants_read() {
                self.client.handle_input(self.now, &bytes[..n]);
                self.server.advance_transmit(n);
            }
        }
    }

    fn step(&mut self) {
        // Server: requests and stream input.
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::Request(req) if req.is_stream() => {
                    let s = self.streams.get_mut(&req.id).expect("opened");
                    s.server_seen = true;
                    if !req.client_sends() {
                        assert_eq!(s.kind, Some(StreamKind::ServerStreaming));
                    }
                }
                ServerEvent::Request(req) => {
                    self.server
                        .send_response(req.id, Ok(req.payload.clone()))
                        .expect("unary answered once");
                }
                ServerEvent::StreamReadable { .. } => {}
                ServerEvent::Rejected {
                    error: ttrpc_core::ProtocolError::TooManyCalls,
                    ..
                } => self.refused += 1,
                other => panic!("server: {other:?}"),
            }
        }
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let rng = &mut self.rng;
            let s = self.streams.get_mut(&id).expect("listed");
            let kind = s.kind.expect("set");
            if !s.server_seen {
                continue;
            }
            // Server takes input.
            while let Some(item) = self.server.recv_stream(id) {
                match item {
                    StreamItem::Message(m) => {
                        assert!(!s.server_got_end);
                        if kind == StreamKind::Bidirectional {
                            s.server_outbox.push_back(m.clone());
                        }
                        s.server_got.push(m);
                    }
                    StreamItem::End(Ok(())) => {
                        s.server_got_end = true;
                        if kind == StreamKind::ServerStreaming {
                            for _ in 0..1 + rng.below(40) {
                                s.server_outbox.push_back(payload(rng, 3));
                            }
                        }
                    }
                    StreamItem::End(Err(e)) => {
                        // The server failed the stream (stall) or it ended.
                        s.server_got_end = true;
                        s.server_done = true;
                        assert!(matches!(e, CallError::Status(_)), "{e}");
                    }
                }
            }
            // Server sends.
            while !s.server_done {
                if let Some(m) = s.server_outbox.front() {
                    match self.server.send_data(id, m) {
                        Ok(()) => {
                            let m = s.server_outbox.pop_front().expect("front");
                            s.server_sent.push(m);
                        }
                        Err(ttrpc_core::SendError::TransmitQueueFull) => break,
                        Err(ttrpc_core::SendError::UnknownStream(_)) => {
                            s.server_done = true;
                        }
                        Err(e) => panic!("server send: {e}"),
                    }
                } else if s.server_got_end {
                    let done = if kind == StreamKind::ClientStreaming {
                        let n = s.server_got.len().to_string();
                        self.server.send_response(id, Ok(Bytes::from(n)))
                    } else {
                        self.server.close_send(id)
                    };
                    s.server_done = true;
                    if let Err(e) = done {
                        assert!(matches!(e, ttrpc_core::SendError::UnknownStream(_)), "{e}");
                    }
                } else {
                    break;
                }
            }
            // Client sends.
            while !s.client_closed && s.client_end.is_none() && kind.client_sends() {
                match s.client_outbox.front() {
                    Some(m) => match self.client.send_data(id, m) {
                        Ok(()) => {
                            let m = s.client_outbox.pop_front().expect("front");
                            s.client_sent.push(m);
                        }
                        Err(ttrpc_core::SendError::TransmitQueueFull) => break,
                        Err(e) => panic!("client send: {e}"),
                    },
                    None => {
                        self.client.close_send(id).expect("half-close");
                        s.client_closed = true;
                    }
                }
            }
        }
        // Client: answers and stream input.
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Response { id, result } => {
                    let slot = self.unary.get_mut(&id).expect("a unary call");
                    assert!(slot.is_none(), "call {id} completed twice");
                    *slot = Some(result);
                }
                ClientEvent::StreamReadable { .. } => {}
                other => panic!("client: {other:?}"),
            }
        }
        for (id, s) in &mut self.streams {
            if s.slow && self.client.stats().stalled_streams == 0 {
                continue;
            }
            while let Some(item) = self.client.recv_stream(*id) {
                assert!(s.client_end.is_none(), "stream {id}: item after its end");
                match item {
                    StreamItem::Message(m) => s.client_got.push(m),
                    StreamItem::End(r) => s.client_end = Some(r),
                }
            }
        }
        let held = self.client.buffered_bytes() + self.server.buffered_bytes();
        assert!(held <= 2 * self.bound, "held {held} > {}", 2 * self.bound);
    }

    fn advance(&mut self) {
        let mut next = self.now + Duration::from_millis(self.rng.below(50));
        for t in [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
        {
            next = next.min(t.max(self.now));
        }
        self.now = next;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn check(&self) {
        for (id, s) in &self.streams {
            let end = s
                .client_end
                .as_ref()
                .unwrap_or_else(|| {
                    panic!(
                        "stream {id} never ended: {:?} seen {} sent {}/{} got {} closed {} sgot {} send {} sdone {} ctx {:?} stx {:?} cin {} sin {} max_chunk {}",
                        s.kind, s.server_seen, s.client_sent.len(), s.client_outbox.len(), s.client_got.len(), s.client_closed,
                        s.server_got.len(), s.server_got_end, s.server_done,
                        self.client.poll_transmit().map(<[u8]>::len), self.server.poll_transmit().map(<[u8]>::len),
                        self.client.in_flight(), self.server.in_flight(), self.max_chunk
                    )
                });
            let kind = s.kind.expect("set");
            if s.slow {
                // Far more messages than the queue holds, never taken in
                // time: it must have failed, with a prefix delivered.
                assert!(
                    matches!(end, Err(CallError::Status(st)) if st.code == Code::ResourceExhausted),
                    "slow stream {id}: {end:?}"
                );
                continue;
            }
            if !s.server_seen {
                assert!(
                    matches!(end, Err(CallError::Status(st)) if st.code == Code::ResourceExhausted),
                    "stream {id} never reached the server: {end:?}"
                );
                continue;
            }
            assert_eq!(end, &Ok(()), "stream {id} ({kind:?})");
            assert_eq!(s.server_got, s.client_sent, "stream {id}: client to server");
            match kind {
                StreamKind::ClientStreaming => {
                    let n = s.client_sent.len().to_string();
                    assert_eq!(s.client_got, vec![Bytes::from(n)]);
                }
                _ => assert_eq!(s.client_got, s.server_sent, "stream {id}: server to client"),
            }
        }
        let mut refused = self.streams.values().filter(|s| !s.server_seen).count();
        for (id, r) in &self.unary {
            match r {
                Some(Ok(_)) => {}
                Some(Err(CallError::Status(st))) if st.code == Code::ResourceExhausted => {
                    refused += 1;
                }
                other => panic!("call {id}: {other:?}"),
            }
        }
        assert_eq!(refused, self.refused, "refusals seen by the server");
    }
}

fn run_streams(seed: u64, config: Config) -> usize {
    let mut sim = StreamSim::new(seed, config);
    // The slow consumer: a server stream of 300 messages, not read for 3 s.
    sim.open(StreamKind::ServerStreaming, true);
    let slow = *sim.streams.keys().next().expect("opened");
    sim.streams
        .get_mut(&slow)
        .expect("slow")
        .server_outbox
        .extend((0..300).map(|_| Bytes::from_static(b"flood")));
    let kinds = [
        StreamKind::ClientStreaming,
        StreamKind::ServerStreaming,
        StreamKind::Bidirectional,
    ];
    let mut unary_done_during_stall = 0;
    for round in 0..2000 {
        if round < 1500 && sim.rng.chance(5) {
            let kind = kinds[sim.rng.below(3) as usize];
            sim.open(kind, false);
        }
        if round < 1500 && sim.rng.chance(10) {
            let p = payload(&mut sim.rng, 9);
            if let Ok(id) =
                sim.client
                    .send_request(sim.now, "sim.Svc", "Unary", &p, &CallOptions::default())
            {
                sim.unary.insert(id, None);
            }
        }
        sim.transfer();
        sim.step();
        if sim.rng.chance(20) {
            sim.advance();
        }
        let stalled = sim.streams[&slow].client_end.is_none();
        if stalled {
            unary_done_during_stall = sim.unary.values().filter(|r| r.is_some()).count();
        }
    }
    for _ in 0..20_000 {
        let done = sim.streams.values().all(|s| s.client_end.is_some())
            && sim.unary.values().all(Option::is_some);
        if done {
            break;
        }
        sim.transfer();
        sim.step();
        sim.advance();
    }
    sim.check();
    assert_eq!(sim.client.in_flight(), 0);
    assert_eq!(sim.server.in_flight(), 0);
    unary_done_during_stall
}

#[test]
fn streams_of_every_kind_with_a_slow_consumer_and_unary_calls() {
    let config = Config::default().with_stream_queue_len(16);
    let mut during = 0;
    for seed in 0..20 {
        during += run_streams(seed, config.clone());
    }
    assert!(
        during > 100,
        "unary calls completed while a stream stalled: {during}"
    );
}

#[test]
fn streams_under_tight_limits() {
    let config = Config::default()
        .with_stream_queue_len(4)
        .with_max_stream_bytes(8192)
        .with_max_tx_bytes(4096)
        .with_max_in_flight(8)
        .with_max_data_len(8192);
    for seed in 200..215 {
        run_streams(seed, config.clone());
    }
}
