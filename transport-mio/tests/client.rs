//! The mio client and server embedded in one `Poll` the test drives:
//! many calls in flight, deadlines through the loop's timeout, cancel, a
//! closed connection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token};
use ttrpc_mio::{
    CallOptions, Client, Code, Config, Error, Registry, Responder, Server, ServerConfig, StreamId,
};
use ttrpc_testkit::{SERVICE, TempDir};

struct Pair {
    poll: Poll,
    events: Events,
    server: Server,
    client: Client,
    parked: Arc<Mutex<Vec<Responder>>>,
    _dir: TempDir,
}

impl Pair {
    fn new() -> Self {
        let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
        let mut r = Registry::new();
        r.register_fn(SERVICE, "Echo", |req| Ok(req.payload.clone()));
        let p = Arc::clone(&parked);
        r.register(SERVICE, "Park", move |_req, resp: Responder| {
            p.lock().unwrap().push(resp);
        });
        let dir = TempDir::new("ttrpc-mio-client").unwrap();
        let address = format!("unix://{}", dir.path().join("s.sock").display());
        let poll = Poll::new().unwrap();
        let server = Server::bind(
            &address,
            r,
            ServerConfig::default(),
            poll.registry(),
            10..100,
        )
        .unwrap();
        let client =
            Client::connect(&address, Config::default(), poll.registry(), Token(1)).unwrap();
        Self {
            poll,
            events: Events::with_capacity(64),
            server,
            client,
            parked,
            _dir: dir,
        }
    }

    /// One turn; the poll timeout comes only from the components (capped
    /// at 5 s so that a missing timeout fails the test instead of hanging).
    fn turn(&mut self) {
        let next = [self.server.poll_timeout(), self.client.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let timeout = next.map_or(Duration::from_secs(5), |at| {
            at.saturating_duration_since(Instant::now())
        });
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        for event in &self.events {
            assert!(self.server.handle_event(event) || self.client.handle_event(event));
        }
        self.server.handle_timeout(Instant::now());
        self.client.handle_timeout(Instant::now());
    }

    fn completions(&mut self, n: usize) -> Vec<(StreamId, Result<Bytes, Error>)> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "got {}/{n}",
                out.len()
            );
            while let Some(c) = self.client.poll_completion() {
                out.push(c);
            }
            if out.len() < n {
                self.turn();
            }
        }
        out
    }
}

#[test]
fn many_calls_in_flight_on_one_connection() {
    let mut p = Pair::new();
    let mut ids = Vec::new();
    for i in 0..200u32 {
        let payload = vec![(i % 251) as u8; 1 + (i as usize * 97) % 70_000];
        let id = p
            .client
            .call(SERVICE, "Echo", &payload, &CallOptions::default())
            .unwrap();
        ids.push((id, payload));
    }
    assert_eq!(p.client.in_flight(), 200);
    let mut got = p.completions(200);
    got.sort_by_key(|(id, _)| *id);
    for ((id, payload), (gid, result)) in ids.iter().zip(got) {
        assert_eq!(*id, gid);
        assert_eq!(&result.unwrap()[..], &payload[..]);
    }
    assert_eq!(p.client.in_flight(), 0);
    assert_eq!(p.client.buffered_bytes(), 0);
}

#[test]
fn a_deadline_fires_through_the_loop_timeout() {
    let mut p = Pair::new();
    let t0 = Instant::now();
    let slow = p
        .client
        .call(
            SERVICE,
            "Park",
            b"",
            &CallOptions::with_timeout(Duration::from_millis(200)),
        )
        .unwrap();
    let got = p.completions(1);
    let elapsed = t0.elapsed();
    assert_eq!(got[0].0, slow);
    assert!(
        matches!(got[0].1, Err(Error::DeadlineExceeded)),
        "{:?}",
        got[0].1
    );
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    // The late answer is dropped; the next call gets its own.
    let late = p.parked.lock().unwrap().pop().unwrap();
    late.ok(&b"late"[..]);
    let id = p
        .client
        .call(SERVICE, "Echo", b"next", &CallOptions::default())
        .unwrap();
    let got = p.completions(1);
    assert_eq!(
        (got[0].0, &got[0].1.as_ref().unwrap()[..]),
        (id, &b"next"[..])
    );
    assert_eq!(p.client.stats().unknown_stream_ids, 1);
}

#[test]
fn cancel_completes_at_once_and_drops_the_late_answer() {
    let mut p = Pair::new();
    let id = p
        .client
        .call(SERVICE, "Park", b"", &CallOptions::default())
        .unwrap();
    let t0 = Instant::now();
    while p.parked.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        p.turn();
    }
    assert!(p.client.cancel(id));
    assert!(!p.client.cancel(id), "only once");
    let got = p.client.poll_completion().expect("cancelled at once");
    assert_eq!(got.0, id);
    assert_eq!(got.1.unwrap_err().code(), Code::Cancelled);
    p.parked.lock().unwrap().pop().unwrap().ok(&b"too late"[..]);
    let next = p
        .client
        .call(SERVICE, "Echo", b"n", &CallOptions::default())
        .unwrap();
    let got = p.completions(1);
    assert_eq!(got[0].0, next);
    assert_eq!(p.client.stats().unknown_stream_ids, 1);
}

#[test]
fn a_closed_connection_fails_pending_calls_and_refuses_new_ones() {
    let mut p = Pair::new();
    let id = p
        .client
        .call(SERVICE, "Park", b"", &CallOptions::default())
        .unwrap();
    let t0 = Instant::now();
    while p.parked.lock().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(20));
        p.turn();
    }
    p.server.shutdown_now();
    let got = p.completions(1);
    assert_eq!(got[0].0, id);
    assert!(matches!(got[0].1, Err(Error::Closed(_))), "{:?}", got[0].1);
    assert!(p.client.is_closed());
    let again = p.client.call(SERVICE, "Echo", b"", &CallOptions::default());
    assert!(matches!(again, Err(Error::Closed(_))), "{again:?}");
    assert!(p.server.is_finished());
}

#[test]
fn an_oversized_request_is_refused_locally() {
    let mut p = Pair::new();
    let big = vec![0u8; 4 << 20];
    let r = p
        .client
        .call(SERVICE, "Echo", &big, &CallOptions::default());
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    let id = p
        .client
        .call(SERVICE, "Echo", b"ok", &CallOptions::default())
        .unwrap();
    assert_eq!(p.completions(1)[0].0, id);
}
