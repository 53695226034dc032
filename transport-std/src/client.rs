//! The blocking client: one connection shared by any number of threads.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use prost::Message;
use ttrpc_core::{
    CallOptions, ClientConnection, ClientEvent, Config, ConnectionError, SendError, Stats, StreamId,
};

use crate::address::Address;
use crate::error::Error;
use crate::wire::{self, lock};

/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// How often the background reader checks whether the connection has gone
/// idle, so that it watches the socket again.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// A call waiting for its answer.
struct Waiter {
    id: StreamId,
    /// The thread to wake when the answer (or the reader role) is free.
    thread: Thread,
    result: Option<Result<Bytes, Error>>,
}

/// Who reads the socket (the reader role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Nobody,
    /// A waiting caller, reading for everyone.
    Caller,
    /// The background thread, while no call waits.
    Background,
}

pub(crate) struct State {
    pub(crate) core: ClientConnection,
    /// The calls started and not yet collected, in start order.
    waiters: Vec<Waiter>,
    /// Threads blocked in `ClientStream::recv`, by stream: woken when their
    /// stream has items or the connection closes. They read for everyone
    /// like waiting callers do.
    pub(crate) stream_waiters: Vec<(StreamId, Thread)>,
    reader: Reader,
}

impl State {
    fn waiter(&mut self, id: StreamId) -> Option<&mut Waiter> {
        self.waiters.iter_mut().find(|w| w.id == id)
    }

    /// Drains the core's events, storing each answer with its caller and
    /// waking that caller (and stream readers whose stream has items).
    /// Runs under the state lock; never blocks.
    pub(crate) fn drain(&mut self) {
        let me = thread::current().id();
        while let Some(event) = self.core.poll_event() {
            match event {
                ClientEvent::Response { id, result } => {
                    if let Some(w) = self.waiter(id) {
                        w.result = Some(result.map_err(Error::from));
                        if w.thread.id() != me {
                            w.thread.unpark();
                        }
                    }
                }
                ClientEvent::StreamReadable { id } => {
                    for (_, t) in self.stream_waiters.iter().filter(|(s, _)| *s == id) {
                        if t.id() != me {
                            t.unpark();
                        }
                    }
                }
                _ => {
                    // Closed: every stream has its end queued.
                    for (_, t) in &self.stream_waiters {
                        t.unpark();
                    }
                }
            }
        }
    }

    /// After the reader role was released: wakes one caller (or stream
    /// reader) still waiting, to read for everyone.
    pub(crate) fn hand_over(&self) {
        let me = thread::current().id();
        if let Some(w) = self
            .waiters
            .iter()
            .find(|w| w.result.is_none() && w.thread.id() != me)
        {
            w.thread.unpark();
        } else if let Some((_, t)) = self.stream_waiters.iter().find(|(_, t)| t.id() != me) {
            t.unpark();
        }
    }

    /// Whether a call or a stream reader waits (the background thread then
    /// leaves the reader role to them).
    fn anyone_waits(&self) -> bool {
        !self.waiters.is_empty() || !self.stream_waiters.is_empty()
    }

    /// Whether a waiting thread should take the reader role: it is free,
    /// and the core takes input (not paused at its streams' byte bound).
    pub(crate) fn reader_free(&self) -> bool {
        self.reader == Reader::Nobody && (self.core.wants_read() || self.core.is_closed())
    }

    /// Whether the background thread reads now.
    pub(crate) fn background_reads(&self) -> bool {
        self.reader == Reader::Background
    }

    /// Takes the reader role for the calling (waiting) thread.
    pub(crate) fn take_reader(&mut self) {
        self.reader = Reader::Caller;
    }
}

pub(crate) struct Inner {
    sock: UnixStream,
    /// Held while writing, so frames reach the wire in queue order. Taken
    /// before `state`, never the other way round.
    writer: Mutex<()>,
    pub(crate) state: Mutex<State>,
    /// The reader role's buffer (only the role's holder locks it).
    buf: Mutex<Vec<u8>>,
    /// A byte written to `wake_tx` wakes the reader's `poll`.
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    /// Wakes the background thread (the connection closed).
    background: Condvar,
}

impl Inner {
    /// Writes whatever the core has queued (see [`wire::flush`]); a failed
    /// write ends the connection.
    pub(crate) fn flush(&self) {
        let take = || lock(&self.state).core.take_transmit();
        if let Err(e) = wire::flush(&self.writer, &self.sock, take) {
            self.fail(ConnectionError::Transport(format!("write: {e}")));
        }
    }

