//! Client connection behaviour: ids, deadlines, abandon, close, EOF and
//! what a misbehaving server can send.

// Tests take one real instant as the epoch of a virtual clock, and read
// golden data from disk: both are fine outside the sans-IO core itself.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use prost::Message;
use ttrpc_core::{
    Bytes, CallError, CallOptions, ClientConnection, ClientEvent, Code, Config, ConnectionError,
    Decoded, FrameDecoder, FrameType, Request, Response, SendError, StreamId,
};

mod common;
use common::{drain_client, frame};

fn response_frame(id: u32, payload: &[u8], code: i32) -> Vec<u8> {
    let resp = Response {
        status: (code != 0).then(|| ttrpc_core::proto::google::rpc::Status {
            code,
            message: format!("code {code}"),
            details: vec![],
        }),
        payload: Bytes::copy_from_slice(payload),
    };
    frame(id, 2, 0, &resp.encode_to_vec())
}

fn sent_requests(c: &mut ClientConnection) -> Vec<(u32, Request)> {
    let mut d = FrameDecoder::new(u32::MAX);
    while let Some(b) = c.take_transmit() {
        d.push(&b);
    }
    std::iter::from_fn(|| d.decode())
        .map(|f| match f {
            Decoded::Frame { header, data } => {
                assert_eq!(header.kind, FrameType::Request);
                (header.stream_id.get(), Request::decode(data).unwrap())
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

fn call(c: &mut ClientConnection, now: Instant, timeout: Option<Duration>) -> StreamId {
    let opts = CallOptions {
        timeout,
        ..CallOptions::default()
    };
    c.send_request(now, "svc", "M", b"p", &opts).expect("send")
}

fn result_of(events: &[ClientEvent], id: StreamId) -> Vec<Result<Bytes, CallError>> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { id: got, result } if *got == id => Some(result.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn ids_are_odd_increasing_and_reach_the_wire_in_order() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let ids: Vec<u32> = (0..4).map(|_| call(&mut c, now, None).get()).collect();
    assert_eq!(ids, [1, 3, 5, 7]);
    let wire: Vec<u32> = sent_requests(&mut c).iter().map(|(id, _)| *id).collect();
    assert_eq!(wire, ids);
    assert_eq!(c.in_flight(), 4);
}

#[test]
fn timeouts_become_timeout_nano_and_zero_is_sent_as_one() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    for t in [
        None,
        Some(Duration::ZERO),
        Some(Duration::from_millis(1500)),
        Some(Duration::MAX),
    ] {
        call(&mut c, now, t);
    }
    let sent: Vec<i64> = sent_requests(&mut c)
        .iter()
        .map(|(_, r)| r.timeout_nano)
        .collect();
    assert_eq!(sent, [0, 1, 1_500_000_000, i64::MAX]);
    // Duration::MAX overflows Instant: sent, but no local deadline.
    assert_eq!(c.poll_timeout(), Some(now));
}

#[test]
fn deadline_expires_the_call_and_a_late_reply_is_dropped() {
    let t0 = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let slow = call(&mut c, t0, Some(Duration::from_secs(1)));
    let fast = call(&mut c, t0, Some(Duration::from_secs(5)));
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    c.handle_timeout(t0 + Duration::from_millis(999));
    assert!(drain_client(&mut c).is_empty());
    // The reply arrives exactly at the deadline: too late.
    c.handle_input(
        t0 + Duration::from_secs(1),
        &response_frame(slow.get(), b"late", 0),
    );
    let ev = drain_client(&mut c);
    assert_eq!(result_of(&ev, slow), [Err(CallError::DeadlineExceeded)]);
    assert_eq!(
        c.stats().unknown_stream_ids,
        1,
        "late reply dropped and counted"
    );
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    c.handle_input(
        t0 + Duration::from_secs(2),
        &response_frame(fast.get(), b"ok", 0),
    );
    assert_eq!(
        result_of(&drain_client(&mut c), fast),
        [Ok(Bytes::from_static(b"ok"))]
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn expiries_at_one_instant_come_out_in_deadline_then_id_order() {
    let t0 = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let a = call(&mut c, t0, Some(Duration::from_secs(2)));
    let b = call(&mut c, t0, Some(Duration::from_secs(1)));
    let d = call(&mut c, t0, Some(Duration::from_secs(1)));
    c.handle_timeout(t0 + Duration::from_secs(3));
    let order: Vec<StreamId> = drain_client(&mut c)
        .into_iter()
        .map(|e| match e {
            ClientEvent::Response { id, .. } => id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(order, [b, d, a]);
}

#[test]
fn status_replies_and_absent_status_mean_what_go_means() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let ok = call(&mut c, now, None);
    let zero = call(&mut c, now, None);
    let err = call(&mut c, now, None);
    let mut input = response_frame(ok.get(), b"a", 0);
    let explicit_ok = Response {
        status: Some(ttrpc_core::proto::google::rpc::Status {
            code: 0,
            message: String::new(),
            details: vec![],
        }),
        payload: Bytes::from_static(b"b"),
    };
    input.extend(frame(zero.get(), 2, 0, &explicit_ok.encode_to_vec()));
    input.extend(response_frame(err.get(), b"", 5));
    c.handle_input(now, &input);
    let ev = drain_client(&mut c);
    assert_eq!(result_of(&ev, ok), [Ok(Bytes::from_static(b"a"))]);
    assert_eq!(result_of(&ev, zero), [Ok(Bytes::from_static(b"b"))]);
    match &result_of(&ev, err)[..] {
        [Err(e @ CallError::Status(s))] => {
            assert_eq!((s.code, s.message.as_str()), (Code::NotFound, "code 5"));
            assert_eq!(e.code(), Code::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn abandoned_calls_report_nothing() {
    let t0 = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let id = call(&mut c, t0, Some(Duration::from_secs(1)));
    assert!(c.abandon(id));
    assert!(!c.abandon(id));
    assert_eq!(c.poll_timeout(), None);
    c.handle_input(
        t0 + Duration::from_secs(5),
        &response_frame(id.get(), b"", 0),
    );
    assert!(drain_client(&mut c).is_empty());
    assert_eq!(c.stats().unknown_stream_ids, 1);
}

#[test]
fn eof_delivers_buffered_answers_then_fails_the_rest() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let answered = call(&mut c, now, None);
    let pending = call(&mut c, now, None);
    c.handle_input(now, &response_frame(answered.get(), b"x", 0));
    c.handle_eof(now);
    let ev = drain_client(&mut c);
    assert_eq!(result_of(&ev, answered), [Ok(Bytes::from_static(b"x"))]);
    assert_eq!(
        result_of(&ev, pending),
        [Err(CallError::ConnectionClosed(
            ConnectionError::PeerClosed
        ))]
    );
    assert!(matches!(
        ev.last(),
        Some(ClientEvent::Closed {
            reason: ConnectionError::PeerClosed
        })
    ));
    assert!(c.is_closed());
    assert!(matches!(
        c.send_request(now, "s", "m", b"", &CallOptions::default()),
        Err(SendError::Closed(_))
    ));
}

#[test]
fn eof_inside_a_frame_names_the_cause() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let id = call(&mut c, now, None);
    let f = response_frame(id.get(), b"xyz", 0);
    c.handle_input(now, &f[..f.len() - 1]);
    c.handle_eof(now);
    let ev = drain_client(&mut c);
    assert_eq!(
        result_of(&ev, id),
        [Err(CallError::ConnectionClosed(
            ConnectionError::UnexpectedEof
        ))]
    );
    assert_eq!(
        result_of(&ev, id)[0].as_ref().unwrap_err().to_string(),
        "connection closed by peer in the middle of a frame"
    );
}

#[test]
fn local_close_fails_everything_once() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let ids = [
        call(&mut c, now, None),
        call(&mut c, now, Some(Duration::from_secs(1))),
    ];
    let reason = ConnectionError::Transport("connection reset by peer (os error 104)".into());
    c.close(reason.clone());
    c.close(ConnectionError::LocallyClosed);
    let ev = drain_client(&mut c);
    assert_eq!(ev.len(), 3);
    for id in ids {
        assert_eq!(
            result_of(&ev, id),
            [Err(CallError::ConnectionClosed(reason.clone()))]
        );
    }
    assert!(c.poll_transmit().is_none() && c.poll_timeout().is_none());
    c.handle_input(now, &response_frame(1, b"", 0));
    assert!(drain_client(&mut c).is_empty());
}

#[test]
fn oversized_request_is_refused_before_anything_is_queued() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default().with_max_data_len(64));
    let err = c
        .send_request(now, "s", "m", &[0; 100], &CallOptions::default())
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { max: 64, .. }), "{err}");
    assert!(c.poll_transmit().is_none());
    assert_eq!(call(&mut c, now, None).get(), 1, "no id was used");
}

#[test]
fn full_transmit_queue_refuses_until_flushed() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default().with_max_tx_bytes(64));
    c.send_request(now, "s", "m", &[0; 40], &CallOptions::default())
        .unwrap();
    assert_eq!(
        c.send_request(now, "s", "m", &[0; 40], &CallOptions::default()),
        Err(SendError::TransmitQueueFull)
    );
    let n = c.poll_transmit().unwrap().len();
    c.advance_transmit(n);
    assert!(
        c.send_request(now, "s", "m", &[0; 40], &CallOptions::default())
            .is_ok()
    );
}

#[test]
fn misbehaving_server_frames_fail_only_the_affected_call() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default().with_max_data_len(32));
    let data_id = call(&mut c, now, None);
    let big_id = call(&mut c, now, None);
    let bad_id = call(&mut c, now, None);
    let good_id = call(&mut c, now, None);
    let mut input = frame(data_id.get(), 3, 0, b"stream data");
    input.extend(frame(big_id.get(), 2, 0, &[0; 33]));
    input.extend(frame(bad_id.get(), 2, 0, &[0xff, 0xff]));
    input.extend(response_frame(999, b"", 0)); // nobody asked
    input.extend(response_frame(good_id.get(), b"", 0));
    input.extend(response_frame(good_id.get(), b"", 0)); // answered twice
    c.handle_input(now, &input);
    let ev = drain_client(&mut c);
    assert_eq!(
        result_of(&ev, data_id),
        [Err(CallError::UnexpectedFrame(FrameType::Data))]
    );
    match &result_of(&ev, big_id)[..] {
        [Err(CallError::Status(s))] => assert_eq!(s.code, Code::ResourceExhausted),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        result_of(&ev, bad_id)[..],
        [Err(CallError::Decode(_))]
    ));
    assert_eq!(result_of(&ev, good_id), [Ok(Bytes::new())]);
    assert_eq!(c.stats().unknown_stream_ids, 2);
    assert!(!c.is_closed());
}

