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
