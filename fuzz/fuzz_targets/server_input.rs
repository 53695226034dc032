//! Raw bytes from a (hostile) client into a `ServerConnection`, driven the
//! way a transport would: input in chunks only while `wants_read()`, a
//! virtual clock with the partial-frame timeout, requests answered at once or
//! later, transmit drained in partial writes; then EOF and a full drain.
//!
//! Input layout (a corpus file is these 4 bytes + a raw ttrpc stream):
//! - byte 0: limits: bits 0-1 `max_data_len`, bits 2-4 `max_in_flight - 1`,
//!   bits 5-6 `max_tx_bytes`, bit 7 partial-frame timeout on;
//! - byte 1: the partial-frame timeout (`ttrpc_fuzz::duration_from`);
//! - bytes 2-3: seed of the driver's schedule (chunk sizes, clock steps,
//!   when and how to answer, how much to transmit);
//! - the rest: the bytes the client sends.
//!
//! Requests with stream flags are answered at once (which finishes the
//! stream), so every later Data frame on them is a predictable rejection.
//!
//! The server is checked against a model: a second `FrameDecoder` over the
//! bytes the server accepted predicts one event per frame, in order; what
//! the server writes is decoded and must be exactly the answers and rejects
//! queued, in order. Also: `buffered_bytes() <= memory_bound(chunk)`; request
//! ids odd and increasing; deadlines as documented; `send_response` succeeds
//! exactly once per request; `Closed` exactly once, last, with the right
//! reason.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ttrpc_core::prost::Message;
use ttrpc_core::{
    Bytes, Code, Config, ConnectionError, Decoded, FrameDecoder, FrameType, ProtocolError, Request,
    Response, SendError, ServerConnection, ServerEvent, Status, StreamId,
};
use ttrpc_fuzz::{Clock, Rng, duration_from, split_frames};

/// Frame size limits. The tiny one makes the server trim its own status
/// replies to fit (core/tests/fuzz_regressions.rs,
/// `server_replies_stay_within_a_small_max_data_len`).
const MAX_DATA_LENS: [u32; 4] = [16, 256, 4096, 64 * 1024];
const MAX_TX: [usize; 4] = [64, 1024, 16 * 1024, 1 << 20];
const CHUNKS: [usize; 6] = [1, 3, 10, 64, 512, 4096];

/// What one frame the server writes must say.
#[derive(Debug)]
enum Expect {
    Payload(Bytes),
    Code(Code),
}

struct Harness {
    server: ServerConnection,
    config: Config,
    clock: Clock,
    rng: Rng,
    max_chunk: usize,
    /// Decodes exactly what the server accepted: one event per frame.
    mirror: FrameDecoder,
    /// `now` of the latest `handle_input`/`handle_eof` (request deadlines
    /// count from it).
    input_now: Option<Instant>,
    last_request_id: u32,
    /// Requests handed out and not answered (the server's in-flight set).
    deferred: Vec<StreamId>,
    answered: BTreeSet<StreamId>,
    /// Frames the server must write, in order.
    expected: Vec<(StreamId, Expect)>,
    wire: Vec<u8>,
    closed: Vec<ConnectionError>,
    /// Closed by the partial-frame timeout (queued output dropped).
    timed_out: bool,
    /// Whether `wants_read()` held at the last check, and since when.
    was_reading: bool,
    read_resumed_at: Instant,
    /// `shutdown()` called: no request may be handed out after it.
    shutting_down: bool,
    /// Closed with `close()` once idle after a shutdown.
    closed_after_shutdown: bool,
}

impl Harness {
    fn check_bounds(&mut self) {
        let bound = self.config.memory_bound(self.max_chunk);
        let held = self.server.buffered_bytes();
        assert!(
            held <= bound,
            "server holds {held} bytes > memory_bound {bound}"
        );
        if !self.closed_locally() {
            assert_eq!(
                self.server.in_flight(),
                self.deferred.len(),
                "in_flight() disagrees"
            );
        }
        // When reading last resumed: the partial-frame timer measures the
        // peer's stall, so it must not count time the server did not read.
        let reading = self.server.wants_read();
        if reading && !self.was_reading {
            self.read_resumed_at = self.clock.now();
        }
        self.was_reading = reading;
    }

