//! The server: a listener and many connections, driven from the caller's
//! `mio` loop on one thread.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{Job, ServerConfig, ServerStats};
use crate::handle::{Queue, Reply, ServerHandle, Shared, ShutdownRequest};
use mio::event::Event;
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use nix::errno::Errno;
use ttrpc_core::{
    ConnectionError, IncomingRequest, Registry, Responder, ServerConnection, ServerEvent, StreamId,
};
use ttrpc_std::{Address, CredentialCheck, Listener, PeerCred};

use crate::error::Error;
use crate::io::{self, Outcome};
use crate::stream::{self as streams, Callback, Session, StreamOpener, StreamSession};

/// Bytes read per `read` call into the server's one shared buffer
/// (allocated at the first read).
pub const READ_CHUNK: usize = 64 * 1024;
/// Reads one connection may do per turn before the others get theirs.
const READ_BUDGET: usize = 16;
/// The first pause after an accept error (`EMFILE`, `ENFILE`, ...);
/// doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between accept attempts after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One served connection. Idle, it holds a socket and an empty core: a
/// few hundred bytes.
struct Conn {
    sock: UnixStream,
    core: ServerConnection,
    /// Distinguishes this connection from later ones in the same slot.
    uid: u64,
    /// What the socket is registered for (`None`: not registered).
    interest: Option<Interest>,
    /// Readiness seen and not yet consumed down to `WouldBlock`.
    readable: bool,
    /// The core's deadline as entered in the timer set.
    timer: Option<Instant>,
    /// In the work list.
    queued: bool,
    /// `core.buffered_bytes()` as counted in the shared total.
    accounted: usize,
    /// Stream sessions of this connection, sorted by stream id (a sorted
    /// `Vec`, not a `BTreeMap`: see `timers` in [`Server`]). At most
    /// `max_in_flight` streams, opened with increasing ids: new sessions
    /// are appended.
    sessions: Vec<(StreamId, Session)>,
}

impl Conn {
    /// Runs one callback of stream `id`'s session, if it has one.
    fn run_session(&mut self, id: StreamId, callback: Callback) {
        if let Ok(i) = self.sessions.binary_search_by_key(&id, |(k, _)| *k) {
            let (_, session) = self.sessions.remove(i);
            if let Some(session) = streams::run(&mut self.core, id, session, callback) {
                self.sessions.insert(i, (id, session));
            }
        }
    }

    /// Adds the session of a stream just opened (replacing any old one of
    /// that id).
    fn add_session(&mut self, id: StreamId, session: Session) {
        match self.sessions.binary_search_by_key(&id, |(k, _)| *k) {
            Ok(i) => self.sessions[i].1 = session,
            Err(i) => self.sessions.insert(i, (id, session)),
        }
    }

    /// Opens the session of a stream request if `methods` has its method;
    /// otherwise gives the request back (for the unary registry).
    fn open_session(
        &mut self,
        methods: &[StreamMethod],
        req: IncomingRequest,
    ) -> Option<IncomingRequest> {
        let Some((_, _, open)) = methods
            .iter()
            .find(|(s, m, _)| *s == req.service && *m == req.method)
        else {
            return Some(req);
        };
        self.add_session(req.id, Session::new(open(&req)));
        self.run_session(req.id, Callback::Readable);
        None
    }

    /// The transmit queue drained: runs the sessions told `Busy`. Returns
    /// whether any ran.
    fn resume_sessions(&mut self) -> bool {
        let mut ran = false;
        // A callback may end its own session (removing it at `i`), never
        // another's.
        let mut i = 0;
        while let Some((id, session)) = self.sessions.get(i) {
            let id = *id;
            if session.wants_writable() {
                ran = true;
                self.run_session(id, Callback::Writable);
                if self.sessions.get(i).is_none_or(|(k, _)| *k != id) {
                    continue;
                }
            }
            i += 1;
        }
        ran
    }
}

