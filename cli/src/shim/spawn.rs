//! Starting a process the way the built-in shim needs it: stdio opened from
//! the paths in the request (as a real shim opens them), an optional pty,
//! and a child held before `exec` until Start.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;

use super::oci::ProcessSpec;
use crate::sys::{self, HeldSpawn};

/// A failure to start a process, with the message a runc shim would give.
#[derive(Debug)]
pub(super) struct SpawnError(pub(super) String);

/// `what: reason`, the reason worded as Go (and so runc's shim) words it.
fn err(what: impl std::fmt::Display, e: impl Into<io::Error>) -> SpawnError {
    SpawnError(format!("{what}: {}", io_message(&e.into())))
}

/// The stdio paths of a Create or Exec request.
#[derive(Debug, Clone, Default)]
pub(super) struct StdioPaths {
    pub(super) stdin: String,
    pub(super) stdout: String,
    pub(super) stderr: String,
    pub(super) terminal: bool,
}

/// A `file://` URI is a regular file (created, appended to); anything else
/// is a path that must exist: a fifo or a file.
fn output_path(path: &str) -> (&str, bool) {
    path.strip_prefix("file://")
        .map_or((path, false), |p| (p, true))
}

fn is_fifo(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens an output path. A fifo is opened read-write, so the open never
/// waits for a reader and nothing written before one arrives is lost; a
/// file is appended to, never truncated; `""` is `/dev/null`.
pub(super) fn open_output(path: &str, nonblocking: bool) -> Result<File, SpawnError> {
    if path.is_empty() {
        return OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(|e| err("open /dev/null", e));
    }
    let (p, create) = output_path(path);
    let flags = if nonblocking { libc::O_NONBLOCK } else { 0 };
    let mut o = OpenOptions::new();
    if is_fifo(Path::new(p)) {
        o.read(true).write(true);
    } else {
        o.append(true).create(create);
    }
    o.custom_flags(flags)
        .open(p)
        .map_err(|e| err(format_args!("open {p}"), e))
}

/// An input path opened for the process, and the shim's own write handle
/// on it when it is a fifo: while the shim holds that, the fifo never
/// reaches end of file (clients may come and go); CloseIO drops it.
pub(super) struct Input {
    pub(super) file: File,
    pub(super) keeper: Option<File>,
}

/// Opens an input path (`""` is `/dev/null`). The fifo's read side is
/// opened non-blocking (no writer needed), then made blocking for the
/// process unless `nonblocking`.
pub(super) fn open_input(path: &str, nonblocking: bool) -> Result<Input, SpawnError> {
    let p = if path.is_empty() {
        "/dev/null"
    } else {
        output_path(path).0
    };
    if !is_fifo(Path::new(p)) {
        let file = File::open(p).map_err(|e| err(format_args!("open {p}"), e))?;
        return Ok(Input { file, keeper: None });
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| err(format_args!("failed to open stdin fifo {p}"), e))?;
    let keeper = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| err(format_args!("failed to open stdin fifo {p}"), e))?;
    if !nonblocking {
        set_nonblocking(&file, false)?;
    }
    Ok(Input {
        file,
        keeper: Some(keeper),
    })
}

pub(super) fn set_nonblocking(fd: impl AsFd, on: bool) -> Result<(), SpawnError> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(|e| err("fcntl", e))?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).map_err(|e| err("fcntl", e))?;
    Ok(())
}

/// `exec.LookPath` with the process's own `PATH`: a name with a slash is
/// taken as is (relative to the process's cwd).
pub(super) fn look_path(spec: &ProcessSpec) -> Result<PathBuf, SpawnError> {
    let Some(name) = spec.args.first() else {
        return Err(SpawnError("args must not be empty".to_owned()));
    };
    let path = spec.env.iter().rev().find_map(|e| e.strip_prefix("PATH="));
    look_path_in(name, path, Path::new(&spec.cwd))
}

fn look_path_in(name: &str, path: Option<&str>, cwd: &Path) -> Result<PathBuf, SpawnError> {
    let executable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
            && std::fs::metadata(p).is_ok_and(|m| m.is_file())
    };
    if name.contains('/') {
        let p = cwd.join(name);
        if executable(&p) {
            return Ok(p);
        }
        let why = match std::fs::metadata(&p) {
            Err(e) => format!("stat {name}: {}", io_message(&e)),
            Ok(m) if m.is_dir() => "is a directory".to_owned(),
            Ok(_) => "permission denied".to_owned(),
        };
        return Err(SpawnError(format!("exec: {name:?}: {why}")));
    }
    path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(name))
        .map(|p| if p.is_relative() { cwd.join(p) } else { p })
        .find(|p| executable(p))
        .ok_or_else(|| {
            SpawnError(format!(
                "exec: {name:?}: executable file not found in $PATH"
            ))
        })
}

/// An I/O error as Go prints it: the bare `strerror` text, lower case.
pub(super) fn io_message(e: &io::Error) -> String {
    e.raw_os_error().map_or_else(
        || e.to_string(),
        |n| nix::errno::Errno::from_raw(n).desc().to_ascii_lowercase(),
    )
}

fn cstring(s: impl Into<Vec<u8>>) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError("argument contains a NUL byte".to_owned()))
}

fn cstrings<S: AsRef<str>>(list: &[S]) -> Result<Vec<CString>, SpawnError> {
    list.iter().map(|s| cstring(s.as_ref())).collect()
}

/// A process forked and waiting before `exec` (see [`sys::spawn_held`]).
pub(super) struct Held {
    pub(super) pid: u32,
    /// Writing one byte releases the process; dropping it ends it.
    release: File,
    /// End of file once the process execs; an `errno` if it could not.
    report: File,
}

