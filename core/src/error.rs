//! Error types, one enum per operation family.

use std::fmt::Write as _;

use crate::code::{Code, Status};
use crate::frame::FrameType;
use crate::stream::StreamId;

/// A duration as `Debug` prints it (`5s`, `1.5s`, `250ms`, `10µs`, `7ns`),
/// without `Debug`'s rounding machinery (about 2 KB in a static binary).
pub(crate) struct ShowDuration(pub(crate) std::time::Duration);

impl std::fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        // The whole units, and the rest in units of `1 / (10 * place)`.
        let (int, mut rest, mut place, unit) = if secs > 0 {
            (secs, nanos, 100_000_000, "s")
        } else if nanos >= 1_000_000 {
            (
                u64::from(nanos / 1_000_000),
                nanos % 1_000_000,
                100_000,
                "ms",
            )
        } else if nanos >= 1_000 {
            (u64::from(nanos / 1_000), nanos % 1_000, 100, "µs")
        } else {
            (u64::from(nanos), 0, 1, "ns")
        };
        write!(f, "{int}")?;
        if rest != 0 {
            f.write_str(".")?;
        }
        // Digit by digit, until nothing is left: no trailing zeros.
        while rest != 0 {
            let Some(digit) = rest.checked_div(place) else {
                break;
            };
            rest %= place;
            place /= 10;
            f.write_char(char::from(b'0' + digit as u8))?;
        }
        f.write_str(unit)
    }
}

/// Why a connection ended. Sticky: once set, it is the reason every later
/// operation reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer closed the connection at a frame boundary.
    #[error("connection closed by peer")]
    PeerClosed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed by peer in the middle of a frame")]
    UnexpectedEof,
    /// The peer started a frame and sent nothing more for too long.
    #[error("peer stalled in the middle of a frame for more than {}", ShowDuration(*.0))]
    PartialFrameTimeout(std::time::Duration),
    /// The local side closed the connection.
    #[error("connection closed locally")]
    LocallyClosed,
    /// The transport failed; the text is the transport's error.
    #[error("transport error: {0}")]
    Transport(String),
}

impl ConnectionError {
    /// Why input ended at the peer's EOF: mid-frame or at a boundary.
    pub(crate) fn at_eof(in_partial_frame: bool) -> Self {
        if in_partial_frame {
            Self::UnexpectedEof
        } else {
            Self::PeerClosed
        }
    }
}

/// Why a command (`send_*`) was refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed.
    #[error("connection is closed: {0}")]
    Closed(ConnectionError),
    /// Every odd stream id up to 0xFFFFFFFF has been used.
    #[error("stream ids exhausted: open a new connection")]
    StreamIdsExhausted,
    /// The encoded message is larger than the maximum data length.
    #[error("message length {len} exceeds maximum message size of {max}")]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The configured maximum.
        max: u32,
    },
    /// The transmit queue is at its bound: flush it, then retry.
    #[error("transmit queue is full: flush before sending more")]
    TransmitQueueFull,
    /// No call is in flight on this stream (already answered, or never opened).
    #[error("no call in flight on stream {0}")]
    UnknownStream(StreamId),
    /// The stream's sending side is closed: this side half-closed it, or the
    /// call is not a stream that sends in this direction.
    #[error("stream {0} is closed for sending")]
    StreamClosed(StreamId),
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer answered with a non-OK status.
    #[error("{0}")]
    Status(Status),
    /// The call's deadline passed before an answer arrived.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The connection ended before an answer arrived.
    #[error("{0}")]
    ConnectionClosed(ConnectionError),
    /// The answer was not a valid Response message.
    #[error("malformed response: {0}")]
    Decode(prost::DecodeError),
    /// The peer sent a frame of a type that cannot answer a call.
    #[error("unexpected {0} frame received for the call")]
    UnexpectedFrame(FrameType),
}

impl CallError {
    /// The status code that best describes this error, for callers that map
    /// every failure to a code (as Go's `status.Code(err)` does).
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            Self::Status(s) => s.code,
            Self::DeadlineExceeded => Code::DeadlineExceeded,
            Self::ConnectionClosed(_) => Code::Unavailable,
            Self::Decode(_) | Self::UnexpectedFrame(_) => Code::Internal,
        }
    }
}

/// A frame the server refused or ignored. Each is counted, and where the
/// protocol says so, answered with a status on its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An even stream id (0 included): answered `InvalidArgument`.
    #[error("StreamID must be odd for client initiated streams")]
    EvenStreamId,
    /// A request id not above every earlier one: answered `InvalidArgument`.
    #[error("StreamID cannot be re-used and must increment")]
    StreamIdReused,
    /// A frame over the maximum data length; a Request is answered
    /// `ResourceExhausted` (Go's message), other types are skipped.
    #[error("message length {len} exceed maximum message size of {max}")]
    Oversized {
        /// The length the peer claimed.
        len: u32,
        /// The configured maximum.
        max: u32,
    },
    /// A request whose data is not a valid Request: answered `InvalidArgument`.
    #[error("unmarshal request error: {0}")]
    UndecodableRequest(prost::DecodeError),
    /// A Data frame for a stream that is not open: answered `InvalidArgument`.
    #[error("StreamID is no longer active")]
    InactiveStream,
    /// A frame a client must not send (a Response, or Data on a unary call):
    /// ignored.
    #[error("unexpected {0} frame from client")]
    UnexpectedFrame(FrameType),
    /// A frame of unknown type: skipped for forward compatibility.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A Request beyond the in-flight bound (or during shutdown) while a
    /// stream still waits for the client's messages, which may be queued
    /// behind it: answered `ResourceExhausted` instead of waiting, which
    /// could deadlock.
    #[error("too many calls in flight on this connection")]
    TooManyCalls,
}

impl ProtocolError {
    /// The status code this kind of violation is answered with, or `None`
    /// when it is only skipped. An oversized frame is answered only when it
    /// is a Request; oversized frames of other types are skipped.
    #[must_use]
    pub fn reply_code(&self) -> Option<Code> {
        match self {
            Self::EvenStreamId
            | Self::StreamIdReused
            | Self::UndecodableRequest(_)
            | Self::InactiveStream => Some(Code::InvalidArgument),
            Self::Oversized { .. } | Self::TooManyCalls => Some(Code::ResourceExhausted),
            Self::UnexpectedFrame(_) | Self::UnknownFrameType(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ShowDuration;

    #[test]
    fn durations_display_as_debug_does() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(7),
            Duration::from_nanos(999),
            Duration::from_micros(10),
            Duration::from_nanos(1_500),
            Duration::from_nanos(1_000_001),
            Duration::from_millis(250),
            Duration::from_micros(2_500),
            Duration::from_secs(5),
            Duration::from_millis(1_500),
            Duration::new(1, 1),
            Duration::new(u64::MAX, 999_999_999),
        ] {
            assert_eq!(ShowDuration(d).to_string(), format!("{d:?}"));
        }
    }
}
