//! Property tests: encode/decode round trips, chunking independence, and
//! arbitrary bytes never panicking.

// Tests take one real instant as the epoch of a virtual clock, and read
// golden data from disk: both are fine outside the sans-IO core itself.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use proptest::prelude::*;
use ttrpc_core::{
    CallOptions, ClientConnection, Config, Decoded, Flags, FrameDecoder, FrameHeader, FrameType,
    HEADER_LEN, Metadata, ServerConnection, ServerEvent, StreamId,
};

const MAX: u32 = 4096;

#[derive(Debug, Clone)]
struct TestFrame {
    id: u32,
    kind: u8,
    flags: u8,
    data: Vec<u8>,
}

impl TestFrame {
    fn bytes(&self) -> Vec<u8> {
        let h = FrameHeader {
            len: self.data.len() as u32,
            stream_id: StreamId::new(self.id),
            kind: FrameType::from(self.kind),
            flags: Flags(self.flags),
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(&self.data);
        v
    }
}

fn frame_strategy() -> impl Strategy<Value = TestFrame> {
    (
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(id, kind, flags, data)| TestFrame {
            id,
            kind,
            flags,
            data,
        })
}

/// Decodes `input` delivered in pieces cut at `cuts`, draining after each.
fn decode_in_pieces(input: &[u8], cuts: &[usize], max: u32) -> Vec<Decoded> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(0);
    points.push(input.len());
    points.sort_unstable();
    let mut d = FrameDecoder::new(max);
    let mut out = Vec::new();
    for w in points.windows(2) {
        d.push(&input[w[0]..w[1]]);
        out.extend(std::iter::from_fn(|| d.decode()));
        assert!(d.buffered() <= max as usize + HEADER_LEN + (w[1] - w[0]));
    }
    out
}

