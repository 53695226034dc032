//! The built-in process shim (`shimctl serve`): the task API for plain
//! host processes on one thread and one `mio` loop — the ttrpc server
//! (`ttrpc-mio`), a `signalfd` for child exits, termination signals and
//! SIGUSR1 (counters on stderr), and the terminal pumps. No async runtime,
//! no other thread.
//!
//! Host processes, no isolation: a task runs as the caller, in the host's
//! root and namespaces; of the bundle's `config.json` only `process` is
//! read (args, env, cwd, terminal, consoleSize).

mod oci;
mod pump;
mod service;
mod spawn;
mod tasks;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use ttrpc_core::stub;
use ttrpc_core::{IncomingRequest, Registry, Responder};
use ttrpc_mio::{Server, ServerConfig};
use ttrpc_std::CredentialCheck;

use crate::Fail;
use crate::proto::task::{self, Task as _};
use crate::proto::task_v3;
use pump::Progress;
use service::{Exit, Inner, MAX_PUMPS, PUMP_TOKENS, Shim};
pub(crate) use spawn::{environment, exec};

/// The signalfd's token.
const SIGNALS: Token = Token(0);
/// The server's tokens: waker, listener, up to 1024 connections.
const SERVER_TOKENS: std::ops::Range<usize> = {
    let start = PUMP_TOKENS + 2 * MAX_PUMPS;
    start..start + 1026
};
/// How long replies (Shutdown's own) get to reach their clients at exit.
const GRACE: Duration = Duration::from_secs(1);

/// How `serve` runs.
#[derive(Debug)]
pub(crate) struct ServeOpts {
    /// Where to listen (`unix://PATH`, a path, or `@NAME`).
    pub(crate) address: String,
    /// Who may connect (default: this process's euid and egid).
    pub(crate) credentials: CredentialCheck,
    /// Written the address, then closed, once listening: how whoever
    /// started us learns that we serve (`run`, `--daemon`).
    pub(crate) ready: Option<OwnedFd>,
    /// A daemon: stdio goes to `/dev/null` once listening.
    pub(crate) detached: bool,
    /// Exit (killing the tasks) when this process, our parent, dies.
    pub(crate) die_with: Option<u32>,
    /// A directory to remove at exit (`shimctl run`'s temp dir).
    pub(crate) cleanup: Option<PathBuf>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> Fail {
    Fail::Other(format!("serve: {what}: {e}"))
}

/// Runs the shim until Shutdown, SIGTERM, SIGINT or SIGHUP.
pub(crate) fn serve(mut o: ServeOpts) -> Result<(), Fail> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| fail("block signals", e))?;
    if o.detached {
        let _ = nix::unistd::setsid();
    }
    if let Some(parent) = o.die_with {
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(|e| fail("prctl", e))?;
        if nix::unistd::getppid().as_raw() as u32 != parent {
            return Err(Fail::Other("serve: parent already gone".to_owned()));
        }
    }
    // Orphans of our tasks are reparented to us and reaped: no zombies.
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| fail("prctl", e))?;
    let result = run_loop(&mut o, &mask);
    if let Some(dir) = &o.cleanup {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn run_loop(o: &mut ServeOpts, mask: &SigSet) -> Result<(), Fail> {
    let mut poll = Poll::new().map_err(|e| fail("epoll", e))?;
    let signals = SignalFd::with_flags(mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| fail("signalfd", e))?;
    poll.registry()
        .register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )
        .map_err(|e| fail("register signalfd", e))?;

    let shim = Arc::new(Shim {
        inner: Mutex::new(Inner {
            tasks: tasks::Tasks::default(),
            pumps: Vec::new(),
            registry: poll.registry().try_clone().map_err(|e| fail("epoll", e))?,
            exit: None,
        }),
        panic_on: std::env::var("SHIMCTL_TEST_PANIC").ok(),
    });
    let handlers = task_registry(&shim);
    let config = ServerConfig::default().credentials(o.credentials.clone());
    let mut server = Server::bind(&o.address, handlers, config, poll.registry(), SERVER_TOKENS)
        .map_err(|e| fail(&format!("listen on {}", o.address), e))?;
    notify(&o.address, o.ready.take(), o.detached);

    let mut events = Events::with_capacity(256);
    let mut stopping = false;
    loop {
        let timeout = server
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail("poll", e)),
        }
        let mut reap = false;
        for event in &events {
            match event.token() {
                SIGNALS => {
                    while let Ok(Some(info)) = signals.read_signal() {
                        if info.ssi_signo == Signal::SIGCHLD as u32 {
                            reap = true;
                        } else if info.ssi_signo == Signal::SIGUSR1 as u32 {
                            report(&server, &shim);
                        } else {
                            shim.lock().exit = Some(Exit::Now);
                        }
                    }
                }
                Token(t) if t < SERVER_TOKENS.start => drive_pump(&shim, (t - PUMP_TOKENS) / 2),
                _ => {
                    server.handle_event(event);
                }
            }
        }
        server.handle_timeout(Instant::now());
        if reap {
            reap_children(&shim);
        }
        let exit = shim.lock().exit;
        if let Some(exit) = exit {
            if !stopping {
                stopping = true;
                if exit == Exit::Now {
                    shim.lock().tasks.kill_everything();
                }
                // Stops listening (the socket file goes) and lets the
                // replies already queued reach their clients.
                server.shutdown(GRACE);
            }
            if server.is_finished() {
                break;
            }
        }
    }
    // Children killed on the way out are reaped, not left as zombies.
    let live: Vec<u32> = shim.lock().tasks.live().map(|p| p.pid).collect();
    for pid in live {
        let _ = waitpid(tasks::pid_of(pid), None);
    }
    Ok(())
}