    /// Ends the connection: every pending call fails with `reason`, and the
    /// reader (a caller or the background thread) is woken by the socket's
    /// shutdown.
    fn fail(&self, reason: ConnectionError) {
        {
            let mut st = lock(&self.state);
            st.core.close(reason);
            st.drain();
        }
        self.background.notify_all();
        let _ = self.sock.shutdown(Shutdown::Both);
        // A reader paused at the streams' byte bound polls only this.
        self.wake_reader();
    }

    /// Interrupts the reader's `poll`.
    pub(crate) fn wake_reader(&self) {
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// One turn of the reader role, which the caller holds: waits (until
    /// `due` at the latest) for the socket or a wake-up, reads once, feeds
    /// the core, hands out the answers, and releases the role.
    pub(crate) fn read_turn(&self, due: Option<Instant>) {
        let mut buf = lock(&self.buf);
        if buf.is_empty() {
            buf.resize(READ_CHUNK, 0);
        }
        let timeout = due.map_or(PollTimeout::NONE, |at| {
            // Rounded up: waking a little late beats spinning early.
            let left = at.saturating_duration_since(Instant::now());
            let ms = left.as_micros().div_ceil(1000);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        });
        // Paused at the streams' byte bound: read nothing until a stream
        // reader takes messages (it wakes us) or a stall timer is due.
        let paused = {
            let st = lock(&self.state);
            !st.core.wants_read() && !st.core.is_closed()
        };
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let (readable, woken) = if paused {
            let mut fds = [PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(n) if n > 0 => (false, ready(&fds[0])),
                _ => (false, false),
            }
        } else {
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(n) if n > 0 => (ready(&fds[0]), ready(&fds[1])),
                _ => (false, false),
            }
        };
        if woken {
            let mut sink = [0u8; 64];
            while matches!((&self.wake_rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        let read = readable.then(|| (&self.sock).read(&mut buf));
        let mut st = lock(&self.state);
        let now = Instant::now();
        match read {
            None => st.core.handle_timeout(now),
            Some(Ok(0)) => st.core.handle_eof(now),
            Some(Ok(n)) => st.core.handle_input(now, &buf[..n]),
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Some(Err(e)) => st
                .core
                .close(ConnectionError::Transport(format!("read: {e}"))),
        }
        drop(buf);
        st.reader = Reader::Nobody;
        st.drain();
        let closed = st.core.is_closed();
        let me = thread::current().id();
        // A stream reader may have its items now: let another waiter read.
        let still_waiting = st
            .waiters
            .iter()
            .any(|w| w.thread.id() == me && w.result.is_none());
        if !still_waiting {
            st.hand_over();
        }
        drop(st);
        if closed {
            self.background.notify_all();
        }
    }

    /// The background thread: reads while no call waits, so an idle client
    /// still notices its connection closing. A waiting caller takes the
    /// reader role from it (`wake_reader`) and reads its own answer.
    fn background_loop(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.core.is_closed() {
                return;
            }
            if st.reader == Reader::Nobody && !st.anyone_waits() {
                st.reader = Reader::Background;
                let due = st.core.poll_timeout();
                drop(st);
                self.read_turn(due);
                st = lock(&self.state);
                continue;
            }
            st = self
                .background
                .wait_timeout(st, IDLE_CHECK)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// A ttrpc client over one stream socket.
///
/// `Send + Sync`: share it (`&Client`, `Arc<Client>`) and call from many
/// threads at once; calls are multiplexed over the one connection and each
/// waits only for its own answer. A waiting caller reads the socket for
/// everyone (one at a time); a background thread reads while no call waits
/// (see the [crate docs](crate#threads)). Dropping the client closes the
/// connection and joins that thread; calls still waiting fail with
/// [`ConnectionError::LocallyClosed`].
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.inner.state);
        f.debug_struct("Client")
            .field("in_flight", &st.core.in_flight())
            .field("closed", &st.core.is_closed())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Parses `address` (see [`Address`]) and connects with the default
    /// [`Config`].
    ///
    /// # Errors
    /// [`Error::InvalidAddress`], or [`Error::Io`] naming the address.
    pub fn connect(address: &str) -> Result<Self, Error> {
        Self::new(Address::parse(address)?.connect()?)
    }

    /// A client over an already connected stream, with the default
    /// [`Config`].
    ///
    /// # Errors
    /// [`Error::Io`] if the reader thread cannot be started.
    pub fn new(stream: UnixStream) -> Result<Self, Error> {
        Self::with_config(stream, Config::default())
    }

    /// A client over any connected stream socket the caller hands over
    /// (e.g. vsock in a VM agent). Only `read`, `send` and `shutdown` are
    /// used on it, which every stream socket supports.
    ///
    /// # Errors
    /// [`Error::Io`] if the reader thread cannot be started.
    pub fn from_fd(fd: OwnedFd, config: Config) -> Result<Self, Error> {
        Self::with_config(UnixStream::from(fd), config)
    }

    /// A client over a connected stream with the given limits.
    ///
    /// # Errors
    /// [`Error::Io`] if the reader thread cannot be started.
    pub fn with_config(stream: UnixStream, config: Config) -> Result<Self, Error> {
        // A read timeout the caller left on the stream would look like an
        // error to the reader; the client enforces deadlines itself.
        stream
            .set_read_timeout(None)
            .map_err(|e| Error::io("clear read timeout", e))?;
        let (wake_tx, wake_rx) =
            UnixStream::pair().map_err(|e| Error::io("create wake-up socket pair", e))?;
        for s in [&wake_tx, &wake_rx] {
            s.set_nonblocking(true)
                .map_err(|e| Error::io("set wake-up socket non-blocking", e))?;
        }
        let inner = Arc::new(Inner {
            sock: stream,
            writer: Mutex::new(()),
            state: Mutex::new(State {
                core: ClientConnection::new(config),
                waiters: Vec::new(),
                stream_waiters: Vec::new(),
                reader: Reader::Nobody,
            }),
            buf: Mutex::new(Vec::new()),
            wake_tx,
            wake_rx,
            background: Condvar::new(),
        });
        let reader_inner = Arc::clone(&inner);
        let reader = thread::Builder::new()
            .name("ttrpc-client-reader".into())
            .spawn(move || reader_inner.background_loop())
            .map_err(|e| Error::io("spawn ttrpc-client-reader thread", e))?;
        Ok(Self {
            inner,
            reader: Mutex::new(Some(reader)),
        })
    }

    /// Calls `service`/`method` with a prost message and decodes the answer.
    ///
    /// # Errors
    /// See [`Client::call_raw`]; also [`Error::Decode`] for an answer that
    /// is not a `Resp`.
    pub fn call<Req, Resp>(
        &self,
        service: &str,
        method: &str,
        request: &Req,
        options: &CallOptions,
    ) -> Result<Resp, Error>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let payload = request.encode_to_vec();
        let answer = self.call_raw(service, method, &payload, options)?;
        Ok(Resp::decode(answer)?)
    }

    /// Calls `service`/`method` with a serialized payload and waits for the
    /// answer's payload.
    ///
    /// `options.timeout` is sent as `timeout_nano` and enforced here: after
    /// it the call fails with [`Error::DeadlineExceeded`] and a late answer
    /// is dropped.
    ///
    /// # Errors
    /// [`Error::Status`] for a non-OK answer; [`Error::DeadlineExceeded`];
    /// [`Error::Closed`] naming why the connection ended;
    /// [`Error::TooLarge`] for a request over the maximum message size
    /// (refused before anything is written).
    pub fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        self.start_raw(service, method, payload, options)?.wait()
    }

    /// Starts a call and returns at once: [`PendingCall::wait`] for the
    /// answer, or [`PendingCall::canceller`] to cancel it from another
    /// thread. The request is written before this returns.
    ///
    /// # Errors
    /// As [`Client::call_raw`], for failures before the request is sent.
    pub fn start_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<PendingCall<'_>, Error> {
        self.start(service, method, payload, None, options)
    }

