//! Non-blocking socket reads and writes shared by client and server.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use mio::net::UnixStream;
use mio::{Interest, Token};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, send};

/// What one non-blocking operation did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// This many bytes moved (never 0 for a read: that is `Eof`).
    Done(usize),
    /// The socket is not ready: wait for the next readiness event.
    WouldBlock,
    /// The peer closed its sending side (reads only).
    Eof,
    /// The socket failed.
    Failed(io::Error),
}

/// One `read`, retried on `EINTR`.
pub(crate) fn read(sock: &UnixStream, buf: &mut [u8]) -> Outcome {
    loop {
        match (&*sock).read(buf) {
            Ok(0) => return Outcome::Eof,
            Ok(n) => return Outcome::Done(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::WouldBlock,
            Err(e) => return Outcome::Failed(e),
        }
    }
}

/// One `send(MSG_NOSIGNAL | MSG_DONTWAIT)`, retried on `EINTR`: a vanished
/// peer is `EPIPE`, never `SIGPIPE`.
pub(crate) fn write(sock: &UnixStream, buf: &[u8]) -> Outcome {
    loop {
        match send(
            sock.as_raw_fd(),
            buf,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(n) => return Outcome::Done(n),
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Outcome::WouldBlock,
            Err(e) => return Outcome::Failed(e.into()),
        }
    }
}

/// Whether the peer has closed both directions (`POLLHUP`), as opposed to
/// only its sending side (`shutdown(SHUT_WR)`, after which it still reads
/// our answers). Asked at EOF, of the socket itself: a readiness flag could
/// be stale (an event for a closed descriptor whose slot was reused).
pub(crate) fn hung_up(sock: &UnixStream) -> bool {
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// The readiness a connection needs: `READABLE` while its core wants input,
/// `WRITABLE` while it has bytes queued; `None` when it needs neither.
pub(crate) fn interest(wants_read: bool, wants_write: bool) -> Option<Interest> {
    match (wants_read, wants_write) {
        (true, true) => Some(Interest::READABLE.add(Interest::WRITABLE)),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

/// Moves `sock`'s registration from `current` to `want`: register,
/// reregister or deregister, so interest changes cost one system call and
/// an unchanged interest none.
pub(crate) fn set_interest(
    registry: &mio::Registry,
    sock: &mut UnixStream,
    token: Token,
    current: Option<Interest>,
    want: Option<Interest>,
) -> io::Result<()> {
    match (current, want) {
        (a, b) if a == b => Ok(()),
        (None, Some(i)) => registry.register(sock, token, i),
        (Some(_), Some(i)) => registry.reregister(sock, token, i),
        (Some(_), None) => registry.deregister(sock),
        (None, None) => Ok(()),
    }
}
