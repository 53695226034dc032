//! The client: one connection, many calls in flight, driven from the
//! caller's `mio` loop.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use mio::event::Event;
use mio::net::UnixStream;
use mio::{Interest, Token};
use ttrpc_core::{
    CallOptions, ClientConnection, ClientEvent, Config, ConnectionError, Stats, StreamId,
    StreamItem, StreamKind,
};
use ttrpc_std::Address;

use crate::error::Error;
use crate::io::{self, Outcome};

/// Bytes read per `read` call (the buffer is allocated on first read).
const READ_CHUNK: usize = 64 * 1024;

/// A call's end: its stream id and its answer or error.
pub type Completion = (StreamId, Result<Bytes, Error>);

/// What happened to the client's streams; collect with
/// [`Client::poll_stream_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// Stream `id` has items: take them with [`Client::recv`] until it
    /// returns `None`; only then is the stream reported again.
    Readable(StreamId),
    /// A [`Client::send`] returned [`Error::Busy`] earlier and the
    /// transmit queue has drained: send again. Reported once per `Busy`.
    Writable,
}

/// A ttrpc client connection driven from the caller's `mio` loop.
///
/// Start calls with [`Client::call`]; feed the loop's events to
/// [`Client::handle_event`] and, after each `poll`, call
/// [`Client::handle_timeout`]; use [`Client::poll_timeout`] for the
/// `poll` timeout; collect answers with [`Client::poll_completion`].
/// Every call started ends in exactly one completion.
pub struct Client {
    sock: UnixStream,
    mio: mio::Registry,
    token: Token,
    core: ClientConnection,
    interest: Option<Interest>,
    readable: bool,
    buf: Vec<u8>,
    completions: VecDeque<Completion>,
    stream_events: VecDeque<StreamEvent>,
    /// A stream send was refused for a full transmit queue.
    want_writable: bool,
    closed: Option<ConnectionError>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("token", &self.token)
            .field("in_flight", &self.core.in_flight())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `address` (`ttrpc-std`'s syntax: `unix://PATH`,
    /// `@NAME`, a socket path, or a legacy abstract name) and registers the
    /// connection on `registry` under `token`. The connect itself is a
    /// blocking `connect(2)`, which on a unix socket returns at once.
    ///
    /// # Errors
    /// [`Error::Address`] from parsing or connecting; [`Error::Io`] from
    /// registration.
    pub fn connect(
        address: &str,
        config: Config,
        registry: &mio::Registry,
        token: Token,
    ) -> Result<Self, Error> {
        let stream = Address::parse(address)?.connect()?;
        Self::new(stream, config, registry, token)
    }

    /// Wraps an already connected stream (made non-blocking here).
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be made non-blocking or registered.
    pub fn new(
        stream: std::os::unix::net::UnixStream,
        config: Config,
        registry: &mio::Registry,
        token: Token,
    ) -> Result<Self, Error> {
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io("set non-blocking", e))?;
        let mut sock = UnixStream::from_std(stream);
        let mio = registry
            .try_clone()
            .map_err(|e| Error::io("clone mio registry", e))?;
        mio.register(&mut sock, token, Interest::READABLE)
            .map_err(|e| Error::io("register client", e))?;
        Ok(Self {
            sock,
            mio,
            token,
            core: ClientConnection::new(config),
            interest: Some(Interest::READABLE),
            readable: true,
            buf: Vec::new(),
            completions: VecDeque::new(),
            stream_events: VecDeque::new(),
            want_writable: false,
            closed: None,
        })
    }

