//! What generated service stubs (see the `codegen` feature) build on: the
//! [`UnaryCall`] trait a transport's client implements, the typed
//! [`Reply`] a server method answers through, and [`serve`], which decodes
//! a request and hands it to a typed method.
//!
//! Nothing here does IO. A client stub is `XxxClient<C: UnaryCall>`;
//! `ttrpc-std`'s `Client` implements [`UnaryCall`], and so does any `&C`.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use prost::Message;

use crate::client::CallOptions;
use crate::code::{Code, Status};
use crate::server::IncomingRequest;
use crate::service::Responder;
use crate::stream::StreamId;

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
    let payload = request.encode_to_vec();
    let answer = client.call_raw(service, method, &payload, options)?;
    Ok(Resp::decode(answer)?)
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
        self.responder.ok(message.encode_to_vec());
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
    match Req::decode(request.payload.clone()) {
        Ok(message) => method(&request, message, Reply::new(responder)),
        Err(e) => responder.error(Status::new(
            Code::InvalidArgument,
            format!(
                "{}/{}: malformed request: {e}",
                request.service, request.method
            ),
        )),
    }
}

/// The status a generated server method answers when the implementation
/// does not override it: `Unimplemented` with Go's message (`method NAME`).
#[must_use]
pub fn unimplemented(method: &str) -> Status {
    Status::new(Code::Unimplemented, format!("method {method}"))
}
