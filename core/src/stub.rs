//! What generated service stubs (see the `codegen` feature) build on: the
//! [`UnaryCall`] trait a transport's client implements, the typed
//! [`Reply`] a server method answers through, and [`serve`], which decodes
//! a request and hands it to a typed method.
//!
//! Nothing here does IO. A client stub is `XxxClient<C: UnaryCall>`;
//! `ttrpc-std`'s `Client` implements [`UnaryCall`], and so does any `&C`.
//!
//! Messages are decoded from a borrowed `&[u8]`, never from the payload's
//! [`Bytes`]: prost's decoding code, generated per message and per buffer
//! type, is much smaller for a slice (about 3 KB less in `shimctl`, which
//! decodes some forty message types), and one buffer type everywhere keeps
//! one copy per message. The price falls only on `bytes` fields mapped to
//! [`Bytes`] (prost-build's `bytes` option): they are copied rather than
//! sliced. Where that matters, decode the untyped payload
//! ([`IncomingRequest::payload`], [`UnaryCall::call_raw`]) yourself.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use prost::Message;

use crate::client::CallOptions;
use crate::code::{Code, Status};
use crate::error::{CallError, SendError};
use crate::server::IncomingRequest;
use crate::service::{Responder, ServerStream};
use crate::stream::{StreamId, StreamKind};

/// A blocking unary call: what a generated client stub needs from a
/// transport.
///
/// The request payload is an encoded protobuf message; an empty payload is
/// a valid encoding of any message (and the only encoding of
/// `google.protobuf.Empty`, which prost-build maps to `()`).
pub trait UnaryCall {
    /// The transport's error. A stub also fails with it when an answer does
    /// not decode.
    type Error: From<prost::DecodeError>;

    /// Calls `service`/`method` with `payload` and returns the answer's
    /// payload.
    ///
    /// # Errors
    /// Whatever the transport reports, including a non-OK status.
    fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Self::Error>;
}

impl<T: UnaryCall + ?Sized> UnaryCall for &T {
    type Error = T::Error;

    fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Self::Error> {
        (**self).call_raw(service, method, payload, options)
    }
}

impl<T: UnaryCall + ?Sized> UnaryCall for std::sync::Arc<T> {
    type Error = T::Error;

    fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Self::Error> {
        (**self).call_raw(service, method, payload, options)
    }
}

/// Encodes `request`, calls, and decodes the answer: the body of every
/// generated client method.
///
/// # Errors
/// The transport's error, or a decode error converted into it.
pub fn call<C, Req, Resp>(
    client: &C,
    service: &str,
    method: &str,
    request: &Req,
    options: &CallOptions,
) -> Result<Resp, C::Error>
where
    C: UnaryCall + ?Sized,
    Req: Message,
    Resp: Message + Default,
{
    let answer = call_encoded(client, service, method, request.encode_to_vec(), options)?;
    Ok(Resp::decode(&answer[..])?)
}

/// The part of [`call`] that does not depend on the message types, once
/// per transport rather than once per method.
#[inline(never)]
fn call_encoded<C: UnaryCall + ?Sized>(
    client: &C,
    service: &str,
    method: &str,
    payload: Vec<u8>,
    options: &CallOptions,
) -> Result<Bytes, C::Error> {
    client.call_raw(service, method, &payload, options)
}

/// The typed, one-shot answer to a request: a [`Responder`] that encodes a
/// `T`. Keep it to answer later (from any thread); dropping it unanswered
/// answers `Internal`, as [`Responder`] does.
#[must_use = "a request is answered only through its reply"]
pub struct Reply<T> {
    responder: Responder,
    _answer: PhantomData<fn(T)>,
}

impl<T: Message> Reply<T> {
    /// Wraps an untyped responder.
    pub fn new(responder: Responder) -> Self {
        Self {
            responder,
            _answer: PhantomData,
        }
    }

    /// The stream being answered.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.responder.id()
    }

    /// Answers with a message or a status.
    pub fn send(self, result: Result<T, Status>) {
        match result {
            Ok(message) => self.ok(&message),
            Err(status) => self.error(status),
        }
    }

    /// Answers with a message.
    pub fn ok(self, message: &T) {
        reply_encoded(self.responder, message.encode_to_vec());
    }

    /// Answers with a status.
    pub fn error(self, status: Status) {
        self.responder.error(status);
    }

    /// The untyped responder, e.g. to answer with pre-encoded bytes.
    pub fn into_responder(self) -> Responder {
        self.responder
    }
}

/// Answers with an encoded message: the part of [`Reply::ok`] that does
/// not depend on the message type.
#[inline(never)]
fn reply_encoded(responder: Responder, payload: Vec<u8>) {
    responder.reply(Ok(payload.into()));
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("responder", &self.responder)
            .finish()
    }
}