    /// Starts a unary call and writes what the socket takes now; the rest
    /// goes out as the loop reports the socket writable.
    ///
    /// # Errors
    /// Nothing is sent when the connection is closed, the request is too
    /// large, the transmit queue is full ([`Error::Busy`]) or the ids are
    /// exhausted.
    pub fn call(
        &mut self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<StreamId, Error> {
        let id = self
            .core
            .send_request(Instant::now(), service, method, payload, options)?;
        self.drive(Instant::now());
        Ok(id)
    }

    /// As [`Client::call`], with the payload as shared [`Bytes`]: a large
    /// one (32 KiB or more) is written from where it is, never copied into
    /// the connection's transmit queue.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call_bytes(
        &mut self,
        service: &str,
        method: &str,
        payload: &Bytes,
        options: &CallOptions,
    ) -> Result<StreamId, Error> {
        let id = self
            .core
            .send_request_bytes(Instant::now(), service, method, payload, options)?;
        self.drive(Instant::now());
        Ok(id)
    }

    /// Opens a stream (ttrpc 1.2) and writes what the socket takes now.
    /// `payload` is the request message of a server-streaming call; for
    /// client-streaming and bidirectional calls it is an optional first
    /// message (empty = none). Then [`Self::send`], [`Self::close_send`],
    /// and [`Self::recv`] after each [`StreamEvent::Readable`].
    /// `options.timeout` bounds the whole stream. A peer without streams
    /// (ttrpc < 1.2) ends it with `Unimplemented`.
    ///
    /// # Errors
    /// As [`Self::call`].
    pub fn open_stream(
        &mut self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<StreamId, Error> {
        let id = self
            .core
            .open_stream(Instant::now(), service, method, kind, payload, options)?;
        self.drive(Instant::now());
        Ok(id)
    }

    /// Sends one message on a stream whose client side sends, and writes
    /// what the socket takes now. Never blocks: while the transmit queue is
    /// full (the server is not reading) it returns [`Error::Busy`] and
    /// queues nothing; [`StreamEvent::Writable`] says when to retry.
    ///
    /// # Errors
    /// [`Error::Busy`]; [`Error::StreamClosed`] after [`Self::close_send`],
    /// on a server-streaming call or once the stream ended;
    /// [`Error::TooLarge`]; [`Error::Closed`].
    pub fn send(&mut self, id: StreamId, payload: &[u8]) -> Result<(), Error> {
        match self.core.send_data(id, payload) {
            Ok(()) => {
                self.drive(Instant::now());
                Ok(())
            }
            Err(e) => {
                let e = Error::from(e);
                if matches!(e, Error::Busy) {
                    self.want_writable = true;
                }
                Err(e)
            }
        }
    }

    /// Half-closes a stream: the server sees the end of the client's
    /// messages; answers keep arriving.
    ///
    /// # Errors
    /// As [`Self::send`], except `Busy` and the size limit.
    pub fn close_send(&mut self, id: StreamId) -> Result<(), Error> {
        self.core.close_send(id)?;
        self.drive(Instant::now());
        Ok(())
    }

    /// Takes the next item received on stream `id`: a message, then one
    /// [`StreamItem::End`] (`Ok` when the server finished normally; the
    /// error converts with `Error::from`). `None` when nothing waits;
    /// [`StreamEvent::Readable`] says when to try again. Taking messages
    /// keeps the stream within its receive bound
    /// ([`Config::stream_queue_len`]; a stream left full for
    /// [`Config::stream_stall_timeout`] fails with `ResourceExhausted`).
    pub fn recv(&mut self, id: StreamId) -> Option<StreamItem> {
        let item = self.core.recv_stream(id)?;
        if !self.core.wants_read() {
            // Decoding may have paused at the streams' byte bound.
            self.drive(Instant::now());
        }
        Some(item)
    }

    /// The next stream event.
    #[must_use]
    pub fn poll_stream_event(&mut self) -> Option<StreamEvent> {
        self.stream_events.pop_front()
    }

    /// Cancels a call: it completes at once with [`Error::Cancelled`] and
    /// its late answer is dropped (the server is not told: ttrpc has no
    /// cancel frame). Returns whether the call was pending.
    ///
    /// On a stream: a client side still sending is half-closed first (so a
    /// server waiting for messages sees their end), then items not yet
    /// taken and later ones are dropped; no completion is reported.
    pub fn cancel(&mut self, id: StreamId) -> bool {
        if self.core.has_stream(id) {
            let closed = self.core.close_send(id).is_ok();
            let pending = self.core.abandon(id);
            if closed {
                self.drive(Instant::now());
            }
            return pending;
        }
        let pending = self.core.abandon(id);
        if pending {
            self.completions.push_back((id, Err(Error::Cancelled)));
        }
        pending
    }

    /// Handles one readiness event. Returns `false` (doing nothing) if it
    /// is for another token.
    pub fn handle_event(&mut self, event: &Event) -> bool {
        if event.token() != self.token {
            return false;
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        self.drive(Instant::now());
        true
    }

    /// Fails the calls whose deadline passed. Call it after every `poll`
    /// (early calls are harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.drive(now);
    }

    /// The earliest call deadline, for the loop's `poll` timeout.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The next finished call.
    #[must_use]
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// Calls started and not yet finished.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.core.in_flight()
    }

