//! Socket writes that never raise `SIGPIPE`.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use bytes::Bytes;

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

/// Writes what a core has queued, in queue order, with no socket IO under
/// the core's lock: lock `writer` → `take` (which locks the core, takes its
/// next transmit bytes and unlocks) → write, until `take` has nothing →
/// unlock `writer`. Holding `writer`
/// across take-and-write keeps frames from two threads in queue order.
pub(crate) fn flush(
    writer: &Mutex<()>,
    sock: &UnixStream,
    mut take: impl FnMut() -> Option<Bytes>,
) -> io::Result<()> {
    let _writer = lock(writer);
    while let Some(bytes) = take() {
        write_all(sock, &bytes)?;
    }
    Ok(())
}