proptest! {
    #[test]
    fn frames_round_trip_whatever_the_chunking(
        frames in prop::collection::vec(frame_strategy(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let input: Vec<u8> = frames.iter().flat_map(TestFrame::bytes).collect();
        let got = decode_in_pieces(&input, &cuts, MAX);
        prop_assert_eq!(got.len(), frames.len());
        for (f, d) in frames.iter().zip(&got) {
            match d {
                Decoded::Frame { header, data } => {
                    prop_assert_eq!(header.stream_id.get(), f.id);
                    prop_assert_eq!(header.kind.as_u8(), f.kind);
                    prop_assert_eq!(header.flags.0, f.flags);
                    prop_assert_eq!(&data[..], &f.data[..]);
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn every_split_yields_the_same_frames(
        frames in prop::collection::vec(frame_strategy(), 1..4),
        max in 0u32..400,
    ) {
        let input: Vec<u8> = frames.iter().flat_map(TestFrame::bytes).collect();
        let whole = decode_in_pieces(&input, &[], max);
        for i in 0..=input.len() {
            prop_assert_eq!(&decode_in_pieces(&input, &[i], max), &whole, "split at {}", i);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        input in prop::collection::vec(any::<u8>(), 0..2000),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        for d in decode_in_pieces(&input, &cuts, 256) {
            if let Decoded::Frame { header, data } = d {
                prop_assert_eq!(header.len as usize, data.len());
                prop_assert!(header.len <= 256);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_server(
        input in prop::collection::vec(any::<u8>(), 0..3000),
        chunk in 1usize..500,
    ) {
        let config = Config::default().with_max_data_len(512).with_max_in_flight(4);
        let bound = config.memory_bound(chunk);
        let mut s = ServerConnection::new(config);
        let now = Instant::now();
        for piece in input.chunks(chunk) {
            s.handle_input(now, piece);
            while let Some(ev) = s.poll_event() {
                if let ServerEvent::Request(r) = ev {
                    s.send_response(r.id, Ok(r.payload)).unwrap();
                }
            }
            prop_assert!(s.buffered_bytes() <= bound);
            let _ = s.take_transmit();
        }
        s.handle_eof(now);
        let closed = std::iter::from_fn(|| s.poll_event())
            .filter(|e| matches!(e, ServerEvent::Closed { .. }))
            .count();
        prop_assert_eq!(closed, 1);
    }

    #[test]
    fn requests_survive_client_encode_and_server_decode(
        service in "[a-z.]{0,20}",
        method in "[A-Za-z]{0,12}",
        payload in prop::collection::vec(any::<u8>(), 0..500),
        metadata in prop::collection::vec(("[a-z-]{1,8}", ".{0,8}"), 0..5),
        timeout_ms in prop::option::of(0u64..100_000),
    ) {
        let now = Instant::now();
        let mut c = ClientConnection::new(Config::default());
        let opts = CallOptions {
            timeout: timeout_ms.map(std::time::Duration::from_millis),
            metadata: metadata.iter().cloned().collect::<Metadata>(),
        };
        let id = c.send_request(now, &service, &method, &payload, &opts).unwrap();
        let mut s = ServerConnection::new(Config::default());
        s.handle_input(now, &c.take_transmit().unwrap());
        match s.poll_event() {
            Some(ServerEvent::Request(r)) => {
                prop_assert_eq!(r.id, id);
                prop_assert_eq!(r.service, service);
                prop_assert_eq!(r.method, method);
                prop_assert_eq!(&r.payload[..], &payload[..]);
                prop_assert_eq!(r.metadata, opts.metadata);
                let expect_nanos = timeout_ms.map_or(0, |ms| (ms as i64 * 1_000_000).max(1));
                prop_assert_eq!(r.timeout_nano, expect_nanos);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

/// Feeds `input` to a fresh server in pieces cut at `cuts`; returns its
/// events (as text) and everything it queued to transmit.
fn server_transcript(input: &[u8], cuts: &[usize]) -> (Vec<String>, Vec<u8>) {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.extend([0, input.len()]);
    points.sort_unstable();
    let now = Instant::now();
    let mut s = ServerConnection::new(Config::default().with_max_data_len(64));
    let (mut events, mut out) = (Vec::new(), Vec::new());
    let pump = |s: &mut ServerConnection, events: &mut Vec<String>, out: &mut Vec<u8>| {
        while let Some(ev) = s.poll_event() {
            if let ServerEvent::Request(r) = &ev {
                s.send_response(r.id, Ok(r.payload.clone())).unwrap();
            }
            events.push(format!("{ev:?}"));
        }
        if let Some(b) = s.take_transmit() {
            out.extend_from_slice(&b);
        }
    };
    for w in points.windows(2) {
        s.handle_input(now, &input[w[0]..w[1]]);
        pump(&mut s, &mut events, &mut out);
    }
    s.handle_eof(now);
    pump(&mut s, &mut events, &mut out);
    (events, out)
}

fn wire_request(id: u32, method: &str, payload: &[u8]) -> Vec<u8> {
    use prost::Message;
    let req = ttrpc_core::Request {
        service: "svc".into(),
        method: method.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    };
    TestFrame {
        id,
        kind: 1,
        flags: 0,
        data: req.encode_to_vec(),
    }
    .bytes()
}

proptest! {
    #[test]
    fn server_events_and_answers_do_not_depend_on_chunking(
        frames in prop::collection::vec(
            prop_oneof![
                (0u32..20, "[a-z]{0,6}", prop::collection::vec(any::<u8>(), 0..100))
                    .prop_map(|(id, m, p)| wire_request(id, &m, &p)),
                frame_strategy().prop_map(|f| f.bytes()),
            ],
            1..6,
        ),
        cuts in prop::collection::vec(any::<usize>(), 1..8),
    ) {
        let input: Vec<u8> = frames.concat();
        let whole = server_transcript(&input, &[]);
        prop_assert_eq!(&server_transcript(&input, &cuts), &whole);
        if input.len() < 400 {
            for i in 0..=input.len() {
                prop_assert_eq!(&server_transcript(&input, &[i]), &whole, "split at {}", i);
            }
        }
    }
}

fn stream_request(id: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = TestFrame {
        id,
        kind: 1,
        flags,
        data: Vec::new(),
    };
    f.data = {
        use prost::Message;
        ttrpc_core::Request {
            service: "svc".into(),
            method: "m".into(),
            payload: payload.to_vec().into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    f.bytes()
}

/// Stream-shaped input: requests with any flags, and Data frames with any
/// flags on the few ids those requests use.
fn stream_input() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            (
                0u32..12,
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..60)
            )
                .prop_map(|(id, flags, p)| stream_request(id, flags, &p)),
            (
                0u32..12,
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(id, flags, data)| TestFrame {
                    id,
                    kind: 3,
                    flags,
                    data,
                }
                .bytes()),
            frame_strategy().prop_map(|f| f.bytes()),
        ],
        1..40,
    )
}

proptest! {
    #[test]
    fn stream_frames_never_panic_a_server_and_stay_bounded(
        frames in stream_input(),
        chunk in 1usize..700,
        reads in prop::collection::vec(any::<bool>(), 1..16),
        step_ms in 0u64..400,
    ) {
        let config = Config::default()
            .with_max_data_len(512)
            .with_max_in_flight(4)
            .with_stream_queue_len(3)
            .with_max_stream_bytes(1024);
        let bound = config.memory_bound(chunk);
        let mut s = ServerConnection::new(config);
        let mut now = Instant::now();
        let input = frames.concat();
        let mut open = std::collections::BTreeSet::new();
        for (i, piece) in input.chunks(chunk).enumerate() {
            s.handle_input(now, piece);
            while let Some(ev) = s.poll_event() {
                match ev {
                    ServerEvent::Request(r) if r.is_stream() => {
                        open.insert(r.id);
                    }
                    ServerEvent::Request(r) => s.send_response(r.id, Ok(r.payload)).unwrap(),
                    _ => {}
                }
            }
            let read = reads[i % reads.len()];
            for id in open.clone() {
                if read {
                    while s.recv_stream(id).is_some() {}
                    let _ = s.send_data(id, b"x");
                }
                if i % 5 == 4 && s.close_send(id).is_err() {
                    open.remove(&id);
                }
            }
            prop_assert!(s.buffered_bytes() <= bound);
            let _ = s.take_transmit();
            now += std::time::Duration::from_millis(step_ms);
            s.handle_timeout(now);
        }
        s.handle_eof(now);
        let closed = std::iter::from_fn(|| s.poll_event())
            .filter(|e| matches!(e, ServerEvent::Closed { .. }))
            .count();
        prop_assert_eq!(closed, 1);
    }

    #[test]
    fn stream_frames_never_panic_a_client(
        frames in stream_input(),
        chunk in 1usize..700,
        kinds in prop::collection::vec(0u8..3, 1..6),
    ) {
        use ttrpc_core::{ClientEvent, StreamKind};
        let config = Config::default()
            .with_max_data_len(512)
            .with_stream_queue_len(3)
            .with_max_stream_bytes(1024);
        let bound = config.memory_bound(chunk);
        let mut c = ClientConnection::new(config);
        let now = Instant::now();
        let mut ids = Vec::new();
        for k in kinds {
            let kind = [StreamKind::ClientStreaming, StreamKind::ServerStreaming, StreamKind::Bidirectional][k as usize];
            ids.push(c.open_stream(now, "s", "m", kind, b"", &CallOptions::default()).unwrap());
        }
        let _ = c.take_transmit();
        let mut ended = std::collections::BTreeSet::new();
        let input = frames.concat();
        for piece in input.chunks(chunk) {
            c.handle_input(now, piece);
            while let Some(ev) = c.poll_event() {
                if let ClientEvent::StreamReadable { id } = ev {
                    while let Some(item) = c.recv_stream(id) {
                        prop_assert!(!ended.contains(&id), "item after the end");
                        if matches!(item, ttrpc_core::StreamItem::End(_)) {
                            ended.insert(id);
                        }
                    }
                }
            }
            prop_assert!(c.buffered_bytes() <= bound);
        }
        c.handle_eof(now);
        while let Some(ev) = c.poll_event() {
            if let ClientEvent::StreamReadable { id } = ev {
                while let Some(item) = c.recv_stream(id) {
                    if matches!(item, ttrpc_core::StreamItem::End(_)) {
                        prop_assert!(ended.insert(id), "ended twice");
                    }
                }
            }
        }
        prop_assert_eq!(ended.len(), ids.len(), "every stream ends exactly once");
    }

    #[test]
    fn stream_messages_arrive_in_order_whatever_the_chunking(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
        first in prop::collection::vec(any::<u8>(), 0..50),
        chunk in 1usize..300,
    ) {
        use ttrpc_core::{ClientEvent, StreamItem, StreamKind};
        let now = Instant::now();
        let mut c = ClientConnection::new(Config::default());
        let mut s = ServerConnection::new(Config::default());
        let id = c
            .open_stream(now, "s", "m", StreamKind::Bidirectional, &first, &CallOptions::default())
            .unwrap();
        for m in &msgs {
            c.send_data(id, m).unwrap();
        }
        c.close_send(id).unwrap();
        let wire = c.take_transmit().unwrap();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            s.handle_input(now, piece);
            while s.poll_event().is_some() {}
            while let Some(item) = s.recv_stream(id) {
                got.push(item);
            }
        }
        let mut expect: Vec<StreamItem> = Vec::new();
        if !first.is_empty() {
            expect.push(StreamItem::Message(first.clone().into()));
        }
        expect.extend(msgs.iter().map(|m| StreamItem::Message(m.clone().into())));
        expect.push(StreamItem::End(Ok(())));
        prop_assert_eq!(&got, &expect);
        // And back: the server echoes, the client sees the same order.
        for m in &msgs {
            s.send_data(id, m).unwrap();
        }
        s.close_send(id).unwrap();
        let wire = s.take_transmit().unwrap();
        let mut back = Vec::new();
        for piece in wire.chunks(chunk) {
            c.handle_input(now, piece);
            while let Some(ev) = c.poll_event() {
                prop_assert_eq!(ev, ClientEvent::StreamReadable { id });
            }
            while let Some(item) = c.recv_stream(id) {
                back.push(item);
            }
        }
        prop_assert_eq!(&back[..], &expect[usize::from(!first.is_empty())..]);
        prop_assert_eq!(c.in_flight() + s.in_flight(), 0);
    }
}
