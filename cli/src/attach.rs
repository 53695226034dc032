//! `exec --attach`: copying between an exec's stdio fifos and ours, and
//! (with a terminal) resizing on `SIGWINCH`, all on one thread with
//! `poll(2)`. A thread per copy would cost ~78 KiB in the static binary
//! (see `conn`).
//!
//! The fifos are opened before the exec is created and without waiting: a
//! shim opens its ends in Exec and may block there until ours are open.
//! Outputs are opened read-only and non-blocking (Linux reports no hangup
//! on such a fifo until a writer has come and gone, so an early poll just
//! waits); stdin is opened read-write (an open that never waits for the
//! reader) and written without blocking, so a process that does not read
//! its input cannot stop its output from being copied.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::Fail;

const CHUNK: usize = 8192;

/// An output fifo and where it goes.
struct Output {
    fifo: File,
    to_stderr: bool,
}

/// The open fifos of an exec being attached.
pub(crate) struct Attach {
    stdin: Option<File>,
    outputs: Vec<Output>,
}

fn open(path: &str, options: &mut OpenOptions) -> Result<File, Fail> {
    options
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Fail::Other(format!("attach {path}: {e}")))
}

impl Attach {
    /// Opens the fifos given (an existing regular file is read or written
    /// as it is). With a tty, stderr is the pty too: nothing comes on its
    /// fifo, so it is not opened.
    pub(crate) fn open(
        stdin: Option<&str>,
        stdout: Option<&str>,
        stderr: Option<&str>,
        tty: bool,
    ) -> Result<Self, Fail> {
        let stdin = match stdin {
            Some(path) => {
                let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
                Some(open(path, OpenOptions::new().read(fifo).write(true))?)
            }
            None => None,
        };
        let mut outputs = Vec::new();
        for (path, to_stderr) in [(stdout, false), (stderr.filter(|_| !tty), true)] {
            if let Some(path) = path {
                let fifo = open(path, OpenOptions::new().read(true))?;
                outputs.push(Output { fifo, to_stderr });
            }
        }
        Ok(Self { stdin, outputs })
    }

    /// Copies until the outputs end (the process exited and the shim closed
    /// them). Our stdin is copied while it lasts; at its end the fifo is
    /// closed and `on_stdin_end` called (a shim holds its end open until
    /// CloseIO, as runc's does). `signals` (the set `stdio::block_signals`
    /// blocked) are taken from a signalfd and handed to `on_signal`.
    pub(crate) fn run(
        mut self,
        on_stdin_end: &dyn Fn(),
        signals: Option<(&SignalFd, &dyn Fn(Signal))>,
    ) {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let our_stdin = io::stdin();
        while !self.outputs.is_empty() {
            // Only what we wait for: poll reports hangups even on a
            // descriptor asked for nothing.
            let mut roles = Vec::new();
            let mut fds = Vec::new();
            if let Some(fifo) = &self.stdin {
                if pending.is_empty() {
                    roles.push(Role::OurStdin);
                    fds.push(PollFd::new(our_stdin.as_fd(), PollFlags::POLLIN));
                } else {
                    roles.push(Role::StdinFifo);
                    fds.push(PollFd::new(fifo.as_fd(), PollFlags::POLLOUT));
                }
            }
            if let Some((sfd, _)) = &signals {
                roles.push(Role::Signals);
                fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
            }
            for (i, o) in self.outputs.iter().enumerate() {
                roles.push(Role::Output(i));
                fds.push(PollFd::new(o.fifo.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
            let ready: Vec<Role> = roles
                .into_iter()
                .zip(&fds)
                .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(role, _)| role)
                .collect();
            drop(fds);
            let mut ended = Vec::new();
            for role in ready {
                match role {
                    Role::OurStdin => match our_stdin.lock().read(&mut buf) {
                        Ok(n) if n > 0 => {
                            pending.extend_from_slice(buf.get(..n).unwrap_or_default())
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // The end of our input: the process sees end of file.
                        _ => {
                            self.stdin = None;
                            on_stdin_end();
                        }
                    },
                    Role::StdinFifo => self.feed(&mut pending),
                    Role::Signals => {
                        if let Some((sfd, on_signal)) = &signals {
                            if let Ok(Some(info)) = sfd.read_signal() {
                                let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                                if let Ok(sig) = Signal::try_from(signo) {
                                    on_signal(sig);
                                }
                            }
                        }
                    }
                    Role::Output(i) => {
                        if let Some(o) = self.outputs.get_mut(i) {
                            if !copy_once(o, &mut buf) {
                                ended.push(i);
                            }
                        }
                    }
                }
            }
            for i in ended.into_iter().rev() {
                self.outputs.remove(i);
            }
        }
    }

    /// Writes what the stdin fifo takes of `pending`.
    fn feed(&mut self, pending: &mut Vec<u8>) {
        let Some(fifo) = &mut self.stdin else {
            return;
        };
        match fifo.write(pending) {
            Ok(n) => drop(pending.drain(..n.min(pending.len()))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                self.stdin = None;
                pending.clear();
            }
        }
    }
}

/// What a polled descriptor is.
#[derive(Debug, Clone, Copy)]
enum Role {
    OurStdin,
    StdinFifo,
    Signals,
    Output(usize),
}

/// Copies what one output has; false at its end (or an error).
fn copy_once(o: &mut Output, buf: &mut [u8]) -> bool {
    match o.fifo.read(buf) {
        Ok(0) => false,
        Ok(n) => {
            let data = buf.get(..n).unwrap_or_default();
            let written = if o.to_stderr {
                io::stderr().write_all(data)
            } else {
                let mut out = io::stdout().lock();
                out.write_all(data).and_then(|()| out.flush())
            };
            written.is_ok()
        }
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}
