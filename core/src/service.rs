//! Dispatch: service + method → handler, shared by every transport so that
//! `Unimplemented` answers and handler failures are produced in one place.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;

use crate::code::{Code, Status};
use crate::error::{CallError, SendError};
use crate::recv::StreamItem;
use crate::server::IncomingRequest;
use crate::stream::StreamId;

/// Where a [`Responder`] delivers its answer. Transports supply one: a
/// channel to the connection's thread, a queue plus a `mio::Waker`, or a
/// direct call when the handler runs inline.
pub type ResponseSink = Box<dyn FnOnce(StreamId, Result<Bytes, Status>) + Send>;

/// The one-shot answer to a request. A handler may reply at once, or keep
/// the responder and reply later from any thread (a shim's `Wait` replies
/// when a process exits).
///
/// Dropping it without replying answers `Internal`, so a client never waits
/// for an answer that cannot come — this also covers a handler that panics.
#[must_use = "a request is answered only through its responder"]
pub struct Responder {
    id: StreamId,
    sink: Option<ResponseSink>,
}

impl Responder {
    /// A responder for stream `id` that delivers to `sink`.
    pub fn new(id: StreamId, sink: ResponseSink) -> Self {
        Self {
            id,
            sink: Some(sink),
        }
    }

    /// The stream being answered.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Answers with a payload or a status.
    #[inline(never)] // the one copy every answer (and its helpers) calls
    pub fn reply(mut self, result: Result<Bytes, Status>) {
        if let Some(sink) = self.sink.take() {
            sink(self.id, result);
        }
    }

    /// Answers with a serialized payload.
    pub fn ok(self, payload: impl Into<Bytes>) {
        self.reply(Ok(payload.into()));
    }

    /// Answers with a status.
    pub fn error(self, status: Status) {
        self.reply(Err(status));
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink(
                self.id,
                Err(Status::new(
                    Code::Internal,
                    "ttrpc: handler returned no reply (it panicked or dropped its responder)",
                )),
            );
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("id", &self.id)
            .field("replied", &self.sink.is_none())
            .finish()
    }
}

/// A method implementation. It must answer through the responder, now or
/// later; it must not block an event loop (transport-std runs it on a worker
/// thread, so blocking there is fine).
pub trait Handler: Send + Sync + 'static {
    /// Handles one request.
    fn call(&self, request: IncomingRequest, responder: Responder);
}

impl<F> Handler for F
where
    F: Fn(IncomingRequest, Responder) + Send + Sync + 'static,
{
    fn call(&self, request: IncomingRequest, responder: Responder) {
        self(request, responder);
    }
}

/// What a transport supplies for one server stream: the operations a
/// [`ServerStream`] forwards to. They **may block**: a transport that runs
/// stream handlers on threads of their own (`ttrpc-std`) waits in `send`
/// while the connection's transmit queue is full and in `recv` until an
/// item arrives. Implemented by transports, not by applications.
pub trait StreamIo: Send {
    /// Queues one message (a Data frame), waiting while the transmit queue
    /// is at its bound.
    ///
    /// # Errors
    /// The stream or connection ended ([`SendError::UnknownStream`],
    /// [`SendError::Closed`]), or the message is too large.
    fn send(&mut self, payload: &[u8]) -> Result<(), SendError>;
    /// The next item the client sent, waiting until one arrives. `None`
    /// only after `End` was returned (or the stream was finished).
    fn recv(&mut self) -> Option<StreamItem>;
    /// Finishes the stream: `None` as Go does for a successful streaming
    /// answer (a Data frame with remote-closed), `Some(result)` with a
    /// final Response (a client-streaming call's answer, or any error).
    fn finish(&mut self, result: Option<Result<Bytes, Status>>);
}

/// One stream as a server handler sees it: receive what the client sends,
/// send messages back, and finish with [`Self::close`] or
/// [`Self::respond`]. Dropping it unfinished answers `Internal`, as a
/// dropped [`Responder`] does.
///
/// Whether its methods block is the transport's: `ttrpc-std` runs each
/// stream handler on a worker thread and blocks there.
#[must_use = "a stream is finished only through close or respond"]
pub struct ServerStream {
    id: StreamId,
    io: Option<Box<dyn StreamIo>>,
    ended: bool,
}

