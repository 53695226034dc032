//! The server side of one ttrpc connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::code::{Status, oversized_status};
use crate::config::{Config, Stats};
use crate::decoder::{Decoded, FrameDecoder};
use crate::error::{CallError, ConnectionError, ProtocolError, SendError};
use crate::frame::{Flags, FrameHeader, FrameType};
use crate::message::proto::google::rpc::Status as WireStatus;
use crate::message::{Metadata, Request, Response, encode_response, response_message};
use crate::recv::{RecvQueues, StreamItem, stall_status};
use crate::sorted::SortedMap;
use crate::stream::StreamId;
use crate::timer::earliest;
use crate::tx::{SEGMENT_MIN, TxQueue};

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
    /// The Request frame's flags as sent: none for a unary call (every
    /// ttrpc 1.1 peer), remote-open when the client will send messages
    /// (client-streaming, bidirectional), remote-closed for a
    /// server-streaming call. See [`Self::is_stream`].
    pub flags: Flags,
}

impl IncomingRequest {
    /// Whether the client opened a stream (ttrpc 1.2): the call is answered
    /// with [`ServerConnection::send_data`] and [`ServerConnection::close_send`]
    /// or a final [`ServerConnection::send_response`], and (if
    /// [`Self::client_sends`]) the client's messages are taken with
    /// [`ServerConnection::recv_stream`]. A unary call has no flags.
    #[must_use]
    pub fn is_stream(&self) -> bool {
        self.flags.contains(Flags::REMOTE_OPEN) || self.flags.contains(Flags::REMOTE_CLOSED)
    }

    /// Whether the client will send messages on the stream
    /// (client-streaming or bidirectional). A non-empty request payload is
    /// then also the stream's first message (Go's rule), already queued
    /// for [`ServerConnection::recv_stream`].
    #[must_use]
    pub fn client_sends(&self) -> bool {
        self.flags.contains(Flags::REMOTE_OPEN)
    }
}

/// What a server connection reports. Drain with
/// [`ServerConnection::poll_event`] after every input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request to hand to a handler; answer it with
    /// [`ServerConnection::send_response`].
    Request(IncomingRequest),
    /// A stream has items to take with [`ServerConnection::recv_stream`]:
    /// the client's messages, or its end. Take items until it returns
    /// `None`; only then is the stream reported again.
    StreamReadable {
        /// The stream's id.
        id: StreamId,
    },
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

