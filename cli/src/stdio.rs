//! Stdio for create and exec: fifos created like the original's
//! `prepareStdio`, `--attach` copies, and the terminal in raw mode (restored
//! on every exit path, signals included).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::thread::{self, JoinHandle};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};

use crate::Fail;

/// An absolute form of a path given on the command line (the shim runs in
/// another directory).
pub(crate) fn absolute(path: &str) -> String {
    std::path::absolute(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string())
}

/// Creates `path` as a fifo (mode 0700, as `fifo.OpenFifo` does) unless
/// something exists there; an existing file is left untouched.
pub(crate) fn prepare_fifo(path: &str) -> Result<(), Fail> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o700))
                .map_err(|e| Fail::Other(format!("mkfifo {path}: {e}")))
        }
        Err(e) => Err(Fail::Other(format!("{path}: {e}"))),
    }
}

fn pump(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Copies between the fifos and this process's stdio; started before the
/// process exists, since opening a fifo waits for its other end.
pub(crate) struct Attach {
    outputs: Vec<JoinHandle<()>>,
}

impl Attach {
    pub(crate) fn start(
        stdin: Option<&str>,
        stdout: Option<&str>,
        stderr: Option<&str>,
        tty: bool,
    ) -> Self {
        if let Some(path) = stdin {
            let path = path.to_owned();
            // Not joined: our stdin may never end.
            thread::spawn(move || {
                if let Ok(fifo) = OpenOptions::new().write(true).open(Path::new(&path)) {
                    pump(io::stdin().lock(), fifo);
                }
            });
        }
        let mut outputs = Vec::new();
        let mut out = |path: Option<&str>, err: bool| {
            if let Some(path) = path {
                let path = path.to_owned();
                outputs.push(thread::spawn(move || {
                    if let Ok(fifo) = File::open(Path::new(&path)) {
                        if err {
                            pump(fifo, io::stderr());
                        } else {
                            pump(fifo, io::stdout());
                        }
                    }
                }));
            }
        };
        out(stdout, false);
        // With a tty, stderr is the pty too: nothing comes on the fifo.
        if !tty {
            out(stderr, true);
        }
        Self { outputs }
    }

    /// Waits until the outputs reach end of file (the process exited and
    /// the shim closed them).
    pub(crate) fn wait(self) {
        for t in self.outputs {
            let _ = t.join();
        }
    }
}

static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Puts our stdin terminal into raw mode; [`restore_terminal`] undoes it.
pub(crate) fn raw_mode() -> Result<(), Fail> {
    let stdin = io::stdin();
    let saved = termios::tcgetattr(&stdin).map_err(|e| Fail::Other(format!("tty: {e}")))?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    *SAVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(saved);
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(|e| Fail::Other(format!("tty: {e}")))
}

/// Restores the terminal if [`raw_mode`] changed it. Idempotent.
pub(crate) fn restore_terminal() {
    let saved = SAVED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSANOW, &saved);
    }
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(s);
    }
    set
}

/// Blocks the signals a raw-mode session handles, in this thread and every
/// thread started after: call before any thread exists.
pub(crate) fn block_signals() {
    let _ = handled_signals().thread_block();
}

/// Starts the thread that owns the blocked signals: `SIGWINCH` calls
/// `on_resize`; the others restore the terminal and exit 128+signal.
pub(crate) fn signal_thread(on_resize: impl Fn() + Send + 'static) {
    thread::spawn(move || {
        let set = handled_signals();
        loop {
            match set.wait() {
                Ok(Signal::SIGWINCH) => on_resize(),
                Ok(sig) => {
                    restore_terminal();
                    std::process::exit(128 + sig as i32);
                }
                Err(_) => return,
            }
        }
    });
}