impl ServerStream {
    /// A stream on `id` backed by the transport's `io`.
    pub fn new(id: StreamId, io: Box<dyn StreamIo>) -> Self {
        Self {
            id,
            io: Some(io),
            ended: false,
        }
    }

    /// The stream's id.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Sends one message to the client.
    ///
    /// # Errors
    /// As [`StreamIo::send`]: the stream or connection ended, or the
    /// message is too large.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        match self.io.as_mut() {
            Some(io) => io.send(payload),
            None => Err(SendError::UnknownStream(self.id)),
        }
    }

    /// The next message from the client: `Ok(Some(message))`, `Ok(None)`
    /// once the client half-closed (at once for a server-streaming call),
    /// or why the stream failed (the connection ended, or the receive
    /// queue stayed full for the stall timeout).
    ///
    /// # Errors
    /// The [`CallError`] the stream ended with.
    pub fn recv(&mut self) -> Result<Option<Bytes>, CallError> {
        if self.ended {
            return Ok(None);
        }
        match self.io.as_mut().and_then(|io| io.recv()) {
            Some(StreamItem::Message(m)) => Ok(Some(m)),
            Some(StreamItem::End(result)) => {
                self.ended = true;
                result.map(|()| None)
            }
            None => {
                self.ended = true;
                Ok(None)
            }
        }
    }

    /// Finishes successfully, as Go does for a streaming answer: a Data
    /// frame with remote-closed and no payload.
    pub fn close(mut self) {
        if let Some(mut io) = self.io.take() {
            io.finish(None);
        }
    }

    /// Finishes with a final Response: a payload (the answer of a
    /// client-streaming call) or a status (any kind of stream).
    pub fn respond(mut self, result: Result<Bytes, Status>) {
        if let Some(mut io) = self.io.take() {
            io.finish(Some(result));
        }
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        if let Some(mut io) = self.io.take() {
            io.finish(Some(Err(Status::new(
                Code::Internal,
                "ttrpc: stream handler returned without finishing the stream",
            ))));
        }
    }
}

impl fmt::Debug for ServerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStream")
            .field("id", &self.id)
            .field("finished", &self.io.is_none())
            .finish()
    }
}

/// A streaming method implementation: gets the opening request and the
/// stream. It may block (it runs on a worker thread of its own in
/// `ttrpc-std`) and must finish the stream, now or later.
pub trait StreamHandler: Send + Sync + 'static {
    /// Handles one stream.
    fn call(&self, request: IncomingRequest, stream: ServerStream);
}

impl<F> StreamHandler for F
where
    F: Fn(IncomingRequest, ServerStream) + Send + Sync + 'static,
{
    fn call(&self, request: IncomingRequest, stream: ServerStream) {
        self(request, stream);
    }
}

enum Method {
    Unary(Box<dyn Handler>),
    Stream(Box<dyn StreamHandler>),
}

/// How a dispatch went, for the transport's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatch {
    /// A handler ran and returned (it may reply later).
    Handled,
    /// No such service or method: answered `Unimplemented`.
    Unimplemented,
    /// The handler panicked; its request was answered `Internal` unless it
    /// had already replied.
    Panicked,
}

/// The services a server offers: service name → method name → handler.
#[derive(Default)]
pub struct Registry {
    /// Sorted by (service, method), pairs unique: one flat table rather
    /// than a map of maps, so a lookup is one binary search.
    methods: Vec<(String, String, Method)>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `service`/`method` is (`Ok`), or where it would go (`Err`).
    fn find(&self, service: &str, method: &str) -> Result<usize, usize> {
        self.methods
            .binary_search_by(|(s, m, _)| (s.as_str(), m.as_str()).cmp(&(service, method)))
    }

    fn insert(&mut self, service: String, method: String, handler: Method) {
        match self.find(&service, &method) {
            Ok(i) => {
                if let Some(entry) = self.methods.get_mut(i) {
                    entry.2 = handler;
                }
            }
            Err(i) => self.methods.insert(i, (service, method, handler)),
        }
    }

    /// The handler of `service`/`method`, or the `Unimplemented` status Go
    /// answers without one (`service NAME` or `method NAME`).
    fn lookup(&self, service: &str, method: &str) -> Result<&Method, Status> {
        let found = self.find(service, method).ok();
        match found.and_then(|i| self.methods.get(i)) {
            Some((_, _, handler)) => Ok(handler),
            None if self.has_service(service) => Err(unimplemented_status("method ", method)),
            None => Err(unimplemented_status("service ", service)),
        }
    }

