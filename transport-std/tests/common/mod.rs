//! Helpers shared by the test files.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use ttrpc_std::{Address, Client, Error, Registry, Server, ServerConfig};
use ttrpc_testkit::TempDir;

/// A server serving `registry` on `<tempdir>/s.sock` from a background
/// thread; shut down (immediately) on drop.
pub struct TestServer {
    pub server: Server,
    pub socket: PathBuf,
    thread: Option<thread::JoinHandle<Result<(), Error>>>,
    _dir: TempDir,
}

impl TestServer {
    pub fn start(registry: Registry, config: ServerConfig) -> Self {
        let dir = TempDir::new("ttrpc-std-test").expect("temp dir");
        let socket = dir.path().join("s.sock");
        let listener = Address::Path(socket.clone()).bind().expect("bind");
        let server = Server::with_config(registry, config).expect("server");
        let s = server.clone();
        let thread = Some(thread::spawn(move || s.serve(listener)));
        Self {
            server,
            socket,
            thread,
            _dir: dir,
        }
    }

    pub fn address(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.address()).expect("connect")
    }

    /// Waits for the serve thread to return.
    pub fn join(&mut self) -> Result<(), Error> {
        self.thread
            .take()
            .map_or(Ok(()), |t| t.join().expect("serve thread"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown_now();
        let _ = self.join();
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `f` on a thread and fails the test if it has not returned within
/// `limit` (so a hang is a failure, not a stuck run).
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}"))
}

pub fn echo_registry() -> Registry {
    let mut r = Registry::new();
    r.register_fn("test.Echo", "Echo", |req| Ok(req.payload.clone()));
    r
}

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}
