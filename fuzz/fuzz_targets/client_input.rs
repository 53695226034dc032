//! Calls started on a `ClientConnection`, interleaved with arbitrary bytes
//! from a (hostile) server, a virtual clock, abandons and a local close;
//! then EOF and a full drain.
//!
//! Input layout:
//! - byte 0: bits 0-1 `max_data_len`, bits 2-3 `max_tx_bytes`, bit 4 start
//!   stream ids near `u32::MAX` (bits 5-7 say how near), to reach id
//!   exhaustion;
//! - bytes 1-2: seed of the driver's schedule;
//! - byte 3: number of calls (low nibble);
//! - per call: a byte of lengths (service: low nibble, method: high nibble),
//!   the service and method bytes, a big-endian u16 (payload length in the
//!   low 15 bits; the top bit adds a metadata entry), a timeout byte (0 none,
//!   1 zero, 255 `Duration::MAX`, else `ttrpc_fuzz::duration_from`);
//! - the rest: the bytes the server sends (raw ttrpc frames).
//!
//! The client is checked against a model that predicts every event exactly:
//! deadline expiries in (deadline, id) order, one answer per Response frame
//! for a pending call, nothing for unknown ids, and on EOF or close every
//! pending call failed in id order then `Closed` once. Also: ids odd and
//! increasing, `send_request` refusals exactly when documented,
//! `poll_timeout` = earliest pending deadline, memory within
//! `memory_bound(chunk)`, and the bytes the client writes are exactly the
//! requests it accepted.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ttrpc_core::prost::Message;
use ttrpc_core::{
    Bytes, CallError, CallOptions, ClientConnection, ClientEvent, Code, Config, ConnectionError,
    Decoded, FrameDecoder, FrameType, HEADER_LEN, Metadata, Request, Response, SendError, StreamId,
};
use ttrpc_fuzz::{Clock, Rng, duration_from, split_frames};

/// Frame size limits; a tiny one makes most answers and requests oversized.
const MAX_DATA_LENS: [u32; 4] = [16, 256, 4096, 64 * 1024];
const MAX_TX: [usize; 4] = [64, 1024, 16 * 1024, 1 << 20];
const CHUNKS: [usize; 6] = [1, 3, 10, 64, 512, 4096];

struct CallSpec {
    service: String,
    method: String,
    payload: Vec<u8>,
    metadata: bool,
    timeout: Option<Duration>,
}

fn parse_calls(u: &mut &[u8]) -> Vec<CallSpec> {
    fn take<'a>(u: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if u.len() < n {
            return None;
        }
        let (a, b) = u.split_at(n);
        *u = b;
        Some(a)
    }
    let mut calls = Vec::new();
    let Some(&[n]) = take(u, 1) else { return calls };
    for _ in 0..(n & 0x0f) {
        let Some(&[lens]) = take(u, 1) else { break };
        let Some(service) = take(u, usize::from(lens & 0x0f)) else {
            break;
        };
        let Some(method) = take(u, usize::from(lens >> 4)) else {
            break;
        };
        let Some(&[p0, p1, t]) = take(u, 3) else {
            break;
        };
        let plen = u16::from_be_bytes([p0, p1]);
        calls.push(CallSpec {
            service: String::from_utf8_lossy(service).into_owned(),
            method: String::from_utf8_lossy(method).into_owned(),
            payload: (0..usize::from(plen & 0x7fff)).map(|i| i as u8).collect(),
            metadata: plen & 0x8000 != 0,
            timeout: match t {
                0 => None,
                1 => Some(Duration::ZERO),
                255 => Some(Duration::MAX),
                t => Some(duration_from(t)),
            },
        });
    }
    calls
}

/// A predicted call result. Decode errors and oversize statuses are
/// compared by kind; everything else exactly.
#[derive(Debug)]
enum Pred {
    Exact(Result<Bytes, CallError>),
    DecodeError,
    Oversized,
}

