//! The client side of one ttrpc connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;

use crate::code::oversized_status;
use crate::config::{Config, Stats};
use crate::decoder::{Decoded, FrameDecoder};
use crate::error::{CallError, ConnectionError, SendError};
use crate::frame::{Flags, FrameHeader, FrameType, HEADER_LEN};
use crate::message::{Metadata, RequestParts, Response};
use crate::recv::{Notify, RecvQueues, StreamItem};
use crate::sorted::SortedMap;
use crate::stream::{StreamId, StreamKind};
use crate::timer::{Deadlines, earliest};
use crate::tx::{SEGMENT_MIN, TxQueue};

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
    /// A stream has items to take with [`ClientConnection::recv_stream`]:
    /// messages, or its end. Take items until it returns `None`; only then
    /// is the stream reported again.
    StreamReadable {
        /// The stream's id, as `open_stream` returned it.
        id: StreamId,
    },
    /// The connection ended; reported once, after every pending call failed
    /// (and every open stream was ended).
    Closed {
        /// Why it ended.
        reason: ConnectionError,
    },
}

/// A call, or a stream still open on the wire (its end not yet received).
#[derive(Debug, Clone, Copy)]
struct Call {
    deadline: Option<Instant>,
    /// `None` for a unary call.
    stream: Option<Stream>,
}

#[derive(Debug, Clone, Copy)]
struct Stream {
    kind: StreamKind,
    /// This side half-closed (or never sends).
    local_closed: bool,
}

/// The type of [`ClientConnection::on_stream_frame`].
type StreamFrames =
    fn(&mut ClientConnection, FrameHeader, StreamKind, Bytes) -> Option<ClientEvent>;

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
    /// Calls and streams in flight: one map for both (ids are unique).
    calls: SortedMap<StreamId, Call>,
    queues: RecvQueues,
    deadlines: Deadlines,
    events: VecDeque<ClientEvent>,
    /// [`Self::on_stream_frame`], set by the first `open_stream`: called
    /// through this pointer, the stream code is linked only into programs
    /// that open streams.
    stream_frames: Option<StreamFrames>,
    state: State,
    stats: Stats,
}

