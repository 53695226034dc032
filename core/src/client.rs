//! The client side of one ttrpc connection.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;

use crate::code::{Code, Status};
use crate::config::{Config, Stats};
use crate::decoder::{Decoded, FrameDecoder};
use crate::error::{CallError, ConnectionError, SendError};
use crate::frame::{Flags, FrameType, HEADER_LEN};
use crate::message::{Metadata, RequestParts, Response};
use crate::stream::StreamId;
use crate::timer::Deadlines;
use crate::tx::TxQueue;

/// Per-call options: deadline and metadata.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long the call may take. Sent to the server as `timeout_nano` and
    /// enforced locally: after it, the call fails with
    /// [`CallError::DeadlineExceeded`] and a late answer is dropped.
    pub timeout: Option<Duration>,
    /// Metadata sent with the request.
    pub metadata: Metadata,
}

impl CallOptions {
    /// Options with a timeout and no metadata.
    #[must_use]
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            metadata: Metadata::new(),
        }
    }
}

/// What a client connection reports. Drain with
/// [`ClientConnection::poll_event`] after every input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A call finished: the answer's payload, or why it failed. Each call
    /// started with `send_request` ends in exactly one of these, unless it
    /// was abandoned.
    Response {
        /// The call's stream id, as `send_request` returned it.
        id: StreamId,
        /// The answer's payload (a slice of the receive buffer) or the error.
        result: Result<Bytes, CallError>,
    },
    /// The connection ended; reported once, after every pending call failed.
    Closed {
        /// Why it ended.
        reason: ConnectionError,
    },
}

#[derive(Debug, Clone, Copy)]
struct Call {
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// The peer closed its side; buffered frames are still delivered.
    InputEnded,
    Closed(ConnectionError),
}

/// A ttrpc client connection: a state machine with no IO of its own.
///
/// It allocates odd stream ids in the same call that queues the request, so
/// ids reach the wire in increasing order, and matches responses to calls.
/// See the [crate docs](crate) for the drive loop.
#[derive(Debug)]
pub struct ClientConnection {
    config: Config,
    decoder: FrameDecoder,
    tx: TxQueue,
    /// The id the next call gets; `None` once 0xFFFFFFFF has been used.
    next_id: Option<u32>,
    calls: BTreeMap<StreamId, Call>,
    deadlines: Deadlines,
    events: VecDeque<ClientEvent>,
    state: State,
    stats: Stats,
}