#[derive(Debug)]
enum Expected {
    Response(StreamId, Pred),
    Closed(ConnectionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelState {
    Open,
    InputEnded,
    Closed(ConnectionError),
}

struct Harness {
    client: ClientConnection,
    config: Config,
    clock: Clock,
    rng: Rng,
    max_chunk: usize,
    mirror: FrameDecoder,
    state: ModelState,
    next_id: Option<u32>,
    /// Pending calls and their deadlines.
    pending: BTreeMap<StreamId, Option<Instant>>,
    started: BTreeSet<StreamId>,
    completed: BTreeSet<StreamId>,
    abandoned: BTreeSet<StreamId>,
    expected: VecDeque<Expected>,
    closed_seen: usize,
    /// Requests the client accepted, in order; compared with what it writes.
    sent: Vec<(StreamId, Request)>,
    tx_len: usize,
    wire: Vec<u8>,
}

impl Harness {
    fn check(&self) {
        let bound = self.config.memory_bound(self.max_chunk);
        let held = self.client.buffered_bytes();
        assert!(
            held <= bound,
            "client holds {held} bytes > memory_bound {bound}"
        );
        assert_eq!(
            self.client.in_flight(),
            self.pending.len(),
            "in_flight() disagrees"
        );
        let earliest = self.pending.values().flatten().min().copied();
        assert_eq!(
            self.client.poll_timeout(),
            earliest,
            "poll_timeout is not the earliest deadline"
        );
        assert_eq!(
            self.client.poll_transmit().map_or(0, <[u8]>::len),
            self.tx_len
        );
        assert_eq!(self.client.wants_write(), self.tx_len > 0);
        assert_eq!(self.client.wants_read(), self.state == ModelState::Open);
        assert_eq!(
            self.client.is_closed(),
            matches!(self.state, ModelState::Closed(_))
        );
    }

    /// Deadline expiry, as `handle_timeout` (and every input) does it.
    fn expire(&mut self, now: Instant) {
        let mut due: Vec<(Instant, StreamId)> = self
            .pending
            .iter()
            .filter_map(|(id, d)| d.filter(|d| *d <= now).map(|d| (d, *id)))
            .collect();
        due.sort();
        for (_, id) in due {
            self.pending.remove(&id);
            self.expected.push_back(Expected::Response(
                id,
                Pred::Exact(Err(CallError::DeadlineExceeded)),
            ));
        }
    }

    fn finish(&mut self, reason: ConnectionError) {
        for id in std::mem::take(&mut self.pending).into_keys() {
            let err = CallError::ConnectionClosed(reason.clone());
            self.expected
                .push_back(Expected::Response(id, Pred::Exact(Err(err))));
        }
        self.expected.push_back(Expected::Closed(reason.clone()));
        self.state = ModelState::Closed(reason);
    }

    /// What decoding the buffered frames produces (the client decodes all
    /// of them in `poll_event`).
    fn decode_mirror(&mut self) {
        if matches!(self.state, ModelState::Closed(_)) {
            return;
        }
        while let Some(item) = self.mirror.decode() {
            let (id, pred) = match item {
                Decoded::Oversized { header } => (header.stream_id, Pred::Oversized),
                Decoded::Frame { header, data } => {
                    let pred = match header.kind {
                        FrameType::Response => match Response::decode(data) {
                            Ok(r) => match r.status {
                                Some(s) if s.code != 0 => {
                                    Pred::Exact(Err(CallError::Status(s.into())))
                                }
                                _ => Pred::Exact(Ok(r.payload)),
                            },
                            Err(_) => Pred::DecodeError,
                        },
                        other => Pred::Exact(Err(CallError::UnexpectedFrame(other))),
                    };
                    (header.stream_id, pred)
                }
            };
            if self.pending.remove(&id).is_some() {
                self.expected.push_back(Expected::Response(id, pred));
            }
        }
        if self.state == ModelState::InputEnded {
            let reason = if self.mirror.in_partial_frame() {
                ConnectionError::UnexpectedEof
            } else {
                ConnectionError::PeerClosed
            };
            self.finish(reason);
        }
    }

    fn drain(&mut self) {
        self.decode_mirror();
        while let Some(ev) = self.client.poll_event() {
            assert_eq!(self.closed_seen, 0, "event after Closed: {ev:?}");
            let want = self.expected.pop_front();
            match (ev, want) {
                (ClientEvent::Response { id, result }, Some(Expected::Response(wid, pred))) => {
                    assert_eq!(
                        id, wid,
                        "response for the wrong call: got {result:?}, want {pred:?}"
                    );
                    assert!(
                        self.started.contains(&id),
                        "response for never-started id {id}"
                    );
                    assert!(
                        !self.abandoned.contains(&id),
                        "response for abandoned id {id}"
                    );
                    assert!(self.completed.insert(id), "call {id} completed twice");
                    match (&result, &pred) {
                        (r, Pred::Exact(w)) => assert_eq!(r, w, "call {id}"),
                        (Err(CallError::Decode(_)), Pred::DecodeError) => {}
                        (Err(CallError::Status(s)), Pred::Oversized) => {
                            assert_eq!(s.code, Code::ResourceExhausted);
                        }
                        (r, w) => panic!("call {id}: got {r:?}, want {w:?}"),
                    }
                }
                (ClientEvent::Closed { reason }, Some(Expected::Closed(want))) => {
                    assert_eq!(reason, want);
                    self.closed_seen += 1;
                }
                (ev, want) => panic!("event {ev:?}, model expected {want:?}"),
            }
        }
        assert!(
            self.expected.is_empty(),
            "events missing: {:?}",
            self.expected
        );
        self.check();
    }

    fn start(&mut self, spec: &CallSpec) {
        let now = self.clock.now();
        let mut metadata = Metadata::new();
        if spec.metadata {
            metadata.append("X-Fuzz", spec.service.clone());
        }
        let options = CallOptions {
            timeout: spec.timeout,
            metadata: metadata.clone(),
        };
        let timeout_nano = spec.timeout.map_or(0, |t| {
            i64::try_from(t.as_nanos()).unwrap_or(i64::MAX).max(1)
        });
        let request = Request {
            service: spec.service.clone(),
            method: spec.method.clone(),
            payload: Bytes::from(spec.payload.clone()),
            timeout_nano,
            metadata: metadata.as_slice().to_vec(),
        };
        let len = request.encoded_len();
        let want = match &self.state {
            ModelState::Closed(r) => Err(SendError::Closed(r.clone())),
            ModelState::InputEnded => Err(SendError::Closed(ConnectionError::PeerClosed)),
            ModelState::Open => match self.next_id {
                None => Err(SendError::StreamIdsExhausted),
                Some(_) if len > self.config.max_data_len as usize => Err(SendError::TooLarge {
                    len,
                    max: self.config.max_data_len,
                }),
                Some(_)
                    if self.tx_len > 0
                        && self.tx_len + HEADER_LEN + len > self.config.max_tx_bytes =>
                {
                    Err(SendError::TransmitQueueFull)
                }
                Some(raw) => Ok(StreamId::new(raw)),
            },
        };
        let got =
            self.client
                .send_request(now, &spec.service, &spec.method, &spec.payload, &options);
        assert_eq!(got, want, "send_request outcome");
        if let Ok(id) = got {
            assert!(id.is_client_initiated());
            assert!(self.started.insert(id), "id {id} reused");
            self.next_id = id.get().checked_add(2);
            let deadline = spec.timeout.and_then(|t| now.checked_add(t));
            self.pending.insert(id, deadline);
            self.tx_len += HEADER_LEN + len;
            self.sent.push((id, request));
        }
        self.check();
    }

    fn feed(&mut self, chunk: &[u8]) {
        let now = self.clock.now();
        self.expire(now);
        if self.state == ModelState::Open {
            self.mirror.push(chunk);
        }
        self.client.handle_input(now, chunk);
        self.check_bound_only();
    }

    fn check_bound_only(&self) {
        let bound = self.config.memory_bound(self.max_chunk);
        assert!(self.client.buffered_bytes() <= bound);
    }

    fn advance_time(&mut self) {
        self.clock.advance(duration_from(self.rng.next_u64() as u8));
        let now = self.clock.now();
        if self.client.poll_timeout().is_some_and(|d| d <= now) || self.rng.one_in(3) {
            self.expire(now);
            self.client.handle_timeout(now);
        }
    }

    fn abandon(&mut self) {
        let id = if !self.pending.is_empty() && !self.rng.one_in(4) {
            let i = self.rng.below(self.pending.len());
            *self.pending.keys().nth(i).expect("index in range")
        } else {
            StreamId::new(self.rng.next_u64() as u32)
        };
        let was_pending = self.pending.remove(&id).is_some();
        assert_eq!(self.client.abandon(id), was_pending, "abandon({id})");
        if was_pending {
            self.abandoned.insert(id);
        }
        self.check();
    }

    fn transmit(&mut self, all: bool) {
        while let Some(pending) = self.client.poll_transmit() {
            let len = pending.len();
            if !all && self.rng.one_in(4) {
                let bytes = self
                    .client
                    .take_transmit()
                    .expect("poll_transmit had bytes");
                self.wire.extend_from_slice(&bytes);
                self.tx_len -= bytes.len();
            } else {
                let n = if all { len } else { self.rng.range(0, len) };
                self.wire.extend_from_slice(&pending[..n]);
                self.client.advance_transmit(n);
                self.tx_len -= n;
            }
            if !all {
                break;
            }
        }
        self.check();
    }

    fn close(&mut self) {
        if !matches!(self.state, ModelState::Closed(_)) {
            self.tx_len = 0;
            self.finish(ConnectionError::LocallyClosed);
        }
        self.client.close(ConnectionError::LocallyClosed);
    }

    fn check_wire(&self, closed_locally: bool) {
        let (frames, partial) = split_frames(&self.wire);
        if closed_locally {
            assert!(frames.len() <= self.sent.len());
        } else {
            assert!(!partial, "client wrote a partial frame");
            assert_eq!(
                frames.len(),
                self.sent.len(),
                "frames written != requests accepted"
            );
        }
        for (f, (id, req)) in frames.iter().zip(&self.sent) {
            assert_eq!(f.header.stream_id, *id);
            assert_eq!(f.header.kind, FrameType::Request);
            assert_eq!(f.header.flags.0, 0);
            assert!(f.header.len <= self.config.max_data_len);
            let got = Request::decode(f.data.clone()).expect("client wrote an undecodable Request");
            assert_eq!(&got, req);
            assert_eq!(f.data, req.encode_to_vec(), "encoding differs from prost's");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, mut rest) = data.split_at(3);
    let calls = parse_calls(&mut rest);
    let config = Config::default()
        .with_max_data_len(MAX_DATA_LENS[usize::from(head[0] & 3)])
        .with_max_tx_bytes(MAX_TX[usize::from((head[0] >> 2) & 3)]);
    let mut rng = Rng::new(&head[1..3]);
    let max_chunk = rng.pick(&CHUNKS);
    let mut client = ClientConnection::new(config.clone());
    let mut first_id = 1;
    if head[0] & 0x10 != 0 {
        first_id = u32::MAX - 2 * u32::from(head[0] >> 5);
        client.set_next_stream_id(first_id);
    }
    let mut h = Harness {
        client,
        mirror: FrameDecoder::new(config.max_data_len),
        config,
        clock: Clock::new(),
        rng,
        max_chunk,
        state: ModelState::Open,
        next_id: Some(first_id),
        pending: BTreeMap::new(),
        started: BTreeSet::new(),
        completed: BTreeSet::new(),
        abandoned: BTreeSet::new(),
        expected: VecDeque::new(),
        closed_seen: 0,
        sent: Vec::new(),
        tx_len: 0,
        wire: Vec::new(),
    };
    h.check();

    let mut closed_locally = false;
    let mut next_call = 0;
    while next_call < calls.len() || !rest.is_empty() {
        let feed = match h.rng.below(16) {
            0..=3 => false,
            4..=9 => true,
            10..=11 => {
                h.advance_time();
                h.drain();
                continue;
            }
            12 => {
                h.abandon();
                continue;
            }
            13..=14 => {
                h.transmit(false);
                continue;
            }
            _ => {
                if h.rng.one_in(16) {
                    h.close();
                    closed_locally = true;
                    h.drain();
                }
                continue;
            }
        };
        if (feed || next_call == calls.len()) && !rest.is_empty() {
            let n = h.rng.range(1, h.max_chunk).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            h.feed(chunk);
        } else if next_call < calls.len() {
            h.start(&calls[next_call]);
            next_call += 1;
        }
        h.drain();
    }

    // The server hangs up.
    let now = h.clock.now();
    h.expire(now);
    if h.state == ModelState::Open {
        h.state = ModelState::InputEnded;
    }
    h.client.handle_eof(now);
    h.drain();
    assert_eq!(h.closed_seen, 1, "Closed reported {} times", h.closed_seen);
    assert!(h.client.poll_event().is_none());
    for id in &h.started {
        assert!(
            h.completed.contains(id) != h.abandoned.contains(id),
            "call {id} neither completed nor abandoned (or both)"
        );
    }
    assert!(matches!(
        h.client
            .send_request(now, "s", "m", b"", &CallOptions::default()),
        Err(SendError::Closed(_))
    ));
    h.transmit(true);
    h.check_wire(closed_locally);
});
