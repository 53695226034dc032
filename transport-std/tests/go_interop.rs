//! ttrpc-std against the real Go ttrpc 1.1.1, both directions, through the
//! shared cases of `ttrpc_testkit::interop`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ttrpc_std::{CallOptions, Client, CredentialCheck, Error, Registry, Server, ServerConfig};
use ttrpc_testkit::interop::{self, CallFailure, UnaryCall};
use ttrpc_testkit::{PeerServer, SERVICE, TempDir, skip, try_go_peer};

struct StdClient(Client);

impl UnaryCall for StdClient {
    fn call(&self, method: &str, payload: &[u8], opts: &CallOptions) -> Result<Bytes, CallFailure> {
        self.0
            .call_raw(SERVICE, method, payload, opts)
            .map_err(|e| match e {
                Error::Status(s) => CallFailure::Status {
                    code: s.code,
                    message: s.message,
                },
                Error::DeadlineExceeded => CallFailure::DeadlineExceeded,
                Error::TooLarge { .. } => CallFailure::TooLarge,
                other => CallFailure::Other(other.to_string()),
            })
    }
}

fn peer_available(test: &str) -> bool {
    match try_go_peer() {
        Ok(_) => true,
        Err(reason) => {
            skip(test, &reason);
            false
        }
    }
}

/// Our server serving the interop service on `dir/our.sock`.
struct OurServer {
    server: Server,
    thread: Option<thread::JoinHandle<Result<(), Error>>>,
    socket: std::path::PathBuf,
}

impl OurServer {
    fn start(dir: &Path, config: ServerConfig) -> Self {
        let mut registry = Registry::new();
        interop::register_interop(&mut registry);
        let server = Server::with_config(registry, config).expect("server");
        let socket = dir.join("our.sock");
        let listener = ttrpc_std::Address::Path(socket.clone())
            .bind()
            .expect("bind");
        let s = server.clone();
        let thread = Some(thread::spawn(move || s.serve(listener)));
        Self {
            server,
            thread,
            socket,
        }
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.server.shutdown_now();
        if let Some(t) = self.thread.take() {
            t.join().expect("serve thread").expect("serve");
        }
    }
}

#[test]
fn our_client_against_go_server() {
    if !peer_available("our_client_against_go_server") {
        return;
    }
    let peer = PeerServer::start(false).expect("Go peer server");
    let client = Client::connect(&format!("unix://{}", peer.socket().display())).expect("connect");
    let c = StdClient(client);
    interop::run_client_cases(&c);
    // The late answer of the timed-out Sleep was dropped, not delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.0.stats().unknown_stream_ids == 0 {
        assert!(Instant::now() < deadline, "late answer never seen");
        thread::sleep(Duration::from_millis(10));
    }
    // The Go server sent the oversized answer and our client skipped it.
    assert_eq!(c.0.stats().oversized_frames, 1);
    assert!(!c.0.is_closed());
}

#[test]
fn go_client_against_our_server() {
    if !peer_available("go_client_against_our_server") {
        return;
    }
    let dir = TempDir::new("ttrpc-std-go").expect("temp dir");
    let ours = OurServer::start(dir.path(), ServerConfig::default());
    interop::run_go_client_cases(&ours.socket);
    interop::check_no_oversized_response(&ours.socket);
    assert!(ours.server.shutdown(Duration::from_secs(10)));
}

#[test]
fn our_client_against_our_server() {
    let dir = TempDir::new("ttrpc-std-self").expect("temp dir");
    let ours = OurServer::start(dir.path(), ServerConfig::default());
    let client = Client::connect(&format!("unix://{}", ours.socket.display())).expect("connect");
    interop::run_client_cases(&StdClient(client));
}

/// Runs the Go peer client as uid/gid 65534 (nobody) through `setpriv`,
/// from a copy of the binary that nobody can read and execute.
fn run_as_nobody(binary: &Path, socket: &Path) -> String {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(binary)
        .arg("client")
        .arg("-socket")
        .arg(socket)
        .args(["-case", "raw-hello"])
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv");
    assert!(
        out.status.success(),
        "peer client as nobody: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn credential_check_refuses_another_uid() {
    let test = "credential_check_refuses_another_uid";
    let Ok(peer) = try_go_peer() else {
        skip(test, "Go peer unavailable");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        skip(test, "needs root to run a client as another uid");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        skip(test, "setpriv not installed");
        return;
    }
    // Everything the other uid touches must be reachable by it.
    let dir = TempDir::new("ttrpc-std-creds").expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let binary = dir.path().join("peer");
    fs::copy(&peer, &binary).expect("copy peer");
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod peer");

    let ours = OurServer::start(
        dir.path(),
        ServerConfig::default().credentials(CredentialCheck::SameUser),
    );
    let socket = &ours.socket;
    let mode = fs::metadata(socket)
        .expect("stat socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Mode 0666: only the credential check can refuse. No frame is sent,
    // so the Go client sees its connection closed.
    fs::set_permissions(socket, fs::Permissions::from_mode(0o666)).expect("chmod 0666");
    let out = run_as_nobody(&binary, socket);
    assert_eq!(out, r#"{"error":"ttrpc: closed","ok":false}"#);
    assert_eq!(ours.server.stats().refused, 1);
    assert_eq!(ours.server.stats().accepted, 0);

    // The same socket serves a peer with our uid and gid.
    let out = ttrpc_testkit::run_peer_client(socket, "raw-hello", &[]).expect("peer client");
    assert_eq!(out, r#"{"len":5,"match":true,"ok":true}"#);
    assert_eq!(ours.server.stats().accepted, 1);

    // Mode 0600: the other uid cannot even connect.
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    let out = run_as_nobody(&binary, socket);
    assert!(out.contains("permission denied"), "{out}");
    assert_eq!(ours.server.stats().refused, 1, "never reached accept");
}

#[test]
fn a_stream_against_go_1_1_1_fails_with_unimplemented() {
    if !peer_available("a_stream_against_go_1_1_1_fails_with_unimplemented") {
        return;
    }
    let peer = PeerServer::start(false).expect("Go peer server");
    let client = Client::connect(&format!("unix://{}", peer.socket().display())).expect("connect");
    let options = CallOptions::with_timeout(Duration::from_secs(10));
    for kind in [
        ttrpc_std::StreamKind::ClientStreaming,
        ttrpc_std::StreamKind::ServerStreaming,
        ttrpc_std::StreamKind::Bidirectional,
    ] {
        // Go 1.1.1 has no streams: it ignores the flags, looks the method
        // up among its unary ones and answers `Unimplemented` at once.
        let stream = client
            .open_stream(SERVICE, "Chat", kind, b"", &options)
            .expect("open");
        let err = stream.recv().expect_err("no streams in Go 1.1.1");
        assert_eq!(err.code(), ttrpc_std::Code::Unimplemented, "{kind:?}");
        assert_eq!(err.to_string(), "Unimplemented: method Chat");
    }
    // Unary calls on the same connection are unaffected.
    // (A BytesValue{value: "hi"}.)
    let answer = client
        .call_raw(SERVICE, "Echo", b"\x0a\x02hi", &options)
        .expect("unary");
    assert_eq!(&answer[..], b"\x0a\x02hi");
}
