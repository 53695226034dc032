//! Reading protobuf wire format without generated code, for the JSON
//! printer: keys, varints, fixed-width and length-delimited values, and
//! skipping unknown fields (groups included). It accepts and refuses
//! exactly what prost's decoders do (same varint overflow rule, the same
//! recursion limit of 100), so a response prints if and only if the typed
//! stub would have decoded it.

use std::fmt;

/// prost's `RECURSION_LIMIT`: nested messages and groups deeper than this
/// are refused.
pub(crate) const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a valid message, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireError {
    /// Offset in the buffer being read when it was found.
    pub(crate) offset: usize,
    pub(crate) what: &'static str,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// The wire types protobuf defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    Len,
    StartGroup,
    EndGroup,
    Fixed32,
}

/// A cursor over one message's bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn error(&self, what: &'static str) -> WireError {
        WireError {
            offset: self.pos,
            what,
        }
    }

    /// A varint of at most 10 bytes; the tenth may only be 0 or 1 (no
    /// overflow past 64 bits), as prost and Go check.
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(self.error("varint overflows 64 bits"));
                }
                return Ok(value);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// A field key: field number (at least 1) and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, WireType), WireError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| self.error("key above 32 bits"))?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::Fixed32,
            _ => return Err(self.error("invalid wire type")),
        };
        let number = key >> 3;
        if number == 0 {
            return Err(self.error("field number 0"));
        }
        Ok((number, wire))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| self.error("value runs past the end"))?;
        let out = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    /// A length-delimited value.
    pub(crate) fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.error("value runs past the end"))?;
        self.take(len)
    }

    /// Skips the value of an unknown field numbered `number`; `budget` is
    /// what is left of the recursion limit (a group nests).
    pub(crate) fn skip(
        &mut self,
        wire: WireType,
        number: u32,
        budget: u32,
    ) -> Result<(), WireError> {
        if budget == 0 {
            return Err(self.error("nested too deep"));
        }
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::StartGroup => loop {
                let (inner, wire) = self.key()?;
                if wire == WireType::EndGroup {
                    if inner != number {
                        return Err(self.error("unexpected end group"));
                    }
                    return Ok(());
                }
                self.skip(wire, inner, budget - 1)?;
            },
            WireType::EndGroup => Err(self.error("unexpected end group")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64, WireError> {
        Reader::new(bytes).varint()
    }

    #[test]
    fn varints_as_prost() {
        assert_eq!(varint(&[0]), Ok(0));
        assert_eq!(varint(&[0x96, 0x01]), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max), Ok(u64::MAX));
        let mut over = max;
        over[9] = 0x02;
        assert!(varint(&over).is_err());
        assert!(varint(&[0x80; 11]).is_err());
        assert!(varint(&[0x80]).is_err());
        assert!(varint(&[]).is_err());
        // Non-minimal encodings are fine.
        assert_eq!(varint(&[0x80, 0x80, 0x00]), Ok(0));
    }

    #[test]
    fn keys_and_skipping() {
        assert_eq!(Reader::new(&[0x08]).key(), Ok((1, WireType::Varint)));
        assert!(Reader::new(&[0x00]).key().is_err()); // field 0
        assert!(Reader::new(&[0x0e]).key().is_err()); // wire type 6
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10]).key().is_err()); // > u32
        // A group holding a varint and a nested group, then its end.
        let group = [0x08, 0x05, 0x1b, 0x1c, 0x0c];
        let mut r = Reader::new(&group);
        assert_eq!(r.skip(WireType::StartGroup, 1, RECURSION_LIMIT), Ok(()));
        assert!(r.is_empty());
        assert!(
            Reader::new(&[0x14])
                .skip(WireType::StartGroup, 1, 5)
                .is_err()
        ); // end 2 ≠ 1
        assert!(Reader::new(&[]).skip(WireType::StartGroup, 1, 5).is_err());
        assert!(Reader::new(&[]).skip(WireType::EndGroup, 1, 5).is_err());
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 200).collect();
        assert!(
            Reader::new(&deep)
                .skip(WireType::StartGroup, 1, RECURSION_LIMIT)
                .is_err()
        );
        assert!(
            Reader::new(&[0x05, 1, 2])
                .skip(WireType::Len, 1, 1)
                .is_err()
        );
        assert!(
            Reader::new(&[1, 2, 3])
                .skip(WireType::Fixed32, 1, 1)
                .is_err()
        );
        assert!(Reader::new(&[0xff; 9]).len_delimited().is_err());
    }
}