impl ClientConnection {
    /// A new connection, before any byte is exchanged.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            decoder: FrameDecoder::new(config.max_data_len),
            tx: TxQueue::default(),
            next_id: Some(1),
            calls: SortedMap::new(),
            queues: RecvQueues::new(&config),
            deadlines: Deadlines::default(),
            events: VecDeque::new(),
            stream_frames: None,
            state: State::Open,
            stats: Stats::default(),
            config,
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
        self.queue_request(now, service, method, payload, None, options, None)
    }

    /// As [`Self::send_request`], with the payload as shared [`Bytes`]: a
    /// large one (32 KiB or more) is queued as it is instead of copied into
    /// the transmit queue ([`Self::take_transmit`] then hands it out as a
    /// buffer of its own).
    ///
    /// # Errors
    /// As [`Self::send_request`].
    pub fn send_request_bytes(
        &mut self,
        now: Instant,
        service: &str,
        method: &str,
        payload: &Bytes,
        options: &CallOptions,
    ) -> Result<StreamId, SendError> {
        self.queue_request(now, service, method, payload, Some(payload), options, None)
    }

    /// Opens a streaming call: allocates the next stream id and queues the
    /// Request frame. `payload` is the request message of a server-streaming
    /// call; for client-streaming and bidirectional calls it is an optional
    /// first message (empty = none; sent as Go and ttrpc-rust do, flags
    /// remote-open, plus no-data when empty). Then [`Self::send_data`],
    /// [`Self::close_send`], and [`Self::recv_stream`] after each
    /// [`ClientEvent::StreamReadable`]. `options.timeout` bounds the whole
    /// stream. A peer without streams (ttrpc < 1.2, e.g. Go 1.1.1) answers
    /// with `Unimplemented` (`method NAME`), which ends the stream.
    ///
    /// # Errors
    /// As [`Self::send_request`].
    pub fn open_stream(
        &mut self,
        now: Instant,
        service: &str,
        method: &str,
        kind: StreamKind,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<StreamId, SendError> {
        self.queues.set_now(now);
        let stream = Stream {
            kind,
            local_closed: !kind.client_sends(),
        };
        let id = self.queue_request(now, service, method, payload, None, options, Some(stream))?;
        self.queues.open(id);
        self.stream_frames = Some(Self::on_stream_frame);
        Ok(id)
    }

    /// Queues a Request frame and records the call (or `stream`); `shared`
    /// is `payload` as [`Bytes`], when the caller has it so, to be queued
    /// without a copy if large.
    #[allow(clippy::too_many_arguments)]
    fn queue_request(
        &mut self,
        now: Instant,
        service: &str,
        method: &str,
        payload: &[u8],
        shared: Option<&Bytes>,
        options: &CallOptions,
        stream: Option<Stream>,
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
        let flags = match stream.map(|s| s.kind) {
            None => Flags::NONE,
            Some(StreamKind::ServerStreaming) => Flags::REMOTE_CLOSED,
            Some(_) if payload.is_empty() => Flags::REMOTE_OPEN.union(Flags::NO_DATA),
            Some(_) => Flags::REMOTE_OPEN,
        };
        match shared.filter(|b| b.len() >= SEGMENT_MIN) {
            Some(bytes) => self.tx.push_frame_with_payload(
                id,
                FrameType::Request,
                flags,
                body_len,
                |buf| parts.encode_prefix(buf),
                bytes.clone(),
                |buf| parts.encode_suffix(buf),
            ),
            None => self
                .tx
                .push_frame(id, FrameType::Request, flags, body_len, |buf| {
                    parts.encode(buf)
                }),
        }
        self.stats.frames_sent += 1;
        let deadline = options.timeout.and_then(|t| now.checked_add(t));
        if let Some(at) = deadline {
            self.deadlines.insert(at, id);
        }
        self.next_id = raw_id.checked_add(2);
        self.calls.insert(id, Call { deadline, stream });
        Ok(id)
    }

    /// Queues one message on a stream whose client side sends
    /// (client-streaming or bidirectional), as a Data frame.
    ///
    /// # Errors
    /// [`SendError::TransmitQueueFull`] while the transmit queue is at its
    /// bound: write it out, then retry (this is the "wait" signal);
    /// [`SendError::UnknownStream`] if the stream ended or was never opened;
    /// [`SendError::StreamClosed`] after [`Self::close_send`] or on a
    /// server-streaming call; [`SendError::TooLarge`]; [`SendError::Closed`].
    pub fn send_data(&mut self, id: StreamId, payload: &[u8]) -> Result<(), SendError> {
        self.check_send(id)?;
        self.tx.push_data(&self.config, id, payload)?;
        self.stats.frames_sent += 1;
        Ok(())
    }

    /// Half-closes a stream: tells the server this side sends nothing more
    /// (a Data frame with remote-closed and no-data). Answers keep arriving.
    /// Never refused for a full transmit queue (the frame is 10 bytes).
    ///
    /// # Errors
    /// As [`Self::send_data`], except the transmit bound.
    pub fn close_send(&mut self, id: StreamId) -> Result<(), SendError> {
        self.check_send(id)?;
        self.tx.push_close(id);
        self.stats.frames_sent += 1;
        if let Some(Call {
            stream: Some(stream),
            ..
        }) = self.calls.get_mut(&id)
        {
            stream.local_closed = true;
        }
        Ok(())
    }

    fn check_send(&self, id: StreamId) -> Result<(), SendError> {
        if let State::Closed(reason) = &self.state {
            return Err(SendError::Closed(reason.clone()));
        }
        match self.stream(id) {
            None => Err(SendError::UnknownStream(id)),
            Some(s) if s.local_closed => Err(SendError::StreamClosed(id)),
            Some(_) => Ok(()),
        }
    }

    /// Takes the next item received on stream `id`: a message, then one
    /// [`StreamItem::End`] (`Ok` when the server finished normally). `None`
    /// when nothing is waiting; [`ClientEvent::StreamReadable`] says when
    /// to try again. After `End` the stream is gone. Taking messages is
    /// what keeps a stream within its receive bound
    /// ([`Config::stream_queue_len`]).
    #[must_use]
    pub fn recv_stream(&mut self, id: StreamId) -> Option<StreamItem> {
        self.queues.pop(id)
    }

    /// Whether stream `id` is open, or has items not yet taken with
    /// [`Self::recv_stream`] (its end included).
    #[must_use]
    pub fn has_stream(&self, id: StreamId) -> bool {
        self.stream(id).is_some() || self.queues.contains(id)
    }

    /// The stream open on the wire on `id`, if any.
    fn stream(&self, id: StreamId) -> Option<Stream> {
        self.calls.get(&id).and_then(|call| call.stream)
    }

    /// When the earliest stream stall timeout fails a stream whose
    /// receiver stopped taking messages: a driver whose callers enforce
    /// their own deadlines still needs to call [`Self::handle_timeout`]
    /// then. Included in [`Self::poll_timeout`].
    #[must_use]
    pub fn poll_stall_timeout(&self) -> Option<Instant> {
        self.queues.next_stall()
    }

    /// Streams opened and not yet ended on the wire.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.calls.values().filter(|c| c.stream.is_some()).count()
    }

    /// Forgets a call or a stream (cancel): no event will be reported for
    /// it, items not yet taken are dropped, and later frames for it are
    /// dropped. ttrpc has no cancel frame, so the server is not told.
    /// Returns whether the call or stream was pending.
    pub fn abandon(&mut self, id: StreamId) -> bool {
        let had_queue = self.queues.contains(id);
        self.queues.remove(id);
        match self.calls.remove(&id) {
            Some(call) => {
                if let Some(at) = call.deadline {
                    self.deadlines.remove(at, id);
                }
                true
            }
            None => had_queue,
        }
    }

    /// Takes bytes received from the peer, in any chunking. Expires due
    /// deadlines first, so an answer that arrives late is reported as
    /// [`CallError::DeadlineExceeded`] whatever the driver's timing.
    /// Input after the connection ended is ignored.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.handle_timeout(now);
        self.queues.set_now(now);
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

    /// Fails every call and stream whose deadline is at or before `now`,
    /// and every stream whose receive queue stayed full for the stall
    /// timeout. Spurious and early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.queues.set_now(now);
        while let Some(id) = self.deadlines.pop_expired(now) {
            let Some(call) = self.calls.remove(&id) else {
                continue;
            };
            if call.stream.is_none() {
                self.events.push_back(ClientEvent::Response {
                    id,
                    result: Err(CallError::DeadlineExceeded),
                });
            } else if self.queues.push_end(id, Err(CallError::DeadlineExceeded)) {
                self.events.push_back(ClientEvent::StreamReadable { id });
            }
        }
        while let Some((id, notify)) = self.queues.expire_stall(now) {
            self.stats.stalled_streams += 1;
            // Nothing is sent (ttrpc has no cancel frame); later frames
            // for it are dropped as unknown. (Only streams have queues.)
            if let Some(call) = self.calls.remove(&id) {
                if let Some(at) = call.deadline {
                    self.deadlines.remove(at, id);
                }
            }
            if notify {
                self.events.push_back(ClientEvent::StreamReadable { id });
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
        // Calls first, then streams, each in id order.
        let calls = std::mem::take(&mut self.calls);
        for (&id, _) in calls.iter().filter(|(_, c)| c.stream.is_none()) {
            self.events.push_back(ClientEvent::Response {
                id,
                result: Err(CallError::ConnectionClosed(reason.clone())),
            });
        }
        for (&id, _) in calls.iter().filter(|(_, c)| c.stream.is_some()) {
            let error = CallError::ConnectionClosed(reason.clone());
            if self.queues.push_end(id, Err(error)) {
                self.events.push_back(ClientEvent::StreamReadable { id });
            }
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
            if self.queues.at_bound() {
                // Undelivered stream messages are at the connection's bound:
                // decode nothing until consumers take some (or the stall
                // timeout fails the biggest stream). `wants_read` is false
                // meanwhile if a whole frame waits.
                return None;
            }
            match self.decoder.decode() {
                Some(Decoded::Frame { header, data }) => {
                    self.stats.frames_received += 1;
                    let ev = match (self.stream(header.stream_id), self.stream_frames) {
                        (Some(stream), Some(on_stream_frame)) => {
                            on_stream_frame(self, header, stream.kind, data)
                        }
                        _ => self.on_frame(header.stream_id, header.kind, data),
                    };
                    if ev.is_some() {
                        return ev;
                    }
                }
                Some(Decoded::Oversized { header }) => {
                    self.stats.oversized_frames += 1;
                    let status = oversized_status(header.len as usize, self.config.max_data_len);
                    let error = CallError::Status(status);
                    let id = header.stream_id;
                    let ev = if self.stream(id).is_some() {
                        self.end_stream(id, Err(error))
                            .then_some(ClientEvent::StreamReadable { id })
                    } else {
                        self.complete(header.stream_id, Err(error))
                    };
                    if let Some(ev) = ev {
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
            FrameType::Response => response_result(data),
            other => {
                // Go 1.1.1 fails a pending call on any non-Response frame.
                self.stats.protocol_violations += 1;
                Err(CallError::UnexpectedFrame(other))
            }
        };
        self.complete(id, result)
    }

    /// A frame on an open stream: a Data message and/or its end, or the
    /// Response that ends it.
    fn on_stream_frame(
        &mut self,
        header: FrameHeader,
        kind: StreamKind,
        data: Bytes,
    ) -> Option<ClientEvent> {
        let id = header.stream_id;
        let mut notify = false;
        match header.kind {
            FrameType::Data => {
                if !header.flags.contains(Flags::NO_DATA) {
                    notify |= self.queues.push_message(id, data);
                }
                if header.flags.contains(Flags::REMOTE_CLOSED) {
                    notify |= self.end_stream(id, Ok(()));
                }
            }
            FrameType::Response => {
                let result = match response_result(data) {
                    // A client-streaming call's answer is one message,
                    // even an empty one; a streaming answer's final
                    // Response carries a message only if non-empty.
                    Ok(payload) => {
                        if !kind.server_sends() || !payload.is_empty() {
                            notify |= self.queues.push_message(id, payload);
                        }
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                notify |= self.end_stream(id, result);
            }
            other => {
                self.stats.protocol_violations += 1;
                notify |= self.end_stream(id, Err(CallError::UnexpectedFrame(other)));
            }
        }
        notify.then_some(ClientEvent::StreamReadable { id })
    }

    /// The stream ended on the wire: queue its end, forget its state.
    /// Returns whether to report it readable.
    fn end_stream(&mut self, id: StreamId, result: Result<(), CallError>) -> Notify {
        let Some(stream) = self.calls.remove(&id) else {
            return false;
        };
        if let Some(at) = stream.deadline {
            self.deadlines.remove(at, id);
        }
        self.queues.push_end(id, result)
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

    /// Takes the queued bytes as owned buffers (no copy), for drivers that
    /// write outside a lock: call until `None`, writing each buffer whole
    /// and in order (frames must reach the wire in the order they were
    /// queued). Small frames come out together in one buffer; a large
    /// answer payload comes out as a buffer of its own.
    #[must_use]
    pub fn take_transmit(&mut self) -> Option<Bytes> {
        self.tx.take()
    }

    /// When [`Self::handle_timeout`] should next be called: the earliest
    /// call or stream deadline or stream stall timeout, or `None`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.deadlines.next(), self.queues.next_stall())
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

    /// Calls and streams started and not yet finished or abandoned.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.calls.len()
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

    /// Test and fuzzing hook: continue numbering from `raw_id` (odd).
    #[cfg(any(test, fuzzing))]
    pub fn set_next_stream_id(&mut self, raw_id: u32) {
        self.next_id = Some(raw_id | 1);
    }
}

/// A Response frame's answer: its payload, or the error its status (or
/// its undecodable bytes) stand for.
fn response_result(data: Bytes) -> Result<Bytes, CallError> {
    match Response::decode(data) {
        Ok(resp) => match resp.status {
            Some(s) if s.code != 0 => Err(CallError::Status(s.into())),
            _ => Ok(resp.payload),
        },
        Err(e) => Err(CallError::Decode(e)),
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
