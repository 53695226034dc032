//! Test support for the ttrpc transports: builds and drives the Go ttrpc
//! 1.1.1 interop peer in `support/go/peer` (see its README for the
//! `ttrpc.interop.Interop` methods and the client cases).
//!
//! Tests that need the peer should do
//!
//! ```no_run
//! let Some(_peer) = ttrpc_testkit::go_peer() else {
//!     ttrpc_testkit::skip("my_test", "Go peer unavailable");
//!     return;
//! };
//! ```
//!
//! With `TTRPC_REQUIRE_PEERS=1` in the environment, [`skip`] panics, so a
//! missing peer fails the run instead of passing silently.

#![warn(missing_docs)]

pub mod hostile;
pub mod interop;
pub mod streams;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `GOPATH` holding Debian's Go ttrpc 1.1.1 source and its dependencies.
pub const GOPATH: &str = "/usr/share/gocode";

/// The service name the Go peer serves and calls.
pub const SERVICE: &str = "ttrpc.interop.Interop";

/// How long [`PeerServer::start`] waits for the peer to print `READY`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`run_peer_client`] lets a client case run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `TTRPC_REQUIRE_PEERS=1` is set: then missing peers are failures.
pub fn require_peers() -> bool {
    std::env::var("TTRPC_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports that `test` was skipped because of `reason`.
///
/// Writes `SKIP {test}: {reason}` straight to the process's stderr handle,
/// which libtest's output capture does not intercept. Panics with the same
/// message instead when [`require_peers`] is true.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    if require_peers() {
        panic!("{line} (TTRPC_REQUIRE_PEERS=1)");
    }
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// Number of entries in `/proc/self/fd` (the count includes the descriptor
/// used to read the directory, so compare counts, not absolute values).
///
/// Returns 0 if `/proc/self/fd` cannot be read.
pub fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// The workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Directory the Go peer binary is built into: `$CARGO_TARGET_DIR/go-peer`
/// if set, else `<workspace>/target/go-peer`.
fn peer_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    };
    target.join("go-peer")
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build_go_peer() -> Result<PathBuf, String> {
    let src_dir = workspace_root().join("support/go/peer");
    let main_go = src_dir.join("main.go");
    let src_time = modified(&main_go)
        .ok_or_else(|| format!("Go peer source {} not found", main_go.display()))?;
    let ttrpc_src = Path::new(GOPATH).join("src/github.com/containerd/ttrpc");
    if !ttrpc_src.is_dir() {
        return Err(format!(
            "Go ttrpc source missing at {} (install golang-github-containerd-ttrpc-dev)",
            ttrpc_src.display()
        ));
    }
    match Command::new("go")
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("`go version` failed: {s}")),
        Err(e) => return Err(format!("`go` not runnable (install golang-go): {e}")),
    }

    let out_dir = peer_dir();
    let binary = out_dir.join("peer");
    if modified(&binary).is_some_and(|bin_time| bin_time >= src_time) {
        return Ok(binary);
    }
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;

    // Build to a private name and rename, so that test binaries building at
    // the same time never run a half-written file.
    let tmp = out_dir.join(format!("peer.tmp.{}", std::process::id()));
    let mut cmd = Command::new("go");
    cmd.args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src_dir)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .stdin(Stdio::null());
    if std::env::var_os("GOCACHE").is_none() {
        cmd.env("GOCACHE", out_dir.join("gocache"));
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run `go build`: {e}"))?;
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "`go build` of {} failed ({}): {}",
            src_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    fs::rename(&tmp, &binary).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot move Go peer to {}: {e}", binary.display())
    })?;
    Ok(binary)
}

/// Builds the Go peer (at most once per process; only if `main.go` is newer
/// than the binary) and returns its path, or why it is unavailable: `go`
/// not on `PATH`, Go ttrpc source missing under [`GOPATH`], or a failed
/// build.
pub fn try_go_peer() -> Result<PathBuf, String> {
    static PEER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PEER.get_or_init(build_go_peer).clone()
}

/// [`try_go_peer`] without the reason.
pub fn go_peer() -> Option<PathBuf> {
    try_go_peer().ok()
}

