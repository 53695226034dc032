//! One server connection: its reader, its core, and its handler workers.

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
    Config, ConnectionError, IncomingRequest, Registry, Responder, SendError, ServerConnection,
    ServerEvent, ServerStream, Status, StreamId, StreamItem,
};

use crate::stream::StdStreamIo;
use crate::wire::{self, lock};

/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// A handler worker with nothing to do for this long exits.
const WORKER_IDLE: Duration = Duration::from_secs(5);

/// How often a watching worker checks the reader's inline handler; one
/// that runs through a whole tick is taken to block (see [`Pool`]).
const STALL: Duration = Duration::from_millis(2);

/// A watcher that sees no inline handler for this many ticks stops
/// watching (an idle connection costs no wake-ups).
const WATCH_TICKS: u32 = 50;

struct ConnState {
    core: ServerConnection,
    /// Bumped whenever a handler answers, so the connection thread can wait
    /// for "something changed" without missing a wake-up.
    generation: u64,
    /// Graceful shutdown started: hand out no new requests, finish the rest.
    draining: bool,
    /// The socket's read timeout as last set.
    read_timeout: Option<Duration>,
}

/// The parts of a connection shared by its thread, its handlers'
/// responders (weakly), and the server (to shut it down).
pub(crate) struct Conn {
    sock: UnixStream,
    /// Held while writing; taken before `state`, never the other way round.
    writer: Mutex<()>,
    state: Mutex<ConnState>,
    changed: Condvar,
    /// Tells the server the connection has ended; taken by whichever
    /// thread finishes it.
    on_finish: Mutex<Option<Box<dyn FnOnce() + Send>>>,
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
                read_timeout: None,
            }),
            changed: Condvar::new(),
            on_finish: Mutex::new(None),
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
        let reading = {
            let mut st = lock(&self.state);
            st.core.shutdown();
            st.draining = true;
            st.generation += 1;
            st.reading()
        };
        self.changed.notify_all();
        // Wakes the thread if it is blocked in `read` — unless a stream
        // still waits for the client's messages: the reader keeps reading
        // for it, and the read side is shut once no stream needs it.
        if !reading {
            let _ = self.sock.shutdown(Shutdown::Read);
        }
    }

    /// After a call or stream finished: wake the reader, and during a
    /// graceful shutdown stop its `read` once no stream needs input.
    fn changed_after_answer(&self) {
        let stop_reading = {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.draining && !st.reading()
        };
        self.changed.notify_all();
        if stop_reading {
            let _ = self.sock.shutdown(Shutdown::Read);
        }
    }

    /// A handler's answer: queue it, write it, wake the connection thread.
    fn respond(&self, id: StreamId, result: Result<Bytes, Status>) {
        {
            let mut st = lock(&self.state);
            // Fails only if the connection closed meanwhile: nothing to do.
            let _ = st.core.send_response(id, result);
        }
        self.flush();
        self.changed_after_answer();
    }

    /// A stream handler's message: queue it (writing out the queue first
    /// while it is full), then write it.
    pub(crate) fn stream_send(&self, id: StreamId, payload: &[u8]) -> Result<(), SendError> {
        loop {
            let sent = lock(&self.state).core.send_data(id, payload);
            match sent {
                Ok(()) => break,
                Err(SendError::TransmitQueueFull) => self.flush(),
                Err(e) => return Err(e),
            }
        }
        self.flush();
        Ok(())
    }

    /// The next item the client sent on stream `id`, waiting for it.
    /// `None` once the stream is unknown (finished here).
    pub(crate) fn stream_recv(&self, id: StreamId) -> Option<StreamItem> {
        let mut st = lock(&self.state);
        loop {
            if let Some(item) = st.core.recv_stream(id) {
                // Taking an item may free the core's stream byte bound:
                // let the reader decode again.
                st.generation += 1;
                drop(st);
                self.changed.notify_all();
                return Some(item);
            }
            if !st.core.has_stream(id) {
                return None;
            }
            st = self
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// A stream handler finished: `None` as a successful streaming answer
    /// (Data with remote-closed), else a final Response.
    pub(crate) fn stream_finish(&self, id: StreamId, result: Option<Result<Bytes, Status>>) {
        match result {
            Some(result) => self.respond(id, result),
            None => {
                // Fails only if the stream or connection ended meanwhile.
                let _ = lock(&self.state).core.close_send(id);
                self.flush();
                self.changed_after_answer();
            }
        }
    }

    /// The job for a decoded request: a stream handler's stream for a
    /// stream opened on a streaming method, else a unary responder.
    fn job(self: &Arc<Self>, req: IncomingRequest, registry: &Registry) -> Job {
        if req.is_stream() && registry.is_stream_method(&req.service, &req.method) {
            let io = StdStreamIo {
                conn: Arc::clone(self),
                id: req.id,
            };
            let stream = ServerStream::new(req.id, Box::new(io));
            Job::Stream(req, stream)
        } else {
            let responder = self.responder(req.id);
            Job::Unary(req, responder)
        }
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

impl ConnState {
    /// Whether the reader should keep reading: the connection is open and,
    /// during a graceful shutdown, a stream still waits for the client's
    /// messages.
    fn reading(&self) -> bool {
        !self.core.is_closed() && (!self.draining || self.core.awaits_client())
    }
}

/// Work for a handler: a unary request or a stream.
enum Job {
    Unary(IncomingRequest, Responder),
    Stream(IncomingRequest, ServerStream),
}

impl Job {
    fn run(self, registry: &Registry) {
        match self {
            Self::Unary(req, responder) => {
                registry.dispatch(req, responder);
            }
            Self::Stream(req, stream) => {
                registry.dispatch_stream(req, stream);
            }
        }
    }

    /// Runs a stream job on a thread of its own (no handler pool: a
    /// stream handler must not block the reader); anything else here.
    fn run_alone(self, registry: &Arc<Registry>) {
        if let Self::Stream(..) = self {
            let registry = Arc::clone(registry);
            let job = std::sync::Mutex::new(Some(self));
            let spawned = thread::Builder::new()
                .name("ttrpc-stream".into())
                .spawn(move || {
                    if let Some(job) = lock(&job).take() {
                        job.run(&registry);
                    }
                });
            // A failed spawn drops the job: its stream answers `Internal`.
            drop(spawned);
        } else {
            self.run(registry);
        }
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

/// Serves a connection on the calling thread (the one spawned for it):
/// reads, decodes and dispatches as the connection's reader, and becomes
/// one of its handler workers if an idle worker takes the reader's place.
/// `on_finish` runs once, on whichever thread closes the connection.
pub(crate) fn run(
    conn: &Arc<Conn>,
    registry: &Arc<Registry>,
    max_handlers: usize,
    on_finish: Box<dyn FnOnce() + Send>,
) {
    *lock(&conn.on_finish) = Some(on_finish);
    let pool = (max_handlers > 1).then(|| {
        Arc::new(Pool::new(
            Arc::clone(conn),
            Arc::clone(registry),
            max_handlers,
        ))
    });
    let epoch = pool.as_ref().map_or(0, |p| lock(&p.state).reader_epoch);
    if let Exit::Displaced = read_loop(conn, registry, pool.as_ref(), epoch) {
        if let Some(pool) = pool {
            lock(&pool.state).workers += 1;
            pool.work_loop();
        }
    }
}

/// How a reader left [`read_loop`].
enum Exit {
    /// The connection is closed (and finished by this thread).
    Done,
    /// A worker took over reading while this thread ran a handler.
    Displaced,
}

/// The reader's loop: decode, dispatch, write, read. Handlers run inline
/// while a pool worker watches for a stall (see [`Pool`]); otherwise they
/// go to the pool. `epoch` is this reader's tenure in the pool.
fn read_loop(
    conn: &Arc<Conn>,
    registry: &Arc<Registry>,
    pool: Option<&Arc<Pool>>,
    epoch: u64,
) -> Exit {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut requests: Vec<IncomingRequest> = Vec::new();
    loop {
        // 1. Take what the core decoded.
        let (done, wants_read, due, seen) = {
            let mut st = lock(&conn.state);
            let mut wake_streams = false;
            while let Some(event) = st.core.poll_event() {
                match event {
                    ServerEvent::Request(req) => requests.push(req),
                    ServerEvent::StreamReadable { .. } | ServerEvent::Closed { .. } => {
                        wake_streams = true;
                    }
                    _ => {}
                }
            }
            if wake_streams {
                // Stream handlers wait in `recv` on this condition.
                conn.changed.notify_all();
            }
            (
                !st.reading(),
                st.core.wants_read(),
                st.core.poll_timeout(),
                st.generation,
            )
        };
        // 2. Run or hand out handlers; write rejections the core queued.
        match pool {
            None => {
                for req in requests.drain(..) {
                    conn.job(req, registry).run_alone(registry);
                }
            }
            Some(pool) => {
                if pool.run_batch(&mut requests, epoch) {
                    return Exit::Displaced;
                }
            }
        }
        conn.flush();
        if done {
            finish(conn, pool);
            return Exit::Done;
        }
        if !wants_read {
            // Backpressure: a bound holds decoding back until an answer
            // frees room. Wait for any change, then decode again.
            // (A stream stall timer may end the pause.)
            let mut st = lock(&conn.state);
            while st.generation == seen && st.reading() {
                st = match due {
                    None => conn
                        .changed
                        .wait(st)
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        let (mut st, timeout) = conn
                            .changed
                            .wait_timeout(st, left)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        if timeout.timed_out() {
                            st.core.handle_timeout(Instant::now());
                            st.generation += 1;
                        }
                        st
                    }
                };
            }
            continue;
        }
        // 3. Read, waking for the partial-frame timeout if one runs.
        let now = Instant::now();
        let want = due.map(|at| {
            at.saturating_duration_since(now)
                .max(Duration::from_millis(1))
        });
        {
            let mut st = lock(&conn.state);
            if want != st.read_timeout {
                let _ = conn.sock.set_read_timeout(want);
                st.read_timeout = want;
            }
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
}

/// Ends a closed connection: waits until every answer in flight is
/// written (a local close clears them), shuts the socket, retires the
/// workers and tells the server.
fn finish(conn: &Conn, pool: Option<&Arc<Pool>>) {
    {
        let mut st = lock(&conn.state);
        while !st.core.is_idle() {
            st = conn
                .changed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    {
        let _writer = lock(&conn.writer);
        let _ = conn.sock.shutdown(Shutdown::Both);
    }
    if let Some(pool) = pool {
        pool.close();
    }
    let on_finish = lock(&conn.on_finish).take();
    if let Some(on_finish) = on_finish {
        on_finish();
    }
}

/// Handler workers of one connection, spawned on demand up to `max`.
///
/// The reader runs a handler inline, saving two thread hand-offs per call,
/// only while an idle worker *watches* it: the watcher wakes every
/// [`STALL`] and, if the same inline handler is still running one tick
/// later (a handler that blocks, like a shim's `Wait`), takes over as the
/// reader, so the connection's other requests wait at most about two ticks.
/// The displaced reader becomes a worker when its handler returns. With no
/// watcher (the first request, or after a quiet spell) requests go to the
/// workers as they arrive.
struct Pool {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    max: usize,
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    /// The reader's decoded batch, not yet run or handed out.
    backlog: VecDeque<Job>,
    workers: usize,
    running: usize,
    closed: bool,
    /// A worker is watching the reader's inline handlers.
    watching: bool,
    /// The inline handler running now, by sequence number.
    inline: Option<u64>,
    inline_seq: u64,
    /// Bumped each time a watcher takes over reading: a reader whose epoch
    /// is older has been displaced.
    reader_epoch: u64,
}

/// What a watching worker saw at its last tick.
struct Watch {
    seen: Option<u64>,
    quiet: u32,
}

impl Pool {
    fn new(conn: Arc<Conn>, registry: Arc<Registry>, max: usize) -> Self {
        Self {
            conn,
            registry,
            max,
            state: Mutex::new(PoolState::default()),
            work: Condvar::new(),
        }
    }

    /// Runs a batch of decoded requests for the reader of `epoch`: inline,
    /// one by one, while a watcher is there and no request waits for a
    /// worker; the rest go to the workers. The batch waits in `backlog`, so
    /// a watcher that takes over hands it to the workers instead of leaving
    /// it behind the handler that blocked. Returns `true` if this thread
    /// was displaced (it is no longer the reader).
    fn run_batch(self: &Arc<Self>, requests: &mut Vec<IncomingRequest>, epoch: u64) -> bool {
        if requests.is_empty() {
            return false;
        }
        let mut st = lock(&self.state);
        st.backlog.extend(
            requests
                .drain(..)
                .map(|req| self.conn.job(req, &self.registry)),
        );
        loop {
            if st.reader_epoch != epoch {
                return true;
            }
            if !st.watching || !st.queue.is_empty() || st.closed {
                let jobs = std::mem::take(&mut st.backlog);
                drop(st);
                for job in jobs {
                    self.submit(job);
                }
                return false;
            }
            let Some(job) = st.backlog.pop_front() else {
                return false;
            };
            if let Job::Stream(..) = job {
                // A stream handler waits for the client: never inline.
                drop(st);
                self.submit(job);
                st = lock(&self.state);
                continue;
            }
            st.inline_seq += 1;
            st.inline = Some(st.inline_seq);
            drop(st);
            job.run(&self.registry);
            st = lock(&self.state);
            if st.reader_epoch != epoch {
                return true;
            }
            st.inline = None;
        }
    }

    fn submit(self: &Arc<Self>, job: Job) {
        let mut st = lock(&self.state);
        if st.closed {
            // The connection is finished: the dropped responder answers
            // into a closed core, which ignores it.
            return;
        }
        st.queue.push_back(job);
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
            if let Some(job) = job {
                job.run_alone(&self.registry);
            }
        }
    }

    fn work_loop(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        let mut watch: Option<Watch> = None;
        // Set after a quiet spell of watching; cleared by the next job.
        let mut rested = false;
        loop {
            if let Some(job) = st.queue.pop_front() {
                if watch.take().is_some() {
                    st.watching = false;
                }
                rested = false;
                st.running += 1;
                drop(st);
                job.run(&self.registry);
                st = lock(&self.state);
                st.running -= 1;
                continue;
            }
            if st.closed {
                if watch.is_some() {
                    st.watching = false;
                }
                st.workers -= 1;
                return;
            }
            if watch.is_none() && !st.watching && !rested {
                st.watching = true;
                watch = Some(Watch {
                    seen: st.inline,
                    quiet: 0,
                });
            }
            let Some(w) = watch.as_mut() else {
                let (guard, timeout) = self
                    .work
                    .wait_timeout(st, WORKER_IDLE)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                st = guard;
                if timeout.timed_out() && st.queue.is_empty() {
                    st.workers -= 1;
                    return;
                }
                continue;
            };
            st = self
                .work
                .wait_timeout(st, STALL)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            if st.closed || !st.queue.is_empty() {
                continue;
            }
            match st.inline {
                Some(seq) if w.seen == Some(seq) => {
                    // One handler has held the reader for a whole tick:
                    // take its place.
                    st.watching = false;
                    watch = None;
                    st.inline = None;
                    st.reader_epoch += 1;
                    st.workers -= 1;
                    let epoch = st.reader_epoch;
                    let stranded = std::mem::take(&mut st.backlog);
                    drop(st);
                    for job in stranded {
                        self.submit(job);
                    }
                    if let Exit::Done = read_loop(&self.conn, &self.registry, Some(self), epoch) {
                        return;
                    }
                    st = lock(&self.state);
                    st.workers += 1;
                }
                Some(seq) => {
                    w.seen = Some(seq);
                    w.quiet = 0;
                }
                None => {
                    w.seen = None;
                    w.quiet += 1;
                    if w.quiet >= WATCH_TICKS {
                        st.watching = false;
                        watch = None;
                        rested = true;
                    }
                }
            }
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