/// How a task API request reaches the `Shim`: decoded as the method's
/// request ([`stub::serve`] answers `InvalidArgument` if it does not decode),
/// then handed to the method with a typed reply.
type Route = fn(&Shim, IncomingRequest, Responder);

/// The task API's methods (v2 and v3 have the same) and their routes: the
/// generated `register_task`'s, written as one table so that v2 and v3
/// share them and the server's registry holds one closure type (a second
/// registry of generated closures, or a second set, costs the static
/// binary several KiB).
const ROUTES: [(&str, Route); 17] = [
    ("State", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.state(c, m, a))
    }),
    ("Create", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.create(c, m, a))
    }),
    ("Start", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.start(c, m, a))
    }),
    ("Delete", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.delete(c, m, a))
    }),
    ("Pids", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.pids(c, m, a))
    }),
    ("Pause", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.pause(c, m, a))
    }),
    ("Resume", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.resume(c, m, a))
    }),
    ("Checkpoint", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.checkpoint(c, m, a));
    }),
    ("Kill", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.kill(c, m, a))
    }),
    ("Exec", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.exec(c, m, a))
    }),
    ("ResizePty", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.resize_pty(c, m, a))
    }),
    ("CloseIO", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.close_io(c, m, a))
    }),
    ("Update", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.update(c, m, a))
    }),
    ("Wait", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.wait(c, m, a))
    }),
    ("Stats", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.stats(c, m, a))
    }),
    ("Connect", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.connect(c, m, a))
    }),
    ("Shutdown", |s, q, r| {
        stub::serve(q, r, |c, m, a| s.shutdown(c, m, a))
    }),
];

/// Task v2 and task v3 (whose messages are v2's, see build.rs), routed to
/// the same handlers.
fn task_registry(shim: &Arc<Shim>) -> Registry {
    let mut all = Registry::new();
    for service in [task::TASK_SERVICE, task_v3::TASK_SERVICE] {
        for (method, route) in ROUTES {
            let shim = Arc::clone(shim);
            all.register(service, method, move |q, r| route(&shim, q, r));
        }
    }
    all
}

/// Tells whoever started us that we listen (the address, then end of
/// file on `ready`), like a shim's `start`; a daemon's stdio then goes to
/// `/dev/null`.
fn notify(address: &str, ready: Option<OwnedFd>, detached: bool) {
    if let Some(fd) = ready {
        let _ = nix::unistd::write(&fd, address.as_bytes());
    }
    if detached {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            let _ = nix::unistd::dup2_stdin(&null);
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
        }
    }
}

/// SIGUSR1: one line of counters on stderr, for operators and for the
/// hostile-peer tests (RSS says little: glibc rarely gives memory back).
fn report(server: &Server, shim: &Shim) {
    let inner = shim.lock();
    let pumps = inner.pumps.iter().flatten().count();
    eprintln!(
        "shimctl serve: connections={} buffered_bytes={} max_buffered_bytes={} \
         bound_per_connection={} tasks={} pumps={pumps}",
        server.active(),
        server.buffered_bytes(),
        server.max_buffered_bytes(),
        ttrpc_core::Config::default().memory_bound(ttrpc_mio::READ_CHUNK),
        inner.tasks.containers.len(),
    );
}

fn drive_pump(shim: &Shim, slot: usize) {
    let mut inner = shim.lock();
    let inner = &mut *inner;
    let Some(Some(pump)) = inner.pumps.get_mut(slot) else {
        return;
    };
    if pump.drive() == Progress::Done {
        pump.deregister(&inner.registry);
        inner.pumps[slot] = None;
    }
}