    /// As [`Client::call_raw`], with the payload as shared [`Bytes`]: a
    /// large one (32 KiB or more) is written from where it is, never copied
    /// into the connection's transmit queue.
    ///
    /// # Errors
    /// As [`Client::call_raw`].
    pub fn call_bytes(
        &self,
        service: &str,
        method: &str,
        payload: &Bytes,
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        self.start(service, method, payload, Some(payload), options)?
            .wait()
    }

    fn start(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        shared: Option<&Bytes>,
        options: &CallOptions,
    ) -> Result<PendingCall<'_>, Error> {
        let now = Instant::now();
        let id = loop {
            let mut st = lock(&self.inner.state);
            let sent = match shared {
                Some(bytes) => st
                    .core
                    .send_request_bytes(now, service, method, bytes, options),
                None => st.core.send_request(now, service, method, payload, options),
            };
            match sent {
                Ok(id) => {
                    st.waiters.push(Waiter {
                        id,
                        thread: thread::current(),
                        result: None,
                    });
                    break id;
                }
                // Another caller's bytes are still queued: write them out
                // (waiting for any write in progress), then queue ours.
                Err(SendError::TransmitQueueFull) => {
                    drop(st);
                    self.inner.flush();
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.inner.flush();
        Ok(PendingCall {
            client: self,
            id,
            deadline: options.timeout.and_then(|t| now.checked_add(t)),
            done: false,
        })
    }

    /// Closes the connection: calls waiting fail with
    /// [`ConnectionError::LocallyClosed`], later calls fail at once.
    /// Dropping the client does the same and also joins the reader thread.
    pub fn close(&self) {
        self.inner.fail(ConnectionError::LocallyClosed);
    }

    /// Whether the connection has ended (closed by either side or broken).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        lock(&self.inner.state).core.is_closed()
    }

    /// Calls sent and not yet answered, failed or abandoned.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.state).core.in_flight()
    }