/// A registered stream method: service, method, session opener.
type StreamMethod = (String, String, StreamOpener);

/// The driver's stream-session work, installed by the first
/// [`Server::register_stream`]: reached only through these pointers, it
/// is linked only into programs that register stream methods.
#[derive(Clone, Copy)]
struct SessionHooks {
    open: fn(&mut Conn, &[StreamMethod], IncomingRequest) -> Option<IncomingRequest>,
    run: fn(&mut Conn, StreamId, Callback),
    resume: fn(&mut Conn) -> bool,
}

/// A ttrpc server driven from the caller's `mio` loop (see the crate docs).
///
/// Tokens: of the range granted, the first is the server's [`Waker`], the
/// second its listener, and each further token one connection (so the
/// range also caps the connections).
pub struct Server {
    registry: Arc<Registry>,
    /// Stream methods: (service, method, session opener), searched in
    /// turn (a server registers a handful).
    stream_methods: Vec<StreamMethod>,
    /// Set with the first stream method.
    sessions: Option<SessionHooks>,
    config: ServerConfig,
    mio: mio::Registry,
    shared: Arc<Shared>,
    tokens: Range<usize>,
    /// The mio listener and, kept for its socket file, the bound listener.
    listener: Option<(UnixListener, Listener)>,
    max_conns: usize,
    conns: Vec<Option<Box<Conn>>>,
    free: Vec<usize>,
    next_uid: u64,
    /// Each connection's core deadline as (when, slot), sorted: the
    /// earliest first. A sorted `Vec` rather than a `BTreeSet`, whose
    /// node code a static binary pays several kilobytes for per element
    /// type; at most one entry per connection (`max_conns`), so an
    /// insert or remove moves a few KiB at worst.
    timers: Vec<(Instant, usize)>,
    work: VecDeque<usize>,
    /// Connections cut off by the read budget, to continue next turn.
    ready: Vec<usize>,
    read_buf: Vec<u8>,
    /// The backlog may hold connections we have not accepted.
    accept_pending: bool,
    accept_retry: Option<Instant>,
    backoff: Option<Duration>,
    shutting_down: bool,
    shutdown_deadline: Option<Instant>,
    stats: ServerStats,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tokens", &self.tokens)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    shared.queue()
}

impl Server {
    /// Binds `address` with `ttrpc-std`'s rules (mode 0600, stale socket
    /// replaced, non-socket refused, abstract only for `@NAME`) and
    /// registers the server on `registry` under `tokens` (see [`Server`]).
    ///
    /// # Errors
    /// [`Error::Address`] from parsing or binding; [`Error::Tokens`];
    /// [`Error::Io`] from registration.
    pub fn bind(
        address: &str,
        handlers: impl Into<Arc<Registry>>,
        config: ServerConfig,
        registry: &mio::Registry,
        tokens: Range<usize>,
    ) -> Result<Self, Error> {
        let listener = Address::parse(address).and_then(|a| a.bind())?;
        Self::new(listener, handlers, config, registry, tokens)
    }

    /// Serves an already bound listener (its socket file, if it created
    /// one, is removed when the server stops listening).
    ///
    /// # Errors
    /// [`Error::Tokens`] if `tokens` has fewer than 3; [`Error::Io`] if the
    /// listener cannot be registered or the waker created.
    pub fn new(
        listener: impl Into<Listener>,
        handlers: impl Into<Arc<Registry>>,
        config: ServerConfig,
        registry: &mio::Registry,
        tokens: Range<usize>,
    ) -> Result<Self, Error> {
        Self::build(
            listener.into(),
            handlers.into(),
            config,
            registry,
            tokens,
            None,
        )
    }

