//! The error type of this crate: what a call, a bind or a serve can fail with.

use std::io;
use std::path::PathBuf;

use ttrpc_core::{CallError, Code, ConnectionError, SendError, Status};

/// Why a call, a connect, a bind or a serve failed.
///
/// Every variant names its cause; [`Error::code`] maps it to a status code
/// for callers that want one number (as Go's `status.Code(err)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer answered with a non-OK status.
    #[error("{0}")]
    Status(Status),
    /// The call's deadline passed before an answer arrived (enforced
    /// locally; a late answer is dropped).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled locally; the server was not told (ttrpc has
    /// no cancel frame) and its late answer is dropped.
    #[error("call cancelled")]
    Cancelled,
    /// The connection ended, before or during the call.
    #[error("connection closed: {0}")]
    Closed(ConnectionError),
    /// The request is over the maximum message size: nothing was written.
    #[error("request of {len} bytes exceeds the maximum message size of {max}")]
    TooLarge {
        /// The encoded request length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// The stream is closed for sending: this side half-closed it, it is
    /// server-streaming, or it already ended (e.g. the server answered).
    #[error("stream {0} is closed for sending")]
    StreamClosed(ttrpc_core::StreamId),
    /// Every stream id of this connection has been used: open a new one.
    #[error("stream ids exhausted: open a new connection")]
    StreamIdsExhausted,
    /// The answer (or the request message) could not be decoded.
    #[error("malformed message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The peer broke the protocol (e.g. answered with a non-Response frame).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An address string that cannot be parsed.
    #[error("invalid address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A server is already listening on this socket path.
    #[error("address in use: a server is listening on {0}")]
    AddrInUse(PathBuf),
    /// The path exists and is not a socket: it is never removed.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    /// A server was asked to listen on an abstract socket it was not
    /// explicitly given (see [`crate::Address::LegacyAbstract`]).
    #[error(
        "refusing to listen on abstract socket {0}: abstract sockets ignore file permissions (CVE-2020-15257); pass \"@NAME\" to ask for one explicitly"
    )]
    AbstractRefused(String),
    /// The server has been shut down.
    #[error("server is shut down")]
    ShutDown,
    /// An operating-system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `connect to unix:///run/x.sock`.
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
            Self::Closed(_) | Self::ShutDown | Self::Io { .. } => Code::Unavailable,
            Self::TooLarge { .. } | Self::StreamIdsExhausted => Code::ResourceExhausted,
            Self::StreamClosed(_) => Code::FailedPrecondition,
            Self::Decode(_) | Self::Protocol(_) => Code::Internal,
            Self::InvalidAddress { .. }
            | Self::AddrInUse(_)
            | Self::NotASocket(_)
            | Self::AbstractRefused(_) => Code::InvalidArgument,
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

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        Self::Closed(e)
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
            SendError::UnknownStream(id) | SendError::StreamClosed(id) => Self::StreamClosed(id),
            other => Self::Protocol(other.to_string()),
        }
    }
}
