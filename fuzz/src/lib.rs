//! Helpers shared by the fuzz targets: a deterministic PRNG for driver
//! decisions, a virtual clock, and a decoder for the bytes a connection
//! wrote, so targets can check its output against a model. Also shimctl's
//! generated shim API and its JSON printer, compiled from `../cli/src` (the
//! shipped binary is untouched), for [`shim_messages`].

// shimctl's modules, at the crate root where they expect each other
// (`crate::proto`, `crate::wkt`, ...). Only `shim_messages` uses them.
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/json/mod.rs"]
mod json;
#[allow(dead_code, unreachable_pub, unused_imports)]
#[path = "../../cli/src/proto.rs"]
mod proto;
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/schema.rs"]
mod schema;
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/wire.rs"]
mod wire;
#[allow(dead_code, unreachable_pub)]
#[path = "../../cli/src/wkt.rs"]
mod wkt;

pub mod shim_messages;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ttrpc_core::{Bytes, Decoded, FrameDecoder, FrameHeader};

/// xorshift64*: the driver's choices (chunk sizes, when to answer, how much
/// to transmit) come from a seed taken from the input, so a crash replays
/// exactly and the fuzzer can explore schedules by mutating a few bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from input bytes (any seed works, zero included).
    #[must_use]
    pub fn new(seed: &[u8]) -> Self {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for &b in seed {
            s = (s ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
        Self(s | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Virtual time: one real `Instant` taken once per process, advanced only by
/// the target. The core never reads the clock itself.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    now: Instant,
}

impl Clock {
    /// A clock at the process-wide epoch.
    #[must_use]
    pub fn new() -> Self {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        Self {
            now: *EPOCH.get_or_init(Instant::now),
        }
    }

    /// The current virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves time forward (saturating far in the future instead of
    /// overflowing `Instant`).
    pub fn advance(&mut self, by: Duration) {
        if let Some(t) = self.now.checked_add(by) {
            self.now = t;
        }
    }

    /// Moves time forward to `at` if it is later.
    pub fn advance_to(&mut self, at: Instant) {
        if at > self.now {
            self.now = at;
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// One frame read back from a connection's output.
#[derive(Debug, Clone)]
pub struct WireFrame {
    /// Its header.
    pub header: FrameHeader,
    /// Its data.
    pub data: Bytes,
}

/// Splits bytes a connection wrote into frames. Returns the frames and
/// whether bytes of an incomplete frame are left over (allowed only when the
/// connection was closed locally, which drops its queue).
#[must_use]
pub fn split_frames(bytes: &[u8]) -> (Vec<WireFrame>, bool) {
    let mut d = FrameDecoder::new(u32::MAX);
    d.push(bytes);
    let mut frames = Vec::new();
    while let Some(item) = d.decode() {
        match item {
            Decoded::Frame { header, data } => frames.push(WireFrame { header, data }),
            Decoded::Oversized { .. } => unreachable!("no frame is over u32::MAX"),
        }
    }
    (frames, d.in_partial_frame())
}

/// A duration from one selector byte: zero, short, around typical
/// timeouts, long, or effectively forever.
#[must_use]
pub fn duration_from(sel: u8) -> Duration {
    match sel {
        0 => Duration::ZERO,
        1..=127 => Duration::from_millis(u64::from(sel)),
        128..=223 => Duration::from_millis(u64::from(sel - 127) * 250),
        224..=254 => Duration::from_secs(u64::from(sel - 223) * 3600),
        255 => Duration::MAX,
    }
}