#[test]
fn wants_read_is_false_while_a_frame_waits_to_be_polled() {
    let now = Instant::now();
    let mut c = ClientConnection::new(Config::default());
    let id = call(&mut c, now, None);
    assert!(c.wants_read() && c.wants_write());
    c.handle_input(now, &response_frame(id.get(), b"", 0));
    assert!(!c.wants_read());
    let _ = drain_client(&mut c);
    assert!(c.wants_read());
}

#[test]
fn a_large_request_payload_given_as_bytes_is_queued_uncopied_with_the_same_bytes() {
    let now = Instant::now();
    let mut opts = CallOptions::with_timeout(Duration::from_secs(7));
    opts.metadata.append("k", "v");
    for size in [0, 16, 32 << 10, 100_000] {
        let payload = Bytes::from(vec![3u8; size]);
        let mut copied = ClientConnection::new(Config::default());
        let mut shared = ClientConnection::new(Config::default());
        copied
            .send_request(now, "svc.S", "M", &payload, &opts)
            .unwrap();
        copied.send_request(now, "svc.S", "N", b"x", &opts).unwrap();
        shared
            .send_request_bytes(now, "svc.S", "M", &payload, &opts)
            .unwrap();
        shared.send_request(now, "svc.S", "N", b"x", &opts).unwrap();
        let want: Vec<u8> = std::iter::from_fn(|| copied.take_transmit())
            .flat_map(|b| b.to_vec())
            .collect();
        let pieces: Vec<Bytes> = std::iter::from_fn(|| shared.take_transmit()).collect();
        assert_eq!(pieces.concat(), want, "{size} bytes");
        let uncopied = pieces.iter().any(|p| p.as_ptr() == payload.as_ptr());
        assert_eq!(uncopied, size >= 32 << 10, "{size} bytes");
    }
}