    fn closed_locally(&self) -> bool {
        self.timed_out || self.closed_after_shutdown
    }

    fn feed(&mut self, chunk: &[u8]) {
        let now = self.clock.now();
        self.server.handle_input(now, chunk);
        self.input_now = Some(now);
        self.mirror.push(chunk);
        self.check_bounds();
    }

    fn advance_time(&mut self) {
        let by = duration_from(self.rng.next_u64() as u8);
        self.clock.advance(by);
        let now = self.clock.now();
        if self.server.poll_timeout().is_some_and(|d| now >= d) {
            self.timeout(now);
        } else if self.rng.one_in(4) {
            // Spurious early call: must not close.
            let was = self.server.is_closed();
            self.server.handle_timeout(now);
            assert_eq!(
                self.server.is_closed(),
                was,
                "early handle_timeout closed the connection"
            );
        }
    }

    /// Serves the partial-frame timer as a driver does when `poll_timeout()`
    /// is due. A first call may only start the timer (after a back-pressure
    /// pause the core does not know when reading resumed and asks to be
    /// woken at once); after a second call at the same instant nothing may
    /// be due unless the connection closed. It may close only once the peer
    /// has had the whole timeout of reading time.
    fn timeout(&mut self, now: Instant) {
        for _ in 0..2 {
            if self.server.is_closed() || self.server.poll_timeout().is_none_or(|d| now < d) {
                break;
            }
            self.server.handle_timeout(now);
            if self.server.is_closed() {
                self.timed_out = true;
                let limit = self
                    .config
                    .partial_frame_timeout
                    .expect("a timer runs only when configured");
                assert!(
                    self.read_resumed_at
                        .checked_add(limit)
                        .is_none_or(|t| now >= t),
                    "closed as a stalled peer {:?} after reading resumed (timeout {limit:?}): \
                     the server's own back-pressure counted as the peer stalling",
                    now.saturating_duration_since(self.read_resumed_at),
                );
            }
        }
        assert!(
            self.server.is_closed() || self.server.poll_timeout().is_none_or(|d| now < d),
            "handle_timeout left the timer due"
        );
    }

    fn reply_for(&mut self) -> Result<Bytes, Status> {
        let max = self.config.max_data_len as usize;
        if self.rng.one_in(3) {
            let code = Code::from_i32(self.rng.range(1, 16) as i32);
            let msg_len = self.rng.pick(&[0, 5, 200, max]);
            Err(Status::new(code, "m".repeat(msg_len)))
        } else {
            let len = self
                .rng
                .pick(&[0, 1, 100, max - 3, max - 2, max, max + 1, 2 * max]);
            Ok(Bytes::from(vec![0xa5; len]))
        }
    }

    fn answer(&mut self, idx: usize) {
        let id = self.deferred.swap_remove(idx);
        let result = self.reply_for();
        let expect = expected_reply(&result, self.config.max_data_len);
        match self.server.send_response(id, result.clone()) {
            Ok(()) => {
                assert!(!self.closed_locally(), "send_response accepted after close");
                self.expected.push((id, expect));
            }
            Err(SendError::Closed(_)) => {
                assert!(self.closed_locally(), "send_response: spurious Closed");
            }
            Err(e) => panic!("first send_response for request {id} failed: {e}"),
        }
        assert!(self.answered.insert(id), "request {id} handed out twice");
        if self.rng.one_in(2) {
            match self.server.send_response(id, result) {
                Err(SendError::UnknownStream(got)) => assert_eq!(got, id),
                Err(SendError::Closed(_)) => assert!(self.closed_locally()),
                other => panic!("second send_response for {id}: {other:?}"),
            }
        }
        self.check_bounds();
    }

