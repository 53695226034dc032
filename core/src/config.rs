//! Limits and timeouts shared by client and server connections.

use std::time::Duration;

use crate::frame::{DEFAULT_MAX_DATA_LEN, HEADER_LEN};

/// Bounds on what one connection may hold. The defaults match Go ttrpc's
/// message limit and keep a connection's memory to a few MiB at worst.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest frame data length accepted or sent (default 4 MiB; exactly
    /// this many bytes is allowed).
    pub max_data_len: u32,
    /// Requests a server connection handles at once (default 64). At the
    /// bound it stops decoding new frames, never rejects them.
    pub max_in_flight: usize,
    /// Transmit bytes queued before the connection stops decoding new frames
    /// (server) or refuses new calls (client) (default 8 MiB).
    pub max_tx_bytes: usize,
    /// Server only: close a connection whose peer starts a frame and does
    /// not complete it within this long, counted from the frame's first
    /// byte (default: none, as Go). Time the server itself spends not
    /// reading (at a bound) does not count.
    pub partial_frame_timeout: Option<Duration>,
    /// Streams: undelivered messages one stream holds before it counts as
    /// full (default 64, as Go). A stream that stays full for
    /// [`Self::stream_stall_timeout`] fails with `ResourceExhausted`.
    pub stream_queue_len: usize,
    /// Streams: how long a stream may stay full before it fails (default
    /// 1 s, as Go). The connection keeps being read meanwhile.
    pub stream_stall_timeout: Duration,
    /// Streams: undelivered message bytes all streams of a connection hold
    /// together (default 16 MiB). At the bound the connection stops decoding
    /// until consumers take messages, and the stream holding the most is put
    /// on the stall timer, so the pause lasts at most the stall timeout.
    pub max_stream_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_data_len: DEFAULT_MAX_DATA_LEN,
            max_in_flight: 64,
            max_tx_bytes: 8 << 20,
            partial_frame_timeout: None,
            stream_queue_len: 64,
            stream_stall_timeout: Duration::from_secs(1),
            max_stream_bytes: 16 << 20,
        }
    }
}

impl Config {
    /// Sets [`Self::max_data_len`].
    #[must_use]
    pub fn with_max_data_len(mut self, max: u32) -> Self {
        self.max_data_len = max;
        self
    }

    /// Sets [`Self::max_in_flight`] (at least 1).
    #[must_use]
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Sets [`Self::max_tx_bytes`].
    #[must_use]
    pub fn with_max_tx_bytes(mut self, max: usize) -> Self {
        self.max_tx_bytes = max;
        self
    }

    /// Sets [`Self::partial_frame_timeout`].
    #[must_use]
    pub fn with_partial_frame_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.partial_frame_timeout = timeout;
        self
    }

    /// Sets [`Self::stream_queue_len`] (at least 1).
    #[must_use]
    pub fn with_stream_queue_len(mut self, len: usize) -> Self {
        self.stream_queue_len = len.max(1);
        self
    }

    /// Sets [`Self::stream_stall_timeout`].
    #[must_use]
    pub fn with_stream_stall_timeout(mut self, timeout: Duration) -> Self {
        self.stream_stall_timeout = timeout;
        self
    }

    /// Sets [`Self::max_stream_bytes`].
    #[must_use]
    pub fn with_max_stream_bytes(mut self, max: usize) -> Self {
        self.max_stream_bytes = max;
        self
    }

    /// The most bytes a connection's core holds ([`buffered_bytes`]) when
    /// its driver hands it at most `read_chunk` bytes per `handle_input` and
    /// reads only while `wants_read()`: one partial frame plus one chunk of
    /// input, and the transmit queue (its bound, plus one maximum-size
    /// response for each request in flight), and undelivered stream messages
    /// (their bound plus the one message that crossed it).
    ///
    /// [`buffered_bytes`]: crate::ServerConnection::buffered_bytes
    #[must_use]
    pub fn memory_bound(&self, read_chunk: usize) -> usize {
        let frame = HEADER_LEN + self.max_data_len as usize;
        frame
            + read_chunk
            + self.max_tx_bytes
            + frame * (self.max_in_flight + 1)
            + self.max_stream_bytes
            + frame
    }
}

/// Counters of what a connection dropped or refused; never reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Complete frames received.
    pub frames_received: u64,
    /// Frames queued for transmission.
    pub frames_sent: u64,
    /// Frames dropped without an answer (unknown type, unexpected, late).
    pub dropped_frames: u64,
    /// Responses for stream ids with no call waiting (late or bogus).
    pub unknown_stream_ids: u64,
    /// Frames over the maximum data length, skipped.
    pub oversized_frames: u64,
    /// Frames that broke the protocol (bad ids, undecodable, wrong type).
    pub protocol_violations: u64,
    /// Responses replaced with `ResourceExhausted` for being too large.
    pub oversized_responses: u64,
    /// Streams failed because their receiver did not keep up (stall
    /// timeout).
    pub stalled_streams: u64,
}
