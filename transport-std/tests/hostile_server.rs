//! Our client against a scripted, misbehaving server: unknown stream ids,
//! double answers, data frames, oversized answers, a close mid-frame. The
//! client fails only the affected calls, with errors that say why, and
//! never panics or hangs.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread;
use std::time::Duration;

use prost::Message;
use ttrpc_std::core::{Bytes, Response};
use ttrpc_std::{CallOptions, Client, Code, ConnectionError, Error};
use ttrpc_testkit::TempDir;
use ttrpc_testkit::interop::read_frame;

fn frame(id: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut f = (data.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[kind, 0]);
    f.extend_from_slice(data);
    f
}

fn ok_response(id: u32, payload: &'static [u8]) -> Vec<u8> {
    let r = Response {
        status: None,
        payload: Bytes::from_static(payload),
    };
    frame(id, 2, &r.encode_to_vec())
}

/// A server that accepts one connection and runs `script` on it.
fn scripted(script: impl FnOnce(UnixStream) + Send + 'static) -> (Client, TempDir) {
    let dir = TempDir::new("ttrpc-hostile-server").expect("dir");
    let path = dir.path().join("s.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        script(s);
    });
    let client = Client::connect(&format!("unix://{}", path.display())).expect("connect");
    (client, dir)
}

fn opts() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

#[test]
fn unknown_ids_and_double_answers_are_dropped_and_counted() {
    let (client, _dir) = scripted(|mut s| {
        let req = read_frame(&mut s).expect("request");
        s.write_all(&ok_response(999, b"nobody asked")).unwrap();
        s.write_all(&ok_response(req.stream_id, b"answer")).unwrap();
        s.write_all(&ok_response(req.stream_id, b"again")).unwrap();
        let req2 = read_frame(&mut s).expect("second request");
        s.write_all(&ok_response(req2.stream_id, b"second"))
            .unwrap();
        thread::sleep(Duration::from_secs(1));
    });
    assert_eq!(
        &client.call_raw("s", "m", b"", &opts()).unwrap()[..],
        b"answer"
    );
    assert_eq!(
        &client.call_raw("s", "m", b"", &opts()).unwrap()[..],
        b"second"
    );
    assert_eq!(client.stats().unknown_stream_ids, 2);
}

#[test]
fn a_data_frame_fails_the_call_it_names() {
    let (client, _dir) = scripted(|mut s| {
        let req = read_frame(&mut s).expect("request");
        s.write_all(&frame(req.stream_id, 3, b"stream data"))
            .unwrap();
        let req2 = read_frame(&mut s).expect("second request");
        s.write_all(&ok_response(req2.stream_id, b"fine")).unwrap();
        thread::sleep(Duration::from_secs(1));
    });
    let err = client.call_raw("s", "m", b"", &opts()).unwrap_err();
    assert!(err.to_string().contains("unexpected Data frame"), "{err}");
    assert_eq!(
        &client.call_raw("s", "m", b"", &opts()).unwrap()[..],
        b"fine"
    );
}

#[test]
fn an_oversized_answer_fails_its_call_and_the_connection_goes_on() {
    let (client, _dir) = scripted(|mut s| {
        let req = read_frame(&mut s).expect("request");
        let mut big = frame(req.stream_id, 2, &[]);
        big[..4].copy_from_slice(&(4_194_305u32).to_be_bytes());
        s.write_all(&big).unwrap();
        s.write_all(&vec![0u8; 4_194_305]).unwrap();
        let req2 = read_frame(&mut s).expect("second request");
        s.write_all(&ok_response(req2.stream_id, b"fine")).unwrap();
        thread::sleep(Duration::from_secs(1));
    });
    let err = client.call_raw("s", "m", b"", &opts()).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(
        &client.call_raw("s", "m", b"", &opts()).unwrap()[..],
        b"fine"
    );
}

#[test]
fn a_close_mid_frame_fails_every_pending_call_with_the_cause() {
    let (client, _dir) = scripted(|mut s| {
        let req = read_frame(&mut s).expect("request");
        let answer = ok_response(req.stream_id, b"truncated answer");
        s.write_all(&answer[..answer.len() - 3]).unwrap();
    });
    let err = client.call_raw("s", "m", b"", &opts()).unwrap_err();
    assert!(
        matches!(err, Error::Closed(ConnectionError::UnexpectedEof)),
        "{err}"
    );
    assert!(
        err.to_string().contains("in the middle of a frame"),
        "{err}"
    );
    let later = client.call_raw("s", "m", b"", &opts()).unwrap_err();
    assert!(matches!(later, Error::Closed(_)), "{later}");
}

#[test]
fn garbage_from_the_server_never_hangs_the_client() {
    let (client, _dir) = scripted(|mut s| {
        let _ = read_frame(&mut s);
        let _ = s.write_all(&[
            0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff,
            0xff,
        ]);
        thread::sleep(Duration::from_millis(200));
    });
    let err = client.call_raw("s", "m", b"", &opts()).unwrap_err();
    assert!(
        matches!(err, Error::Decode(_)) || err.to_string().contains("malformed"),
        "{err}"
    );
}
