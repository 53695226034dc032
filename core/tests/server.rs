//! Server connection behaviour: validation, answers to violations,
//! backpressure, deadlines, timeouts and dispatch.

// Tests take one real instant as the epoch of a virtual clock, and read
// golden data from disk: both are fine outside the sans-IO core itself.
#![allow(clippy::disallowed_methods)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use prost::Message;
use ttrpc_core::{
    Bytes, Code, Config, ConnectionError, Dispatch, FrameDecoder, ProtocolError, Registry,
    Responder, Response, SendError, ServerConnection, ServerEvent, Status, StreamId,
};

mod common;
use common::{drain_server, frame, request_frame};

/// Every (stream id, status) the server has queued, decoded.
fn responses(server: &mut ServerConnection) -> Vec<(u32, Option<Status>, Bytes)> {
    let mut d = FrameDecoder::new(u32::MAX);
    while let Some(b) = server.take_transmit() {
        d.push(&b);
    }
    std::iter::from_fn(|| d.decode())
        .map(|f| match f {
            ttrpc_core::Decoded::Frame { header, data } => {
                let r = Response::decode(data).expect("response");
                (
                    header.stream_id.get(),
                    r.status.map(Status::from),
                    r.payload,
                )
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

fn requests(events: &[ServerEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request(r) => Some(r.id.get()),
            _ => None,
        })
        .collect()
}

fn fed(input: &[u8]) -> (ServerConnection, Vec<ServerEvent>) {
    let mut s = ServerConnection::new(Config::default());
    s.handle_input(Instant::now(), input);
    let ev = drain_server(&mut s);
    (s, ev)
}

fn assert_status(r: &(u32, Option<Status>, Bytes), id: u32, code: Code, msg: &str) {
    assert_eq!(r.0, id);
    let s = r.1.as_ref().expect("a status");
    assert_eq!((s.code, s.message.as_str()), (code, msg));
}

#[test]
fn even_and_zero_stream_ids_are_answered_invalid_argument() {
    for id in [0u32, 2, 0xFFFF_FFFE] {
        let (mut s, ev) = fed(&request_frame(id, "s", "m", b""));
        assert!(matches!(
            &ev[..],
            [ServerEvent::Rejected {
                error: ProtocolError::EvenStreamId,
                ..
            }]
        ));
        let r = responses(&mut s);
        assert_status(
            &r[0],
            id,
            Code::InvalidArgument,
            "StreamID must be odd for client initiated streams",
        );
        assert_eq!(s.stats().protocol_violations, 1);
    }
}

#[test]
fn reused_and_decreasing_ids_are_answered_invalid_argument() {
    let mut input = request_frame(5, "s", "m", b"");
    input.extend(request_frame(5, "s", "m", b""));
    input.extend(request_frame(3, "s", "m", b""));
    input.extend(request_frame(7, "s", "m", b""));
    let (mut s, ev) = fed(&input);
    assert_eq!(requests(&ev), [5, 7]);
    let r = responses(&mut s);
    assert_eq!(r.len(), 2);
    assert_status(
        &r[0],
        5,
        Code::InvalidArgument,
        "StreamID cannot be re-used and must increment",
    );
    assert_status(
        &r[1],
        3,
        Code::InvalidArgument,
        "StreamID cannot be re-used and must increment",
    );
    assert_eq!(s.in_flight(), 2);
}

#[test]
fn highest_odd_id_is_accepted() {
    let (_, ev) = fed(&request_frame(0xFFFF_FFFF, "s", "m", b""));
    assert_eq!(requests(&ev), [0xFFFF_FFFF]);
}

#[test]
fn unknown_type_and_client_response_frames_are_skipped_unanswered() {
    let mut input = frame(1, 7, 0, b"future");
    input.extend(frame(3, 2, 0, b""));
    input.extend(request_frame(5, "s", "m", b"after"));
    let (mut s, ev) = fed(&input);
    assert!(matches!(
        ev[0],
        ServerEvent::Rejected {
            error: ProtocolError::UnknownFrameType(7),
            ..
        }
    ));
    assert!(matches!(
        ev[1],
        ServerEvent::Rejected {
            error: ProtocolError::UnexpectedFrame(_),
            ..
        }
    ));
    assert_eq!(requests(&ev), [5]);
    assert!(responses(&mut s).is_empty(), "nothing answered");
    assert_eq!(s.stats().dropped_frames, 2);
}

#[test]
fn data_frames_on_inactive_streams_are_answered_and_on_unary_calls_ignored() {
    let mut input = request_frame(1, "s", "m", b"");
    input.extend(frame(1, 3, 0, b"x")); // on the unary call in flight
    input.extend(frame(9, 3, 0, b"x")); // on a stream that was never opened
    let (mut s, ev) = fed(&input);
    assert_eq!(requests(&ev), [1]);
    assert!(matches!(
        ev[1],
        ServerEvent::Rejected {
            error: ProtocolError::UnexpectedFrame(_),
            ..
        }
    ));
    let r = responses(&mut s);
    assert_eq!(r.len(), 1);
    assert_status(
        &r[0],
        9,
        Code::InvalidArgument,
        "StreamID is no longer active",
    );
    assert_eq!(s.in_flight(), 1);
}

#[test]
fn undecodable_request_is_answered_and_the_connection_goes_on() {
    let mut input = frame(1, 1, 0, &[0xff, 0xff, 0xff]);
    input.extend(request_frame(3, "s", "m", b""));
    let (mut s, ev) = fed(&input);
    assert!(matches!(
        ev[0],
        ServerEvent::Rejected {
            error: ProtocolError::UndecodableRequest(_),
            ..
        }
    ));
    assert_eq!(requests(&ev), [3]);
    let r = responses(&mut s);
    assert_eq!(r[0].1.as_ref().unwrap().code, Code::InvalidArgument);
}

#[test]
fn oversized_request_gets_resource_exhausted_and_is_never_buffered() {
    let mut s = ServerConnection::new(Config::default());
    let now = Instant::now();
    s.handle_input(now, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]);
    let ev = drain_server(&mut s);
    assert!(matches!(
        ev[..],
        [ServerEvent::Rejected {
            error: ProtocolError::Oversized { len: u32::MAX, .. },
            ..
        }]
    ));
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        s.handle_input(now, &chunk);
        assert!(drain_server(&mut s).is_empty());
        assert!(s.buffered_bytes() < 1024, "skipped body is not held");
    }
    let r = responses(&mut s);
    assert_status(
        &r[0],
        1,
        Code::ResourceExhausted,
        "message length 4294967295 exceed maximum message size of 4194304",
    );
    assert_eq!(s.stats().oversized_frames, 1);
}

#[test]
fn oversized_non_request_frames_are_skipped_without_answer() {
    let mut input = frame(1, 3, 0, &[0; 17]);
    input.extend(request_frame(3, "s", "m", b""));
    let cfg = Config::default().with_max_data_len(16);
    let mut s = ServerConnection::new(cfg);
    s.handle_input(Instant::now(), &input);
    let ev = drain_server(&mut s);
    assert_eq!(requests(&ev), [3]);
    assert!(responses(&mut s).is_empty());
}

#[test]
fn eof_at_a_boundary_and_inside_a_frame() {
    let now = Instant::now();
    let f = request_frame(1, "s", "m", b"abc");
    let mut s = ServerConnection::new(Config::default());
    s.handle_input(now, &f);
    s.handle_eof(now);
    let ev = drain_server(&mut s);
    assert_eq!(
        requests(&ev),
        [1],
        "a request before EOF is still handed out"
    );
    assert!(matches!(
        ev.last(),
        Some(ServerEvent::Closed {
            reason: ConnectionError::PeerClosed
        })
    ));
    assert!(s.is_closed());
    s.send_response(StreamId::new(1), Ok(Bytes::from_static(b"late")))
        .expect("answer after EOF");
    assert!(s.wants_write());

    for cut in [3, 10, f.len() - 1] {
        let mut s = ServerConnection::new(Config::default());
        s.handle_input(now, &f[..cut]);
        s.handle_eof(now);
        let ev = drain_server(&mut s);
        assert!(
            matches!(
                ev[..],
                [ServerEvent::Closed {
                    reason: ConnectionError::UnexpectedEof
                }]
            ),
            "cut {cut}: {ev:?}"
        );
        s.handle_input(now, &f);
        assert!(
            drain_server(&mut s).is_empty(),
            "input after EOF is ignored"
        );
    }
}

#[test]
fn deadline_comes_from_timeout_nano_and_arrival_time() {
    let now = Instant::now();
    for (timeout_nano, expected) in [
        (0i64, None),
        (-5, Some(now)),
        (1_500_000_000, Some(now + Duration::from_millis(1500))),
    ] {
        let req = ttrpc_core::Request {
            service: "s".into(),
            method: "m".into(),
            timeout_nano,
            ..Default::default()
        };
        let mut s = ServerConnection::new(Config::default());
        s.handle_input(now, &frame(1, 1, 0, &req.encode_to_vec()));
        match s.poll_event() {
            Some(ServerEvent::Request(r)) => {
                assert_eq!(r.deadline, expected);
                assert_eq!(r.timeout_nano, timeout_nano);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn in_flight_bound_pauses_decoding_without_rejecting() {
    let cfg = Config::default().with_max_in_flight(2);
    let mut s = ServerConnection::new(cfg);
    let input: Vec<u8> = [1, 3, 5]
        .iter()
        .flat_map(|id| request_frame(*id, "s", "m", b""))
        .collect();
    s.handle_input(Instant::now(), &input);
    assert_eq!(requests(&drain_server(&mut s)), [1, 3]);
    assert!(!s.wants_read(), "a complete frame waits: stop reading");
    assert!(responses(&mut s).is_empty(), "nothing rejected");
    s.send_response(StreamId::new(3), Ok(Bytes::new())).unwrap();
    assert_eq!(requests(&drain_server(&mut s)), [5]);
    assert!(s.wants_read());
}

#[test]
fn transmit_bound_pauses_decoding_until_drained() {
    let cfg = Config::default().with_max_tx_bytes(64);
    let mut s = ServerConnection::new(cfg);
    let input: Vec<u8> = [1, 3]
        .iter()
        .flat_map(|id| request_frame(*id, "s", "m", b""))
        .collect();
    s.handle_input(Instant::now(), &input);
    assert_eq!(requests(&drain_server(&mut s)), [1, 3]);
    s.send_response(StreamId::new(1), Ok(Bytes::from(vec![1; 100])))
        .unwrap();
    s.handle_input(Instant::now(), &request_frame(5, "s", "m", b""));
    assert!(
        drain_server(&mut s).is_empty(),
        "transmit queue over its bound"
    );
    assert!(!s.wants_read());
    let n = s.poll_transmit().unwrap().len();
    s.advance_transmit(n);
    assert_eq!(requests(&drain_server(&mut s)), [5]);
}

#[test]
fn each_request_is_answered_once_and_oversized_answers_are_replaced() {
    let cfg = Config::default().with_max_data_len(64);
    let mut s = ServerConnection::new(cfg);
    s.handle_input(Instant::now(), &request_frame(1, "s", "m", b""));
    let _ = drain_server(&mut s);
    s.send_response(StreamId::new(1), Ok(Bytes::from(vec![0; 65])))
        .unwrap();
    assert_eq!(
        s.send_response(StreamId::new(1), Ok(Bytes::new())),
        Err(SendError::UnknownStream(StreamId::new(1)))
    );
    let r = responses(&mut s);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.as_ref().unwrap().code, Code::ResourceExhausted);
    assert_eq!(s.stats().oversized_responses, 1);
}

#[test]
fn partial_frame_timeout_closes_a_stalled_peer_only() {
    let t0 = Instant::now();
    let cfg = Config::default().with_partial_frame_timeout(Some(Duration::from_secs(2)));
    let mut s = ServerConnection::new(cfg.clone());
    assert_eq!(s.poll_timeout(), None, "idle connections are not timed");
    let f = request_frame(1, "s", "m", b"");
    s.handle_input(t0, &f[..5]);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    s.handle_input(t0 + Duration::from_secs(1), &f[5..7]);
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + Duration::from_secs(2)),
        "the frame's start counts"
    );
    s.handle_timeout(t0 + Duration::from_millis(1999));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + Duration::from_secs(2));
    assert!(matches!(
        drain_server(&mut s)[..],
        [ServerEvent::Closed {
            reason: ConnectionError::PartialFrameTimeout(_)
        }]
    ));

    // Complete frames held back by our own bound are not the peer's stall.
    let cfg = cfg.with_max_in_flight(1);
    let mut s = ServerConnection::new(cfg);
    let two: Vec<u8> = [1, 3]
        .iter()
        .flat_map(|id| request_frame(*id, "s", "m", b""))
        .collect();
    s.handle_input(t0, &two);
    assert_eq!(requests(&drain_server(&mut s)), [1]);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn shutdown_stops_new_requests_and_reports_idle() {
    let mut s = ServerConnection::new(Config::default());
    s.handle_input(Instant::now(), &request_frame(1, "s", "m", b""));
    let _ = drain_server(&mut s);
    s.shutdown();
    s.handle_input(Instant::now(), &request_frame(3, "s", "m", b""));
    assert!(drain_server(&mut s).is_empty());
    assert!(!s.is_idle());
    s.send_response(StreamId::new(1), Ok(Bytes::new())).unwrap();
    let _ = s.take_transmit();
    assert!(s.is_idle());
}

#[test]
fn close_refuses_answers_and_reports_once() {
    let mut s = ServerConnection::new(Config::default());
    s.handle_input(Instant::now(), &request_frame(1, "s", "m", b""));
    let _ = drain_server(&mut s);
    s.close(ConnectionError::LocallyClosed);
    s.close(ConnectionError::LocallyClosed);
    assert!(matches!(
        drain_server(&mut s)[..],
        [ServerEvent::Closed { .. }]
    ));
    assert!(matches!(
        s.send_response(StreamId::new(1), Ok(Bytes::new())),
        Err(SendError::Closed(_))
    ));
}

fn dispatch(registry: &Registry, service: &str, method: &str) -> (Dispatch, Result<Bytes, Status>) {
    let (mut s, ev) = fed(&request_frame(1, service, method, b"in"));
    let _ = &mut s;
    let Some(ServerEvent::Request(req)) = ev.into_iter().next() else {
        panic!("no request")
    };
    let (tx, rx) = mpsc::channel();
    let outcome = registry.dispatch(
        req,
        Responder::new(StreamId::new(1), Box::new(move |_, r| tx.send(r).unwrap())),
    );
    let result = rx.try_recv().expect("answered exactly once");
    assert!(rx.try_recv().is_err());
    (outcome, result)
}

#[test]
fn registry_answers_unimplemented_panics_and_dropped_responders() {
    let mut reg = Registry::new();
    reg.register_fn("svc", "Echo", |req| Ok(req.payload.clone()));
    reg.register("svc", "Panics", |_req, _r: Responder| panic!("handler bug"));
    reg.register("svc", "Drops", |_req, r: Responder| drop(r));
    reg.register("svc", "Later", |_req, r: Responder| {
        std::thread::spawn(move || r.ok(&b"later"[..]))
            .join()
            .unwrap();
    });

    assert_eq!(
        dispatch(&reg, "svc", "Echo"),
        (Dispatch::Handled, Ok(Bytes::from_static(b"in")))
    );
    assert_eq!(
        dispatch(&reg, "svc", "Later"),
        (Dispatch::Handled, Ok(Bytes::from_static(b"later")))
    );
    let (d, r) = dispatch(&reg, "nope", "Echo");
    assert_eq!(
        (d, r),
        (
            Dispatch::Unimplemented,
            Err(Status::new(Code::Unimplemented, "service nope"))
        )
    );
    let (d, r) = dispatch(&reg, "svc", "Nope");
    assert_eq!(
        (d, r),
        (
            Dispatch::Unimplemented,
            Err(Status::new(Code::Unimplemented, "method Nope"))
        )
    );
    let (d, r) = dispatch(&reg, "svc", "Panics");
    assert_eq!(d, Dispatch::Panicked);
    assert_eq!(r.unwrap_err().code, Code::Internal);
    let (d, r) = dispatch(&reg, "svc", "Drops");
    assert_eq!(d, Dispatch::Handled);
    assert_eq!(r.unwrap_err().code, Code::Internal);
}

#[test]
fn a_large_answer_payload_is_queued_uncopied_with_the_bytes_prost_writes() {
    let big = vec![5u8; 100_000];
    let (mut s, ev) = fed(&request_frame(1, "svc.S", "M", &big));
    let payload = match &ev[..] {
        [ServerEvent::Request(r)] => r.payload.clone(),
        other => panic!("{other:?}"),
    };
    s.send_response(StreamId::new(1), Ok(payload.clone()))
        .unwrap();
    // First the header and the field's key and length, then the payload:
    // the request's own bytes, not a copy.
    assert_eq!(s.poll_transmit().map(<[u8]>::len), Some(10 + 1 + 3));
    let mut pieces = Vec::new();
    while let Some(b) = s.take_transmit() {
        pieces.push(b);
    }
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[1].as_ptr(), payload.as_ptr());
    let wire: Vec<u8> = pieces.concat();
    let mut expect = Vec::new();
    ttrpc_core::encode_frame(
        &mut expect,
        StreamId::new(1),
        ttrpc_core::FrameType::Response,
        ttrpc_core::Flags::NONE,
        &Response {
            status: None,
            payload,
        },
        u32::MAX,
    )
    .unwrap();
    assert_eq!(wire, expect);
}
