//! ttrpc-mio against the real Go ttrpc 1.1.1, both directions, through the
//! shared cases of `ttrpc_testkit::interop` (as transport-std's
//! go_interop.rs does).

mod common;

use std::time::Duration;

use common::{LoopClient, TestServer, interop_registry, pool};
use ttrpc_mio::ServerConfig;
use ttrpc_testkit::interop;
use ttrpc_testkit::{PeerServer, skip, try_go_peer};

fn peer_available(test: &str) -> bool {
    match try_go_peer() {
        Ok(_) => true,
        Err(reason) => {
            skip(test, &reason);
            false
        }
    }
}

fn config() -> ServerConfig {
    ServerConfig::default().executor(pool(32))
}

#[test]
fn mio_client_against_go_server() {
    if !peer_available("mio_client_against_go_server") {
        return;
    }
    let peer = PeerServer::start(false).expect("Go peer server");
    let c = LoopClient::connect(&format!("unix://{}", peer.socket().display()));
    interop::run_client_cases(&c);
    // Let the late answer of the timed-out Sleep arrive; it was dropped.
    std::thread::sleep(Duration::from_millis(200));
    let stats = c.stop();
    assert!(stats.unknown_stream_ids >= 1, "{stats:?}");
    // The Go server sent the oversized answer and our client skipped it.
    assert_eq!(stats.oversized_frames, 1);
}

#[test]
fn go_client_against_mio_server() {
    if !peer_available("go_client_against_mio_server") {
        return;
    }
    let ours = TestServer::start(interop_registry(), config());
    interop::run_go_client_cases(&ours.socket);
    interop::check_no_oversized_response(&ours.socket);
    let took = ours.shutdown(Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(10),
        "graceful shutdown took {took:?}"
    );
}

#[test]
fn mio_client_against_mio_server() {
    let ours = TestServer::start(interop_registry(), config());
    let c = LoopClient::connect(&format!("unix://{}", ours.socket.display()));
    interop::run_client_cases(&c);
}

#[test]
fn a_mio_stream_against_go_1_1_1_fails_with_unimplemented() {
    use mio::{Events, Poll, Token};
    use std::time::Instant;
    use ttrpc_mio::{CallOptions, Client, Code, Config, Error, StreamItem, StreamKind};
    if !peer_available("a_mio_stream_against_go_1_1_1_fails_with_unimplemented") {
        return;
    }
    let peer = PeerServer::start(false).expect("Go peer server");
    let mut poll = Poll::new().expect("poll");
    let address = format!("unix://{}", peer.socket().display());
    let mut client =
        Client::connect(&address, Config::default(), poll.registry(), Token(1)).expect("connect");
    let options = CallOptions::with_timeout(Duration::from_secs(10));
    let id = client
        .open_stream(
            ttrpc_testkit::SERVICE,
            "Chat",
            StreamKind::Bidirectional,
            b"",
            &options,
        )
        .expect("open");
    let mut events = Events::with_capacity(8);
    let deadline = Instant::now() + Duration::from_secs(10);
    let item = loop {
        if let Some(item) = client.recv(id) {
            break item;
        }
        assert!(Instant::now() < deadline, "no answer from the Go peer");
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .expect("poll");
        for event in &events {
            client.handle_event(event);
        }
        client.handle_timeout(Instant::now());
    };
    let StreamItem::End(Err(e)) = item else {
        panic!("{item:?}")
    };
    let e = Error::from(e);
    assert_eq!(e.code(), Code::Unimplemented);
    assert_eq!(e.to_string(), "Unimplemented: method Chat");
}
