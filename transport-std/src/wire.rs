//! Socket writes that never raise `SIGPIPE`.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};

/// Writes all of `buf` with `send(MSG_NOSIGNAL)`, so a peer that went away
/// is an `EPIPE` error even in a process that has not ignored `SIGPIPE`
/// (a library cannot assume Rust's `main` did).
pub(crate) fn write_all(sock: &UnixStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send(sock.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Locks a mutex, ignoring poisoning: every critical section of this crate
/// leaves its data consistent, and handler panics are caught elsewhere.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
