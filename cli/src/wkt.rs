//! `google.protobuf.Any` and `Timestamp`, mapped here (prost-build
//! `extern_path`) instead of prost-types, with what shimctl prints them as:
//! timestamps in RFC 3339 the way Go's `time.Time` does, bytes in base64.

/// `google.protobuf.Timestamp`. Any `seconds` decodes, including Go's zero
/// time (year 1, negative seconds) that 1.6 shims send for "not exited".
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub(crate) struct Timestamp {
    #[prost(int64, tag = "1")]
    pub(crate) seconds: i64,
    #[prost(int32, tag = "2")]
    pub(crate) nanos: i32,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub(crate) struct Any {
    #[prost(string, tag = "1")]
    pub(crate) type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) value: Vec<u8>,
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Timestamp {
    /// Go's zero `time.Time` (year 1), which runc shims send as `exited_at`
    /// of a process that has not exited.
    pub(crate) const GO_ZERO: Self = Self {
        seconds: -62_135_596_800,
        nanos: 0,
    };

    /// Go's `time.RFC3339Nano` in UTC: fraction without trailing zeros,
    /// none when zero (`0001-01-01T00:00:00Z`).
    pub(crate) fn rfc3339(&self) -> String {
        // Normalise nanos into [0, 1e9); clamp absurd seconds (never panic).
        let secs = self
            .seconds
            .clamp(-(1 << 52), 1 << 52)
            .saturating_add(i64::from(self.nanos.div_euclid(1_000_000_000)));
        let nanos = self.nanos.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let mut out = if (0..=9999).contains(&y) {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
        } else {
            format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
        };
        if nanos != 0 {
            let frac = format!("{nanos:09}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time_and_fractions() {
        assert_eq!(Timestamp::GO_ZERO.rfc3339(), "0001-01-01T00:00:00Z");
        let t = Timestamp {
            seconds: 1_700_000_000,
            nanos: 120_000_000,
        };
        assert_eq!(t.rfc3339(), "2023-11-14T22:13:20.12Z");
        assert_eq!(Timestamp::default().rfc3339(), "1970-01-01T00:00:00Z");
        let leap = Timestamp {
            seconds: 951_782_400,
            nanos: 1,
        };
        assert_eq!(leap.rfc3339(), "2000-02-29T00:00:00.000000001Z");
        // Extremes never panic.
        for s in [i64::MIN, i64::MAX] {
            for n in [i32::MIN, 0, i32::MAX] {
                let _ = Timestamp {
                    seconds: s,
                    nanos: n,
                }
                .rfc3339();
            }
        }
    }

    #[test]
    fn zero_time_wire_bytes_decode() {
        use prost::Message;
        let bytes = [
            0x08, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x01,
        ];
        let t = Timestamp::decode(&bytes[..]).unwrap();
        assert_eq!(t.seconds, -62_135_596_800);
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