    /// The core's counters (e.g. late answers dropped).
    #[must_use]
    pub fn stats(&self) -> Stats {
        lock(&self.inner.state).core.stats()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
        if let Some(reader) = lock(&self.reader).take() {
            let _ = reader.join();
        }
    }
}

/// A call whose request was sent; [`PendingCall::wait`] for its answer.
/// Dropping it without waiting abandons the call (its answer is dropped).
#[derive(Debug)]
pub struct PendingCall<'c> {
    client: &'c Client,
    id: StreamId,
    deadline: Option<Instant>,
    done: bool,
}

impl PendingCall<'_> {
    /// The call's stream id.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// A handle that cancels this call from any thread.
    #[must_use]
    pub fn canceller(&self) -> Canceller {
        Canceller {
            inner: Arc::downgrade(&self.client.inner),
            id: self.id,
        }
    }

    /// Waits for the answer, the deadline, a cancel, or the end of the
    /// connection, whichever comes first. While it waits, the caller may
    /// read the socket for every call (the reader role), so its own answer
    /// needs no hand-off from another thread.
    ///
    /// # Errors
    /// As [`Client::call_raw`]; [`Error::Cancelled`] after a cancel.
    pub fn wait(mut self) -> Result<Bytes, Error> {
        self.done = true;
        let inner = &self.client.inner;
        let me = thread::current();
        let mut st = lock(&inner.state);
        loop {
            let Some(pos) = st.waiters.iter().position(|w| w.id == self.id) else {
                // Only `wait` and `drop` remove a waiter: not reached.
                return Err(Error::Closed(ConnectionError::LocallyClosed));
            };
            let w = &mut st.waiters[pos];
            if let Some(result) = w.result.take() {
                st.waiters.swap_remove(pos);
                return result;
            }
            if w.thread.id() != me.id() {
                w.thread = me.clone();
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|at| at <= now) {
                // Our deadline passed: let the core expire it (and any
                // other due call); the answer is then in our slot.
                st.core.handle_timeout(now);
                st.drain();
                if let Some(w) = st.waiter(self.id).filter(|w| w.result.is_none()) {
                    w.result = Some(Err(Error::DeadlineExceeded));
                    st.core.abandon(self.id);
                }
                continue;
            }
            match st.reader {
                Reader::Nobody => {
                    st.reader = Reader::Caller;
                    let due = st.core.poll_timeout();
                    drop(st);
                    inner.read_turn(due);
                }
                reader => {
                    drop(st);
                    if reader == Reader::Background {
                        inner.wake_reader();
                    }
                    match self.deadline {
                        Some(at) => thread::park_timeout(at.saturating_duration_since(now)),
                        None => thread::park(),
                    }
                }
            }
            st = lock(&inner.state);
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = lock(&self.client.inner.state);
            if let Some(pos) = st.waiters.iter().position(|w| w.id == self.id) {
                let w = st.waiters.swap_remove(pos);
                if w.result.is_none() {
                    st.core.abandon(self.id);
                }
            }
        }
    }
}

/// Cancels one call from any thread: the call's [`PendingCall::wait`]
/// returns [`Error::Cancelled`] at once and its late answer is dropped.
/// ttrpc has no cancel frame, so the server is not told.
#[derive(Debug, Clone)]
pub struct Canceller {
    inner: Weak<Inner>,
    id: StreamId,
}

impl Canceller {
    /// Cancels the call. Returns whether it was still waiting.
    pub fn cancel(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let mut st = lock(&inner.state);
        let reading = st.reader == Reader::Caller;
        match st.waiter(self.id) {
            Some(w) if w.result.is_none() => {
                w.result = Some(Err(Error::Cancelled));
                w.thread.unpark();
                st.core.abandon(self.id);
                drop(st);
                if reading {
                    // It may be the call reading for everyone: wake it.
                    inner.wake_reader();
                }
                true
            }
            _ => false,
        }
    }
}

/// Lets generated client stubs (`ttrpc-core`'s `codegen` feature) call
/// through this client: `TaskClient::new(&client)`.
impl ttrpc_core::stub::UnaryCall for Client {
    type Error = Error;

    fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        Self::call_raw(self, service, method, payload, options)
    }
}
