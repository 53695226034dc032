//! Test support for driving real containerd shims by hand (protocol.md §8):
//! busybox bundles, `containerd-shim-runc-v2 start` with its `log` fifo
//! drained, `containerd-shim` (v1) on an abstract socket, and cleanup of
//! everything started (shim processes, runc containers, socket files).
//!
//! Tests check [`missing`] first and SKIP through `ttrpc_testkit::skip`
//! (a failure under `TTRPC_REQUIRE_PEERS=1`).

use std::fs;
use std::io::{self, Read};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use ttrpc_testkit::{TempDir, require_peers, skip};

/// The containerd address shims hash into their socket name.
pub const CONTAINERD_ADDRESS: &str = "/run/containerd/containerd.sock";

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            fs::metadata(d.join(bin))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Why shim tests cannot run here (not root, or a binary missing), or
/// `None` when they can. `bins` are looked up on PATH.
#[must_use]
pub fn missing(bins: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("needs root (runc and shims)".into());
    }
    let absent: Vec<&str> = bins
        .iter()
        .copied()
        .chain(["runc", "busybox"])
        .filter(|b| !on_path(b))
        .collect();
    (!absent.is_empty()).then(|| format!("not on PATH: {}", absent.join(", ")))
}

/// A unique container id for this process: `prefix-PID-N`.
#[must_use]
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes a busybox bundle at `dir` (basename should be the container id):
/// `rootfs/bin/busybox` with `sh`, `echo`, `sleep`, `cat` symlinks, and
/// `runc spec`'s config.json with `process.args` and `process.terminal`
/// patched.
///
/// # Errors
/// Any failing step, described.
pub fn make_bundle(dir: &Path, args: &[&str], terminal: bool) -> Result<(), String> {
    let bin = dir.join("rootfs/bin");
    fs::create_dir_all(&bin).map_err(|e| format!("mkdir {}: {e}", bin.display()))?;
    let busybox = which("busybox").ok_or("busybox not on PATH")?;
    fs::copy(&busybox, bin.join("busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    for l in ["sh", "echo", "sleep", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", bin.join(l))
            .map_err(|e| format!("symlink {l}: {e}"))?;
    }
    run(Command::new("runc").arg("spec").current_dir(dir))?;
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(|e| format!("read config.json: {e}"))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("parse config.json: {e}"))?;
    config["process"]["args"] = serde_json::json!(args);
    config["process"]["terminal"] = serde_json::json!(terminal);
    fs::write(
        &path,
        serde_json::to_vec_pretty(&config).unwrap_or_default(),
    )
    .map_err(|e| format!("write config.json: {e}"))
}

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Pids of live processes whose argv contains `needle` as consecutive
/// arguments.
#[must_use]
pub fn pids_with_args(needle: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if argv
            .windows(needle.len())
            .any(|w| w.iter().zip(needle).all(|(a, b)| *a == b.as_bytes()))
        {
            out.push(pid);
        }
    }
    out
}

fn kill9(pid: i32) {
    let _ = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Drains a fifo (or file) into a shared buffer from a thread: the shim's
/// `log` fifo must have a reader or every RPC hangs (protocol.md §8.3).
fn drain(path: PathBuf) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buf);
    thread::spawn(move || {
        let Ok(mut f) = fs::File::open(&path) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        while let Ok(n) = f.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut b) = sink.lock() {
                b.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
    });
    buf
}

/// A `containerd-shim-runc-v2` started by hand for one container. Dropping
/// it force-deletes the runc container, kills the shim if it is still
/// alive, and removes its socket file.
pub struct ShimV2 {
    pub namespace: String,
    pub id: String,
    pub bundle: PathBuf,
    /// As printed by `start`: `unix:///run/containerd/s/<hash>`.
    pub address: String,
    log: Arc<Mutex<String>>,
}

impl ShimV2 {
    /// Creates `bundle/log` as a fifo with a reader, then runs
    /// `containerd-shim-runc-v2 -namespace NS -id ID -address ADDR start`
    /// in the bundle with stdin `/dev/null`, and returns the printed
    /// address.
    ///
    /// # Errors
    /// Any failing step, described.
    pub fn start(bundle: &Path, namespace: &str, id: &str) -> Result<Self, String> {
        let log = bundle.join("log");
        run(Command::new("mkfifo").arg(&log))?;
        let log_buf = drain(log);
        let address = run(Command::new("containerd-shim-runc-v2")
            .args([
                "-namespace",
                namespace,
                "-id",
                id,
                "-address",
                CONTAINERD_ADDRESS,
                "start",
            ])
            .current_dir(bundle))?;
        Ok(Self {
            namespace: namespace.into(),
            id: id.into(),
            bundle: bundle.into(),
            address: address.trim().to_owned(),
            log: log_buf,
        })
    }

