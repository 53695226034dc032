//! Copying between two non-blocking descriptors from the event loop: the
//! built-in shim's terminal plumbing (pty master → the stdout path, the
//! stdin path → pty master). Without a terminal the process gets the stdio
//! files themselves and nothing is copied.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// Bytes held between a read and the write that drains them; the source
/// is not read again until they are written, so memory stays bounded.
const CHUNK: usize = 16 * 1024;

/// Where a pump is after being driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Waiting for readiness.
    Blocked,
    /// The source ended (or the destination went away): drop the pump.
    Done,
}

/// One direction of copying, `src` → `dst`.
pub(super) struct Pump {
    src: File,
    dst: File,
    buf: Vec<u8>,
    pos: usize,
    src_done: bool,
}

impl Pump {
    /// Registers both ends (`src` readable on `token`, `dst` writable on
    /// `token + 1`). A regular file cannot be polled and never blocks: it
    /// is simply not registered.
    pub(super) fn new(src: File, dst: File, registry: &Registry, token: Token) -> io::Result<Self> {
        registry.register(&mut SourceFd(&src.as_raw_fd()), token, Interest::READABLE)?;
        match registry.register(
            &mut SourceFd(&dst.as_raw_fd()),
            Token(token.0 + 1),
            Interest::WRITABLE,
        ) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            src,
            dst,
            buf: Vec::new(),
            pos: 0,
            src_done: false,
        })
    }

    /// Copies until something would block (edge-triggered readiness: both
    /// ends are used until `WouldBlock`).
    pub(super) fn drive(&mut self) -> Progress {
        loop {
            if self.pos < self.buf.len() {
                match self.dst.write(&self.buf[self.pos..]) {
                    Ok(n) => self.pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Blocked,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // The reader went away: nothing more can be delivered.
                    Err(_) => return Progress::Done,
                }
                continue;
            }
            if self.src_done {
                return Progress::Done;
            }
            self.buf.resize(CHUNK, 0);
            self.pos = 0;
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.buf.clear();
                    self.src_done = true;
                }
                Ok(n) => self.buf.truncate(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.buf.clear();
                    return Progress::Blocked;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.clear(),
                // EIO: the pty's last slave descriptor closed (end of output).
                Err(_) => {
                    self.buf.clear();
                    self.src_done = true;
                }
            }
        }
    }

    /// Takes both ends off the loop (dropping the pump closes them).
    pub(super) fn deregister(&self, registry: &Registry) {
        let _ = registry.deregister(&mut SourceFd(&self.src.as_raw_fd()));
        let _ = registry.deregister(&mut SourceFd(&self.dst.as_raw_fd()));
    }
}
