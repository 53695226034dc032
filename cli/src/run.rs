//! `shimctl run`: a command as a task, start to finish — on a private
//! built-in shim (`shimctl serve` in a temp dir, dying with us), or on a
//! task v2 shim binary of the user's (`--shim PATH --bundle DIR`, its
//! `start` protocol and `log` fifo handled). Stdio is attached, signals
//! are forwarded, and the exit status is the command's.
//!
//! One thread: calls go through `conn` and the copying through `attach`'s
//! `poll(2)` loop, which also takes the signals from a signalfd (a thread
//! costs ~78 KiB in the static binary, see `conn`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use ttrpc_core::CallOptions;

use crate::Fail;
use crate::args::Opts;
use crate::attach::Attach;
use crate::conn::Conn;
use crate::json::Pretty;
use crate::proto::task::{self, TaskClient};
use crate::stdio;

/// Calls other than Wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// What a third-party shim's `log` fifo holds unread (we never read it:
/// a thread to drain it would cost more than the log is worth).
const LOG_PIPE_SIZE: i32 = 1 << 20;

fn other(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Fail {
    Fail::Other(format!("run: {what}: {e}"))
}

/// Eight random hex digits (ids and temp names must not collide).
fn random_hex() -> String {
    let mut b = [0u8; 4];
    let _ = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if b == [0; 4] {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = t.subsec_nanos().to_le_bytes();
    }
    format!("{:08x}", u32::from_be_bytes(b))
}

/// What we started and must take down again, whatever happens.
struct Cleanup {
    dir: PathBuf,
    /// Our own shim (a forked child).
    shim: Option<Pid>,
    /// A `log` fifo we created in the user's bundle.
    log: Option<PathBuf>,
    /// Our handle on the `log` fifo (the shim's writes land in its buffer).
    log_handle: Option<File>,
}

impl Cleanup {
    /// Whether our shim has exited (reaping it if so).
    fn shim_exited(&mut self) -> bool {
        let Some(pid) = self.shim else { return true };
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => false,
            _ => {
                self.shim = None;
                true
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.shim.take() {
            // Our own shim: SIGTERM kills its tasks and removes its socket.
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let _ = waitpid(pid, None);
        }
        if let Some(log) = self.log.take() {
            let _ = std::fs::remove_file(log);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `shimctl run`.
pub(crate) fn run(o: &Opts) -> Result<(), Fail> {
    if o.shim.is_some() && !o.words.is_empty() {
        return Err(Fail::Usage(
            "run: with --bundle the command is the bundle's (no words after --)".into(),
        ));
    }
    // Before anything: the signals go to a signalfd the copy loop reads.
    let signals = stdio::block_signals();
    let me = std::process::id();
    let tag = random_hex();
    let id = format!("run-{me}-{tag}");
    let dir = std::env::temp_dir().join(format!("shimctl-{id}"));
    if dir.starts_with("/run/containerd/s") {
        return Err(Fail::Other(
            "run: refusing a temp dir under /run/containerd/s".into(),
        ));
    }
    stdio::mkdir(&dir, 0o700).map_err(|e| other(format_args!("create {}", dir.display()), e))?;
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        shim: None,
        log: None,
        log_handle: None,
    };

    let (address, bundle) = match (&o.shim, &o.bundle) {
        (Some(shim), Some(bundle)) => {
            let bundle = PathBuf::from(stdio::absolute(bundle));
            let address = start_third_party(o, shim, &bundle, &id, &mut cleanup)?;
            (address, bundle)
        }
        _ => {
            let bundle = dir.join("bundle");
            write_bundle(o, &bundle)?;
            let address = start_builtin(&dir, &mut cleanup)?;
            (address, bundle)
        }
    };
    let conn = ttrpc_std::Address::parse(&address)
        .and_then(|a| a.connect())
        .map(Conn::new)
        .map_err(|e| other(&address, e))?;
    let tasks = TaskClient::new(&conn);
    let opts = CallOptions::with_timeout(CALL_TIMEOUT);
    let status = drive(o, &tasks, &opts, &id, &bundle, &dir, signals.as_ref());
    // Whatever happened, leave no task behind.
    if status.is_err() {
        let kill = task::KillRequest {
            id: id.clone(),
            signal: Signal::SIGKILL as u32,
            all: true,
            ..Default::default()
        };
        let _ = tasks.kill(&kill, &opts);
        let wait = task::WaitRequest {
            id: id.clone(),
            ..Default::default()
        };
        let _ = tasks.wait(&wait, &opts);
    }
    let delete = task::DeleteRequest {
        id: id.clone(),
        ..Default::default()
    };
    let _ = tasks.delete(&delete, &opts);
    let shutdown = task::ShutdownRequest {
        id: id.clone(),
        now: false,
    };
    let _ = tasks.shutdown(&shutdown, &opts);
    drop(conn);
    stdio::restore_terminal();
    // It exits after Shutdown; SIGTERM in drop only if it did not.
    for _ in 0..100 {
        if cleanup.shim_exited() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(cleanup);
    let status = status?;
    let _ = io::stdout().flush();
    std::process::exit(i32::try_from(status.min(255)).unwrap_or(255));
}

/// Writes a bundle whose `config.json` runs the words after `--` with our
/// environment plus `--env`, in `--cwd` or ours.
fn write_bundle(o: &Opts, bundle: &Path) -> Result<(), Fail> {
    stdio::mkdir(bundle, 0o777).map_err(|e| other("create bundle", e))?;
    let mut env = crate::shim::environment();
    env.extend(o.env.iter().cloned());
    let cwd = match &o.cwd {
        Some(c) => stdio::absolute(c),
        None => std::env::current_dir()
            .map_err(|e| other("cwd", e))?
            .display()
            .to_string(),
    };
    let mut w = Pretty::new();
    let strings = |w: &mut Pretty, key: &str, list: &[String]| {
        w.key(key);
        w.open('[');
        for s in list {
            w.element();
            w.string(s);
        }
        w.close(']');
    };
    w.open('{');
    w.key("ociVersion");
    w.string("1.0.2");
    w.key("process");
    w.open('{');
    w.key("terminal");
    w.bool(o.tty);
    strings(&mut w, "args", &o.words);
    strings(&mut w, "env", &env);
    w.key("cwd");
    w.string(&cwd);
    if o.tty
        && let Some((width, height)) = crate::sys::window_size(io::stdin())
    {
        w.key("consoleSize");
        w.open('{');
        w.key("height");
        w.uint(height.into());
        w.key("width");
        w.uint(width.into());
        w.close('}');
    }
    w.close('}');
    w.key("root");
    w.open('{');
    w.key("path");
    w.string("/");
    w.close('}');
    w.close('}');
    let text = w.finish();
    std::fs::write(bundle.join("config.json"), text).map_err(|e| other("write config.json", e))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Fail> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| other("pipe", e))
}

/// The built-in shim in a forked child (we have no thread yet), serving on
/// a socket in our temp dir, in its own process group (a terminal's Ctrl-C
/// is ours to forward, not the shim's), dying with us and removing the
/// temp dir if we die first.
fn start_builtin(dir: &Path, cleanup: &mut Cleanup) -> Result<String, Fail> {
    let (r, w) = pipe()?;
    let me = std::process::id();
    match crate::sys::fork_single_threaded().map_err(|e| other("start the built-in shim", e))? {
        ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // Our stdin and stdout are the task's business, not the shim's.
            if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
            }
            crate::shim::exit_with(crate::shim::serve(crate::shim::ServeOpts {
                address: format!("unix://{}", dir.join("shim.sock").display()),
                credentials: ttrpc_std::CredentialCheck::SameUser,
                ready: Some(w),
                detached: false,
                die_with: Some(me),
                cleanup: Some(dir.to_owned()),
            }))
        }
        ForkResult::Parent { child } => {
            drop(w);
            cleanup.shim = Some(child);
            crate::shim::read_ready(r)
                .ok_or_else(|| Fail::Other("run: the built-in shim did not start".into()))
        }
    }
}

/// A task v2 shim binary's `start`, run in the bundle: it prints its
/// address and leaves a daemon serving there. Its log goes to a `log`
/// fifo in the bundle, which must be read or the shim blocks.
fn start_third_party(
    o: &Opts,
    shim: &str,
    bundle: &Path,
    id: &str,
    cleanup: &mut Cleanup,
) -> Result<String, Fail> {
    let log = bundle.join("log");
    if !log.exists() {
        nix::unistd::mkfifo(&log, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| other(format_args!("mkfifo {}", log.display()), e))?;
        cleanup.log = Some(log.clone());
    }
    // Held open read-write and never read: the shim's few log lines stay
    // in the pipe's buffer, enlarged so they never fill it.
    let handle = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&log)
        .map_err(|e| other(format_args!("open {}", log.display()), e))?;
    let _ = nix::fcntl::fcntl(&handle, nix::fcntl::FcntlArg::F_SETPIPE_SZ(LOG_PIPE_SIZE));
    cleanup.log_handle = Some(handle);
    let args = [
        "-namespace",
        &o.namespace,
        "-id",
        id,
        "-address",
        &o.address,
        "start",
    ];
    let (r, w) = pipe()?;
    let pid = crate::shim::exec(shim, &args, bundle, w)
        .map_err(|e| other(format_args!("start {shim}"), e))?;
    let address = crate::shim::read_ready(r);
    let _ = waitpid(pid, None);
    address.ok_or_else(|| Fail::Other(format!("run: {shim} start printed no address")))
}

/// Create, attach, start, wait: the task's exit status.
fn drive(
    o: &Opts,
    tasks: &TaskClient<&Conn>,
    opts: &CallOptions,
    id: &str,
    bundle: &Path,
    dir: &Path,
    signals: Option<&nix::sys::signalfd::SignalFd>,
) -> Result<u32, Fail> {
    let fifo = |name: &str| -> Result<String, Fail> {
        let p = dir.join(name).display().to_string();
        stdio::prepare_fifo(&p)?;
        Ok(p)
    };
    let (stdin, stdout) = (fifo("stdin")?, fifo("stdout")?);
    let stderr = if o.tty {
        String::new()
    } else {
        fifo("stderr")?
    };
    // Our ends open before Create, without waiting: a shim may wait in
    // Create until they are open (runc's does); ours never does.
    let attach = Attach::open(
        Some(&stdin),
        Some(&stdout),
        (!stderr.is_empty()).then_some(stderr.as_str()),
        o.tty,
    )?;
    let create = task::CreateTaskRequest {
        id: id.to_owned(),
        bundle: bundle.display().to_string(),
        terminal: o.tty,
        stdin: stdin.clone(),
        stdout: stdout.clone(),
        stderr: stderr.clone(),
        ..Default::default()
    };
    tasks.create(&create, opts)?;
    let resize = || {
        if let Some((w, h)) = crate::sys::window_size(io::stdin()) {
            let req = task::ResizePtyRequest {
                id: id.to_owned(),
                exec_id: String::new(),
                width: u32::from(w),
                height: u32::from(h),
            };
            let _ = tasks.resize_pty(&req, opts);
        }
    };
    let terminal = o.tty && nix::unistd::isatty(io::stdin()).unwrap_or(false);
    if terminal {
        stdio::raw_mode()?;
        resize();
    }
    let start = task::StartRequest {
        id: id.to_owned(),
        exec_id: String::new(),
    };
    tasks.start(&start, opts)?;
    // SIGINT, SIGTERM, SIGHUP and SIGQUIT go to the task (a second one is
    // SIGKILL); SIGWINCH resizes its terminal.
    let forwarded = std::cell::Cell::new(false);
    let on_signal = |sig: Signal| {
        if sig == Signal::SIGWINCH {
            if terminal {
                resize();
            }
            return;
        }
        let signal = if forwarded.replace(true) {
            Signal::SIGKILL
        } else {
            sig
        };
        let kill = task::KillRequest {
            id: id.to_owned(),
            exec_id: String::new(),
            signal: signal as u32,
            all: false,
        };
        let _ = tasks.kill(&kill, opts);
    };
    // Our stdin ended: the task sees end of file.
    let close_stdin = || {
        let req = task::CloseIoRequest {
            id: id.to_owned(),
            exec_id: String::new(),
            stdin: true,
        };
        let _ = tasks.close_io(&req, opts);
    };
    attach.run(
        &close_stdin,
        signals.map(|s| (s, &on_signal as &dyn Fn(Signal))),
    );
    let wait = task::WaitRequest {
        id: id.to_owned(),
        exec_id: String::new(),
    };
    Ok(tasks.wait(&wait, &CallOptions::default())?.exit_status)
}
