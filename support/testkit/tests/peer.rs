//! Go client against Go server through the harness: proves the peer builds,
//! starts, answers and is torn down without leaks.

use std::sync::{Mutex, MutexGuard, PoisonError};

use ttrpc_testkit::{PeerServer, fd_count, run_peer_client, skip, try_go_peer};

/// Serializes the tests of this file so that `fd_count` comparisons are not
/// disturbed by descriptors of a test running in parallel.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn echo_ok(same_user: bool, test: &str) {
    let _serial = serial();
    if let Err(reason) = try_go_peer() {
        skip(test, &reason);
        return;
    }
    let server = PeerServer::start(same_user).expect("start Go peer server");
    assert!(server.socket().exists());
    let out = run_peer_client(server.socket(), "echo", &["-size", "16"]).expect("peer client");
    assert_eq!(
        out,
        r#"{"len":16,"match":true,"ok":true}"#,
        "{}",
        server.stderr_log()
    );
}

#[test]
fn go_client_echo_against_go_server() {
    echo_ok(false, "go_client_echo_against_go_server");
}

#[test]
fn go_client_echo_against_go_server_same_user() {
    echo_ok(true, "go_client_echo_against_go_server_same_user");
}

#[test]
fn server_drop_cleans_up() {
    let _serial = serial();
    if let Err(reason) = try_go_peer() {
        skip("server_drop_cleans_up", &reason);
        return;
    }
    // Warm up lazily-opened descriptors before counting.
    drop(PeerServer::start(false).expect("start Go peer server"));
    let before = fd_count();
    let server = PeerServer::start(false).expect("start Go peer server");
    let dir = server.socket().parent().expect("socket dir").to_owned();
    let pid = server.pid();
    drop(server);
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "peer server {pid} still running"
    );
    assert_eq!(fd_count(), before, "descriptors leaked");
}

#[test]
fn unknown_case_is_an_error() {
    let _serial = serial();
    if let Err(reason) = try_go_peer() {
        skip("unknown_case_is_an_error", &reason);
        return;
    }
    let server = PeerServer::start(false).expect("start Go peer server");
    let err = run_peer_client(server.socket(), "no-such-case", &[]).unwrap_err();
    assert!(err.contains("unknown case"), "{err}");
}
