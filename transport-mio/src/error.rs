//! The error type of this crate.

use std::io;

use ttrpc_core::{CallError, Code, ConnectionError, SendError, Status};

/// Why a call, a connect, a bind or a registration failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with a non-OK status.
    #[error("{0}")]
    Status(Status),
    /// The call's deadline passed before an answer arrived (enforced
    /// locally through the loop's timeout; a late answer is dropped).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled locally with [`crate::Client::cancel`]; the
    /// server is not told (ttrpc has no cancel frame).
    #[error("call cancelled")]
    Cancelled,
    /// The connection ended, before or during the call.
    #[error("connection closed: {0}")]
    Closed(ConnectionError),
    /// The request is over the maximum message size: nothing was queued.
    #[error("request of {len} bytes exceeds the maximum message size of {max}")]
    TooLarge {
        /// The encoded request length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// The transmit queue is at its bound (the peer is not reading): let
    /// the loop flush, then retry (a client's stream gets
    /// `StreamEvent::Writable`, a server stream `on_writable`).
    #[error("transmit queue is full")]
    Busy,
    /// The stream is closed for sending: this side half-closed it, it is
    /// server-streaming, or it already ended.
    #[error("stream {0} is closed for sending")]
    StreamClosed(ttrpc_core::StreamId),
    /// Every stream id of this connection has been used: open a new one.
    #[error("stream ids exhausted: open a new connection")]
    StreamIdsExhausted,
    /// The answer could not be decoded.
    #[error("malformed message: {0}")]
    Decode(#[from] ttrpc_core::prost::DecodeError),
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Parsing, binding or connecting an address failed (the rules are
    /// `ttrpc-std`'s: see [`ttrpc_std::Address`]).
    #[error(transparent)]
    Address(#[from] ttrpc_std::Error),
    /// The token range granted to a server is too small (it needs one
    /// token for its waker, one for its listener, and one per connection).
    #[error("token range {start}..{end} too small: need at least 3 tokens")]
    Tokens {
        /// First token of the range.
        start: usize,
        /// One past the last token.
        end: usize,
    },
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The status code that best describes this error.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::Status(s) => s.code,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::Cancelled => Code::Cancelled,
            Self::Closed(_) | Self::Io { .. } => Code::Unavailable,
            Self::TooLarge { .. } | Self::StreamIdsExhausted | Self::Busy => {
                Code::ResourceExhausted
            }
            Self::Decode(_) | Self::Protocol(_) => Code::Internal,
            Self::StreamClosed(_) => Code::FailedPrecondition,
            Self::Address(e) => e.code(),
            Self::Tokens { .. } => Code::InvalidArgument,
        }
    }

    /// The status, when the peer answered with one.
    #[must_use]
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Status(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Status(s) => Self::Status(s),
            CallError::DeadlineExceeded => Self::DeadlineExceeded,
            CallError::ConnectionClosed(c) => Self::Closed(c),
            CallError::Decode(d) => Self::Decode(d),
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Closed(c) => Self::Closed(c),
            SendError::StreamIdsExhausted => Self::StreamIdsExhausted,
            SendError::TooLarge { len, max } => Self::TooLarge { len, max },
            SendError::TransmitQueueFull => Self::Busy,
            SendError::UnknownStream(id) | SendError::StreamClosed(id) => Self::StreamClosed(id),
            other => Self::Protocol(other.to_string()),
        }
    }
}
