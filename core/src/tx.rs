//! The outgoing byte queue: whole frames encoded eagerly, drained by the
//! driver in writes of any size.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{Flags, FrameHeader, FrameType, HEADER_LEN};
use crate::stream::StreamId;

#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    buf: BytesMut,
}

impl TxQueue {
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
    }

    pub(crate) fn pending(&self) -> Option<&[u8]> {
        (!self.buf.is_empty()).then_some(&self.buf[..])
    }

    pub(crate) fn advance(&mut self, written: usize) {
        let n = written.min(self.buf.len());
        self.buf.advance(n);
        if self.buf.is_empty() && self.buf.capacity() > 64 * 1024 {
            // Give back what a burst of large frames grew, so an idle
            // connection costs little.
            self.buf = BytesMut::new();
        }
    }

    /// Takes every queued byte as one owned buffer, without copying.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn clear(&mut self) {
        self.buf = BytesMut::new();
    }
}
