//! The server side of one ttrpc connection.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;

use crate::code::{Code, Status};
use crate::config::{Config, Stats};
use crate::decoder::{Decoded, FrameDecoder};
use crate::error::{ConnectionError, ProtocolError, SendError};
use crate::frame::{Flags, FrameHeader, FrameType};
use crate::message::{Metadata, Request, response_message};
use crate::stream::StreamId;
use crate::tx::TxQueue;

/// A decoded, validated request, ready for a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingRequest {
    /// The stream to answer on.
    pub id: StreamId,
    /// Fully qualified service name, e.g. `containerd.task.v2.Task`.
    pub service: String,
    /// Method name, e.g. `Create`.
    pub method: String,
    /// The serialized method message: a slice of the receive buffer.
    pub payload: Bytes,
    /// Metadata exactly as sent.
    pub metadata: Metadata,
    /// The client's `timeout_nano` as sent (0 = none).
    pub timeout_nano: i64,
    /// The deadline it implies, from the time the request arrived: `None`
    /// for 0, already due for a negative value. The handler owns it, as a Go
    /// handler owns its context; the core runs no timer for it.
    pub deadline: Option<Instant>,
}

/// What a server connection reports. Drain with
/// [`ServerConnection::poll_event`] after every input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request to hand to a handler; answer it with
    /// [`ServerConnection::send_response`].
    Request(IncomingRequest),
    /// A frame broke the protocol. It has already been counted, and
    /// answered on its stream where [`ProtocolError::reply_code`] says so.
    Rejected {
        /// The frame's stream id.
        id: StreamId,
        /// What was wrong.
        error: ProtocolError,
    },
    /// The peer's input ended (or the connection was closed). Requests in
    /// flight may still be answered; the transport flushes, then closes.
    Closed {
        /// Why it ended.
        reason: ConnectionError,
    },
}

/// The partial-frame timer: off, waiting to learn the time, or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartialTimer {
    Off,
    Arming,
    Since(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    InputEnded,
    /// Input is finished and the `Closed` event is queued or delivered.
    Drained(ConnectionError),
    /// Closed locally: nothing more is accepted.
    Closed(ConnectionError),
}

/// A ttrpc server connection: a state machine with no IO of its own.
///
/// It validates frames (odd, increasing stream ids; decodable requests; the
/// size limit), answers violations the way Go ttrpc does, and hands valid
/// requests out as events. Backpressure: while `max_in_flight` requests are
/// unanswered or the transmit queue is over `max_tx_bytes`, it decodes no new
/// frames and [`Self::wants_read`] is false — it never refuses a well-formed
/// request for being over a bound.
#[derive(Debug)]
pub struct ServerConnection {
    config: Config,
    decoder: FrameDecoder,
    tx: TxQueue,
    last_id: u32,
    in_flight: BTreeSet<StreamId>,
    events: VecDeque<ServerEvent>,
    state: State,
    /// Time of the latest input; requests decoded later still count from it.
    now: Option<Instant>,
    /// The partial-frame timer.
    partial: PartialTimer,
    /// Decoding stopped at a bound since the latest input: frames decoded
    /// now were read earlier, and `now` is stale.
    paused_since_input: bool,
    shutting_down: bool,
    stats: Stats,
}

