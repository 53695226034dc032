//! Regressions found by the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Each test replays, by hand, the smallest scenario behind one failing fuzz
//! invariant. A test for a bug not fixed yet is marked
//! `#[ignore = "fuzz crash: ..."]`; un-ignore it with the fix.

// One real instant as the epoch of a virtual clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use prost::Message;
use ttrpc_core::{
    Bytes, Config, Decoded, Flags, FrameDecoder, FrameHeader, FrameType, Request, ServerConnection,
    ServerEvent, StreamId,
};

fn frame(id: u32, kind: FrameType, data: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        len: u32::try_from(data.len()).expect("small frame"),
        stream_id: StreamId::new(id),
        kind,
        flags: Flags::NONE,
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(data);
    out
}

fn request(id: u32) -> Vec<u8> {
    let req = Request {
        service: "svc.Test".into(),
        method: "Empty".into(),
        ..Default::default()
    };
    frame(id, FrameType::Request, &req.encode_to_vec())
}

fn next_request(s: &mut ServerConnection) -> Option<u32> {
    match s.poll_event()? {
        ServerEvent::Request(r) => Some(r.id.get()),
        other => panic!("expected a request, got {other:?}"),
    }
}

/// fuzz target `server_input` ("the server closes as a stalled peer only
/// after the peer had the whole timeout of reading time"): the partial-frame
/// timer measures how long the *peer* stalls, but when the server resumed
/// decoding after its own back-pressure (in-flight or transmit bound), it
/// started the timer for the next, incomplete frame from the time of the
/// last `handle_input`, not from when reading resumed. A slow handler then
/// got the connection closed as "peer stalled" although the rest of the
/// frame sat unread in the socket the whole time. Fixed in fab14a6.
#[test]
fn partial_frame_timer_ignores_time_the_server_was_not_reading() {
    let t0 = Instant::now();
    let timeout = Duration::from_secs(1);
    let cfg = Config::default()
        .with_max_in_flight(1)
        .with_partial_frame_timeout(Some(timeout));
    let mut s = ServerConnection::new(cfg);

    // One read brings requests 1 and 3 and the first bytes of request 5.
    let mut input = request(1);
    input.extend(request(3));
    input.extend(&request(5)[..5]);
    s.handle_input(t0, &input);
    assert_eq!(next_request(&mut s), Some(1));
    assert_eq!(
        next_request(&mut s),
        None,
        "request 3 waits behind the in-flight bound"
    );
    assert!(!s.wants_read(), "so the server stops reading");
    assert_eq!(s.poll_timeout(), None, "and no timer runs while it does");

    // The handler takes 10 s; the rest of frame 5 waits, unread, meanwhile.
    let t1 = t0 + Duration::from_secs(10);
    s.send_response(StreamId::new(1), Ok(Bytes::new())).unwrap();
    assert_eq!(next_request(&mut s), Some(3));
    assert!(s.wants_read(), "reading resumes at t1");

    // The peer has had no chance to finish frame 5 yet. The core does not
    // know the time reading resumed, so it asks to be woken at once
    // (a past instant) and starts the timer from that wake-up.
    if let Some(due) = s.poll_timeout() {
        assert!(due <= t1 || due >= t1 + timeout, "deadline {due:?}");
    }
    s.handle_timeout(t1);
    assert!(
        !s.is_closed(),
        "closed for a stall the server caused itself"
    );
    assert_eq!(
        s.poll_timeout(),
        Some(t1 + timeout),
        "timed from when reading resumed"
    );
    s.handle_timeout(t1 + timeout);
    assert!(s.is_closed(), "a real stall after that is still caught");
}

/// fuzz target `server_input`, invariant "every frame the server writes is
/// within its own `max_data_len`" (`Config::max_data_len` is documented as
/// the largest length "accepted or sent"). Status replies the server makes
/// up itself (rejections, and the `ResourceExhausted` that replaces an
/// oversized answer) were queued unchecked, on the assumption that "a status
/// message is short"; below roughly 200 bytes they are not: the reply to an
/// undecodable request carries prost's error text and runs to 147 bytes for
/// a bad metadata key (about 60 for `ResourceExhausted`). A peer with the
/// same limit then saw the reply as oversized. Fixed in fab14a6 (replies
/// are trimmed); `server_input` now fuzzes a 16-byte limit too.
#[test]
fn server_replies_stay_within_a_small_max_data_len() {
    let max = 128;
    let mut s = ServerConnection::new(Config::default().with_max_data_len(max));
    let now = Instant::now();
    // An undecodable request (a metadata key that is not UTF-8), then a
    // good one answered with more than the limit.
    s.handle_input(
        now,
        &frame(1, FrameType::Request, &[0x2a, 3, 0x0a, 1, 0xff]),
    );
    s.handle_input(now, &request(3));
    while let Some(ev) = s.poll_event() {
        if let ServerEvent::Request(r) = ev {
            s.send_response(r.id, Ok(Bytes::from(vec![0u8; 1000])))
                .unwrap();
        }
    }

    let mut d = FrameDecoder::new(u32::MAX);
    d.push(&s.take_transmit().expect("two replies"));
    let mut lens = Vec::new();
    while let Some(Decoded::Frame { header, .. }) = d.decode() {
        lens.push((header.stream_id.get(), header.len));
    }
    assert_eq!(lens.len(), 2);
    for (id, len) in lens {
        assert!(
            len <= max,
            "reply on stream {id} is {len} bytes, over the {max}-byte limit"
        );
    }
}
