//! The crate's only unsafe code: the terminal-size ioctls (nix generates
//! them as `unsafe fn`s), the built-in shim's `fork` of a held child, and
//! forking the single-threaded process itself.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

use nix::pty::Winsize;

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, Winsize);

/// The terminal's size as (columns, rows), or `None` if `fd` is not a
/// terminal.
pub(crate) fn window_size(fd: impl AsFd) -> Option<(u16, u16)> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `fd` is a live descriptor borrowed for the call and `ws` is a
    // valid, writable `struct winsize` the kernel fills in.
    unsafe { tiocgwinsz(fd.as_fd().as_raw_fd(), &mut ws) }.ok()?;
    Some((ws.ws_col, ws.ws_row))
}

nix::ioctl_write_ptr_bad!(tiocswinsz, nix::libc::TIOCSWINSZ, Winsize);

/// Sets the size of the terminal behind `fd` (a pty master).
pub(crate) fn set_window_size(fd: impl AsFd, cols: u16, rows: u16) -> nix::Result<()> {
    let ws = Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `fd` is a live descriptor borrowed for the call and `ws` is a
    // valid `struct winsize` the kernel only reads.
    unsafe { tiocswinsz(fd.as_fd().as_raw_fd(), &ws) }.map(drop)
}

/// What [`spawn_held`] starts: everything is prepared before `fork`, so the
/// child only makes async-signal-safe system calls.
pub(crate) struct HeldSpawn<'a> {
    /// Absolute path of the program (`PATH` was searched by the caller).
    pub(crate) program: &'a std::ffi::CStr,
    pub(crate) argv: &'a [std::ffi::CString],
    pub(crate) envp: &'a [std::ffi::CString],
    pub(crate) cwd: &'a std::ffi::CStr,
    /// Become fds 0, 1 and 2.
    pub(crate) stdio: [std::os::fd::BorrowedFd<'a>; 3],
    /// Make stdin (a pty slave) the controlling terminal.
    pub(crate) controlling_tty: bool,
    /// The read end of the start pipe: one byte means exec, end of file
    /// (the shim dropped the process) means exit.
    pub(crate) hold: std::os::fd::BorrowedFd<'a>,
    /// The write end (close-on-exec) of the report pipe: the child writes
    /// its `errno` there if exec fails; a clean exec closes it.
    pub(crate) report: std::os::fd::BorrowedFd<'a>,
}

/// Forks a child that waits on `hold` before it execs: the built-in shim's
/// "created" state, so Create can answer with the pid (as runc's does) and
/// Start only releases it. The child is its own session leader, gets
/// `SIGKILL` if the shim dies (`PR_SET_PDEATHSIG`), has every signal
/// unblocked and `SIGPIPE` back at its default.
///
/// `fork` from std's `Command` would wait for the exec; the shim must not.
/// The shim is single-threaded when it forks, so the child inherits no
/// lock held by another thread.
pub(crate) fn spawn_held(s: &HeldSpawn<'_>) -> nix::Result<nix::unistd::Pid> {
    use nix::libc;
    let parent = nix::unistd::getpid().as_raw();
    let mut argv: Vec<*const libc::c_char> = s.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = s.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let stdio = s.stdio.map(|fd| fd.as_raw_fd());
    let (hold, report) = (s.hold.as_raw_fd(), s.report.as_raw_fd());
    // SAFETY: after `fork` the child only calls async-signal-safe libc
    // functions on memory prepared above, and leaves with `execve` or
    // `_exit`; the parent (single-threaded) just gets the pid.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => unsafe {
            let fail = |report: i32| -> ! {
                let e = *libc::__errno_location();
                libc::write(report, std::ptr::from_ref(&e).cast(), 4);
                libc::_exit(127)
            };
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(137);
            }
            if libc::setsid() < 0 {
                fail(report);
            }
            // Move the stdio sources out of 0..=2 first, then into place.
            let mut moved = [0; 3];
            for (i, fd) in stdio.iter().enumerate() {
                moved[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3);
                if moved[i] < 0 {
                    fail(report);
                }
            }
            for (i, fd) in moved.iter().enumerate() {
                if libc::dup2(*fd, i as i32) < 0 {
                    fail(report);
                }
            }
            if s.controlling_tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                fail(report);
            }
            // Nothing the shim inherited leaks into the task: every
            // descriptor above stdio closes at exec (hold and report are
            // still needed until then).
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                for fd in 3..1024 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            let mut byte = 0u8;
            let n = loop {
                let n = libc::read(hold, std::ptr::from_mut(&mut byte).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n != 1 {
                libc::_exit(137);
            }
            if libc::chdir(s.cwd.as_ptr()) < 0 {
                fail(report);
            }
            libc::execve(s.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(report)
        },
    }
}

/// Whether this process has a single thread (`/proc/self/status`).
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim_ascii() == "1")
    })
}

/// Forks this process to run more Rust code in the child (the built-in
/// shim for `run` and `serve --daemon`, without exec'ing ourselves again).
/// Refused unless the process is single-threaded: then no other thread can
/// hold a lock (the allocator's, stdout's) the child would inherit held.
pub(crate) fn fork_single_threaded() -> std::io::Result<nix::unistd::ForkResult> {
    if !single_threaded() {
        return Err(std::io::Error::other("fork: more than one thread"));
    }
    // SAFETY: the process has one thread (checked above, and the callers
    // fork before starting any), so the child's copy of every lock is free.
    unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)
}