    /// Why the connection ended, once it has.
    #[must_use]
    pub fn closed(&self) -> Option<&ConnectionError> {
        self.closed.as_ref()
    }

    /// Whether the connection has ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The core's counters (late answers dropped, oversized frames, ...).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// Bytes the core holds (undecoded input plus queued output).
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.core.buffered_bytes()
    }

    /// Closes the connection: pending calls complete with
    /// [`Error::Closed`], open streams end with that error, and the socket
    /// is shut down so the peer sees the end at once.
    pub fn close(&mut self) {
        self.core.close(ConnectionError::LocallyClosed);
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
        self.drive(Instant::now());
    }

    fn drive(&mut self, now: Instant) {
        loop {
            let mut progress = false;
            while let Some(buf) = self.core.poll_transmit() {
                match io::write(&self.sock, buf) {
                    Outcome::Done(n) => self.core.advance_transmit(n),
                    Outcome::WouldBlock | Outcome::Eof => break,
                    Outcome::Failed(e) => {
                        self.core
                            .close(ConnectionError::Transport(format!("write: {e}")));
                        break;
                    }
                }
            }
            if self.readable && self.core.wants_read() {
                if self.buf.is_empty() {
                    self.buf = vec![0; READ_CHUNK];
                }
                match io::read(&self.sock, &mut self.buf) {
                    Outcome::Done(n) => {
                        let got = self.buf.get(..n).unwrap_or_default();
                        self.core.handle_input(now, got);
                        progress = true;
                    }
                    Outcome::WouldBlock => self.readable = false,
                    Outcome::Eof => {
                        self.readable = false;
                        self.core.handle_eof(now);
                        progress = true;
                    }
                    Outcome::Failed(e) => {
                        self.readable = false;
                        self.core
                            .close(ConnectionError::Transport(format!("read: {e}")));
                        progress = true;
                    }
                }
            }
            progress |= self.drain_events();
            if !progress {
                break;
            }
        }
        if self.want_writable && !self.core.wants_write() {
            self.want_writable = false;
            self.stream_events.push_back(StreamEvent::Writable);
        }
        self.update_interest();
    }

    /// Moves the core's events into `completions`; returns whether any came.
    fn drain_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.core.poll_event() {
            any = true;
            match event {
                ClientEvent::Response { id, result } => {
                    self.completions
                        .push_back((id, result.map_err(Error::from)));
                }
                ClientEvent::StreamReadable { id } => {
                    self.stream_events.push_back(StreamEvent::Readable(id));
                }
                ClientEvent::Closed { reason } => self.closed = Some(reason),
                _ => {}
            }
        }
        any
    }

    fn update_interest(&mut self) {
        let want = if self.closed.is_some() {
            None
        } else {
            io::interest(self.core.wants_read(), self.core.wants_write())
        };
        if want == self.interest {
            return;
        }
        match io::set_interest(&self.mio, &mut self.sock, self.token, self.interest, want) {
            Ok(()) => self.interest = want,
            Err(e) => {
                self.core
                    .close(ConnectionError::Transport(format!("register: {e}")));
                self.interest = None;
                self.drain_events();
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.interest.is_some() {
            let _ = self.mio.deregister(&mut self.sock);
        }
    }
}