/// Reaps every exited child (ours and reparented orphans) and answers the
/// Wait calls parked on them.
fn reap_children(shim: &Shim) {
    let mut answers = Vec::new();
    loop {
        let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code as u32),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as u32),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        };
        let at = tasks::now();
        shim.lock()
            .tasks
            .exited(pid.as_raw() as u32, status, at, &mut answers);
    }
    for (reply, resp) in answers {
        reply.ok(&resp);
    }
}

/// `shimctl serve`: options from the command line, `--daemon` handled.
pub(crate) fn command(o: &crate::args::Opts) -> Result<(), Fail> {
    let address = match (&o.socket, &o.id) {
        // A server creates its socket: a bare address is a path here
        // (abstract only when asked for with @NAME).
        (Some(s), _) if s.starts_with("unix://") || s.starts_with('@') => s.clone(),
        (Some(s), _) => format!("unix://{}", crate::stdio::absolute(s)),
        (None, Some(id)) => {
            let path = crate::cmd::derived_addresses(&o.address, &o.namespace, id)
                .into_iter()
                .find_map(|a| match a {
                    ttrpc_std::Address::Path(p) => Some(p),
                    _ => None,
                })
                .ok_or_else(|| Fail::Other("serve: no socket path derived".to_owned()))?;
            if let Some(dir) = path.parent() {
                crate::stdio::mkdir_all(dir)
                    .map_err(|e| fail(&format!("create {}", dir.display()), e))?;
            }
            format!("unix://{}", path.display())
        }
        (None, None) => return Err(Fail::Usage("serve: --socket or --id is required".into())),
    };
    let mut allowed = Vec::new();
    for a in &o.allow {
        let (uid, gid) = a.split_once(':').unwrap_or((a, ""));
        let num = |s: &str| -> Result<Option<u32>, Fail> {
            if s.is_empty() {
                return Ok(None);
            }
            s.parse()
                .map(Some)
                .map_err(|_| Fail::Usage(format!("--allow: expected UID[:GID], got {a:?}")))
        };
        allowed.push(ttrpc_std::UidGid {
            uid: num(uid)?,
            gid: num(gid)?,
        });
    }
    let credentials = if allowed.is_empty() {
        CredentialCheck::SameUser
    } else {
        allowed.push(ttrpc_std::UidGid {
            uid: Some(nix::unistd::geteuid().as_raw()),
            gid: Some(nix::unistd::getegid().as_raw()),
        });
        CredentialCheck::Allow(allowed)
    };
    let opts = ServeOpts {
        address,
        credentials,
        ready: None,
        detached: false,
        die_with: None,
        cleanup: None,
    };
    if o.daemon {
        daemonize(opts)
    } else {
        serve(opts)
    }
}

/// Ends a forked shim's process with what `serve` returned.
pub(crate) fn exit_with(result: Result<(), Fail>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(Fail::Other(m) | Fail::Usage(m) | Fail::Unreachable(m) | Fail::Unsupported(m)) => {
            eprintln!("shimctl: {m}");
            1
        }
        Err(Fail::Rpc(e)) => {
            eprintln!("shimctl: {e}");
            1
        }
    };
    std::process::exit(code)
}

/// Reads what a starting shim writes on its `ready` pipe: its address, or
/// nothing if it failed (it said why on stderr).
pub(crate) fn read_ready(fd: OwnedFd) -> Option<String> {
    use std::io::Read as _;
    let mut address = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut address);
    let address = address.trim_ascii().to_owned();
    (!address.is_empty()).then_some(address)
}

/// `--daemon`: the shim in a forked child that leaves our session; we
/// return once it listens, printing its address without a newline, as a
/// shim's `start` does.
fn daemonize(mut opts: ServeOpts) -> Result<(), Fail> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail("pipe", e))?;
    match crate::sys::fork_single_threaded().map_err(|e| fail("daemon", e))? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let _ = nix::unistd::setsid();
            opts.ready = Some(w);
            opts.detached = true;
            exit_with(serve(opts))
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let Some(address) = read_ready(r) else {
                let why = match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => format!(" (exit status {code})"),
                    Ok(WaitStatus::Signaled(_, sig, _)) => format!(" (killed by {})", sig.as_str()),
                    _ => String::new(),
                };
                return Err(Fail::Other(format!("serve: the daemon did not start{why}")));
            };
            print!("{address}");
            Ok(())
        }
    }
}
