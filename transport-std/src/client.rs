//! The blocking client: one connection shared by any number of threads.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use ttrpc_core::{
    CallOptions, ClientConnection, ClientEvent, Config, ConnectionError, SendError, Stats, StreamId,
};

use crate::address::Address;
use crate::error::Error;
use crate::wire::{self, lock};

/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 64 * 1024;

type Slot = Sender<Result<Bytes, Error>>;

struct State {
    core: ClientConnection,
    /// The callers waiting for an answer, by stream id.
    waiters: HashMap<StreamId, Slot>,
}

impl State {
    /// Drains the core's events, handing each answer to its caller. Runs
    /// under the state lock; never blocks (channel sends do not).
    fn drain(&mut self) {
        while let Some(event) = self.core.poll_event() {
            if let ClientEvent::Response { id, result } = event {
                if let Some(slot) = self.waiters.remove(&id) {
                    let _ = slot.send(result.map_err(Error::from));
                }
            }
        }
    }
}

struct Inner {
    sock: UnixStream,
    /// Held while writing, so frames reach the wire in queue order. Taken
    /// before `state`, never the other way round.
    writer: Mutex<()>,
    state: Mutex<State>,
}

impl Inner {
    /// Writes whatever the core has queued (see [`wire::flush`]); a failed
    /// write ends the connection.
    fn flush(&self) {
        let take = || lock(&self.state).core.take_transmit();
        if let Err(e) = wire::flush(&self.writer, &self.sock, take) {
            self.fail(ConnectionError::Transport(format!("write: {e}")));
        }
    }

    /// Ends the connection: every pending call fails with `reason`, and the
    /// reader thread is woken (it sees the socket shut down).
    fn fail(&self, reason: ConnectionError) {
        {
            let mut st = lock(&self.state);
            st.core.close(reason);
            st.drain();
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    fn read_loop(&self) {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let read = (&self.sock).read(&mut buf);
            let mut st = lock(&self.state);
            match read {
                Ok(0) => st.core.handle_eof(Instant::now()),
                Ok(n) => st.core.handle_input(Instant::now(), &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => st
                    .core
                    .close(ConnectionError::Transport(format!("read: {e}"))),
            }
            st.drain();
            if st.core.is_closed() {
                return;
            }
        }
    }
}

/// A ttrpc client over one stream socket.
///
/// `Send + Sync`: share it (`&Client`, `Arc<Client>`) and call from many
/// threads at once; calls are multiplexed over the one connection and each
/// waits only for its own answer. One background thread reads answers (see
/// the [crate docs](crate#threads) for why). Dropping the client closes the
/// connection and joins that thread; calls still waiting fail with
/// [`ConnectionError::LocallyClosed`].
pub struct Client {
    inner: Arc<Inner>,
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
        let inner = Arc::new(Inner {
            sock: stream,
            writer: Mutex::new(()),
            state: Mutex::new(State {
                core: ClientConnection::new(config),
                waiters: HashMap::new(),
            }),
        });
        let reader_inner = Arc::clone(&inner);
        let reader = thread::Builder::new()
            .name("ttrpc-client-reader".into())
            .spawn(move || reader_inner.read_loop())
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
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        let id = loop {
            let mut st = lock(&self.inner.state);
            match st.core.send_request(now, service, method, payload, options) {
                Ok(id) => {
                    st.waiters.insert(id, tx);
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
            rx,
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
    rx: Receiver<Result<Bytes, Error>>,
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
    /// connection, whichever comes first.
    ///
    /// # Errors
    /// As [`Client::call_raw`]; [`Error::Cancelled`] after a cancel.
    pub fn wait(mut self) -> Result<Bytes, Error> {
        self.done = true;
        loop {
            let got = match self.deadline {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match got {
                Ok(result) => return result,
                Err(RecvTimeoutError::Timeout) => {
                    // Our deadline passed: let the core expire it (and any
                    // other due call); our answer then waits in `rx`.
                    let mut st = lock(&self.client.inner.state);
                    st.core.handle_timeout(Instant::now());
                    st.drain();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Closed(ConnectionError::LocallyClosed));
                }
            }
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut st = lock(&self.client.inner.state);
            if st.waiters.remove(&self.id).is_some() {
                st.core.abandon(self.id);
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
        match st.waiters.remove(&self.id) {
            Some(slot) => {
                st.core.abandon(self.id);
                let _ = slot.send(Err(Error::Cancelled));
                true
            }
            None => false,
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