    fn transmit(&mut self, all: bool) {
        loop {
            let Some(pending) = self.server.poll_transmit() else {
                return;
            };
            let len = pending.len();
            if !all && self.rng.one_in(4) {
                let bytes = self
                    .server
                    .take_transmit()
                    .expect("poll_transmit had bytes");
                assert_eq!(bytes.len(), len);
                self.wire.extend_from_slice(&bytes);
            } else {
                let n = if all { len } else { self.rng.range(0, len) };
                self.wire.extend_from_slice(&pending[..n]);
                self.server.advance_transmit(n);
            }
            if !all {
                return;
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.server.poll_event() {
            assert!(self.closed.is_empty(), "event after Closed: {ev:?}");
            match ev {
                ServerEvent::Request(req) => self.on_request(req),
                ServerEvent::Rejected { id, error } => self.on_rejected(id, error),
                ServerEvent::Closed { reason } => self.on_closed(reason),
                // A stream's first message (riding on its request): the
                // harness finishes streams as soon as they open, so there
                // is nothing to take, and no frame of its own.
                ServerEvent::StreamReadable { id } => {
                    assert!(self.answered.contains(&id), "readable {id} never opened");
                    assert_eq!(self.server.recv_stream(id), None);
                }
                other => panic!("unknown event {other:?}"),
            }
            self.check_bounds();
        }
    }

    /// The frame the mirror says the server just reported on.
    fn mirror_next(&mut self) -> Decoded {
        self.mirror
            .decode()
            .expect("server reported a frame the mirror decoder has not seen")
    }

    fn on_request(&mut self, req: ttrpc_core::IncomingRequest) {
        assert!(
            !self.shutting_down,
            "request {} handed out after shutdown",
            req.id
        );
        let Decoded::Frame { header, data } = self.mirror_next() else {
            panic!("oversized frame reported as a Request");
        };
        assert_eq!(header.kind, FrameType::Request);
        assert_eq!(header.stream_id, req.id);
        let wire = Request::decode(data).expect("server accepted an undecodable request");
        assert_eq!(wire.service, req.service);
        assert_eq!(wire.method, req.method);
        assert_eq!(wire.payload, req.payload);
        assert_eq!(wire.timeout_nano, req.timeout_nano);
        assert_eq!(req.metadata.as_slice(), &wire.metadata[..]);

        let raw = req.id.get();
        assert!(raw % 2 == 1, "request on even stream {raw}");
        assert!(
            raw > self.last_request_id,
            "request id {raw} not increasing"
        );
        self.last_request_id = raw;

        let now = self.input_now.expect("a request before any input");
        let want = match req.timeout_nano {
            0 => None,
            t if t < 0 => Some(now),
            t => now.checked_add(Duration::from_nanos(t.unsigned_abs())),
        };
        assert_eq!(
            req.deadline, want,
            "deadline for timeout_nano {}",
            req.timeout_nano
        );

        self.deferred.push(req.id);
        // Streams (stream flags on the request) are finished at once, so
        // their Data frames are later answered "no longer active", which
        // the frame-by-frame model predicts; conn_ops covers open streams.
        if req.is_stream() || self.rng.one_in(2) {
            let last = self.deferred.len() - 1;
            self.answer(last);
        }
    }

    fn on_rejected(&mut self, id: StreamId, error: ProtocolError) {
        let item = self.mirror_next();
        let reply = match (&item, &error) {
            (Decoded::Oversized { header }, ProtocolError::Oversized { len, max }) => {
                assert_eq!(header.stream_id, id);
                assert_eq!((*len, *max), (header.len, self.config.max_data_len));
                (header.kind == FrameType::Request).then_some(Code::ResourceExhausted)
            }
            (Decoded::Frame { header, data }, _) => {
                assert_eq!(header.stream_id, id);
                let kind = header.kind;
                match &error {
                    ProtocolError::EvenStreamId => assert!(id.get().is_multiple_of(2)),
                    ProtocolError::StreamIdReused => {
                        assert_eq!(kind, FrameType::Request);
                        assert!(id.get() % 2 == 1 && id.get() <= self.last_request_id);
                    }
                    ProtocolError::UndecodableRequest(_) => {
                        assert_eq!(kind, FrameType::Request);
                        assert!(Request::decode(data.clone()).is_err());
                        // The id is used up even though the request was not.
                        self.last_request_id = id.get();
                    }
                    ProtocolError::InactiveStream => {
                        assert_eq!(kind, FrameType::Data);
                        assert!(!self.deferred.contains(&id));
                    }
                    ProtocolError::UnexpectedFrame(k) => {
                        assert_eq!(*k, kind);
                        assert!(matches!(k, FrameType::Data | FrameType::Response));
                    }
                    ProtocolError::UnknownFrameType(t) => assert_eq!(kind, FrameType::Unknown(*t)),
                    other => panic!("unexpected rejection {other:?} of a {kind:?} frame"),
                }
                error.reply_code()
            }
            (item, error) => panic!("{error:?} reported for {item:?}"),
        };
        if let Some(code) = reply {
            self.expected.push((id, Expect::Code(code)));
        }
    }

    fn on_closed(&mut self, reason: ConnectionError) {
        if self.timed_out {
            assert!(
                matches!(reason, ConnectionError::PartialFrameTimeout(d)
                    if Some(d) == self.config.partial_frame_timeout),
                "timeout closed with {reason:?}"
            );
        } else if self.closed_after_shutdown {
            assert_eq!(reason, ConnectionError::LocallyClosed);
        } else {
            // EOF: every complete frame was reported first.
            assert!(
                self.mirror.decode().is_none(),
                "Closed before every frame was reported"
            );
            let want = if self.mirror.in_partial_frame() {
                ConnectionError::UnexpectedEof
            } else {
                ConnectionError::PeerClosed
            };
            assert_eq!(reason, want);
        }
        assert!(self.server.is_closed());
        self.closed.push(reason);
    }

    /// Makes room when the server stops reading: answers everything and
    /// flushes, as a transport waiting on handlers and the socket would,
    /// until it reads again (or has ended).
    fn unblock(&mut self) {
        while !self.server.wants_read() && !self.server.is_closed() {
            self.settle_once();
            let idle = self.deferred.is_empty() && self.server.poll_transmit().is_none();
            assert!(
                !idle || self.server.wants_read() || self.server.is_closed(),
                "server neither reads nor is closed, with nothing in flight or queued"
            );
        }
    }

    /// One round of what a transport does when it is not reading: answer
    /// all, flush all, take the events that frees.
    fn settle_once(&mut self) {
        while !self.deferred.is_empty() {
            self.answer(0);
        }
        self.transmit(true);
        self.drain_events();
    }

    fn check_wire(&self) {
        let (frames, partial) = split_frames(&self.wire);
        if self.timed_out {
            // Closing drops the queue, possibly mid-frame.
            assert!(frames.len() <= self.expected.len());
        } else {
            assert!(!partial, "server wrote a partial frame");
            assert_eq!(
                frames.len(),
                self.expected.len(),
                "frames written != answers queued"
            );
        }
        for (f, (id, expect)) in frames.iter().zip(&self.expected) {
            assert_eq!(f.header.stream_id, *id);
            assert_eq!(f.header.kind, FrameType::Response);
            assert_eq!(f.header.flags.0, 0);
            assert!(
                f.header.len <= self.config.max_data_len,
                "server wrote a {}-byte frame over its own limit {} ({expect:?})",
                f.header.len,
                self.config.max_data_len
            );
            let resp =
                Response::decode(f.data.clone()).expect("server wrote an undecodable Response");
            match expect {
                Expect::Payload(p) => {
                    assert!(resp.status.is_none_or(|s| s.code == 0));
                    assert_eq!(&resp.payload, p);
                }
                Expect::Code(c) => {
                    let s = resp.status.expect("an error reply without status");
                    assert_eq!(Code::from_i32(s.code), *c);
                }
            }
        }
    }
}

/// What the client will see for an answer: the answer, or ResourceExhausted
/// when its encoding is over the limit.
fn expected_reply(result: &Result<Bytes, Status>, max: u32) -> Expect {
    let msg = match result {
        Ok(p) => Response {
            status: None,
            payload: p.clone(),
        },
        Err(s) => Response {
            status: Some(s.clone().into()),
            payload: Bytes::new(),
        },
    };
    if msg.encoded_len() > max as usize {
        return Expect::Code(Code::ResourceExhausted);
    }
    match result {
        Ok(p) => Expect::Payload(p.clone()),
        Err(s) => Expect::Code(s.code),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, stream) = data.split_at(4);
    let config = Config::default()
        .with_max_data_len(MAX_DATA_LENS[usize::from(head[0] & 3)])
        .with_max_in_flight(usize::from((head[0] >> 2) & 7) + 1)
        .with_max_tx_bytes(MAX_TX[usize::from((head[0] >> 5) & 3)])
        .with_partial_frame_timeout((head[0] & 0x80 != 0).then(|| duration_from(head[1])));
    let mut rng = Rng::new(&head[2..4]);
    let max_chunk = rng.pick(&CHUNKS);

    let mut h = Harness {
        server: ServerConnection::new(config.clone()),
        mirror: FrameDecoder::new(config.max_data_len),
        config,
        clock: Clock::new(),
        rng,
        max_chunk,
        input_now: None,
        last_request_id: 0,
        deferred: Vec::new(),
        answered: BTreeSet::new(),
        expected: Vec::new(),
        wire: Vec::new(),
        closed: Vec::new(),
        timed_out: false,
        was_reading: true,
        read_resumed_at: Clock::new().now(),
        shutting_down: false,
        closed_after_shutdown: false,
    };

    let mut rest = stream;
    while !rest.is_empty() && !h.server.is_closed() && !h.shutting_down {
        match h.rng.below(10) {
            0..=5 => {
                if h.server.wants_read() {
                    let n = h.rng.range(1, h.max_chunk).min(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    h.feed(chunk);
                } else {
                    h.unblock();
                }
            }
            6 => h.advance_time(),
            7 if !h.deferred.is_empty() => {
                let i = h.rng.below(h.deferred.len());
                h.answer(i);
            }
            8 if h.rng.one_in(16) => {
                // Graceful shutdown: stop taking requests, finish the rest.
                h.server.shutdown();
                h.shutting_down = true;
                assert!(!h.server.wants_read());
            }
            _ => h.transmit(false),
        }
        h.drain_events();
        if h.rng.one_in(3) {
            h.transmit(false);
        }
        h.check_bounds();
    }

    // The peer hangs up; everything still in flight is answered and flushed.
    let now = h.clock.now();
    h.server.handle_eof(now);
    h.input_now = Some(now);
    h.drain_events();
    loop {
        let idle = h.deferred.is_empty() && h.server.poll_transmit().is_none();
        if idle && !h.closed.is_empty() {
            break;
        }
        if idle && h.shutting_down {
            // A shut-down server decodes nothing more, so it reports no
            // Closed for the EOF; the transport closes it once idle.
            assert!(
                h.server.is_idle(),
                "shut down, answered and flushed, yet not idle"
            );
            h.closed_after_shutdown = true;
            h.server.close(ConnectionError::LocallyClosed);
            h.drain_events();
            continue;
        }
        let before = (
            h.expected.len(),
            h.wire.len(),
            h.closed.len(),
            h.answered.len(),
        );
        h.settle_once();
        let after = (
            h.expected.len(),
            h.wire.len(),
            h.closed.len(),
            h.answered.len(),
        );
        assert!(
            !idle || before != after,
            "after EOF the server never reports Closed"
        );
    }
    assert_eq!(
        h.closed.len(),
        1,
        "Closed reported {} times",
        h.closed.len()
    );
    assert!(h.server.poll_event().is_none());
    assert!(h.server.is_idle());
    // Answering after the end: every request was answered exactly once.
    for id in h.answered.clone() {
        assert!(h.server.send_response(id, Ok(Bytes::new())).is_err());
    }
    h.check_wire();
});