impl ClientConnection {
    /// A new connection, before any byte is exchanged.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            decoder: FrameDecoder::new(config.max_data_len),
            config,
            tx: TxQueue::default(),
            next_id: Some(1),
            calls: BTreeMap::new(),
            deadlines: Deadlines::default(),
            events: VecDeque::new(),
            state: State::Open,
            stats: Stats::default(),
        }
    }

    /// Starts a unary call: allocates the next stream id and queues the
    /// Request frame. A zero timeout is sent as 1 ns (0 would mean "none").
    ///
    /// # Errors
    /// Nothing is queued and no id is used when the connection is closed,
    /// the ids are exhausted, the request is over the maximum data length, or
    /// the transmit queue is full ([`SendError`]).
    pub fn send_request(
        &mut self,
        now: Instant,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<StreamId, SendError> {
        if let State::Closed(reason) = &self.state {
            return Err(SendError::Closed(reason.clone()));
        }
        if self.state == State::InputEnded {
            return Err(SendError::Closed(ConnectionError::PeerClosed));
        }
        let raw_id = self.next_id.ok_or(SendError::StreamIdsExhausted)?;
        let timeout_nano = options.timeout.map_or(0, |t| {
            i64::try_from(t.as_nanos()).unwrap_or(i64::MAX).max(1)
        });
        let parts = RequestParts {
            service,
            method,
            payload,
            timeout_nano,
            metadata: options.metadata.as_slice(),
        };
        let len = parts.encoded_len();
        let body_len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= self.config.max_data_len)
            .ok_or(SendError::TooLarge {
                len,
                max: self.config.max_data_len,
            })?;
        if self.tx.len() > 0 && self.tx.len() + HEADER_LEN + len > self.config.max_tx_bytes {
            return Err(SendError::TransmitQueueFull);
        }
        let id = StreamId::new(raw_id);
        self.tx
            .push_frame(id, FrameType::Request, Flags::NONE, body_len, |buf| {
                parts.encode(buf)
            });
        self.stats.frames_sent += 1;
        let deadline = options.timeout.and_then(|t| now.checked_add(t));
        if let Some(at) = deadline {
            self.deadlines.insert(at, id);
        }
        self.calls.insert(id, Call { deadline });
        self.next_id = raw_id.checked_add(2);
        Ok(id)
    }

    /// Forgets a call: no event will be reported for it and a late answer is
    /// dropped. ttrpc has no cancel frame, so the server is not told.
    /// Returns whether the call was pending.
    pub fn abandon(&mut self, id: StreamId) -> bool {
        match self.calls.remove(&id) {
            Some(call) => {
                if let Some(at) = call.deadline {
                    self.deadlines.remove(at, id);
                }
                true
            }
            None => false,
        }
    }

    /// Takes bytes received from the peer, in any chunking. Expires due
    /// deadlines first, so an answer that arrives late is reported as
    /// [`CallError::DeadlineExceeded`] whatever the driver's timing.
    /// Input after the connection ended is ignored.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.handle_timeout(now);
        if self.state == State::Open {
            self.decoder.push(bytes);
        }
    }

    /// The peer closed its side. Frames already received are still
    /// delivered; then every pending call fails and [`ClientEvent::Closed`]
    /// is reported.
    pub fn handle_eof(&mut self, now: Instant) {
        self.handle_timeout(now);
        if self.state == State::Open {
            self.state = State::InputEnded;
        }
    }

    /// Fails every call whose deadline is at or before `now`. Spurious and
    /// early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(id) = self.deadlines.pop_expired(now) {
            if self.calls.remove(&id).is_some() {
                self.events.push_back(ClientEvent::Response {
                    id,
                    result: Err(CallError::DeadlineExceeded),
                });
            }
        }
    }

    /// Closes the connection locally (e.g. after a transport error): every
    /// pending call fails with `reason`, queued bytes are dropped, and
    /// [`ClientEvent::Closed`] is reported. Later calls do nothing.
    pub fn close(&mut self, reason: ConnectionError) {
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        self.decoder = FrameDecoder::new(self.config.max_data_len);
        self.tx.clear();
        self.finish(reason);
    }

    fn finish(&mut self, reason: ConnectionError) {
        for (id, _) in std::mem::take(&mut self.calls) {
            self.events.push_back(ClientEvent::Response {
                id,
                result: Err(CallError::ConnectionClosed(reason.clone())),
            });
        }
        self.deadlines.clear();
        self.events.push_back(ClientEvent::Closed {
            reason: reason.clone(),
        });
        self.state = State::Closed(reason);
    }

    /// The next event, decoding buffered frames one at a time.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if matches!(self.state, State::Closed(_)) {
                return None;
            }
            match self.decoder.decode() {
                Some(Decoded::Frame { header, data }) => {
                    self.stats.frames_received += 1;
                    if let Some(ev) = self.on_frame(header.stream_id, header.kind, data) {
                        return Some(ev);
                    }
                }
                Some(Decoded::Oversized { header }) => {
                    self.stats.oversized_frames += 1;
                    let status = Status::new(
                        Code::ResourceExhausted,
                        format!(
                            "message length {} exceed maximum message size of {}",
                            header.len, self.config.max_data_len
                        ),
                    );
                    if let Some(ev) =
                        self.complete(header.stream_id, Err(CallError::Status(status)))
                    {
                        return Some(ev);
                    }
                }
                None if self.state == State::InputEnded => {
                    let reason = ConnectionError::at_eof(self.decoder.in_partial_frame());
                    self.finish(reason);
                }
                None => return None,
            }
        }
    }

    fn on_frame(&mut self, id: StreamId, kind: FrameType, data: Bytes) -> Option<ClientEvent> {
        let result = match kind {
            FrameType::Response => match Response::decode(data) {
                Ok(resp) => match resp.status {
                    Some(s) if s.code != 0 => Err(CallError::Status(s.into())),
                    _ => Ok(resp.payload),
                },
                Err(e) => Err(CallError::Decode(e)),
            },
            other => {
                // Go 1.1.1 fails a pending call on any non-Response frame.
                self.stats.protocol_violations += 1;
                Err(CallError::UnexpectedFrame(other))
            }
        };
        self.complete(id, result)
    }

    fn complete(&mut self, id: StreamId, result: Result<Bytes, CallError>) -> Option<ClientEvent> {
        let Some(call) = self.calls.remove(&id) else {
            self.stats.unknown_stream_ids += 1;
            self.stats.dropped_frames += 1;
            return None;
        };
        if let Some(at) = call.deadline {
            self.deadlines.remove(at, id);
        }
        Some(ClientEvent::Response { id, result })
    }

    /// Bytes waiting to be written, or `None`. Write any prefix of them,
    /// then report how much with [`Self::advance_transmit`].
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        self.tx.pending()
    }

    /// Drops `written` bytes from the front of the transmit queue.
    pub fn advance_transmit(&mut self, written: usize) {
        self.tx.advance(written);
    }

    /// Takes every queued byte at once as an owned buffer (no copy), for
    /// drivers that write outside a lock. Write all of it, in order, before
    /// taking more: frames must reach the wire in the order they were queued.
    #[must_use]
    pub fn take_transmit(&mut self) -> Option<Bytes> {
        self.tx.take()
    }

    /// When [`Self::handle_timeout`] should next be called: the earliest
    /// call deadline, or `None` when no call has one.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.next()
    }

    /// Whether bytes are waiting to be written.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        self.tx.len() > 0
    }

    /// Whether the driver should read more input: the peer has not closed
    /// and no complete frame waits to be decoded by [`Self::poll_event`].
    #[must_use]
    pub fn wants_read(&self) -> bool {
        self.state == State::Open && !self.decoder.has_frame()
    }

    /// Whether the connection has ended (the `Closed` event is queued or
    /// delivered).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    /// Calls started and not yet finished or abandoned.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Bytes this connection holds: undecoded input plus queued output.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.decoder.buffered() + self.tx.len()
    }

    /// Counters of dropped and refused frames.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The configuration this connection was created with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Test and fuzzing hook: continue numbering from `raw_id` (odd).
    #[cfg(any(test, fuzzing))]
    pub fn set_next_stream_id(&mut self, raw_id: u32) {
        self.next_id = Some(raw_id | 1);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // one real instant as the test's epoch
mod tests {
    use super::*;

    #[test]
    fn stream_ids_run_out_after_the_largest_odd_id() {
        let now = Instant::now();
        let mut c = ClientConnection::new(Config::default());
        c.set_next_stream_id(0xFFFF_FFFD);
        let opts = CallOptions::default();
        assert_eq!(
            c.send_request(now, "s", "m", b"", &opts).unwrap().get(),
            0xFFFF_FFFD
        );
        assert_eq!(
            c.send_request(now, "s", "m", b"", &opts).unwrap().get(),
            0xFFFF_FFFF
        );
        assert_eq!(
            c.send_request(now, "s", "m", b"", &opts),
            Err(SendError::StreamIdsExhausted)
        );
        assert_eq!(c.in_flight(), 2, "the refused call queued nothing");
    }
}
