//! Raw bytes into a `FrameDecoder`, pushed in input-derived chunks.
//!
//! Input layout: byte 0 picks the chunking (see `chunk_plan`), the rest is a
//! raw ttrpc byte stream (a corpus file minus its first byte is what a peer
//! would have written on the socket).
//!
//! Invariants checked:
//! - `buffered()` never exceeds `max_data_len + HEADER_LEN + chunk`, after
//!   each push and after each decode;
//! - every `Frame`'s data length equals its header's `len`, and `len` is
//!   within the limit; every `Oversized` header is over it;
//! - the chunked decode yields exactly the frames of a one-shot decode of
//!   the whole stream (chunking is invisible), and of a byte-at-a-time decode
//!   for short streams;
//! - bytes are conserved: frames + skipped bodies + what is left buffered
//!   account for the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ttrpc_core::{Decoded, FrameDecoder, HEADER_LEN};

/// Small, so oversized frames (and their skipped bodies) are common.
const MAX_DATA_LEN: u32 = 64 * 1024;
/// A second, tiny limit run on the same stream: most real frames are then
/// oversized, so the discard path gets the traffic.
const TINY_MAX: u32 = 16;

/// Chunk sizes for one run: byte 0 high bits choose a scheme, low bits a
/// size. The schedule cycles through a few sizes so a single stream sees
/// splits inside headers and bodies alike.
fn chunk_plan(sel: u8) -> Vec<usize> {
    let n = usize::from(sel & 0x3f) + 1;
    match sel >> 6 {
        0 => vec![n],                 // fixed 1..=64
        1 => vec![1, n, 3, n * 7],    // mixed small
        2 => vec![n * 97, 1, n * 13], // big and tiny
        _ => vec![HEADER_LEN - 1, HEADER_LEN + 1, n],
    }
}

/// Everything observable about one decoded item, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Frame(ttrpc_core::FrameHeader, Vec<u8>),
    Oversized(ttrpc_core::FrameHeader),
}

struct Run {
    items: Vec<Item>,
    /// Header + data bytes of complete frames, header bytes of oversized
    /// frames plus their claimed bodies.
    accounted: u64,
    max_chunk: usize,
}

fn run(stream: &[u8], max: u32, plan: &[usize]) -> (Run, FrameDecoder) {
    let mut d = FrameDecoder::new(max);
    assert_eq!(d.max_data_len(), max);
    let mut r = Run {
        items: Vec::new(),
        accounted: 0,
        max_chunk: 0,
    };
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = plan[i % plan.len()].clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        r.max_chunk = r.max_chunk.max(n);
        d.push(chunk);
        let bound = max as usize + HEADER_LEN + n;
        assert!(
            d.buffered() <= bound,
            "buffered {} > {bound} after push",
            d.buffered()
        );
        drain(&mut d, &mut r, bound);
    }
    (r, d)
}

fn drain(d: &mut FrameDecoder, r: &mut Run, bound: usize) {
    loop {
        let had_frame = d.has_frame();
        let Some(item) = d.decode() else {
            assert!(!had_frame, "has_frame() was true but decode() gave nothing");
            break;
        };
        assert!(had_frame, "decode() gave an item but has_frame() was false");
        match item {
            Decoded::Frame { header, data } => {
                assert_eq!(
                    data.len(),
                    header.len as usize,
                    "frame data length != header.len"
                );
                assert!(
                    header.len <= d.max_data_len(),
                    "accepted frame over the limit"
                );
                r.accounted += (HEADER_LEN + data.len()) as u64;
                r.items.push(Item::Frame(header, data.to_vec()));
            }
            Decoded::Oversized { header } => {
                assert!(
                    header.len > d.max_data_len(),
                    "in-limit frame reported oversized"
                );
                r.accounted += HEADER_LEN as u64 + u64::from(header.len);
                r.items.push(Item::Oversized(header));
            }
        }
        assert!(
            d.buffered() <= bound,
            "buffered {} > {bound} after decode",
            d.buffered()
        );
    }
    // Whatever is left is less than one frame (or the decoder is skipping).
    assert!(!d.has_frame());
}

fn check(stream: &[u8], max: u32, plan: &[usize]) {
    let (chunked, d) = run(stream, max, plan);
    assert!(chunked.max_chunk <= stream.len().max(1));

    // Conservation: every input byte is in a reported frame, in a skipped
    // body, or still buffered. A skipped body may claim more than arrived.
    let total = stream.len() as u64;
    let buffered = d.buffered() as u64;
    match chunked.items.last() {
        Some(Item::Oversized(_)) => assert!(chunked.accounted + buffered >= total),
        _ => assert_eq!(chunked.accounted + buffered, total, "bytes not conserved"),
    }
    assert_eq!(
        d.in_partial_frame(),
        buffered > 0 || chunked.accounted > total
    );

    // Chunking must not change what is decoded.
    let (whole, _) = run(stream, max, &[usize::MAX]);
    assert_eq!(
        chunked.items, whole.items,
        "chunked decode differs from one-shot decode"
    );
    if stream.len() <= 512 {
        let (bytewise, _) = run(stream, max, &[1]);
        assert_eq!(bytewise.items, whole.items, "byte-at-a-time decode differs");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let plan = chunk_plan(sel);
    check(stream, MAX_DATA_LEN, &plan);
    check(stream, TINY_MAX, &plan);
    check(stream, 0, &plan);
});