/// A fresh directory under [`std::env::temp_dir`], removed with its
/// contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<counter>-<nanos>`.
    pub fn new(prefix: &str) -> io::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir(&path)?;
        Ok(Self { path })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A running `peer server` (Go ttrpc 1.1.1 serving `ttrpc.interop.Interop`)
/// on a unix socket in a private temp dir. Dropping it kills the process and
/// removes the directory.
#[derive(Debug)]
pub struct PeerServer {
    child: Child,
    // The server exits when its stdin closes, so it cannot outlive us.
    _stdin: Option<ChildStdin>,
    socket: PathBuf,
    dir: TempDir,
    stdout_reader: Option<thread::JoinHandle<()>>,
}

impl PeerServer {
    /// Builds the peer if needed, starts `peer server -socket
    /// <tempdir>/peer.sock` (with `-same-user` if `same_user`, i.e. the Go
    /// server checks SO_PEERCRED via `UnixSocketRequireSameUser`) and waits
    /// up to 10 s for it to print `READY`.
    pub fn start(same_user: bool) -> Result<Self, String> {
        let binary = try_go_peer()?;
        let dir = TempDir::new("ttrpc-peer").map_err(|e| format!("temp dir: {e}"))?;
        let socket = dir.path().join("peer.sock");
        let log = dir.path().join("peer.stderr");
        let stderr = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;

        let mut cmd = Command::new(&binary);
        cmd.arg("server").arg("-socket").arg(&socket);
        if same_user {
            cmd.arg("-same-user");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();

        let mut server = Self {
            child,
            _stdin: stdin,
            socket,
            dir,
            stdout_reader: None,
        };

        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            server.stdout_reader = Some(thread::spawn(move || {
                let mut lines = BufReader::new(stdout);
                let mut line = String::new();
                let ready = matches!(lines.read_line(&mut line), Ok(n) if n > 0)
                    && line.trim_end() == "READY";
                let _ = tx.send(if ready { Ok(()) } else { Err(line) });
                // Keep draining so a chatty peer never blocks on a full pipe.
                let _ = io::copy(&mut lines, &mut io::sink());
            }));
        }
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(line)) => Err(format!(
                "peer server did not print READY (got {line:?}); stderr: {}",
                server.stderr_log().trim()
            )),
            Err(_) => {
                let _ = server.child.kill();
                Err(format!(
                    "peer server not READY within {READY_TIMEOUT:?}; stderr: {}",
                    server.stderr_log().trim()
                ))
            }
        }
    }

    /// The unix socket the server listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote to stderr so far (Go ttrpc logs, e.g.
    /// "refusing connection after handshake").
    pub fn stderr_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("peer.stderr")).unwrap_or_default()
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader ends at EOF on the dead child's stdout; joining it means
        // no pipe descriptor outlives the drop.
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
    }
}

fn read_all_in_thread<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `peer client -socket <socket> -case <case> <extra...>` (e.g.
/// `run_peer_client(s, "echo", &["-size", "16"])`) and returns its stdout,
/// trimmed: one line of JSON.
///
/// Errors if the peer is unavailable, the client runs longer than 60 s (it
/// is killed), or it exits unsuccessfully (usage error, or a Go panic such
/// as ttrpc 1.1.1's on an oversized response).
pub fn run_peer_client(socket: &Path, case: &str, extra: &[&str]) -> Result<String, String> {
    let binary = try_go_peer()?;
    let mut child = Command::new(&binary)
        .arg("client")
        .arg("-socket")
        .arg(socket)
        .arg("-case")
        .arg(case)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdout = read_all_in_thread(child.stdout.take());
    let stderr = read_all_in_thread(child.stderr.take());

    let status = match wait_timeout(&mut child, CLIENT_TIMEOUT) {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("waiting for peer client: {e}"));
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        None => Err(format!(
            "peer client case {case} timed out after {CLIENT_TIMEOUT:?}; stdout: {}; stderr: {}",
            stdout.trim(),
            stderr.trim()
        )),
        Some(s) if !s.success() => Err(format!(
            "peer client case {case} failed ({s}); stdout: {}; stderr: {}",
            stdout.trim(),
            stderr.trim()
        )),
        Some(_) => Ok(stdout.trim().to_owned()),
    }
}
