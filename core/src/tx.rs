//! The outgoing byte queue: whole frames encoded eagerly, drained by the
//! driver in writes of any size.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::config::Config;
use crate::error::SendError;
use crate::frame::{Flags, FrameHeader, FrameType, HEADER_LEN};
use crate::stream::StreamId;

/// Payloads at least this long are queued as they are (a reference to the
/// caller's `Bytes`), never copied into the queue.
pub(crate) const SEGMENT_MIN: usize = 32 * 1024;

/// Queued bytes: `segments` (in order) come before `buf`, the tail still
/// being encoded into.
#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    segments: VecDeque<Bytes>,
    buf: BytesMut,
    len: usize,
}

impl TxQueue {
    /// Queues one stream message (a Data frame), within `config`'s frame
    /// size and transmit bound (refused with `TransmitQueueFull` when it
    /// would cross the bound and something is already queued): the send
    /// half both connection types share.
    pub(crate) fn push_data(
        &mut self,
        config: &Config,
        stream_id: StreamId,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let len = payload.len();
        let body_len = u32::try_from(len)
            .ok()
            .filter(|l| *l <= config.max_data_len)
            .ok_or(SendError::TooLarge {
                len,
                max: config.max_data_len,
            })?;
        if self.len() > 0 && self.len() + HEADER_LEN + len > config.max_tx_bytes {
            return Err(SendError::TransmitQueueFull);
        }
        self.push_frame(stream_id, FrameType::Data, Flags::NONE, body_len, |buf| {
            buf.put_slice(payload);
        });
        Ok(())
    }

    /// Queues the end of this side's messages on a stream: a Data frame
    /// with remote-closed and no-data (10 bytes, never refused).
    pub(crate) fn push_close(&mut self, stream_id: StreamId) {
        self.push_frame(
            stream_id,
            FrameType::Data,
            Flags::REMOTE_CLOSED.union(Flags::NO_DATA),
            0,
            |_| {},
        );
    }

    /// Appends one frame whose body `write` produces; `body_len` must be
    /// the exact number of bytes `write` puts.
    pub(crate) fn push_frame(
        &mut self,
        stream_id: StreamId,
        kind: FrameType,
        flags: Flags,
        body_len: u32,
        write: impl FnOnce(&mut BytesMut),
    ) {
        let header = FrameHeader {
            len: body_len,
            stream_id,
            kind,
            flags,
        };
        self.buf.reserve(HEADER_LEN + body_len as usize);
        self.buf.put_slice(&header.encode());
        let before = self.buf.len();
        write(&mut self.buf);
        debug_assert_eq!(self.buf.len() - before, body_len as usize);
        self.len += HEADER_LEN + body_len as usize;
    }

    /// Appends one frame whose body is what `write_prefix` puts, then
    /// `payload`, queued without copying, then what `write_suffix` puts;
    /// `body_len` must be the whole body's length.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_frame_with_payload(
        &mut self,
        stream_id: StreamId,
        kind: FrameType,
        flags: Flags,
        body_len: u32,
        write_prefix: impl FnOnce(&mut BytesMut),
        payload: Bytes,
        write_suffix: impl FnOnce(&mut BytesMut),
    ) {
        let header = FrameHeader {
            len: body_len,
            stream_id,
            kind,
            flags,
        };
        let before = self.buf.len();
        self.buf.put_slice(&header.encode());
        write_prefix(&mut self.buf);
        let prefix = self.buf.len() - before;
        let payload_len = payload.len();
        self.segments.push_back(self.buf.split().freeze());
        self.segments.push_back(payload);
        write_suffix(&mut self.buf);
        let suffix = self.buf.len();
        debug_assert_eq!(
            prefix + payload_len + suffix,
            HEADER_LEN + body_len as usize
        );
        self.len += prefix + payload_len + suffix;
    }

    pub(crate) fn pending(&self) -> Option<&[u8]> {
        match self.segments.front() {
            Some(seg) => Some(&seg[..]),
            None => (!self.buf.is_empty()).then_some(&self.buf[..]),
        }
    }

    pub(crate) fn advance(&mut self, written: usize) {
        let mut left = written.min(self.len);
        self.len -= left;
        while left > 0 {
            match self.segments.front_mut() {
                Some(seg) => {
                    let n = left.min(seg.len());
                    seg.advance(n);
                    left -= n;
                    if seg.is_empty() {
                        self.segments.pop_front();
                    }
                }
                None => {
                    self.buf.advance(left);
                    left = 0;
                }
            }
        }
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            // Give back what a burst of large frames grew, so an idle
            // connection costs little.
            self.buf = BytesMut::new();
        }
    }

    /// Takes the next queued bytes as one owned buffer, without copying;
    /// `None` when nothing is queued. Take (and write) until `None`.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        let next = match self.segments.pop_front() {
            Some(seg) => seg,
            None if self.buf.is_empty() => return None,
            None => self.buf.split().freeze(),
        };
        self.len -= next.len();
        Some(next)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.segments = VecDeque::new();
        self.buf = BytesMut::new();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(q: &mut TxQueue, id: u32, body: &'static [u8], split: bool) {
        let id = StreamId::new(id);
        let len = body.len() as u32;
        if split {
            q.push_frame_with_payload(
                id,
                FrameType::Response,
                Flags::NONE,
                len,
                |b| b.put_slice(&body[..1]),
                Bytes::from_static(&body[1..body.len() - 1]),
                |b| b.put_slice(&body[body.len() - 1..]),
            );
        } else {
            q.push_frame(id, FrameType::Response, Flags::NONE, len, |b| {
                b.put_slice(body)
            });
        }
    }

    const FRAMES: [(u32, &[u8]); 4] = [(1, b"abc"), (3, b"defgh"), (5, b"ij"), (7, b"klmno")];

    fn queue(split: bool) -> TxQueue {
        let mut q = TxQueue::default();
        for (id, body) in FRAMES {
            frame(&mut q, id, body, split && id % 4 == 3);
        }
        q
    }

    fn take_all(q: &mut TxQueue) -> Vec<u8> {
        std::iter::from_fn(|| q.take())
            .flat_map(|b| b.to_vec())
            .collect()
    }

    #[test]
    fn payload_segments_drain_in_order_in_writes_of_any_size() {
        let expected = take_all(&mut queue(false));
        let mut q = queue(true);
        assert_eq!(q.len(), expected.len());
        assert_eq!(take_all(&mut q), expected);
        assert_eq!(q.len(), 0);
        for step in 1..8 {
            let mut q = queue(true);
            let mut got = Vec::new();
            while let Some(p) = q.pending() {
                let n = p.len().min(step);
                got.extend_from_slice(&p[..n]);
                q.advance(n);
                assert_eq!(q.len(), expected.len() - got.len());
            }
            assert_eq!(got, expected, "step {step}");
        }
    }
}