/// A request in flight: `None` for a unary call; for a stream, whether the
/// client's side is closed (it half-closed, or never sends).
type InFlight = Option<bool>;

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
    in_flight: SortedMap<StreamId, InFlight>,
    queues: RecvQueues,
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
            tx: TxQueue::default(),
            last_id: 0,
            in_flight: SortedMap::new(),
            queues: RecvQueues::new(&config),
            events: VecDeque::new(),
            state: State::Open,
            now: None,
            partial: PartialTimer::Off,
            paused_since_input: false,
            shutting_down: false,
            stats: Stats::default(),
            config,
        }
    }

    /// Takes bytes received from the peer, in any chunking. Input after the
    /// peer's EOF or a local close is ignored.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.now = Some(now);
        self.queues.set_now(now);
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
        self.queues.set_now(now);
        if self.state == State::Open {
            self.state = State::InputEnded;
        }
    }

    /// Closes the connection if the partial-frame timeout has passed, and
    /// fails every stream whose receive queue stayed full for the stall
    /// timeout (answering it `ResourceExhausted`). Spurious and early calls
    /// do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queues.set_now(now);
        while let Some((id, notify)) = self.queues.expire_stall(now) {
            self.stats.stalled_streams += 1;
            // Only a stream in flight has a receive queue.
            if self.in_flight.remove(&id).is_some() {
                let status = stall_status(self.config.stream_stall_timeout);
                self.queue_status(id, status);
            }
            if notify {
                self.events.push_back(ServerEvent::StreamReadable { id });
            }
        }
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
        self.end_streams(&reason);
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
        if !self.finish(id) {
            return Err(SendError::UnknownStream(id));
        }
        let msg = response_message(result);
        let len = msg.encoded_len();
        if len > self.config.max_data_len as usize {
            self.stats.oversized_responses += 1;
            self.queue_status(id, oversized_status(len, self.config.max_data_len));
        } else {
            self.queue_response(id, &msg);
        }
        Ok(())
    }

    /// The client can send no more: every stream still expecting its
    /// messages ends with `reason` (messages already received stay).
    fn end_streams(&mut self, reason: &ConnectionError) {
        for (id, call) in self.in_flight.iter_mut() {
            if *call == Some(false) {
                *call = Some(true);
                let error = CallError::ConnectionClosed(reason.clone());
                if self.queues.push_end(*id, Err(error)) {
                    self.events
                        .push_back(ServerEvent::StreamReadable { id: *id });
                }
            }
        }
    }

    /// Queues one message on stream `id`, as a Data frame.
    ///
    /// # Errors
    /// [`SendError::TransmitQueueFull`] while the transmit queue is at its
    /// bound: write it out, then retry (the "wait" signal);
    /// [`SendError::UnknownStream`] if no stream is in flight on `id` (a
    /// unary call, already finished, or failed); [`SendError::TooLarge`];
    /// [`SendError::Closed`].
    pub fn send_data(&mut self, id: StreamId, payload: &[u8]) -> Result<(), SendError> {
        self.check_stream(id)?;
        self.tx.push_data(&self.config, id, payload)?;
        self.stats.frames_sent += 1;
        Ok(())
    }

    /// Finishes stream `id` successfully, as Go does for a streaming
    /// answer: a Data frame with remote-closed and no-data. (Finish with an
    /// error, or answer a client-streaming call, with
    /// [`Self::send_response`].) Messages of the client not yet taken are
    /// dropped. Never refused for a full transmit queue.
    ///
    /// # Errors
    /// As [`Self::send_data`], except the transmit bound.
    pub fn close_send(&mut self, id: StreamId) -> Result<(), SendError> {
        self.check_stream(id)?;
        self.tx.push_close(id);
        self.stats.frames_sent += 1;
        self.finish(id);
        Ok(())
    }

    /// Whether stream `id` is in flight, or has items of the client not yet
    /// taken with [`Self::recv_stream`] (its end included).
    #[must_use]
    pub fn has_stream(&self, id: StreamId) -> bool {
        self.is_stream(id) || self.queues.contains(id)
    }

    fn is_stream(&self, id: StreamId) -> bool {
        matches!(self.in_flight.get(&id), Some(Some(_)))
    }

    fn check_stream(&self, id: StreamId) -> Result<(), SendError> {
        if let State::Closed(reason) = &self.state {
            return Err(SendError::Closed(reason.clone()));
        }
        if self.is_stream(id) {
            Ok(())
        } else {
            Err(SendError::UnknownStream(id))
        }
    }

    /// Ends the call on `id` (and its receive queue, if a stream);
    /// returns whether it was in flight.
    fn finish(&mut self, id: StreamId) -> bool {
        match self.in_flight.remove(&id) {
            Some(stream) => {
                if stream.is_some() {
                    self.queues.remove(id);
                }
                true
            }
            None => false,
        }
    }

    /// Takes the next item the client sent on stream `id`: a message, then
    /// one [`StreamItem::End`] (`Ok` when the client half-closed). `None`
    /// when nothing is waiting; [`ServerEvent::StreamReadable`] says when
    /// to try again. Taking messages is what keeps a stream within its
    /// receive bound ([`Config::stream_queue_len`]).
    #[must_use]
    pub fn recv_stream(&mut self, id: StreamId) -> Option<StreamItem> {
        self.queues.pop(id)
    }

    /// Queues a status the server made up itself, trimmed (message, then
    /// details) so the frame stays within `max_data_len`; with a limit too
    /// small for even a bare code, nothing is sent.
    fn queue_status(&mut self, id: StreamId, status: Status) {
        let max = self.config.max_data_len as usize;
        let mut status = WireStatus::from(status);
        // The Response's length: the status is its only field.
        let len = |s: &WireStatus| prost::encoding::message::encoded_len(1, s);
        let excess = len(&status).saturating_sub(max);
        if excess > 0 {
            let mut keep = status.message.len().saturating_sub(excess + 2);
            while !status.message.is_char_boundary(keep) {
                keep -= 1;
            }
            status.message.truncate(keep);
            if len(&status) > max {
                status.details.clear();
                status.message.clear();
                if len(&status) > max {
                    self.stats.dropped_frames += 1;
                    return;
                }
            }
        }
        let msg = Response {
            status: Some(status),
            payload: Bytes::new(),
        };
        self.queue_response(id, &msg);
    }

    fn queue_response(&mut self, id: StreamId, msg: &Response) {
        // Callers keep every message within max_data_len (a u32).
        let body_len = u32::try_from(msg.encoded_len()).unwrap_or(u32::MAX);
        if msg.status.is_none() && msg.payload.len() >= SEGMENT_MIN {
            // A large success payload is queued as it is (often a slice of
            // the request's frame): only its field key and length are
            // encoded, the same bytes prost writes for `payload = 2`.
            let payload = msg.payload.clone();
            let len = payload.len() as u64;
            self.tx.push_frame_with_payload(
                id,
                FrameType::Response,
                Flags::NONE,
                body_len,
                |buf| {
                    encode_key(2, WireType::LengthDelimited, buf);
                    encode_varint(len, buf);
                },
                payload,
                |_| {},
            );
        } else {
            self.tx
                .push_frame(id, FrameType::Response, Flags::NONE, body_len, |buf| {
                    encode_response(msg, buf);
                });
        }
        self.stats.frames_sent += 1;
    }

    /// Whether a stream in flight may still get messages from the client
    /// (it has not half-closed). A graceful shutdown keeps reading for it.
    #[must_use]
    pub fn awaits_client(&self) -> bool {
        self.in_flight.values().any(|call| *call == Some(false))
    }

    /// Whether the next frame may be decoded now (the backpressure rule).
    /// At the in-flight bound (or shutting down) only Requests wait, and
    /// only while nothing in flight needs more client input: if a stream
    /// does, its Data may be queued behind the Request, so the Request is
    /// decoded and refused rather than risk a deadlock.
    fn may_decode(&mut self) -> bool {
        if self.tx.len() >= self.config.max_tx_bytes || self.queues.at_bound() {
            return false;
        }
        let awaits_client = self.awaits_client();
        if self.shutting_down && !awaits_client {
            return false;
        }
        match self.decoder.peek_header() {
            Some(h) if h.kind == FrameType::Request => {
                (self.in_flight.len() < self.config.max_in_flight && !self.shutting_down)
                    || awaits_client
            }
            _ => true,
        }
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
                    self.end_streams(&reason);
                    self.partial = PartialTimer::Off;
                    self.state = State::Drained(reason.clone());
                    self.events.push_back(ServerEvent::Closed { reason });
                    continue;
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
                if self.shutting_down || self.in_flight.len() >= self.config.max_in_flight {
                    // Decoded only because a stream awaits client input.
                    return Some(self.reject(id, ProtocolError::TooManyCalls));
                }
                match Request::decode(data) {
                    Ok(req) => {
                        let incoming = self.incoming(id, req, header.flags);
                        if incoming.is_stream() {
                            self.open_stream(&incoming);
                        } else {
                            self.in_flight.insert(id, None);
                        }
                        Some(ServerEvent::Request(incoming))
                    }
                    Err(e) => Some(self.reject(id, ProtocolError::UndecodableRequest(e))),
                }
            }
            FrameType::Data if !self.in_flight.contains_key(&id) => {
                Some(self.reject(id, ProtocolError::InactiveStream))
            }
            FrameType::Data if self.in_flight.get(&id) == Some(&Some(false)) => {
                self.on_data(id, header.flags, data)
            }
            FrameType::Data | FrameType::Response => {
                Some(self.ignore(id, ProtocolError::UnexpectedFrame(header.kind)))
            }
            FrameType::Unknown(t) => Some(self.ignore(id, ProtocolError::UnknownFrameType(t))),
        }
    }

    /// A stream opened: its queue, and the first message if the client
    /// sends one with the request (Go's rule: a remote-open request's
    /// non-empty payload).
    fn open_stream(&mut self, req: &IncomingRequest) {
        let id = req.id;
        let client_sends = req.client_sends();
        self.in_flight.insert(id, Some(!client_sends));
        self.queues.open(id);
        if client_sends {
            if !req.flags.contains(Flags::NO_DATA)
                && !req.payload.is_empty()
                && self.queues.push_message(id, req.payload.clone())
            {
                self.events.push_back(ServerEvent::StreamReadable { id });
            }
        } else {
            // Nothing will come: a handler that reads sees the end at once.
            let _ = self.queues.push_end(id, Ok(()));
        }
    }

    /// A Data frame on a stream whose client side is open.
    fn on_data(&mut self, id: StreamId, flags: Flags, data: Bytes) -> Option<ServerEvent> {
        let mut notify = false;
        if !flags.contains(Flags::NO_DATA) {
            notify |= self.queues.push_message(id, data);
        }
        if flags.contains(Flags::REMOTE_CLOSED) {
            self.in_flight.insert(id, Some(true));
            notify |= self.queues.push_end(id, Ok(()));
        }
        notify.then_some(ServerEvent::StreamReadable { id })
    }

    fn incoming(&self, id: StreamId, req: Request, flags: Flags) -> IncomingRequest {
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
            flags,
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

    /// Takes the queued bytes as owned buffers (no copy), for drivers that
    /// write outside a lock: call until `None`, writing each buffer whole
    /// and in order (frames must reach the wire in the order they were
    /// queued). Small frames come out together in one buffer; a large
    /// answer payload comes out as a buffer of its own.
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
        let partial = self
            .config
            .partial_frame_timeout
            .and_then(|limit| match self.partial {
                PartialTimer::Off => None,
                PartialTimer::Arming => self.now,
                PartialTimer::Since(since) => since.checked_add(limit),
            });
        earliest(partial, self.queues.next_stall())
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
        self.state == State::Open
            && (!self.shutting_down || self.awaits_client())
            && !self.decoder.has_frame()
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

    /// Bytes this connection holds: undecoded input, queued output, and
    /// stream messages not yet taken.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.decoder.buffered() + self.tx.len() + self.queues.bytes()
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
