//! Addresses: parsing, connecting, binding (see [`Address`]).

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};

use crate::error::Error;

/// Where a ttrpc peer listens.
///
/// The syntax, shared by every client and server of the project:
///
/// | written as | means |
/// |---|---|
/// | `unix://PATH` | the filesystem socket `PATH` |
/// | `@NAME` | the abstract socket `\0NAME` (Go's `@` form: no trailing NUL) |
/// | `PATH` naming an existing socket file | that file |
/// | any other bare `NAME` | the abstract socket Go dials for `"\x00"+NAME`: the bytes `\0NAME\0` |
///
/// # The legacy abstract form, checked against a real shim
///
/// The original `ctr shim --socket NAME` dialled `"\x00"+NAME`, and Debian's
/// `containerd-shim` (v1, containerd 1.6.20, built with Go 1.19) listens on
/// `net.Listen("unix", "\x00"+NAME)`. Go's `SockaddrUnix.sockaddr`
/// (`syscall/syscall_linux.go`) counts a trailing NUL in the address length
/// unless the name starts with `@`, so the kernel address is **`\0NAME\0`**
/// — one NUL more than `@NAME` gives. Observed: after
/// `containerd-shim -socket probe-sock-xyz ...`, `/proc/net/unix` lists
/// `@probe-sock-xyz@` (the kernel prints each NUL as `@`); connecting to
/// `\0probe-sock-xyz\0` succeeds and `\0probe-sock-xyz` is refused.
///
/// # Servers and abstract sockets
///
/// Abstract sockets have no file permissions: any process in the network
/// namespace can connect (containerd's CVE-2020-15257). A server listens
/// on one only when given `@NAME` explicitly; [`Address::bind`] refuses
/// [`Address::LegacyAbstract`].
///
/// This module has no threads and no blocking policy: it returns std
/// sockets, which `ttrpc-mio` turns non-blocking (`set_nonblocking` +
/// `mio::net::UnixStream::from_std`). That is why it lives here and is
/// public: ttrpc-mio depends on ttrpc-std for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A filesystem socket.
    Path(PathBuf),
    /// An abstract socket, given explicitly: the bytes after the leading
    /// NUL, exactly (`@NAME` → `NAME`).
    Abstract(Vec<u8>),
    /// The abstract socket Go creates for `"\x00"+NAME` (a bare `NAME` that
    /// is not a socket file): the kernel name is `NAME` plus a trailing
    /// NUL. Clients dial it; servers refuse to listen on it.
    LegacyAbstract(String),
}

impl Address {
    /// Parses an address string (see [`Address`]).
    ///
    /// A bare string is looked up on the filesystem: it is a
    /// [`Address::Path`] only if it names an existing socket.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] for an empty string, an empty name or
    /// path, or a name containing NUL.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAddress {
            address: s.to_owned(),
            reason,
        };
        if s.contains('\0') {
            return Err(invalid("contains a NUL byte"));
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("empty path after unix://"));
            }
            return Ok(Self::Path(PathBuf::from(path)));
        }
        if let Some(name) = s.strip_prefix('@') {
            if name.is_empty() {
                return Err(invalid("empty abstract name after @"));
            }
            return Ok(Self::Abstract(name.as_bytes().to_vec()));
        }
        if s.is_empty() {
            return Err(invalid("empty address"));
        }
        if fs::metadata(s).is_ok_and(|m| m.file_type().is_socket()) {
            return Ok(Self::Path(PathBuf::from(s)));
        }
        Ok(Self::LegacyAbstract(s.to_owned()))
    }

    /// The kernel's abstract name (after the leading NUL), for the two
    /// abstract forms.
    #[must_use]
    pub fn abstract_name(&self) -> Option<Vec<u8>> {
        match self {
            Self::Path(_) => None,
            Self::Abstract(name) => Some(name.clone()),
            Self::LegacyAbstract(name) => {
                let mut bytes = name.as_bytes().to_vec();
                bytes.push(0);
                Some(bytes)
            }
        }
    }

    fn socket_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Path(p) => SocketAddr::from_pathname(p),
            other => {
                let name = other.abstract_name().unwrap_or_default();
                SocketAddr::from_abstract_name(name)
            }
        }
    }

    /// Connects a blocking stream to this address.
    ///
    /// # Errors
    /// [`Error::Io`] naming the address.
    pub fn connect(&self) -> Result<UnixStream, Error> {
        self.socket_addr()
            .and_then(|addr| UnixStream::connect_addr(&addr))
            .map_err(|e| self.error("connect to", e))
    }

    /// Listens on this address.
    ///
    /// A path is bound with mode 0600 before it listens (create, bind,
    /// chmod, listen: no moment where another user could connect); a
    /// stale socket file (connecting is refused) is replaced; a live one is
    /// [`Error::AddrInUse`]; a path that is not a socket is
    /// [`Error::NotASocket`] and left alone. The returned [`Listener`]
    /// removes the socket file when dropped.
    ///
    /// An abstract socket is bound only for [`Address::Abstract`] (given as
    /// `@NAME`); [`Address::LegacyAbstract`] is [`Error::AbstractRefused`].
    ///
    /// # Errors
    /// As above, or [`Error::Io`].
    pub fn bind(&self) -> Result<Listener, Error> {
        match self {
            Self::Path(path) => bind_path(path),
            Self::Abstract(_) => self
                .socket_addr()
                .and_then(|addr| UnixListener::bind_addr(&addr))
                .map(Listener::from)
                .map_err(|e| self.error("bind", e)),
            Self::LegacyAbstract(_) => Err(Error::AbstractRefused(self.to_string())),
        }
    }
}

