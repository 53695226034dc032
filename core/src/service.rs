//! Dispatch: service + method → handler, shared by every transport so that
//! `Unimplemented` answers and handler failures are produced in one place.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;

use crate::code::{Code, Status};
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
    services: BTreeMap<String, BTreeMap<String, Box<dyn Handler>>>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `service`/`method`, replacing any earlier one.
    pub fn register(
        &mut self,
        service: impl Into<String>,
        method: impl Into<String>,
        handler: impl Handler,
    ) -> &mut Self {
        self.services
            .entry(service.into())
            .or_default()
            .insert(method.into(), Box::new(handler));
        self
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
        self.services.contains_key(service)
    }

    /// Runs the handler for `request`, or answers `Unimplemented` with Go's
    /// messages (`service NAME`, `method NAME`). A panicking handler is
    /// caught; its responder, dropped while unwinding, answers `Internal`.
    pub fn dispatch(&self, request: IncomingRequest, responder: Responder) -> Dispatch {
        let Some(methods) = self.services.get(&request.service) else {
            let msg = format!("service {}", request.service);
            responder.error(Status::new(Code::Unimplemented, msg));
            return Dispatch::Unimplemented;
        };
        let Some(handler) = methods.get(&request.method) else {
            let msg = format!("method {}", request.method);
            responder.error(Status::new(Code::Unimplemented, msg));
            return Dispatch::Unimplemented;
        };
        match catch_unwind(AssertUnwindSafe(|| handler.call(request, responder))) {
            Ok(()) => Dispatch::Handled,
            Err(_) => Dispatch::Panicked,
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (service, methods) in &self.services {
            map.entry(service, &methods.keys().collect::<Vec<_>>());
        }
        map.finish()
    }
}