    /// The socket path (address without `unix://`).
    #[must_use]
    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(self.address.trim_start_matches("unix://"))
    }

    /// Pids of this shim's serving process(es).
    #[must_use]
    pub fn pids(&self) -> Vec<i32> {
        pids_with_args(&["-namespace", &self.namespace, "-id", &self.id])
            .into_iter()
            .filter(|p| {
                fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.windows(23).any(|w| w == b"containerd-shim-runc-v2"))
            })
            .collect()
    }

    /// What the shim logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until no shim process for this container is left.
    #[must_use]
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.pids().is_empty() {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Force-deletes container `id` from runc's state for `namespace`, so a
/// test never leaves a container behind, whatever the shim did.
fn runc_delete(namespace: &str, id: &str) {
    let root = format!("/run/containerd/runc/{namespace}");
    let _ = run(Command::new("runc")
        .args(["--root", &root, "delete", "-f", id])
        .stderr(Stdio::null()));
}

impl Drop for ShimV2 {
    fn drop(&mut self) {
        runc_delete(&self.namespace, &self.id);
        for pid in self.pids() {
            kill9(pid);
        }
        let _ = fs::remove_file(self.socket_path());
    }
}

/// A `containerd-shim` (v1) listening on the abstract socket `\0NAME\0`
/// (how Go listens on `"\x00"+NAME`), started with `setsid` in the bundle
/// directory. Dropping it kills it and force-deletes the runc container.
pub struct ShimV1 {
    pub socket: String,
    pub namespace: String,
    pub id: String,
    child: Child,
}

fn legacy_abstract_connects(name: &str) -> bool {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    SocketAddr::from_abstract_name(&bytes).is_ok_and(|a| UnixStream::connect_addr(&a).is_ok())
}

impl ShimV1 {
    /// Runs `setsid containerd-shim -namespace NS -socket NAME -workdir
    /// WORKDIR -address ADDR -runtime-root /run/containerd/runc` in
    /// `bundle` and waits until the socket accepts connections.
    ///
    /// # Errors
    /// Spawn failure or a socket that never appears (with the shim's
    /// stderr).
    pub fn start(bundle: &Path, workdir: &Path, namespace: &str, id: &str) -> Result<Self, String> {
        let socket = format!("shimkit-{id}");
        fs::create_dir_all(workdir).map_err(|e| format!("mkdir workdir: {e}"))?;
        let stderr = fs::File::create(workdir.join("shim.stderr"))
            .map_err(|e| format!("shim stderr file: {e}"))?;
        let child = Command::new("setsid")
            .arg("containerd-shim")
            .args(["-namespace", namespace, "-socket", &socket])
            .arg("-workdir")
            .arg(workdir)
            .args([
                "-address",
                CONTAINERD_ADDRESS,
                "-runtime-root",
                "/run/containerd/runc",
            ])
            .current_dir(bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("spawn containerd-shim: {e}"))?;
        let mut shim = Self {
            socket,
            namespace: namespace.into(),
            id: id.into(),
            child,
        };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if legacy_abstract_connects(&shim.socket) {
                return Ok(shim);
            }
            if let Ok(Some(status)) = shim.child.try_wait() {
                let err = fs::read_to_string(workdir.join("shim.stderr")).unwrap_or_default();
                return Err(format!("containerd-shim exited ({status}): {err}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "containerd-shim socket @{} never appeared",
            shim.socket
        ))
    }

    /// The shim's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the shim process has exited (reaps it).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for ShimV1 {
    fn drop(&mut self) {
        runc_delete(&self.namespace, &self.id);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a file to a string, empty if it cannot be read.
#[must_use]
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Creates an empty regular file (stdout/stderr targets the shim appends to).
///
/// # Errors
/// As `File::create`.
pub fn touch(path: &Path) -> io::Result<()> {
    fs::File::create(path).map(drop)
}
