//! Incremental frame reassembly: bytes in any chunking, whole frames out.
//!
//! The decoder holds at most one partial frame (at most `max_data_len` +
//! [`HEADER_LEN`] bytes) plus whatever input the driver handed it since the
//! last drain. A frame whose length exceeds the maximum is reported once and
//! its body skipped as it arrives: never buffered, never allocated.

use bytes::{Buf, Bytes, BytesMut};

use crate::frame::{FrameHeader, HEADER_LEN};

/// The most the decoder reserves ahead of bytes actually received while
/// less than an eighth of a frame is in.
const RESERVE_AHEAD: usize = 64 * 1024;

/// One decoding step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame whose data is within the limit.
    Frame {
        /// The frame's header.
        header: FrameHeader,
        /// The frame's data: a slice of the decoder's buffer, not a copy.
        data: Bytes,
    },
    /// A frame longer than the limit. Its body is being skipped; the header
    /// is reported so the receiver can answer on that stream.
    Oversized {
        /// The frame's header; `len` is the length the peer claimed.
        header: FrameHeader,
    },
}

/// Reassembles frames from a byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    /// Body bytes of an oversized frame still to be dropped.
    discard: u64,
    max_data_len: u32,
}

impl FrameDecoder {
    /// A decoder that accepts frames with at most `max_data_len` data bytes.
    #[must_use]
    pub fn new(max_data_len: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            discard: 0,
            max_data_len,
        }
    }

    /// Takes received bytes. Bytes that belong to an oversized frame's body
    /// are dropped at once; the rest are buffered until [`Self::decode`].
    pub fn push(&mut self, mut input: &[u8]) {
        if self.discard > 0 {
            let skip = usize::try_from(self.discard).map_or(input.len(), |d| d.min(input.len()));
            input = input.get(skip..).unwrap_or_default();
            self.discard -= skip as u64;
        }
        if !input.is_empty() {
            self.buf.extend_from_slice(input);
        }
    }

    /// Returns the next complete frame, or `None` when more input is needed.
    pub fn decode(&mut self) -> Option<Decoded> {
        if self.discard > 0 {
            return None;
        }
        let header = FrameHeader::parse(&self.buf)?;
        if header.len > self.max_data_len {
            self.buf.advance(HEADER_LEN);
            let have = self.buf.len().min(header.len as usize);
            self.buf.advance(have);
            self.discard = u64::from(header.len) - have as u64;
            return Some(Decoded::Oversized { header });
        }
        let total = HEADER_LEN + header.len as usize;
        if self.buf.len() < total {
            // Grow ahead of the body by at most RESERVE_AHEAD while little
            // of the frame is in, so a bare header never makes us allocate
            // the length it claims; once an eighth of it has arrived, make
            // room for all of it, so a large frame is moved into place once
            // rather than at every doubling of the buffer.
            let missing = total - self.buf.len();
            let ahead = if self.buf.len() >= total / 8 {
                missing
            } else {
                missing.min(RESERVE_AHEAD)
            };
            self.buf.reserve(ahead);
            return None;
        }
        let mut frame = self.buf.split_to(total);
        frame.advance(HEADER_LEN);
        Some(Decoded::Frame {
            header,
            data: frame.freeze(),
        })
    }

    /// Bytes held in the buffer (undecoded input).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a frame has begun but not completed: buffered bytes that do not
    /// form a whole frame, or an oversized body still being skipped.
    #[must_use]
    pub fn in_partial_frame(&self) -> bool {
        self.discard > 0 || !self.buf.is_empty()
    }

    /// Whether a complete frame is buffered and waiting for [`Self::decode`].
    #[must_use]
    pub fn has_frame(&self) -> bool {
        self.discard == 0
            && FrameHeader::parse(&self.buf).is_some_and(|h| {
                h.len > self.max_data_len || self.buf.len() >= HEADER_LEN + h.len as usize
            })
    }

    /// The header of the next frame, if a whole header is buffered (and no
    /// oversized body is being skipped), without consuming anything.
    #[must_use]
    pub fn peek_header(&self) -> Option<FrameHeader> {
        if self.discard > 0 {
            return None;
        }
        FrameHeader::parse(&self.buf)
    }

    /// The maximum data length this decoder accepts.
    #[must_use]
    pub fn max_data_len(&self) -> u32 {
        self.max_data_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Flags, FrameType};
    use crate::stream::StreamId;

    fn frame(id: u32, kind: u8, data: &[u8]) -> Vec<u8> {
        let h = FrameHeader {
            len: data.len() as u32,
            stream_id: StreamId::new(id),
            kind: FrameType::from(kind),
            flags: Flags::NONE,
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(data);
        v
    }

    fn decode_all(d: &mut FrameDecoder) -> Vec<Decoded> {
        std::iter::from_fn(|| d.decode()).collect()
    }

    #[test]
    fn whole_byte_at_a_time_and_every_split_agree() {
        let mut input = frame(1, 1, b"hello");
        input.extend(frame(3, 2, b""));
        input.extend(frame(5, 9, &[7; 40]));
        let mut whole = FrameDecoder::new(1024);
        whole.push(&input);
        let expected = decode_all(&mut whole);
        assert_eq!(expected.len(), 3);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let mut d = FrameDecoder::new(1024);
                let mut got = Vec::new();
                for part in [&input[..i], &input[i..j], &input[j..]] {
                    d.push(part);
                    got.extend(decode_all(&mut d));
                }
                assert_eq!(got, expected, "split at {i},{j}");
                assert!(!d.in_partial_frame());
            }
        }
    }

    #[test]
    fn exactly_max_is_accepted_and_one_more_is_skipped() {
        let mut d = FrameDecoder::new(8);
        d.push(&frame(1, 1, &[1; 8]));
        assert!(matches!(d.decode(), Some(Decoded::Frame { data, .. }) if data.len() == 8));
        let mut big = frame(3, 1, &[2; 9]);
        big.extend(frame(5, 1, b"ok"));
        let mut got = Vec::new();
        for chunk in big.chunks(3) {
            d.push(chunk);
            assert!(d.buffered() <= 8 + HEADER_LEN + 3);
            got.extend(decode_all(&mut d));
        }
        assert_eq!(got.len(), 2);
        assert!(
            matches!(got[0], Decoded::Oversized { header } if header.len == 9 && header.stream_id.get() == 3)
        );
        assert!(matches!(&got[1], Decoded::Frame { data, .. } if &data[..] == b"ok"));
    }

    #[test]
    fn huge_claimed_length_allocates_nothing() {
        let mut d = FrameDecoder::new(4 << 20);
        d.push(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]);
        assert!(
            matches!(d.decode(), Some(Decoded::Oversized { header }) if header.len == u32::MAX)
        );
        for _ in 0..100 {
            d.push(&[0u8; 4096]);
        }
        assert_eq!(d.buffered(), 0);
        assert!(d.in_partial_frame());
        assert!(d.decode().is_none());
    }

    #[test]
    fn a_bare_header_does_not_reserve_the_claimed_length() {
        let mut d = FrameDecoder::new(4 << 20);
        d.push(&[0x00, 0x40, 0x00, 0x00, 0, 0, 0, 1, 1, 0]); // claims 4 MiB
        assert!(d.decode().is_none());
        assert!(
            d.buf.capacity() <= 2 * RESERVE_AHEAD,
            "{}",
            d.buf.capacity()
        );
    }

    #[test]
    fn a_large_frame_grows_with_what_arrived_and_is_placed_once() {
        let body = vec![7u8; 1 << 20];
        let input = frame(1, 1, &body);
        let mut d = FrameDecoder::new(4 << 20);
        let mut grew = 0;
        let mut cap = 0;
        for chunk in input.chunks(4096) {
            d.push(chunk);
            if let Some(Decoded::Frame { data, .. }) = d.decode() {
                assert_eq!(&data[..], &body[..]);
                break;
            }
            let now = d.buf.capacity();
            assert!(
                now <= 8 * d.buffered() + 2 * RESERVE_AHEAD,
                "{now} for {}",
                d.buffered()
            );
            grew += usize::from(now > cap);
            cap = now;
        }
        // 64 KiB steps up to an eighth (128 KiB), then the rest at once.
        assert!(grew <= 4, "{grew} reallocations");
    }

    #[test]
    fn partial_header_and_body_need_more_input() {
        let f = frame(1, 1, b"abc");
        let mut d = FrameDecoder::new(16);
        d.push(&f[..4]);
        assert!(d.decode().is_none());
        assert!(d.in_partial_frame() && !d.has_frame());
        d.push(&f[4..11]);
        assert!(d.decode().is_none());
        d.push(&f[11..]);
        assert!(d.has_frame());
        assert!(d.decode().is_some());
        assert!(!d.in_partial_frame());
    }
}