impl Address {
    /// `source`, with `what` was being done to this address as context.
    fn error(&self, what: &str, source: io::Error) -> Error {
        Error::io(format!("{what} {self}"), source)
    }
}

impl std::str::FromStr for Address {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "unix://{}", p.display()),
            Self::Abstract(name) => {
                f.write_str("@")?;
                write_escaped(f, name)
            }
            Self::LegacyAbstract(name) => write!(f, "@{name}\\0 (legacy abstract)"),
        }
    }
}

/// `bytes` as `<[u8]>::escape_ascii` prints them (`\\n`, `\\"`, `\\xff`),
/// without linking its iterator's `Display` (0.5 KB in a static binary).
fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        match b {
            b'\t' => f.write_str("\\t")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\\' | b'\'' | b'"' => {
                f.write_str("\\")?;
                fmt::Write::write_char(f, char::from(b))?;
            }
            0x20..=0x7e => fmt::Write::write_char(f, char::from(b))?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    Ok(())
}

/// A listening socket; for one bound by path, the file is removed on drop
/// (only if it is still the socket this listener created).
#[derive(Debug)]
pub struct Listener {
    inner: UnixListener,
    /// The socket file and its inode, when this listener created it.
    path: Option<(PathBuf, u64, u64)>,
}

impl Listener {
    /// The listening socket.
    #[must_use]
    pub fn as_std(&self) -> &UnixListener {
        &self.inner
    }

    /// The socket file this listener removes on drop, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_ref().map(|(p, _, _)| p.as_path())
    }
}

impl From<UnixListener> for Listener {
    /// Wraps a listener the caller owns (its file, if any, is not removed).
    fn from(inner: UnixListener) -> Self {
        Self { inner, path: None }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.path {
            if fs::symlink_metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino) {
                let _ = fs::remove_file(path);
            }
        }
    }
}

/// `source`, with what was being done to the socket path `path` as
/// context (the path as [`Address::Path`] displays).
fn path_error(path: &Path, what: &str, source: io::Error) -> Error {
    Error::io(format!("{what} unix://{}", path.display()), source)
}

fn bind_path(path: &Path) -> Result<Listener, Error> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(Error::AddrInUse(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                fs::remove_file(path).map_err(|e| path_error(path, "remove stale socket", e))?;
            }
            Err(e) => return Err(path_error(path, "probe existing socket", e)),
        },
        Ok(_) => return Err(Error::NotASocket(path.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(path_error(path, "stat", e)),
    }
    // Each step names itself, for the error.
    let mut step = "address";
    let created = (|| -> io::Result<_> {
        let addr = UnixAddr::new(path)?;
        step = "socket for";
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        step = "bind";
        socket::bind(fd.as_raw_fd(), &addr)?;
        Ok(fd)
    })();
    let fd = created.map_err(|e| path_error(path, step, e))?;
    let mut finish = || -> io::Result<(u64, u64)> {
        step = "chmod 0600";
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        step = "stat";
        let meta = fs::symlink_metadata(path)?;
        step = "listen on";
        socket::listen(&fd, Backlog::MAXCONN)?;
        Ok((meta.dev(), meta.ino()))
    };
    match finish() {
        Ok((dev, ino)) => Ok(Listener {
            inner: UnixListener::from(fd),
            path: Some((path.to_owned(), dev, ino)),
        }),
        Err(e) => {
            let _ = fs::remove_file(path);
            Err(path_error(path, step, e))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn abstract_names_are_escaped_as_escape_ascii_does() {
        let name: Vec<u8> = (0..=255).collect();
        let shown = super::Address::Abstract(name.clone()).to_string();
        assert_eq!(shown, format!("@{}", name.escape_ascii()));
    }
}