    /// Registers `handler` for `service`/`method`, replacing any earlier one.
    pub fn register(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        handler: impl Handler,
    ) -> &mut Self {
        let handler = Method::Unary(Box::new(handler));
        self.insert(service.into(), method.into(), handler);
        self
    }

    /// Registers a streaming method (client-streaming, server-streaming or
    /// bidirectional), replacing any earlier handler. As in Go, the
    /// registration decides: a stream opened on this method goes to
    /// `handler`; a unary request for it is answered `Unimplemented`.
    pub fn register_stream(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        handler: impl StreamHandler,
    ) -> &mut Self {
        let handler = Method::Stream(Box::new(handler));
        self.insert(service.into(), method.into(), handler);
        self
    }

    /// Whether `service`/`method` is registered as a streaming method: a
    /// transport then hands a stream request for it to
    /// [`Self::dispatch_stream`] (everything else to [`Self::dispatch`]).
    #[must_use]
    pub fn is_stream_method(&self, service: &str, method: &str) -> bool {
        matches!(self.lookup(service, method), Ok(Method::Stream(_)))
    }

    /// Registers a handler that answers at once with a payload or a status.
    pub fn register_fn<F>(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(&IncomingRequest) -> Result<Bytes, Status> + Send + Sync + 'static,
    {
        self.register(
            service,
            method,
            move |req: IncomingRequest, r: Responder| {
                r.reply(f(&req));
            },
        )
    }

    /// Whether `service` has any method registered.
    #[must_use]
    pub fn has_service(&self, service: &str) -> bool {
        let i = self
            .methods
            .partition_point(|(s, _, _)| s.as_str() < service);
        self.methods.get(i).is_some_and(|(s, _, _)| s == service)
    }

    /// Runs the handler for `request`, or answers `Unimplemented` with Go's
    /// messages (`service NAME`, `method NAME`). A panicking handler is
    /// caught; its responder, dropped while unwinding, answers `Internal`.
    pub fn dispatch(&self, request: IncomingRequest, responder: Responder) -> Dispatch {
        let handler = match self.lookup(&request.service, &request.method) {
            Ok(Method::Unary(handler)) => handler,
            found => {
                // Unknown, or a streaming method called without a stream.
                responder.error(not_found(found.err(), &request.method));
                return Dispatch::Unimplemented;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| handler.call(request, responder))) {
            Ok(()) => Dispatch::Handled,
            Err(_) => Dispatch::Panicked,
        }
    }

    /// Runs the stream handler for `request`, or finishes the stream
    /// `Unimplemented` (Go's messages). A panicking handler is caught; its
    /// stream, dropped while unwinding, answers `Internal`.
    pub fn dispatch_stream(&self, request: IncomingRequest, stream: ServerStream) -> Dispatch {
        let handler = match self.lookup(&request.service, &request.method) {
            Ok(Method::Stream(handler)) => handler,
            found => {
                stream.respond(Err(not_found(found.err(), &request.method)));
                return Dispatch::Unimplemented;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| handler.call(request, stream))) {
            Ok(()) => Dispatch::Handled,
            Err(_) => Dispatch::Panicked,
        }
    }
}

/// `Unimplemented` with Go's message: `service NAME` or `method NAME`.
pub(crate) fn unimplemented_status(what: &str, name: &str) -> Status {
    Status::new(Code::Unimplemented, what.to_owned() + name)
}

/// The status of a lookup that found no handler of the right kind: the
/// lookup's own, or (a handler of the other kind) `method NAME`.
fn not_found(lookup: Option<Status>, method: &str) -> Status {
    lookup.unwrap_or_else(|| unimplemented_status("method ", method))
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        let mut rest = &self.methods[..];
        while let Some((service, _, _)) = rest.first() {
            let n = rest.iter().take_while(|(s, _, _)| s == service).count();
            let (these, more) = rest.split_at(n);
            map.entry(
                service,
                &these.iter().map(|(_, m, _)| m).collect::<Vec<_>>(),
            );
            rest = more;
        }
        map.finish()
    }
}