    /// As [`Self::new`], but wakes the loop through the caller's own
    /// `waker` instead of creating one (mio allows a single [`Waker`] per
    /// `Poll`). Nothing more is needed when that waker's token fires: the
    /// caller's `handle_timeout` after each `poll` drains the answers. The
    /// first token of `tokens` is then left unused.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_waker(
        listener: impl Into<Listener>,
        handlers: impl Into<Arc<Registry>>,
        config: ServerConfig,
        registry: &mio::Registry,
        tokens: Range<usize>,
        waker: Arc<Waker>,
    ) -> Result<Self, Error> {
        Self::build(
            listener.into(),
            handlers.into(),
            config,
            registry,
            tokens,
            Some(waker),
        )
    }

    fn build(
        listener: Listener,
        handlers: Arc<Registry>,
        config: ServerConfig,
        registry: &mio::Registry,
        tokens: Range<usize>,
        waker: Option<Arc<Waker>>,
    ) -> Result<Self, Error> {
        if tokens.len() < 3 {
            return Err(Error::Tokens {
                start: tokens.start,
                end: tokens.end,
            });
        }
        // Each step names itself, for the error.
        let mut step = "clone mio registry";
        let made = (|| -> std::io::Result<_> {
            let mio = registry.try_clone()?;
            step = "waker";
            let waker = match waker {
                Some(w) => w,
                None => Arc::new(Waker::new(&mio, Token(tokens.start))?),
            };
            step = "dup listener";
            let std = listener.as_std().try_clone()?;
            step = "set listener non-blocking";
            std.set_nonblocking(true)?;
            let mut mio_listener = UnixListener::from_std(std);
            step = "register listener";
            mio.register(
                &mut mio_listener,
                Token(tokens.start + 1),
                Interest::READABLE,
            )?;
            Ok((mio, waker, mio_listener))
        })();
        let (mio, waker, mio_listener) = made.map_err(|e| Error::io(step, e))?;
        let max_conns = config.max_connections.min(tokens.len() - 2);
        Ok(Self {
            registry: handlers,
            stream_methods: Vec::new(),
            sessions: None,
            config,
            mio,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                waker,
                buffered: 0.into(),
                active: 0.into(),
            }),
            tokens,
            listener: Some((mio_listener, listener)),
            max_conns,
            conns: Vec::new(),
            free: Vec::new(),
            next_uid: 0,
            timers: Vec::new(),
            work: VecDeque::new(),
            ready: Vec::new(),
            read_buf: Vec::new(),
            // Clients may have connected between bind and registration.
            accept_pending: true,
            accept_retry: None,
            backoff: None,
            shutting_down: false,
            shutdown_deadline: None,
            stats: ServerStats::default(),
        })
    }

    /// Registers a streaming method (client-streaming, server-streaming or
    /// bidirectional): for each stream a client opens on it, `open` makes a
    /// [`StreamSession`] that the loop calls back as the client's messages
    /// arrive (see [`StreamCtx`](crate::StreamCtx)). Sessions run on the
    /// loop thread, also when [`ServerConfig::executor`] is set. As in Go,
    /// the registration decides: a unary request for this method goes to
    /// the unary registry (`Unimplemented` unless registered there too).
    pub fn register_stream<F>(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        open: F,
    ) -> &mut Self
    where
        F: Fn(&IncomingRequest) -> Box<dyn StreamSession> + Send + 'static,
    {
        let (service, method) = (service.into(), method.into());
        let open: StreamOpener = Box::new(open);
        match self
            .stream_methods
            .iter_mut()
            .find(|(s, m, _)| *s == service && *m == method)
        {
            Some(entry) => entry.2 = open,
            None => self.stream_methods.push((service, method, open)),
        }
        self.sessions = Some(SessionHooks {
            open: Conn::open_session,
            run: Conn::run_session,
            resume: Conn::resume_sessions,
        });
        self
    }

    /// A handle for other threads (shutdown requests).
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// The token range this server owns.
    #[must_use]
    pub fn tokens(&self) -> Range<usize> {
        self.tokens.clone()
    }

    /// Handles one readiness event. Returns `false` (doing nothing) if its
    /// token is not this server's, so a caller can offer every event to
    /// every component. Spurious events are harmless.
    pub fn handle_event(&mut self, event: &Event) -> bool {
        let t = event.token().0;
        if !self.tokens.contains(&t) {
            return false;
        }
        let now = Instant::now();
        self.enter();
        if t == self.tokens.start + 1 {
            self.accept_pending = true;
            self.try_accept(now);
        } else if t > self.tokens.start + 1 {
            let slot = t - self.tokens.start - 2;
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    conn.readable = true;
                }
                self.schedule(slot);
            }
        }
        // The waker token needs nothing more: `leave` drains the queue.
        self.leave(now);
        true
    }

    /// Runs what is due at `now`: the partial-frame timeouts, a paused
    /// accept, the shutdown deadline, and connections that used up their
    /// read budget. Call it after every `poll` (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.enter();
        if self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_retry = None;
            self.try_accept(now);
        }
        while let Some(&(at, slot)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(0);
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.timer = None;
                conn.core.handle_timeout(now);
                self.schedule(slot);
            }
        }
        for slot in std::mem::take(&mut self.ready) {
            self.schedule(slot);
        }
        if self.shutdown_deadline.is_some_and(|at| at <= now) {
            self.close_all();
        }
        self.leave(now);
    }

    /// When [`Self::handle_timeout`] should next run, for the loop's `poll`
    /// timeout: `None` if nothing is timed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.ready.is_empty() {
            return Some(Instant::now());
        }
        let conns = self.timers.first().map(|(at, _)| *at);
        let shutdown = self.shutdown_deadline.filter(|_| self.active() > 0);
        earliest(earliest(conns, self.accept_retry), shutdown)
    }

    /// Graceful shutdown, from the loop thread: stops accepting (the
    /// listener and its socket file go at once), hands out no new
    /// requests, finishes those in flight and writes their answers, then
    /// closes each connection. Whatever is still open after `grace` is
    /// closed as by [`Self::shutdown_now`]. Keep driving the loop until
    /// [`Self::is_finished`].
    pub fn shutdown(&mut self, grace: Duration) {
        let now = Instant::now();
        self.enter();
        self.begin_shutdown(now, grace);
        self.leave(now);
    }

    /// Immediate shutdown: stops accepting and closes every connection;
    /// answers not yet written are dropped.
    pub fn shutdown_now(&mut self) {
        let now = Instant::now();
        self.enter();
        self.begin_shutdown(now, Duration::ZERO);
        self.close_all();
        self.leave(now);
    }

    /// Whether a shutdown has finished: no listener, no connection.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.shutting_down && self.active() == 0
    }

    /// Serves until shut down (through a [`ServerHandle`]) on `poll`, for
    /// callers without a loop of their own. The server must be registered
    /// on `poll`'s registry.
    ///
    /// # Errors
    /// [`Error::Io`] if `poll` fails.
    pub fn run(&mut self, poll: &mut Poll) -> Result<(), Error> {
        let mut events = Events::with_capacity(256);
        while !self.is_finished() {
            let timeout = self
                .poll_timeout()
                .map(|at| at.saturating_duration_since(Instant::now()));
            match poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("poll", e)),
            }
            for event in &events {
                self.handle_event(event);
            }
            self.handle_timeout(Instant::now());
        }
        Ok(())
    }

    /// Connections being served now.
    #[must_use]
    pub fn active(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    /// Bytes every connection's core holds (undecoded input and queued
    /// output), summed. Compare one connection's share with
    /// [`Config::memory_bound`](ttrpc_core::Config::memory_bound)`(`[`READ_CHUNK`]`)`.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.core.buffered_bytes())
            .sum()
    }

    /// The largest [`Self::buffered_bytes`] of any one connection.
    #[must_use]
    pub fn max_buffered_bytes(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .map(|c| c.core.buffered_bytes())
            .max()
            .unwrap_or(0)
    }

    /// The server's counters.
    #[must_use]
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            active: self.active() as u64,
            ..self.stats
        }
    }

    // ------------------------------------------------------------ internals

    fn enter(&self) {
        lock(&self.shared).inside = true;
    }

    /// Drains replies and shutdown requests until none is left, then marks
    /// the loop as outside (in the same critical section, so a reply that
    /// comes after wakes the loop).
    fn leave(&mut self, now: Instant) {
        loop {
            self.run_work(now);
            let stats = self.stats();
            let (replies, shutdown) = {
                let mut q = lock(&self.shared);
                q.stats = stats;
                let replies = std::mem::take(&mut q.replies);
                let shutdown = q.shutdown.take();
                if replies.is_empty() && shutdown.is_none() {
                    q.inside = false;
                    return;
                }
                (replies, shutdown)
            };
            for reply in replies {
                self.apply(reply, None);
            }
            match shutdown {
                Some(ShutdownRequest::Graceful(grace)) => self.begin_shutdown(now, grace),
                Some(ShutdownRequest::Now) => {
                    self.begin_shutdown(now, Duration::ZERO);
                    self.close_all();
                }
                None => {}
            }
        }
    }

    fn schedule(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !conn.queued {
                conn.queued = true;
                self.work.push_back(slot);
            }
        }
    }

    fn run_work(&mut self, now: Instant) {
        while let Some(slot) = self.work.pop_front() {
            self.drive(slot, now);
        }
    }

    /// Queues a reply on its connection's core (`current` is the connection
    /// being driven, taken out of the slab).
    fn apply(&mut self, reply: Reply, current: Option<(usize, &mut Conn)>) {
        let conn = match current {
            Some((slot, conn)) if slot == reply.slot => conn,
            _ => match self.conns.get_mut(reply.slot).and_then(Option::as_mut) {
                Some(conn) => {
                    if conn.uid == reply.uid {
                        // Fails only if the connection closed: nothing to do.
                        let _ = conn.core.send_response(reply.id, reply.result);
                        self.schedule(reply.slot);
                    }
                    return;
                }
                None => return,
            },
        };
        if conn.uid == reply.uid {
            let _ = conn.core.send_response(reply.id, reply.result);
        }
    }

    fn dispatch(&self, slot: usize, uid: u64, req: IncomingRequest) {
        let shared = Arc::downgrade(&self.shared);
        let responder = Responder::new(
            req.id,
            Box::new(move |id, result| {
                if let Some(shared) = shared.upgrade() {
                    shared.post(Reply {
                        slot,
                        uid,
                        id,
                        result,
                    });
                }
            }),
        );
        match &self.config.executor {
            None => {
                // Catches a panic: the dropped responder answers `Internal`.
                self.registry.dispatch(req, responder);
            }
            Some(exec) => exec(Job {
                registry: Arc::clone(&self.registry),
                request: req,
                responder,
            }),
        }
    }

    /// Reads, decodes, dispatches, answers and writes for one connection
    /// until nothing moves; then updates its registration and timer, and
    /// removes it once it is finished.
    fn drive(&mut self, slot: usize, now: Instant) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        conn.queued = false;
        let mut reads = 0;
        loop {
            let mut progress = false;
            if conn.readable && conn.core.wants_read() {
                if reads < READ_BUDGET {
                    reads += 1;
                    progress = true;
                    if self.read_buf.is_empty() {
                        // Allocated at the first read, so an idle server
                        // does not hold it.
                        self.read_buf = vec![0; READ_CHUNK];
                    }
                    match io::read(&conn.sock, &mut self.read_buf) {
                        Outcome::Done(n) => {
                            let got = self.read_buf.get(..n).unwrap_or_default();
                            conn.core.handle_input(now, got);
                        }
                        Outcome::WouldBlock => conn.readable = false,
                        Outcome::Eof => {
                            conn.readable = false;
                            conn.core.handle_eof(now);
                            if io::hung_up(&conn.sock) {
                                // Nobody left to answer: drop what is in flight.
                                conn.core.close(ConnectionError::PeerClosed);
                            }
                        }
                        Outcome::Failed(e) => conn.core.close(transport_error("read", &e)),
                    }
                } else if !self.ready.contains(&slot) {
                    self.ready.push(slot);
                }
            }
            while let Some(event) = conn.core.poll_event() {
                progress = true;
                match event {
                    ServerEvent::Request(req) => {
                        // Only stream requests look up a stream method.
                        let unary = match self.sessions {
                            Some(hooks) if req.is_stream() => {
                                (hooks.open)(&mut conn, &self.stream_methods, req)
                            }
                            _ => Some(req),
                        };
                        if let Some(req) = unary {
                            self.dispatch(slot, conn.uid, req);
                        }
                    }
                    ServerEvent::StreamReadable { id } => {
                        if let Some(hooks) = self.sessions {
                            (hooks.run)(&mut conn, id, Callback::Readable);
                        }
                    }
                    _ => {}
                }
            }
            let replies = std::mem::take(&mut lock(&self.shared).replies);
            for reply in replies {
                progress = true;
                self.apply(reply, Some((slot, &mut conn)));
            }
            while let Some(buf) = conn.core.poll_transmit() {
                match io::write(&conn.sock, buf) {
                    Outcome::Done(n) => {
                        conn.core.advance_transmit(n);
                        progress = true;
                    }
                    Outcome::WouldBlock | Outcome::Eof => break,
                    Outcome::Failed(e) => {
                        conn.core.close(transport_error("write", &e));
                        progress = true;
                        break;
                    }
                }
            }
            if let Some(hooks) = self.sessions.filter(|_| !conn.core.wants_write()) {
                // The transmit queue drained: sessions told `Busy` resume.
                progress |= (hooks.resume)(&mut conn);
            }
            if !progress {
                break;
            }
        }
        let finished = conn.core.is_idle() && (conn.core.is_closed() || self.shutting_down);
        let held = if finished {
            0
        } else {
            conn.core.buffered_bytes()
        };
        if held != conn.accounted {
            if held > conn.accounted {
                self.shared
                    .buffered
                    .fetch_add(held - conn.accounted, Ordering::Relaxed);
            } else {
                self.shared
                    .buffered
                    .fetch_sub(conn.accounted - held, Ordering::Relaxed);
            }
            conn.accounted = held;
        }
        let timer = if finished {
            None
        } else {
            conn.core.poll_timeout()
        };
        if timer != conn.timer {
            if let Some(old) = conn.timer {
                if let Ok(i) = self.timers.binary_search(&(old, slot)) {
                    self.timers.remove(i);
                }
            }
            if let Some(new) = timer {
                if let Err(i) = self.timers.binary_search(&(new, slot)) {
                    self.timers.insert(i, (new, slot));
                }
            }
            conn.timer = timer;
        }
        if finished {
            if conn.interest.is_some() {
                let _ = self.mio.deregister(&mut conn.sock);
            }
            self.ready.retain(|s| *s != slot);
            self.free.push(slot);
            self.shared.active.fetch_sub(1, Ordering::Relaxed);
            drop(conn);
            if self.accept_pending {
                self.try_accept(now);
            }
            return;
        }
        let want = io::interest(conn.core.wants_read(), conn.core.wants_write());
        if want != conn.interest {
            let token = Token(self.tokens.start + 2 + slot);
            match io::set_interest(&self.mio, &mut conn.sock, token, conn.interest, want) {
                Ok(()) => conn.interest = want,
                Err(e) => {
                    conn.core.close(transport_error("register", &e));
                    conn.queued = true;
                    self.work.push_back(slot);
                }
            }
        }
        if let Some(place) = self.conns.get_mut(slot) {
            *place = Some(conn);
        }
    }

    /// Accepts until `WouldBlock`, the connection cap, or an error (which
    /// pauses accepting on a timer: an edge-triggered listener reports no
    /// new event for connections already waiting).
    fn try_accept(&mut self, now: Instant) {
        if self.shutting_down || self.accept_retry.is_some() || !self.accept_pending {
            return;
        }
        loop {
            let Some((listener, _)) = &self.listener else {
                return;
            };
            if self.active() >= self.max_conns {
                self.stats.at_capacity += 1;
                return;
            }
            self.stats.accept_calls += 1;
            match listener.accept() {
                Ok((sock, _)) => {
                    self.backoff = None;
                    if !permitted(&self.config.credentials, &sock) {
                        // Closed without a frame, as Go's handshaker does.
                        self.stats.refused += 1;
                        continue;
                    }
                    self.add_conn(sock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.raw_os_error().map(Errno::from_raw),
                        Some(Errno::ECONNABORTED | Errno::EPROTO)
                    ) => {}
                Err(_) => {
                    // EMFILE, ENFILE, ENOBUFS, ENOMEM, or anything else:
                    // never spin, never give up.
                    self.stats.accept_errors += 1;
                    let pause = self
                        .backoff
                        .map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                    self.backoff = Some(pause);
                    self.accept_retry = Some(now + pause);
                    return;
                }
            }
        }
    }

    fn add_conn(&mut self, mut sock: UnixStream) {
        let slot = self.free.pop().unwrap_or(self.conns.len());
        let token = Token(self.tokens.start + 2 + slot);
        if self
            .mio
            .register(&mut sock, token, Interest::READABLE)
            .is_err()
        {
            if slot < self.conns.len() {
                self.free.push(slot);
            }
            return;
        }
        let mut core = ServerConnection::new(self.config.connection.clone());
        if self.shutting_down {
            core.shutdown();
        }
        self.next_uid += 1;
        let conn = Box::new(Conn {
            sock,
            core,
            uid: self.next_uid,
            interest: Some(Interest::READABLE),
            readable: false,
            timer: None,
            queued: false,
            accounted: 0,
            sessions: Vec::new(),
        });
        self.shared.active.fetch_add(1, Ordering::Relaxed);
        if slot == self.conns.len() {
            self.conns.push(Some(conn));
        } else if let Some(place) = self.conns.get_mut(slot) {
            *place = Some(conn);
        }
        self.stats.accepted += 1;
    }

    fn begin_shutdown(&mut self, now: Instant, grace: Duration) {
        if !self.shutting_down {
            self.shutting_down = true;
            if let Some((mut listener, bound)) = self.listener.take() {
                let _ = self.mio.deregister(&mut listener);
                drop(listener);
                drop(bound); // removes the socket file
            }
        }
        let deadline = now.checked_add(grace).unwrap_or(now);
        self.shutdown_deadline = Some(self.shutdown_deadline.map_or(deadline, |d| d.min(deadline)));
        for slot in 0..self.conns.len() {
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.core.shutdown();
                self.schedule(slot);
            }
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.conns.len() {
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.core.close(ConnectionError::LocallyClosed);
                self.schedule(slot);
            }
        }
    }
}

/// Whether `check` lets the peer of `sock` in: `CredentialCheck::check`
/// without the refusal's message, which nobody reads here.
fn permitted(check: &CredentialCheck, sock: &UnixStream) -> bool {
    matches!(check, CredentialCheck::None) || PeerCred::of(sock).is_ok_and(|c| check.allows(&c))
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// How a connection ends when its socket fails.
fn transport_error(what: &str, e: &std::io::Error) -> ConnectionError {
    ConnectionError::Transport(format!("{what}: {e}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        for conn in self.conns.iter_mut().flatten() {
            if conn.interest.is_some() {
                let _ = self.mio.deregister(&mut conn.sock);
            }
        }
        if let Some((mut listener, _)) = self.listener.take() {
            let _ = self.mio.deregister(&mut listener);
        }
    }
}
