//! Streams (ttrpc 1.2): the client's blocking [`ClientStream`] handle, and
//! the blocking operations behind a server handler's
//! [`ServerStream`](ttrpc_core::ServerStream).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use ttrpc_core::{
    CallOptions, ConnectionError, SendError, Status, StreamId, StreamIo, StreamItem, StreamKind,
};

use crate::client::{Client, Inner};
use crate::connection::Conn;
use crate::error::Error;
use crate::wire::lock;

impl Client {
    /// Opens a stream on `service`/`method` and returns its handle once the
    /// Request frame is written. `payload` is the request message of a
    /// server-streaming call; for client-streaming and bidirectional calls
    /// it is an optional first message (empty = none).
    /// `options.timeout` bounds the whole stream.
    ///
    /// A peer without streams (ttrpc < 1.2, e.g. Go 1.1.1) answers
    /// `Unimplemented`: the first [`ClientStream::recv`] returns that
    /// status.
    ///
    /// # Errors
    /// As [`Client::call_raw`], for failures before the request is sent.
    pub fn open_stream(
        &self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<ClientStream, Error> {
        let now = Instant::now();
        let id = loop {
            let mut st = lock(&self.inner.state);
            match st
                .core
                .open_stream(now, service, method, kind, payload, options)
            {
                Ok(id) => break id,
                Err(SendError::TransmitQueueFull) => {
                    drop(st);
                    self.inner.flush();
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.inner.flush();
        Ok(ClientStream {
            inner: Arc::clone(&self.inner),
            id,
            kind,
            deadline: options.timeout.and_then(|t| now.checked_add(t)),
            ended: AtomicBool::new(false),
        })
    }
}

/// One stream opened by [`Client::open_stream`]: blocking [`Self::send`],
/// [`Self::close_send`] and [`Self::recv`].
///
/// `Send + Sync`: a bidirectional stream may send on one thread while
/// another receives (share it by reference or in an `Arc`). It keeps the
/// connection alive; [`Client::close`] (or dropping the client) ends it
/// with [`Error::Closed`].
///
/// Dropping it before its end cancels it locally: a client that still
/// sends half-closes first (so a server waiting for its messages sees the
/// end), then answers still to come are dropped. ttrpc has no cancel frame.
pub struct ClientStream {
    inner: Arc<Inner>,
    id: StreamId,
    kind: StreamKind,
    deadline: Option<Instant>,
    ended: AtomicBool,
}

impl std::fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

impl ClientStream {
    /// The stream's id.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The stream's kind, as opened.
    #[must_use]
    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Sends one message and writes it out. While the connection's
    /// transmit queue is full (the server is not reading) it waits for the
    /// queue to drain: ttrpc has no flow control, so this is the only
    /// back-pressure a sender gets.
    ///
    /// # Errors
    /// [`Error::StreamClosed`] after [`Self::close_send`], on a
    /// server-streaming call, or once the stream ended (e.g. the server
    /// answered early); [`Error::TooLarge`]; [`Error::Closed`].
    pub fn send(&self, payload: &[u8]) -> Result<(), Error> {
        loop {
            let mut st = lock(&self.inner.state);
            match st.core.send_data(self.id, payload) {
                Ok(()) => break,
                Err(SendError::TransmitQueueFull) => {
                    drop(st);
                    self.inner.flush();
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.inner.flush();
        Ok(())
    }

    /// Encodes and sends one prost message (see [`Self::send`]).
    ///
    /// # Errors
    /// As [`Self::send`].
    pub fn send_msg<M: Message>(&self, message: &M) -> Result<(), Error> {
        self.send(&message.encode_to_vec())
    }

    /// Half-closes: the server sees the end of the client's messages;
    /// answers keep arriving.
    ///
    /// # Errors
    /// As [`Self::send`], except the size limit.
    pub fn close_send(&self) -> Result<(), Error> {
        lock(&self.inner.state).core.close_send(self.id)?;
        self.inner.flush();
        Ok(())
    }

    /// Waits for the next message from the server: `Ok(Some(message))`,
    /// or `Ok(None)` once the server finished the stream successfully
    /// (then always `Ok(None)`). A client-streaming call's answer arrives
    /// as one message, then `Ok(None)`.
    ///
    /// # Errors
    /// [`Error::Status`] when the server finished with an error (e.g.
    /// `Unimplemented` from a peer without streams);
    /// [`Error::DeadlineExceeded`]; [`Error::Closed`] when the connection
    /// ended mid-stream (e.g. the server vanished); a `ResourceExhausted`
    /// status when this side took no message for the stall timeout while
    /// the stream's receive queue was full.
    pub fn recv(&self) -> Result<Option<Bytes>, Error> {
        if self.is_ended() {
            return Ok(None);
        }
        let inner = &self.inner;
        let me = thread::current();
        let mut st = lock(&inner.state);
        let result = loop {
            if let Some(item) = st.core.recv_stream(self.id) {
                if !st.core.wants_read() {
                    // Decoding was paused at the streams' byte bound:
                    // taking a message may resume it.
                    st.drain();
                    inner.wake_reader();
                    st.hand_over();
                }
                match item {
                    StreamItem::Message(m) => break Ok(Some(m)),
                    StreamItem::End(result) => {
                        self.ended.store(true, Ordering::Release);
                        break result.map(|()| None).map_err(Error::from);
                    }
                }
            }
            if !st.core.has_stream(self.id) {
                // Abandoned, or unknown to a closed connection.
                self.ended.store(true, Ordering::Release);
                break Err(Error::Closed(ConnectionError::LocallyClosed));
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|at| at <= now) {
                // Our deadline passed: the core queues the stream's end.
                st.core.handle_timeout(now);
                st.drain();
                continue;
            }
            if !st
                .stream_waiters
                .iter()
                .any(|(id, t)| *id == self.id && t.id() == me.id())
            {
                st.stream_waiters.push((self.id, me.clone()));
            }
            if st.reader_free() {
                st.take_reader();
                let due = st.core.poll_timeout();
                drop(st);
                inner.read_turn(due);
            } else {
                let background = st.background_reads();
                // Paused at the byte bound with nobody reading: wake for
                // the stall timer that ends the pause.
                let due = [self.deadline, st.core.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                drop(st);
                if background {
                    inner.wake_reader();
                }
                match due {
                    Some(at) => thread::park_timeout(at.saturating_duration_since(now)),
                    None => thread::park(),
                }
                let mut st = lock(&inner.state);
                st.core.handle_timeout(Instant::now());
                st.drain();
                drop(st);
            }
            st = lock(&inner.state);
        };
        st.stream_waiters
            .retain(|(id, t)| !(*id == self.id && t.id() == me.id()));
        result
    }

    /// Waits for the next message and decodes it (see [`Self::recv`]).
    ///
    /// # Errors
    /// As [`Self::recv`]; [`Error::Decode`] for a message that is not an
    /// `M`.
    pub fn recv_msg<M: Message + Default>(&self) -> Result<Option<M>, Error> {
        match self.recv()? {
            Some(bytes) => Ok(Some(M::decode(bytes)?)),
            None => Ok(None),
        }
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        if self.is_ended() {
            return;
        }
        let sent_close = {
            let mut st = lock(&self.inner.state);
            let sent = st.core.close_send(self.id).is_ok();
            st.core.abandon(self.id);
            sent
        };
        if sent_close {
            self.inner.flush();
        }
    }
}

/// The blocking operations behind a server handler's stream: the handler
/// runs on a worker thread, so `send` waits while the transmit queue is
/// full and `recv` until the client sends. It holds the connection (not
/// only its socket, which the connection thread shuts down when it ends)
/// so the handler learns why the stream ended.
pub(crate) struct StdStreamIo {
    pub(crate) conn: Arc<Conn>,
    pub(crate) id: StreamId,
}

impl StreamIo for StdStreamIo {
    fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.conn.stream_send(self.id, payload)
    }

    fn recv(&mut self) -> Option<StreamItem> {
        self.conn.stream_recv(self.id)
    }

    fn finish(&mut self, result: Option<Result<Bytes, Status>>) {
        self.conn.stream_finish(self.id, result);
    }
}

/// Lets generated stream stubs (`ttrpc-core`'s `codegen` feature) open
/// streams through this client.
impl ttrpc_core::stub::StreamCall for Client {
    type Error = Error;
    type Stream = ClientStream;

    fn open_stream_raw(
        &self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<ClientStream, Error> {
        self.open_stream(service, method, kind, payload, options)
    }
}

impl ttrpc_core::stub::RawStream for ClientStream {
    type Error = Error;

    fn send_raw(&self, payload: &[u8]) -> Result<(), Error> {
        self.send(payload)
    }

    fn close_send(&self) -> Result<(), Error> {
        Self::close_send(self)
    }

    fn recv_raw(&self) -> Result<Option<Bytes>, Error> {
        self.recv()
    }
}