/// Decodes `request.payload` as a `Req` and calls `method` with the request
/// (for its metadata and deadline), the message and a typed reply: the
/// body of every generated route. A payload that does not decode is
/// answered `InvalidArgument` and `method` is not called.
pub fn serve<Req, Resp, F>(request: IncomingRequest, responder: Responder, method: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(&IncomingRequest, Req, Reply<Resp>),
{
    match Req::decode(&request.payload[..]) {
        Ok(message) => method(&request, message, Reply::new(responder)),
        Err(e) => reject_malformed(&request, responder, &e),
    }
}

/// Answers a request that does not decode (see [`malformed_request`]).
#[inline(never)]
fn reject_malformed(request: &IncomingRequest, responder: Responder, e: &prost::DecodeError) {
    responder.error(malformed_request(request, e));
}

/// The `InvalidArgument` a request that does not decode is answered with.
#[inline(never)]
fn malformed_request(request: &IncomingRequest, e: &prost::DecodeError) -> Status {
    Status::new(
        Code::InvalidArgument,
        format!(
            "{}/{}: malformed request: {e}",
            request.service, request.method
        ),
    )
}

/// The status a generated server method answers when the implementation
/// does not override it: `Unimplemented` with Go's message (`method NAME`).
#[must_use]
pub fn unimplemented(method: &str) -> Status {
    crate::service::unimplemented_status("method ", method)
}

/// A blocking streaming transport: what generated stream stubs need
/// (`ttrpc-std`'s `Client` implements it).
pub trait StreamCall {
    /// The transport's error; a stub also fails with it when a message does
    /// not decode.
    type Error: From<prost::DecodeError>;
    /// The transport's stream handle.
    type Stream: RawStream<Error = Self::Error>;

    /// Opens a stream on `service`/`method` (see
    /// [`ClientConnection::open_stream`](crate::ClientConnection::open_stream)
    /// for `payload`).
    ///
    /// # Errors
    /// Whatever the transport reports before the stream is open.
    fn open_stream_raw(
        &self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Self::Stream, Self::Error>;
}

impl<T: StreamCall + ?Sized> StreamCall for &T {
    type Error = T::Error;
    type Stream = T::Stream;

    fn open_stream_raw(
        &self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Self::Stream, Self::Error> {
        (**self).open_stream_raw(service, method, kind, payload, options)
    }
}

impl<T: StreamCall + ?Sized> StreamCall for std::sync::Arc<T> {
    type Error = T::Error;
    type Stream = T::Stream;

    fn open_stream_raw(
        &self,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Self::Stream, Self::Error> {
        (**self).open_stream_raw(service, method, kind, payload, options)
    }
}

/// One open client stream of a blocking transport, untyped.
pub trait RawStream {
    /// The transport's error.
    type Error;

    /// Sends one serialized message, waiting while the transmit queue is
    /// full.
    ///
    /// # Errors
    /// The stream is closed for sending, or the connection failed.
    fn send_raw(&self, payload: &[u8]) -> Result<(), Self::Error>;

    /// Half-closes the stream.
    ///
    /// # Errors
    /// As [`Self::send_raw`].
    fn close_send(&self) -> Result<(), Self::Error>;

    /// Waits for the next serialized message; `Ok(None)` at a successful
    /// end.
    ///
    /// # Errors
    /// How the stream failed (a status from the server, a deadline, the
    /// connection's end).
    fn recv_raw(&self) -> Result<Option<Bytes>, Self::Error>;
}

/// A typed client stream: sends `Req` messages and receives `Resp`
/// messages over a transport's [`RawStream`]. What generated stream
/// methods return.
pub struct TypedStream<S, Req, Resp> {
    inner: S,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<S, Req, Resp> TypedStream<S, Req, Resp>
where
    S: RawStream,
    S::Error: From<prost::DecodeError>,
    Req: Message,
    Resp: Message + Default,
{
    /// Wraps an untyped stream.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            _types: PhantomData,
        }
    }

    /// Sends one message (client-streaming and bidirectional calls).
    ///
    /// # Errors
    /// As [`RawStream::send_raw`].
    pub fn send(&self, message: &Req) -> Result<(), S::Error> {
        self.inner.send_raw(&message.encode_to_vec())
    }

    /// Half-closes: the server sees the end of this side's messages.
    ///
    /// # Errors
    /// As [`RawStream::close_send`].
    pub fn close_send(&self) -> Result<(), S::Error> {
        self.inner.close_send()
    }

    /// Waits for the next message; `Ok(None)` once the server finished
    /// successfully.
    ///
    /// # Errors
    /// As [`RawStream::recv_raw`], or a message that does not decode.
    pub fn recv(&self) -> Result<Option<Resp>, S::Error> {
        match self.inner.recv_raw()? {
            Some(bytes) => Ok(Some(Resp::decode(&bytes[..])?)),
            None => Ok(None),
        }
    }

    /// For a client-streaming call: half-closes, then waits for the one
    /// answer (an empty answer decodes as `Resp::default()`).
    ///
    /// # Errors
    /// As [`Self::close_send`] and [`Self::recv`].
    pub fn close_and_recv(&self) -> Result<Resp, S::Error> {
        self.close_send()?;
        Ok(self.recv()?.unwrap_or_default())
    }

    /// The untyped stream.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The untyped stream, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, Req, Resp> fmt::Debug for TypedStream<S, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedStream")
            .field("inner", &self.inner)
            .finish()
    }
}

/// Opens a typed stream: the body of every generated stream method.
/// `request` is the request message of a server-streaming call, `None` for
/// client-streaming and bidirectional calls (their messages go through
/// [`TypedStream::send`]).
///
/// # Errors
/// The transport's error.
pub fn open<C, Req, Resp>(
    client: &C,
    service: &str,
    method: &str,
    kind: StreamKind,
    request: Option<&Req>,
    options: &CallOptions,
) -> Result<TypedStream<C::Stream, Req, Resp>, C::Error>
where
    C: StreamCall + ?Sized,
    Req: Message,
    Resp: Message + Default,
{
    let payload = request.map(Message::encode_to_vec).unwrap_or_default();
    let stream = client.open_stream_raw(service, method, kind, &payload, options)?;
    Ok(TypedStream::new(stream))
}

/// A typed server stream: receives `Req` messages and sends `Resp`
/// messages over a handler's [`ServerStream`]. What generated stream
/// methods of a server trait get. Dropping it unfinished answers
/// `Internal`.
#[must_use = "a stream is finished only through close or respond"]
pub struct ServerStreamOf<Req, Resp> {
    inner: ServerStream,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req: Message + Default, Resp: Message> ServerStreamOf<Req, Resp> {
    /// Wraps an untyped stream.
    pub fn new(inner: ServerStream) -> Self {
        Self {
            inner,
            _types: PhantomData,
        }
    }

    /// The stream's id.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.inner.id()
    }

    /// The next message from the client; `Ok(None)` once it half-closed
    /// (at once for a server-streaming call).
    ///
    /// # Errors
    /// The status describing how the stream failed (the connection ended:
    /// `Unavailable`; the receive queue stalled: `ResourceExhausted`), or
    /// `InvalidArgument` for a message that does not decode.
    pub fn recv(&mut self) -> Result<Option<Req>, Status> {
        match self.inner.recv() {
            Ok(Some(bytes)) => Req::decode(&bytes[..]).map(Some).map_err(|e| {
                Status::new(
                    Code::InvalidArgument,
                    format!("malformed stream message: {e}"),
                )
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(match e {
                CallError::Status(s) => s,
                other => Status::new(other.code(), other.to_string()),
            }),
        }
    }

    /// Sends one message to the client.
    ///
    /// # Errors
    /// The stream or connection ended ([`SendError`]).
    pub fn send(&mut self, message: &Resp) -> Result<(), SendError> {
        self.inner.send(&message.encode_to_vec())
    }

    /// Finishes a streaming answer successfully.
    pub fn close(self) {
        self.inner.close();
    }

    /// Finishes with a final Response: a client-streaming call's answer,
    /// or a status.
    pub fn respond(self, result: Result<Resp, Status>) {
        self.inner
            .respond(result.map(|m| Bytes::from(m.encode_to_vec())));
    }

    /// The untyped stream.
    pub fn into_inner(self) -> ServerStream {
        self.inner
    }
}

impl<Req, Resp> fmt::Debug for ServerStreamOf<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerStreamOf")
            .field("inner", &self.inner)
            .finish()
    }
}

/// Decodes a server-streaming call's request and calls `method` with it
/// and the typed stream; a request that does not decode finishes the
/// stream `InvalidArgument`. The body of generated server-streaming routes.
pub fn serve_stream<Req, Resp, F>(request: IncomingRequest, stream: ServerStream, method: F)
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(&IncomingRequest, Req, ServerStreamOf<Req, Resp>),
{
    match Req::decode(&request.payload[..]) {
        Ok(message) => method(&request, message, ServerStreamOf::new(stream)),
        Err(e) => stream.respond(Err(malformed_request(&request, &e))),
    }
}