impl ServerConnection {
    /// A new connection, before any byte is exchanged.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            decoder: FrameDecoder::new(config.max_data_len),
            config,
            tx: TxQueue::default(),
            last_id: 0,
            in_flight: BTreeSet::new(),
            events: VecDeque::new(),
            state: State::Open,
            now: None,
            partial: PartialTimer::Off,
            paused_since_input: false,
            shutting_down: false,
            stats: Stats::default(),
        }
    }

    /// Takes bytes received from the peer, in any chunking. Input after the
    /// peer's EOF or a local close is ignored.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.now = Some(now);
        if self.state == State::Open {
            self.decoder.push(bytes);
            self.paused_since_input = false;
            self.refresh_partial_timer(Some(now));
        }
    }

    /// The peer closed its side. Buffered complete frames are still decoded;
    /// then [`ServerEvent::Closed`] is reported.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = Some(now);
        if self.state == State::Open {
            self.state = State::InputEnded;
        }
    }

    /// Closes the connection if the partial-frame timeout has passed.
    /// Spurious and early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.partial {
            PartialTimer::Arming => self.partial = PartialTimer::Since(now),
            PartialTimer::Since(since) => {
                let limit = self.config.partial_frame_timeout.unwrap_or(Duration::ZERO);
                if self.config.partial_frame_timeout.is_some()
                    && since.checked_add(limit).is_some_and(|due| now >= due)
                {
                    self.close(ConnectionError::PartialFrameTimeout(limit));
                }
            }
            PartialTimer::Off => {}
        }
    }

    /// Starts, keeps or stops the partial-frame timer. The timer measures
    /// how long the *peer* leaves a frame incomplete: complete frames held
    /// back by our own bounds do not count. `now` is `None` when the time
    /// is not known (decoding resumed after a pause, long after the latest
    /// input): the timer then starts at the next `handle_timeout`.
    fn refresh_partial_timer(&mut self, now: Option<Instant>) {
        let stalled = self.decoder.in_partial_frame() && !self.decoder.has_frame();
        self.partial = match (stalled, self.partial, now) {
            (false, _, _) => PartialTimer::Off,
            (true, PartialTimer::Since(since), _) => PartialTimer::Since(since),
            (true, _, Some(now)) => PartialTimer::Since(now),
            (true, _, None) => PartialTimer::Arming,
        };
    }

    /// Stops handing out new requests (graceful shutdown): requests in
    /// flight are still answered; [`Self::is_idle`] says when all are.
    /// Input is no longer decoded, so a later EOF reports no `Closed`
    /// event: the transport calls [`Self::close`] once idle.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Closes the connection locally: queued bytes are dropped, answers for
    /// requests in flight are refused, and [`ServerEvent::Closed`] is
    /// reported if it was not already.
    pub fn close(&mut self, reason: ConnectionError) {
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        if !matches!(self.state, State::Drained(_)) {
            self.events.push_back(ServerEvent::Closed {
                reason: reason.clone(),
            });
        }
        self.decoder = FrameDecoder::new(self.config.max_data_len);
        self.tx.clear();
        self.in_flight.clear();
        self.partial = PartialTimer::Off;
        self.state = State::Closed(reason);
    }

    /// Queues the answer for the request on stream `id`: a payload, or a
    /// status. An answer over the maximum data length is replaced with
    /// `ResourceExhausted` (Go 1.1.1 clients crash on oversized frames).
    ///
    /// # Errors
    /// [`SendError::UnknownStream`] if no request is in flight on `id`
    /// (already answered, or never received); [`SendError::Closed`] after
    /// [`Self::close`].
    pub fn send_response(
        &mut self,
        id: StreamId,
        result: Result<Bytes, Status>,
    ) -> Result<(), SendError> {
        if let State::Closed(reason) = &self.state {
            return Err(SendError::Closed(reason.clone()));
        }
        if !self.in_flight.remove(&id) {
            return Err(SendError::UnknownStream(id));
        }
        let msg = response_message(result);
        let len = msg.encoded_len();
        if len > self.config.max_data_len as usize {
            self.stats.oversized_responses += 1;
            let status = Status::new(
                Code::ResourceExhausted,
                format!(
                    "message length {len} exceed maximum message size of {}",
                    self.config.max_data_len
                ),
            );
            self.queue_status(id, status);
        } else {
            self.queue_response(id, &msg);
        }
        Ok(())
    }

    /// Queues a status the server made up itself, trimmed (message, then
    /// details) so the frame stays within `max_data_len`; with a limit too
    /// small for even a bare code, nothing is sent.
    fn queue_status(&mut self, id: StreamId, mut status: Status) {
        let max = self.config.max_data_len as usize;
        let mut msg = response_message(Err(status.clone()));
        let len = msg.encoded_len();
        if len > max {
            let excess = len - max;
            let mut keep = status.message.len().saturating_sub(excess + 2);
            while !status.message.is_char_boundary(keep) {
                keep -= 1;
            }
            status.message.truncate(keep);
            msg = response_message(Err(status.clone()));
            if msg.encoded_len() > max {
                status.details.clear();
                status.message.clear();
                msg = response_message(Err(status));
            }
            if msg.encoded_len() > max {
                self.stats.dropped_frames += 1;
                return;
            }
        }
        self.queue_response(id, &msg);
    }

    fn queue_response(&mut self, id: StreamId, msg: &crate::message::Response) {
        // Callers keep every message within max_data_len (a u32).
        let body_len = u32::try_from(msg.encoded_len()).unwrap_or(u32::MAX);
        self.tx
            .push_frame(id, FrameType::Response, Flags::NONE, body_len, |buf| {
                msg.encode_raw(buf)
            });
        self.stats.frames_sent += 1;
    }

    /// Whether new frames may be decoded now (the backpressure rule).
    fn may_decode(&self) -> bool {
        !self.shutting_down
            && self.in_flight.len() < self.config.max_in_flight
            && self.tx.len() < self.config.max_tx_bytes
    }

    /// The next event, decoding buffered frames one at a time while the
    /// bounds allow.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if matches!(self.state, State::Drained(_) | State::Closed(_)) {
                return None;
            }
            if !self.may_decode() {
                self.paused_since_input |= self.decoder.has_frame();
                return None;
            }
            let decoded = self.decoder.decode();
            let known_now = if self.paused_since_input {
                None
            } else {
                self.now
            };
            self.refresh_partial_timer(known_now);
            match decoded {
                Some(Decoded::Frame { header, data }) => {
                    self.stats.frames_received += 1;
                    if let Some(ev) = self.on_frame(header, data) {
                        return Some(ev);
                    }
                }
                Some(Decoded::Oversized { header }) => {
                    self.stats.oversized_frames += 1;
                    let error = ProtocolError::Oversized {
                        len: header.len,
                        max: self.config.max_data_len,
                    };
                    if header.kind == FrameType::Request {
                        return Some(self.reject(header.stream_id, error));
                    }
                    return Some(self.ignore(header.stream_id, error));
                }
                None if self.state == State::InputEnded => {
                    let reason = ConnectionError::at_eof(self.decoder.in_partial_frame());
                    self.partial = PartialTimer::Off;
                    self.state = State::Drained(reason.clone());
                    return Some(ServerEvent::Closed { reason });
                }
                None => return None,
            }
        }
    }

    fn on_frame(&mut self, header: FrameHeader, data: Bytes) -> Option<ServerEvent> {
        let id = header.stream_id;
        if !id.is_client_initiated() {
            return Some(self.reject(id, ProtocolError::EvenStreamId));
        }
        match header.kind {
            FrameType::Request => {
                if id.get() <= self.last_id {
                    return Some(self.reject(id, ProtocolError::StreamIdReused));
                }
                self.last_id = id.get();
                match Request::decode(data) {
                    Ok(req) => {
                        self.in_flight.insert(id);
                        Some(ServerEvent::Request(self.incoming(id, req)))
                    }
                    Err(e) => Some(self.reject(id, ProtocolError::UndecodableRequest(e))),
                }
            }
            FrameType::Data if !self.in_flight.contains(&id) => {
                Some(self.reject(id, ProtocolError::InactiveStream))
            }
            FrameType::Data | FrameType::Response => {
                Some(self.ignore(id, ProtocolError::UnexpectedFrame(header.kind)))
            }
            FrameType::Unknown(t) => Some(self.ignore(id, ProtocolError::UnknownFrameType(t))),
        }
    }

    fn incoming(&self, id: StreamId, req: Request) -> IncomingRequest {
        let deadline = match (req.timeout_nano, self.now) {
            (0, _) | (_, None) => None,
            (t, Some(now)) if t < 0 => Some(now),
            (t, Some(now)) => now.checked_add(Duration::from_nanos(t.unsigned_abs())),
        };
        IncomingRequest {
            id,
            service: req.service,
            method: req.method,
            payload: req.payload,
            metadata: req.metadata.into(),
            timeout_nano: req.timeout_nano,
            deadline,
        }
    }

    /// Answers a violating frame on its stream with the status Go sends.
    fn reject(&mut self, id: StreamId, error: ProtocolError) -> ServerEvent {
        self.stats.protocol_violations += 1;
        if let Some(code) = error.reply_code() {
            self.queue_status(id, Status::new(code, error.to_string()));
        }
        ServerEvent::Rejected { id, error }
    }

    /// Skips a frame without answering it.
    fn ignore(&mut self, id: StreamId, error: ProtocolError) -> ServerEvent {
        self.stats.dropped_frames += 1;
        if matches!(error, ProtocolError::UnexpectedFrame(_)) {
            self.stats.protocol_violations += 1;
        }
        ServerEvent::Rejected { id, error }
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

    /// When [`Self::handle_timeout`] should next be called: the moment the
    /// current incomplete frame exceeds the partial-frame timeout, if one is
    /// configured and a frame is incomplete. Right after decoding resumed
    /// from a pause it is the latest input's time (already past): call
    /// `handle_timeout` at once so the timer starts from the real time.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let limit = self.config.partial_frame_timeout?;
        match self.partial {
            PartialTimer::Off => None,
            PartialTimer::Arming => self.now,
            PartialTimer::Since(since) => since.checked_add(limit),
        }
    }

    /// Whether bytes are waiting to be written.
    #[must_use]
    pub fn wants_write(&self) -> bool {
        self.tx.len() > 0
    }

    /// Whether the driver should read more input: the peer has not closed,
    /// and no complete frame waits to be decoded (which happens while a
    /// bound holds decoding back).
    #[must_use]
    pub fn wants_read(&self) -> bool {
        self.state == State::Open && !self.shutting_down && !self.decoder.has_frame()
    }

    /// Whether no request is in flight and nothing waits to be written.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.tx.len() == 0
    }

    /// Whether input has ended (EOF, timeout or local close) and the
    /// `Closed` event is queued or delivered.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Drained(_) | State::Closed(_))
    }

    /// Requests handed out and not yet answered.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
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
}
