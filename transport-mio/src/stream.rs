//! Server streams driven from the loop: a [`StreamSession`] per stream,
//! called back when the client's messages arrive and when a full transmit
//! queue has drained, with a [`StreamCtx`] to receive, send and finish.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use ttrpc_core::{
    Code, IncomingRequest, SendError, ServerConnection, Status, StreamId, StreamItem,
};

use crate::error::Error;

/// One stream's handler, created by the opener given to
/// [`Server::register_stream`](crate::Server::register_stream) when a
/// client opens a stream on that method. Called on the loop thread: never
/// block in it.
pub trait StreamSession: Send + 'static {
    /// The stream opened, or items arrived: take them with
    /// [`StreamCtx::recv`] until it returns `None` (the session is called
    /// again when more arrive). Called once right after opening, so a
    /// server-streaming session can start sending (its `recv` returns the
    /// end at once).
    fn on_readable(&mut self, stream: &mut StreamCtx<'_>);

    /// A [`StreamCtx::send`] returned [`Error::Busy`] and the connection's
    /// transmit queue has drained: send again.
    fn on_writable(&mut self, stream: &mut StreamCtx<'_>) {
        let _ = stream;
    }
}

/// Creates a session for each stream opened on a method.
pub type StreamOpener = Box<dyn Fn(&IncomingRequest) -> Box<dyn StreamSession> + Send>;

/// One stream, as a [`StreamSession`] callback sees it: its connection's
/// core, borrowed for the callback.
#[derive(Debug)]
pub struct StreamCtx<'a> {
    core: &'a mut ServerConnection,
    id: StreamId,
    finished: bool,
    busy: bool,
}

impl StreamCtx<'_> {
    /// The stream's id.
    #[must_use]
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Takes the next item the client sent: a message, then one
    /// [`StreamItem::End`] (`Ok` when it half-closed; `Err` when the
    /// connection ended or the stream stalled). `None`: nothing now.
    pub fn recv(&mut self) -> Option<StreamItem> {
        self.core.recv_stream(self.id)
    }

    /// Queues one message; the loop writes it. Never blocks.
    ///
    /// # Errors
    /// [`Error::Busy`] while the transmit queue is full (nothing queued;
    /// [`StreamSession::on_writable`] follows); [`Error::StreamClosed`]
    /// once the stream ended; [`Error::TooLarge`]; [`Error::Closed`].
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        match self.core.send_data(self.id, payload) {
            Ok(()) => Ok(()),
            Err(SendError::TransmitQueueFull) => {
                self.busy = true;
                Err(Error::Busy)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Finishes successfully, as Go does for a streaming answer (a Data
    /// frame with remote-closed). The session is then dropped.
    pub fn close(&mut self) {
        if !self.finished {
            self.finished = true;
            // Fails only if the stream or connection already ended.
            let _ = self.core.close_send(self.id);
        }
    }

    /// Finishes with a final Response: a client-streaming call's answer,
    /// or a status. The session is then dropped.
    pub fn respond(&mut self, result: Result<Bytes, Status>) {
        if !self.finished {
            self.finished = true;
            let _ = self.core.send_response(self.id, result);
        }
    }

    /// Whether [`Self::close`] or [`Self::respond`] was called.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// A session and its bookkeeping, kept by its connection.
pub(crate) struct Session {
    handler: Box<dyn StreamSession>,
    want_writable: bool,
}

impl Session {
    pub(crate) fn new(handler: Box<dyn StreamSession>) -> Self {
        Self {
            handler,
            want_writable: false,
        }
    }

    pub(crate) fn wants_writable(&self) -> bool {
        self.want_writable
    }
}

/// Which callback to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Callback {
    Readable,
    Writable,
}

/// Runs one callback of `session`. Returns the session if it lives on: it
/// did not finish and its stream is still known to the core. A panic
/// finishes the stream `Internal` and drops the session.
pub(crate) fn run(
    core: &mut ServerConnection,
    id: StreamId,
    mut session: Session,
    callback: Callback,
) -> Option<Session> {
    let mut ctx = StreamCtx {
        core,
        id,
        finished: false,
        busy: false,
    };
    if matches!(callback, Callback::Writable) {
        session.want_writable = false;
    }
    let handler = &mut session.handler;
    let outcome = catch_unwind(AssertUnwindSafe(|| match callback {
        Callback::Readable => handler.on_readable(&mut ctx),
        Callback::Writable => handler.on_writable(&mut ctx),
    }));
    if outcome.is_err() {
        ctx.respond(Err(Status::new(
            Code::Internal,
            "ttrpc: stream session panicked",
        )));
        return None;
    }
    session.want_writable |= ctx.busy;
    let live = !ctx.finished && ctx.core.has_stream(id);
    live.then_some(session)
}
