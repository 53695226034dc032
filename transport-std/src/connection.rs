//! One server connection: its thread, its core, and its handler workers.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ttrpc_core::{
    Config, ConnectionError, IncomingRequest, Registry, Responder, ServerConnection, ServerEvent,
    Status, StreamId,
};

use crate::wire::{self, lock};

/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// A handler worker with nothing to do for this long exits.
const WORKER_IDLE: Duration = Duration::from_secs(5);

struct ConnState {
    core: ServerConnection,
    /// Bumped whenever a handler answers, so the connection thread can wait
    /// for "something changed" without missing a wake-up.
    generation: u64,
    /// Graceful shutdown started: hand out no new requests, finish the rest.
    draining: bool,
}

/// The parts of a connection shared by its thread, its handlers'
/// responders (weakly), and the server (to shut it down).
pub(crate) struct Conn {
    sock: UnixStream,
    /// Held while writing; taken before `state`, never the other way round.
    writer: Mutex<()>,
    state: Mutex<ConnState>,
    changed: Condvar,
}

impl Conn {
    pub(crate) fn new(sock: UnixStream, config: Config) -> Self {
        Self {
            sock,
            writer: Mutex::new(()),
            state: Mutex::new(ConnState {
                core: ServerConnection::new(config),
                generation: 0,
                draining: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Writes whatever the core has queued (see [`wire::flush`]); a failed
    /// write ends the connection.
    fn flush(&self) {
        let take = || lock(&self.state).core.take_transmit();
        if let Err(e) = wire::flush(&self.writer, &self.sock, take) {
            self.fail(ConnectionError::Transport(format!("write: {e}")));
        }
    }

    /// Closes the connection now: answers not yet written are dropped and
    /// the connection thread wakes (its socket is shut down).
    /// Bytes the connection's core holds (undecoded input, queued output).
    pub(crate) fn buffered_bytes(&self) -> usize {
        lock(&self.state).core.buffered_bytes()
    }

    pub(crate) fn fail(&self, reason: ConnectionError) {
        {
            let mut st = lock(&self.state);
            st.core.close(reason);
            st.generation += 1;
        }
        self.changed.notify_all();
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Starts a graceful shutdown: no new requests are handed out, answers
    /// to those in flight are still written, then the connection closes.
    pub(crate) fn begin_graceful(&self) {
        {
            let mut st = lock(&self.state);
            st.core.shutdown();
            st.draining = true;
            st.generation += 1;
        }
        self.changed.notify_all();
        // Wakes the thread if it is blocked in `read`.
        let _ = self.sock.shutdown(Shutdown::Read);
    }

    /// A handler's answer: queue it, write it, wake the connection thread.
    fn respond(&self, id: StreamId, result: Result<Bytes, Status>) {
        {
            let mut st = lock(&self.state);
            // Fails only if the connection closed meanwhile: nothing to do.
            let _ = st.core.send_response(id, result);
        }
        self.flush();
        lock(&self.state).generation += 1;
        self.changed.notify_all();
    }

    fn responder(self: &Arc<Self>, id: StreamId) -> Responder {
        let conn = Arc::downgrade(self);
        Responder::new(
            id,
            Box::new(move |id, result| {
                if let Some(conn) = conn.upgrade() {
                    conn.respond(id, result);
                }
            }),
        )
    }
}

/// Whether the peer has closed both directions (`POLLHUP`), as opposed to
/// only its sending side (`shutdown(SHUT_WR)`), after which it still reads.
fn peer_hung_up(sock: &UnixStream) -> bool {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// The connection thread's loop. Returns when the connection is closed.
pub(crate) fn run(conn: &Arc<Conn>, registry: &Arc<Registry>, max_handlers: usize) {
    let pool = (max_handlers > 1).then(|| Arc::new(Pool::new(Arc::clone(registry), max_handlers)));
    let mut buf = vec![0u8; READ_CHUNK];
    let mut requests: Vec<IncomingRequest> = Vec::new();
    let mut read_timeout: Option<Duration> = None;
    loop {
        // 1. Take what the core decoded.
        let (done, wants_read, due, seen) = {
            let mut st = lock(&conn.state);
            while let Some(event) = st.core.poll_event() {
                if let ServerEvent::Request(req) = event {
                    requests.push(req);
                }
            }
            (
                st.core.is_closed() || st.draining,
                st.core.wants_read(),
                st.core.poll_timeout(),
                st.generation,
            )
        };
        // 2. Hand requests to handlers; write rejections the core queued.
        for req in requests.drain(..) {
            let responder = conn.responder(req.id);
            match &pool {
                Some(pool) => pool.submit(req, responder),
                None => {
                    registry.dispatch(req, responder);
                }
            }
        }
        conn.flush();
        if done {
            break;
        }
        if !wants_read {
            // Backpressure: a bound holds decoding back until an answer
            // frees room. Wait for any change, then decode again.
            let mut st = lock(&conn.state);
            while st.generation == seen && !st.core.is_closed() && !st.draining {
                st = conn
                    .changed
                    .wait(st)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            continue;
        }
        // 3. Read, waking for the partial-frame timeout if one runs.
        let now = Instant::now();
        let want = due.map(|at| {
            at.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        if want != read_timeout {
            let _ = conn.sock.set_read_timeout(want);
            read_timeout = want;
        }
        let read = (&conn.sock).read(&mut buf);
        let mut st = lock(&conn.state);
        match read {
            Ok(0) => {
                st.core.handle_eof(Instant::now());
                if peer_hung_up(&conn.sock) {
                    // Nobody left to answer: drop what is in flight.
                    st.core.close(ConnectionError::PeerClosed);
                }
            }
            Ok(n) => st.core.handle_input(Instant::now(), &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                st.core.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => st
                .core
                .close(ConnectionError::Transport(format!("read: {e}"))),
        }
    }
    // 4. Finish: wait until every answer in flight is written (a local
    // close clears them), then close.
    {
        let mut st = lock(&conn.state);
        while !st.core.is_idle() {
            st = conn
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    let _writer = lock(&conn.writer);
    let _ = conn.sock.shutdown(Shutdown::Both);
    if let Some(pool) = pool {
        pool.close();
    }
}

/// Handler workers of one connection, spawned on demand up to `max`.
struct Pool {
    registry: Arc<Registry>,
    max: usize,
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<(IncomingRequest, Responder)>,
    workers: usize,
    running: usize,
    closed: bool,
}

impl Pool {
    fn new(registry: Arc<Registry>, max: usize) -> Self {
        Self {
            registry,
            max,
            state: Mutex::new(PoolState::default()),
            work: Condvar::new(),
        }
    }

    fn submit(self: &Arc<Self>, req: IncomingRequest, responder: Responder) {
        let mut st = lock(&self.state);
        st.queue.push_back((req, responder));
        let idle = st.workers - st.running;
        if idle >= st.queue.len() || st.workers >= self.max {
            drop(st);
            self.work.notify_one();
            return;
        }
        st.workers += 1;
        drop(st);
        let pool = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("ttrpc-handler".into())
            .spawn(move || pool.work_loop());
        if spawned.is_err() {
            let job = {
                let mut st = lock(&self.state);
                st.workers -= 1;
                // No worker at all: run it here rather than strand it.
                if st.workers == 0 {
                    st.queue.pop_front()
                } else {
                    None
                }
            };
            if let Some((req, responder)) = job {
                self.registry.dispatch(req, responder);
            }
        }
    }

    fn work_loop(&self) {
        loop {
            let job = {
                let mut st = lock(&self.state);
                loop {
                    if let Some(job) = st.queue.pop_front() {
                        st.running += 1;
                        break job;
                    }
                    if st.closed {
                        st.workers -= 1;
                        return;
                    }
                    let (guard, timeout) = self
                        .work
                        .wait_timeout(st, WORKER_IDLE)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    st = guard;
                    if timeout.timed_out() && st.queue.is_empty() {
                        st.workers -= 1;
                        return;
                    }
                }
            };
            let (req, responder) = job;
            self.registry.dispatch(req, responder);
            lock(&self.state).running -= 1;
        }
    }

    /// The connection is gone: idle workers exit, queued requests are
    /// dropped (their responders find the connection closed).
    fn close(&self) {
        let dropped = {
            let mut st = lock(&self.state);
            st.closed = true;
            std::mem::take(&mut st.queue)
        };
        self.work.notify_all();
        drop(dropped);
    }
}
