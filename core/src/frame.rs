//! The 10-byte ttrpc frame header: stateless parse and encode.
//!
//! ```text
//! | data length: u32 BE | stream id: u32 BE | type: u8 | flags: u8 | data ... |
//! ```
//! The length counts the data only, never the header.

use bytes::BufMut;

use crate::stream::StreamId;

/// Size of the frame header in bytes.
pub const HEADER_LEN: usize = 10;

/// Default maximum data length of one frame: 4 MiB, as Go ttrpc
/// (`length > max` is refused, so exactly 4,194,304 bytes is allowed).
pub const DEFAULT_MAX_DATA_LEN: u32 = 4 << 20;

/// The frame's message type. Unknown types are data, not errors: a receiver
/// skips them for forward compatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `0x01`: a call from client to server.
    Request,
    /// `0x02`: the answer to a call.
    Response,
    /// `0x03`: a stream message (ttrpc 1.2).
    Data,
    /// Any other value, kept as sent.
    Unknown(u8),
}

impl FrameType {
    /// The byte on the wire.
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Request => 1,
            Self::Response => 2,
            Self::Data => 3,
            Self::Unknown(v) => v,
        }
    }
}

/// The name as `Debug` prints it (`Request`, `Response`, `Data`,
/// `Unknown(7)`), for error messages.
impl std::fmt::Display for FrameType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request => f.write_str("Request"),
            Self::Response => f.write_str("Response"),
            Self::Data => f.write_str("Data"),
            Self::Unknown(v) => write!(f, "Unknown({v})"),
        }
    }
}

impl From<u8> for FrameType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Data,
            other => Self::Unknown(other),
        }
    }
}

/// The header's flag byte. ttrpc 1.1 always sends 0; 1.2 streams use the
/// named bits. Unknown bits are preserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No flags: a unary request, or any 1.1 frame.
    pub const NONE: Self = Self(0);
    /// Remote closed: the sender will send nothing more on this stream.
    pub const REMOTE_CLOSED: Self = Self(0x01);
    /// Remote open: a streaming request; the sender will send Data frames.
    pub const REMOTE_OPEN: Self = Self(0x02);
    /// No data: this Data frame carries no payload.
    pub const NO_DATA: Self = Self(0x04);

    /// Whether every bit of `other` is set.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Data length in bytes, excluding the header.
    pub len: u32,
    /// The stream the frame belongs to.
    pub stream_id: StreamId,
    /// Message type.
    pub kind: FrameType,
    /// Flag bits.
    pub flags: Flags,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`; `None` if `buf` holds fewer
    /// than [`HEADER_LEN`] bytes. Every 10-byte value is a valid header:
    /// limits are the caller's to check.
    #[must_use]
    pub fn parse(buf: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            len: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            stream_id: StreamId::new(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
            kind: FrameType::from(h[8]),
            flags: Flags(h[9]),
        })
    }

    /// The header's wire bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.len.to_be_bytes());
        out[4..8].copy_from_slice(&self.stream_id.get().to_be_bytes());
        out[8] = self.kind.as_u8();
        out[9] = self.flags.0;
        out
    }
}

/// Encodes one whole frame (header and protobuf data) into a buffer the
/// caller provides, for tools and tests that build frames outside a
/// connection (a connection encodes into its own transmit queue).
///
/// # Errors
/// [`FrameTooLarge`] if the message is longer than `max_data_len`; nothing
/// is written then.
pub fn encode_frame(
    dst: &mut impl BufMut,
    stream_id: StreamId,
    kind: FrameType,
    flags: Flags,
    message: &impl prost::Message,
    max_data_len: u32,
) -> Result<(), FrameTooLarge> {
    let len = message.encoded_len();
    let data_len = u32::try_from(len)
        .ok()
        .filter(|l| *l <= max_data_len)
        .ok_or(FrameTooLarge {
            len,
            max: max_data_len,
        })?;
    let header = FrameHeader {
        len: data_len,
        stream_id,
        kind,
        flags,
    };
    dst.put_slice(&header.encode());
    message.encode_raw(dst);
    Ok(())
}

/// A frame's data would exceed the maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message length {len} exceeds maximum message size of {max}")]
pub struct FrameTooLarge {
    /// The encoded data length.
    pub len: usize,
    /// The limit it exceeds.
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_every_type_and_flag() {
        for kind in 0..=255u8 {
            for flags in [0u8, 1, 2, 3, 4, 5, 0x80, 0xff] {
                let h = FrameHeader {
                    len: 0x0102_0304,
                    stream_id: StreamId::new(0xfedc_ba98),
                    kind: FrameType::from(kind),
                    flags: Flags(flags),
                };
                let bytes = h.encode();
                assert_eq!(bytes[..4], [1, 2, 3, 4]);
                assert_eq!(bytes[4..8], [0xfe, 0xdc, 0xba, 0x98]);
                assert_eq!(bytes[8], kind);
                assert_eq!(bytes[9], flags);
                assert_eq!(FrameHeader::parse(&bytes), Some(h));
            }
        }
    }

    #[test]
    fn known_types_and_flags() {
        assert_eq!(FrameType::from(1), FrameType::Request);
        assert_eq!(FrameType::from(2), FrameType::Response);
        assert_eq!(FrameType::from(3), FrameType::Data);
        assert_eq!(FrameType::from(7), FrameType::Unknown(7));
        for t in [1, 2, 3, 7].map(FrameType::from) {
            assert_eq!(t.to_string(), format!("{t:?}"));
        }
        let f = Flags::REMOTE_CLOSED.union(Flags::NO_DATA);
        assert_eq!(f.0, 5);
        assert!(f.contains(Flags::REMOTE_CLOSED));
        assert!(!f.contains(Flags::REMOTE_OPEN));
    }

    #[test]
    fn encode_frame_into_a_caller_buffer() {
        let msg = crate::message::KeyValue {
            key: "k".into(),
            value: "v".into(),
        };
        let mut buf = Vec::new();
        let id = StreamId::new(3);
        encode_frame(&mut buf, id, FrameType::Request, Flags::NONE, &msg, 100).unwrap();
        assert_eq!(
            buf,
            [0, 0, 0, 6, 0, 0, 0, 3, 1, 0, 0x0a, 1, b'k', 0x12, 1, b'v']
        );
        let err = encode_frame(&mut buf, id, FrameType::Request, Flags::NONE, &msg, 5);
        assert_eq!(err, Err(FrameTooLarge { len: 6, max: 5 }));
        assert_eq!(buf.len(), 16, "nothing written on error");
    }

    #[test]
    fn short_input_is_not_a_header() {
        for n in 0..HEADER_LEN {
            assert_eq!(FrameHeader::parse(&[0u8; HEADER_LEN][..n]), None);
        }
    }
}
