//! Stdio for create and exec: fifos created like the original's
//! `prepareStdio`, and the terminal in raw mode (restored on every exit
//! path, signals included: see `attach`).

use std::io;
use std::path::Path;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
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

/// `mkdir(2)` with `mode` (less the umask), as `std::fs::DirBuilder` does,
/// without linking `DirBuilder` (2.7 KB in the static binary).
pub(crate) fn mkdir(path: &Path, mode: u32) -> io::Result<()> {
    Ok(nix::unistd::mkdir(path, Mode::from_bits_truncate(mode))?)
}

/// `std::fs::create_dir_all`: `path` and its missing ancestors, mode 0777
/// (less the umask); an existing directory is fine.
pub(crate) fn mkdir_all(path: &Path) -> io::Result<()> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    match mkdir(path, 0o777) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) if path.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    match mkdir(path, 0o777) {
        Err(_) if path.is_dir() => Ok(()),
        r => r,
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
/// thread started after (call before any thread exists), and returns a
/// signalfd that receives them.
pub(crate) fn block_signals() -> Option<SignalFd> {
    let set = handled_signals();
    set.thread_block().ok()?;
    SignalFd::new(&set).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_all_makes_the_missing_ancestors_only() {
        let root = std::env::temp_dir().join(format!("shimctl-mkdir-{}", std::process::id()));
        let deep = root.join("a/b/c");
        mkdir_all(&deep).unwrap();
        assert!(deep.is_dir());
        mkdir_all(&deep).unwrap();
        mkdir_all(Path::new("/")).unwrap();
        std::fs::write(root.join("f"), b"").unwrap();
        assert!(mkdir_all(&root.join("f")).is_err());
        assert!(mkdir_all(&root.join("f/g")).is_err());
        assert_eq!(
            mkdir(&root, 0o700).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