impl Held {
    /// Lets the process exec. Blocks only until it has (or has failed to):
    /// the program was found at Create, so this is the kernel's `execve`.
    pub(super) fn start(mut self) -> Result<(), SpawnError> {
        self.release.write_all(b"s").map_err(|e| err("start", e))?;
        drop(self.release);
        let mut errno = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.report.read(&mut errno[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err("start", e)),
            }
        }
        if got == 4 {
            let e = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            return Err(err("exec", e));
        }
        Ok(())
    }
}

/// The descriptors a process keeps in the shim once spawned.
pub(super) struct Spawned {
    pub(super) held: Held,
    /// The pty master, when the process has a terminal.
    pub(super) pty: Option<OwnedFd>,
    /// The shim's handle keeping a stdin fifo open (see [`Input`]).
    pub(super) stdin_keeper: Option<File>,
    /// With a terminal, the stdin source to copy into the pty.
    pub(super) tty_input: Option<File>,
}

/// A process ready to fork: its C strings, and the pipes of its [`Held`].
struct Prepared {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    release: (OwnedFd, OwnedFd),
    report: (OwnedFd, OwnedFd),
}

impl Prepared {
    fn new(
        program: &Path,
        argv: Vec<CString>,
        env: &[String],
        cwd: &Path,
    ) -> Result<Self, SpawnError> {
        Ok(Self {
            program: cstring(program.as_os_str().as_encoded_bytes())?,
            argv,
            envp: cstrings(env)?,
            cwd: cstring(cwd.as_os_str().as_encoded_bytes())?,
            release: pipe()?,
            report: pipe()?,
        })
    }

    /// Forks the process with `stdio`, held before exec.
    fn fork(self, stdio: [BorrowedFd<'_>; 3], controlling_tty: bool) -> Result<Held, SpawnError> {
        let pid = sys::spawn_held(&HeldSpawn {
            program: &self.program,
            argv: &self.argv,
            envp: &self.envp,
            cwd: &self.cwd,
            stdio,
            controlling_tty,
            hold: self.release.0.as_fd(),
            report: self.report.1.as_fd(),
        })
        .map_err(|e| err("fork", e))?;
        // The child has its copies of the other ends; ours close here.
        Ok(Held {
            pid: pid.as_raw().unsigned_abs(),
            release: self.release.1.into(),
            report: self.report.0.into(),
        })
    }
}

/// Forks `spec` held before exec, with stdio from `io`.
pub(super) fn spawn(spec: &ProcessSpec, io: &StdioPaths) -> Result<Spawned, SpawnError> {
    let program = look_path(spec)?;
    let prepared = Prepared::new(
        &program,
        cstrings(&spec.args)?,
        &spec.env,
        Path::new(&spec.cwd),
    )?;

    let (stdio, pty, keeper, tty_input): ([OwnedFd; 3], _, _, _) = if io.terminal {
        let pty = nix::pty::openpty(None, None).map_err(|e| err("failed to allocate a pty", e))?;
        for fd in [&pty.master, &pty.slave] {
            fcntl(
                fd.as_fd(),
                FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map_err(|e| err("fcntl", e))?;
        }
        if let Some(ws) = spec.console_size {
            let _ = sys::set_window_size(&pty.master, ws.0, ws.1);
        }
        let input = if io.stdin.is_empty() {
            None
        } else {
            Some(open_input(&io.stdin, true)?)
        };
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| err("dup", e));
        let stdio = [dup(&pty.slave)?, dup(&pty.slave)?, pty.slave];
        let (file, keeper) = input.map_or((None, None), |i| (Some(i.file), i.keeper));
        (stdio, Some(pty.master), keeper, file)
    } else {
        let input = open_input(&io.stdin, false)?;
        let stdout = open_output(&io.stdout, false)?;
        let stderr = open_output(&io.stderr, false)?;
        (
            [input.file.into(), stdout.into(), stderr.into()],
            None,
            input.keeper,
            None,
        )
    };
    let held = prepared.fork(
        [stdio[0].as_fd(), stdio[1].as_fd(), stdio[2].as_fd()],
        io.terminal,
    )?;
    Ok(Spawned {
        held,
        pty,
        stdin_keeper: keeper,
        tty_input,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))
}

/// Our environment as `K=V` strings (variables that are not UTF-8 are
/// left out).
pub(crate) fn environment() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_string().ok()?;
            kv.push('=');
            kv.push_str(v.to_str()?);
            Some(kv)
        })
        .collect()
}

/// Runs `program` (looked up in our `PATH`) with `args` in `cwd`, stdout
/// to `stdout`, stdin from `/dev/null`, our environment and stderr: a
/// third-party shim's `start`. Without `std::process::Command`, whose
/// machinery would double what this costs in the static binary.
pub(crate) fn exec(
    program: &str,
    args: &[&str],
    cwd: &Path,
    stdout: OwnedFd,
) -> Result<nix::unistd::Pid, String> {
    let env = environment();
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH="));
    let resolved = look_path_in(program, path, cwd).map_err(|e| e.0)?;
    let mut argv = vec![cstring(resolved.as_os_str().as_encoded_bytes()).map_err(|e| e.0)?];
    argv.extend(cstrings(args).map_err(|e| e.0)?);
    let prepared = Prepared::new(&resolved, argv, &env, cwd).map_err(|e| e.0)?;
    let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
    let stderr = std::io::stderr();
    let held = prepared
        .fork([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()], false)
        .map_err(|e| e.0)?;
    // The child has its copies; ours close here.
    drop((stdin, stdout));
    let pid = super::tasks::pid_of(held.pid);
    held.start().map_err(|e| e.0)?;
    Ok(pid)
}
