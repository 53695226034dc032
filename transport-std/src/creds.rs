//! The optional peer-credential check a server runs on each accepted
//! connection (`SO_PEERCRED`), before reading anything from it.

use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{getegid, geteuid};

/// The credentials of a connected peer, as the kernel recorded them at
/// `connect` time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl PeerCred {
    /// Reads `SO_PEERCRED` from a connected unix socket.
    ///
    /// # Errors
    /// The `getsockopt` error (e.g. `ENOTSOCK`, or `EOPNOTSUPP` for a
    /// non-unix socket such as vsock).
    pub fn of(socket: &impl AsFd) -> std::io::Result<Self> {
        let c = getsockopt(socket, PeerCredentials)?;
        Ok(Self {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        })
    }
}

/// One allowed identity: `None` matches any id (Go's `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidGid {
    /// The user id required, or any.
    pub uid: Option<u32>,
    /// The group id required, or any.
    pub gid: Option<u32>,
}

/// Which peers a server accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialCheck {
    /// Everyone who can connect (the socket's file mode is the gate).
    #[default]
    None,
    /// The peer's uid **and** gid must equal this process's effective uid
    /// and gid at the time of the check: Go's `UnixSocketRequireSameUser`.
    SameUser,
    /// The peer must match one of these (Go's `UnixSocketRequireUidGid`,
    /// generalised to a set).
    Allow(Vec<UidGid>),
}

impl CredentialCheck {
    /// Whether a peer with `cred` is allowed.
    #[must_use]
    pub fn allows(&self, cred: &PeerCred) -> bool {
        match self {
            Self::None => true,
            Self::SameUser => cred.uid == geteuid().as_raw() && cred.gid == getegid().as_raw(),
            Self::Allow(set) => set.iter().any(|id| {
                id.uid.is_none_or(|u| u == cred.uid) && id.gid.is_none_or(|g| g == cred.gid)
            }),
        }
    }

    /// Runs the check on a connected socket: `Ok(())` if allowed; an error
    /// text naming the peer (or the failed lookup) otherwise. A socket whose
    /// credentials cannot be read is refused unless the check is `None`.
    /// Public so that `ttrpc-mio` runs the same check.
    ///
    /// # Errors
    /// The refusal, described.
    pub fn check(&self, socket: &impl AsFd) -> Result<(), String> {
        if *self == Self::None {
            return Ok(());
        }
        let cred = PeerCred::of(socket).map_err(|e| format!("SO_PEERCRED: {e}"))?;
        if self.allows(&cred) {
            Ok(())
        } else {
            Err(format!(
                "peer pid {} uid {} gid {} not allowed",
                cred.pid, cred.uid, cred.gid
            ))
        }
    }
}
