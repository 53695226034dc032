//! Stream ids: the per-call identifier in every frame header.

use std::fmt;

/// A ttrpc stream id. Clients open streams on odd ids (1, 3, 5, …);
/// even ids, 0 included, would be server-initiated, which ttrpc does not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(u32);

impl StreamId {
    /// Wraps a raw id.
    #[must_use]
    pub const fn new(id: u32) -> Self {
        Self(id)
    }

    /// The raw id.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether a client may open a stream with this id (odd ids only).
    #[must_use]
    pub const fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The shape of a streaming call, as a `.proto` file declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `rpc M(stream Req) returns (Resp)`: the client sends many messages,
    /// the server answers once.
    ClientStreaming,
    /// `rpc M(Req) returns (stream Resp)`: one request, many answers.
    ServerStreaming,
    /// `rpc M(stream Req) returns (stream Resp)`: both sides send many.
    Bidirectional,
}

impl StreamKind {
    /// Whether the client sends messages after the request.
    #[must_use]
    pub const fn client_sends(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::Bidirectional)
    }

    /// Whether the server answers with a stream of messages (else with one
    /// Response).
    #[must_use]
    pub const fn server_sends(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::Bidirectional)
    }
}
