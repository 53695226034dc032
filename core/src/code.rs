//! Status codes (the gRPC numbering ttrpc uses) and the `Status` error.

use std::fmt;

use crate::message::proto;

/// A ttrpc/gRPC status code. Values outside 0–16 are kept as [`Code::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 0: success.
    Ok,
    /// 1: the operation was cancelled.
    Cancelled,
    /// 2: unknown error.
    Unknown,
    /// 3: the client sent something invalid.
    InvalidArgument,
    /// 4: the deadline passed before the operation completed.
    DeadlineExceeded,
    /// 5: something requested was not found.
    NotFound,
    /// 6: something to be created already exists.
    AlreadyExists,
    /// 7: the caller may not do this.
    PermissionDenied,
    /// 8: a limit was reached (e.g. message size).
    ResourceExhausted,
    /// 9: the system is not in a state for this operation.
    FailedPrecondition,
    /// 10: the operation was aborted.
    Aborted,
    /// 11: out of the valid range.
    OutOfRange,
    /// 12: the service or method is not implemented.
    Unimplemented,
    /// 13: an internal error.
    Internal,
    /// 14: the service is unavailable.
    Unavailable,
    /// 15: unrecoverable data loss.
    DataLoss,
    /// 16: the caller is not authenticated.
    Unauthenticated,
    /// Any other value, preserved as received.
    Other(i32),
}

const NAMED: [Code; 17] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

impl Code {
    /// Every named code, in numeric order (0 to 16).
    pub const ALL: [Self; 17] = NAMED;

    /// The code for a wire value.
    #[must_use]
    pub fn from_i32(v: i32) -> Self {
        usize::try_from(v)
            .ok()
            .and_then(|i| NAMED.get(i).copied())
            .unwrap_or(Self::Other(v))
    }

    /// The wire value.
    #[must_use]
    pub fn as_i32(self) -> i32 {
        match self {
            Self::Other(v) => v,
            named => NAMED
                .iter()
                .position(|c| *c == named)
                .map_or(-1, |i| i as i32),
        }
    }

    /// The name Go's `codes.Code.String()` prints, e.g. `NotFound`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "Canceled",
            Self::Unknown => "Unknown",
            Self::InvalidArgument => "InvalidArgument",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::NotFound => "NotFound",
            Self::AlreadyExists => "AlreadyExists",
            Self::PermissionDenied => "PermissionDenied",
            Self::ResourceExhausted => "ResourceExhausted",
            Self::FailedPrecondition => "FailedPrecondition",
            Self::Aborted => "Aborted",
            Self::OutOfRange => "OutOfRange",
            Self::Unimplemented => "Unimplemented",
            Self::Internal => "Internal",
            Self::Unavailable => "Unavailable",
            Self::DataLoss => "DataLoss",
            Self::Unauthenticated => "Unauthenticated",
            Self::Other(_) => "Code",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(v) => write!(f, "Code({v})"),
            named => f.write_str(named.name()),
        }
    }
}

/// A status a peer or handler returned: code, message and details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Status {
    /// The status code.
    pub code: Code,
    /// A human-readable message.
    pub message: String,
    /// Typed details (`google.protobuf.Any`), passed through unchanged.
    pub details: Vec<prost_types::Any>,
}

impl Status {
    /// A status with no details.
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Whether the code is [`Code::Ok`].
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }
}

/// The `ResourceExhausted` for a message over the size limit, in Go's
/// words.
pub(crate) fn oversized_status(len: usize, max: u32) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!("message length {len} exceed maximum message size of {max}"),
    )
}

impl From<proto::google::rpc::Status> for Status {
    fn from(s: proto::google::rpc::Status) -> Self {
        Self {
            code: Code::from_i32(s.code),
            message: s.message,
            details: s.details,
        }
    }
}

impl From<Status> for proto::google::rpc::Status {
    fn from(s: Status) -> Self {
        Self {
            code: s.code.as_i32(),
            message: s.message,
            details: s.details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_seventeen_codes_round_trip_and_unknown_values_are_kept() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(c.as_i32(), i as i32);
            assert_eq!(Code::from_i32(i as i32), *c);
        }
        for v in [-1, 17, 1000, i32::MIN, i32::MAX] {
            assert_eq!(Code::from_i32(v), Code::Other(v));
            assert_eq!(Code::from_i32(v).as_i32(), v);
        }
        assert_eq!(Code::NotFound.to_string(), "NotFound");
        assert_eq!(Code::Other(99).to_string(), "Code(99)");
    }

    #[test]
    fn status_converts_to_and_from_the_wire_message() {
        let s = Status::new(Code::NotFound, "gone");
        let wire: proto::google::rpc::Status = s.clone().into();
        assert_eq!(wire.code, 5);
        assert_eq!(Status::from(wire), s);
        assert_eq!(s.to_string(), "NotFound: gone");
    }
}
