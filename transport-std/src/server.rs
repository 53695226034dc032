//! The blocking server: accept loop, connection limits, shutdown.

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ttrpc_core::{Config, Registry};

use crate::address::{Address, Listener};
use crate::connection::{self, Conn};
use crate::creds::CredentialCheck;
use crate::error::Error;
use crate::wire::lock;

/// The first pause after `EMFILE`/`ENFILE`; doubled up to [`MAX_BACKOFF`]
/// (Go ttrpc's accept backoff).
const MIN_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between accept attempts after resource errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a server runs its connections.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Limits of each connection's core (message size, requests in flight,
    /// transmit queue, partial-frame timeout).
    pub connection: Config,
    /// Connections served at once (default 1024). At the cap the accept
    /// loop waits, without polling, until one ends; further clients wait in
    /// the listen backlog.
    pub max_connections: usize,
    /// Handler threads per connection (default 16), spawned on demand and
    /// retired after 5 s idle, so a handler that blocks does not stall the
    /// connection's other requests. 1 runs handlers inline on the
    /// connection's thread.
    pub max_concurrent_handlers: usize,
    /// Which peers may connect (default: anyone who can open the socket).
    pub credentials: CredentialCheck,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            max_connections: 1024,
            max_concurrent_handlers: 16,
            credentials: CredentialCheck::None,
        }
    }
}

impl ServerConfig {
    /// Sets [`ServerConfig::connection`].
    #[must_use]
    pub fn connection(mut self, config: Config) -> Self {
        self.connection = config;
        self
    }

    /// Sets [`ServerConfig::max_connections`] (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`ServerConfig::max_concurrent_handlers`] (at least 1).
    #[must_use]
    pub fn max_concurrent_handlers(mut self, n: usize) -> Self {
        self.max_concurrent_handlers = n.max(1);
        self
    }

    /// Sets [`ServerConfig::credentials`].
    #[must_use]
    pub fn credentials(mut self, check: CredentialCheck) -> Self {
        self.credentials = check;
        self
    }
}

/// Counters of a server's accept loop; never reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// `accept` system calls made (including failed ones).
    pub accept_calls: u64,
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections closed at once by the credential check (no frame sent).
    pub refused: u64,
    /// `accept` failures that caused a backoff (`EMFILE`, `ENFILE`, ...).
    pub accept_errors: u64,
    /// Connections being served now.
    pub active: u64,
    /// Bytes the connections' cores hold now (undecoded input and queued
    /// answers), bounded per connection by `Config::memory_bound`.
    pub buffered_bytes: u64,
}

#[derive(Default)]
struct Counters {
    accept_calls: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    accept_errors: AtomicU64,
}

#[derive(Default)]
struct State {
    stopping: bool,
    conns: HashMap<u64, Arc<Conn>>,
    next_id: u64,
    serving: usize,
}

struct Shared {
    registry: Arc<Registry>,
    config: ServerConfig,
    /// A byte written here wakes every accept loop for shutdown.
    wake_tx: UnixStream,
    wake_rx: UnixStream,
    state: Mutex<State>,
    /// Signalled when a connection ends, an accept loop returns, or a
    /// shutdown starts.
    changed: Condvar,
    counters: Counters,
}

/// A ttrpc server: services registered on a [`Registry`], served on any
/// number of listeners and connections.
///
/// Cheap to clone (a handle): serve on one thread, shut down from another.
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `registry` with the default [`ServerConfig`].
    ///
    /// # Errors
    /// [`Error::Io`] if the shutdown wake-up socket pair cannot be created.
    pub fn new(registry: Registry) -> Result<Self, Error> {
        Self::with_config(registry, ServerConfig::default())
    }

    /// A server for `registry` with `config`.
    ///
    /// # Errors
    /// [`Error::Io`] if the shutdown wake-up socket pair cannot be created.
    pub fn with_config(registry: Registry, config: ServerConfig) -> Result<Self, Error> {
        let (wake_tx, wake_rx) =
            UnixStream::pair().map_err(|e| Error::io("create wake-up socket pair", e))?;
        wake_tx
            .set_nonblocking(true)
            .map_err(|e| Error::io("set wake-up socket non-blocking", e))?;
        Ok(Self {
            shared: Arc::new(Shared {
                registry: Arc::new(registry),
                config,
                wake_tx,
                wake_rx,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                counters: Counters::default(),
            }),
        })
    }

    /// Binds `address` (see [`Address::bind`]: mode 0600, stale socket
    /// replaced, non-socket refused, abstract only for `@NAME`) and serves
    /// it until shutdown. The socket file is removed when this returns.
    ///
    /// # Errors
    /// As [`Address::bind`] and [`Server::serve`].
    pub fn bind_and_serve(&self, address: &str) -> Result<(), Error> {
        let listener = Address::parse(address)?.bind()?;
        self.serve(listener)
    }

    /// Serves `listener` on the calling thread: accepts connections (each
    /// on its own thread) until [`Server::shutdown`] or
    /// [`Server::shutdown_now`], then returns `Ok(())`.
    ///
    /// # Errors
    /// [`Error::ShutDown`] if the server was already shut down;
    /// [`Error::Io`] for an accept error that is not transient.
    pub fn serve(&self, listener: impl Into<Listener>) -> Result<(), Error> {
        let listener = listener.into();
        listener
            .as_std()
            .set_nonblocking(true)
            .map_err(|e| Error::io("set listener non-blocking", e))?;
        {
            let mut st = self.state();
            if st.stopping {
                return Err(Error::ShutDown);
            }
            st.serving += 1;
        }
        let result = self.accept_loop(&listener);
        self.state().serving -= 1;
        self.shared.changed.notify_all();
        result
    }

    /// Serves one already connected stream (e.g. vsock handed over as an
    /// `OwnedFd` and converted with `UnixStream::from`) on a new connection
    /// thread, and returns at once. It counts against `max_connections`
    /// only for the accept loop's cap; it is never refused for it.
    ///
    /// # Errors
    /// [`Error::ShutDown`] after shutdown; [`Error::Io`] if the thread
    /// cannot be started.
    pub fn serve_connection(&self, stream: UnixStream) -> Result<(), Error> {
        if self.state().stopping {
            return Err(Error::ShutDown);
        }
        self.start_connection(stream)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.shared
            .changed
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Polls the listener (when `listener` is given) and the wake-up socket;
    /// returns whether a shutdown woke us.
    fn poll_wait(&self, listener: Option<&Listener>, timeout: PollTimeout) -> Result<bool, Error> {
        let wake = PollFd::new(self.shared.wake_rx.as_fd(), PollFlags::POLLIN);
        let mut fds = match listener {
            Some(l) => vec![wake, PollFd::new(l.as_std().as_fd(), PollFlags::POLLIN)],
            None => vec![wake],
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("poll listener", e.into())),
        }
        Ok(fds[0].revents().is_some_and(|r| !r.is_empty()) || self.state().stopping)
    }

    fn accept_loop(&self, listener: &Listener) -> Result<(), Error> {
        let max = self.shared.config.max_connections;
        let mut backoff: Option<Duration> = None;
        loop {
            // At the cap: wait (no polling) until a connection ends.
            {
                let mut st = self.state();
                while !st.stopping && st.conns.len() >= max {
                    st = self.wait(st);
                }
                if st.stopping {
                    return Ok(());
                }
            }
            if let Some(pause) = backoff {
                let ms = u16::try_from(pause.as_millis()).unwrap_or(u16::MAX);
                if self.poll_wait(None, PollTimeout::from(ms))? {
                    return Ok(());
                }
            }
            if self.poll_wait(Some(listener), PollTimeout::NONE)? {
                return Ok(());
            }
            self.shared
                .counters
                .accept_calls
                .fetch_add(1, Ordering::Relaxed);
            match listener.as_std().accept() {
                Ok((stream, _)) => {
                    backoff = None;
                    if let Err(why) = self.shared.config.credentials.check(&stream) {
                        // Closed without a frame, as Go's handshaker does.
                        self.shared.counters.refused.fetch_add(1, Ordering::Relaxed);
                        let _ = why;
                        drop(stream);
                        continue;
                    }
                    // A failed spawn drops the connection; keep serving.
                    let _ = self.start_connection(stream);
                }
                Err(e) => match e.raw_os_error().map(Errno::from_raw) {
                    _ if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                    Some(Errno::ECONNABORTED | Errno::EPROTO) => {}
                    Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => {
                        self.shared
                            .counters
                            .accept_errors
                            .fetch_add(1, Ordering::Relaxed);
                        backoff = Some(backoff.map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF)));
                    }
                    _ => return Err(Error::io("accept", e)),
                },
            }
        }
    }

    fn start_connection(&self, stream: UnixStream) -> Result<(), Error> {
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::io("set connection blocking", e))?;
        let conn = Arc::new(Conn::new(stream, self.shared.config.connection.clone()));
        let id = {
            let mut st = self.state();
            let id = st.next_id;
            st.next_id += 1;
            st.conns.insert(id, Arc::clone(&conn));
            if st.stopping {
                // Shutdown began while we accepted: drain this one too.
                conn.begin_graceful();
            }
            id
        };
        self.shared
            .counters
            .accepted
            .fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        let spawned = thread::Builder::new()
            .name("ttrpc-conn".into())
            .spawn(move || {
                let registry = Arc::clone(&shared.registry);
                let max = shared.config.max_concurrent_handlers;
                // Runs on whichever of the connection's threads closes it.
                let on_finish = Box::new(move || {
                    lock(&shared.state).conns.remove(&id);
                    shared.changed.notify_all();
                });
                connection::run(&conn, &registry, max, on_finish);
            });
        if let Err(e) = spawned {
            self.state().conns.remove(&id);
            self.shared.changed.notify_all();
            return Err(Error::io("spawn ttrpc-conn thread", e));
        }
        Ok(())
    }

    fn stop_accepting(&self) -> Vec<Arc<Conn>> {
        let conns = {
            let mut st = self.state();
            st.stopping = true;
            st.conns.values().cloned().collect()
        };
        let _ = (&self.shared.wake_tx).write(&[1]);
        self.shared.changed.notify_all();
        conns
    }

    /// Waits until no connection is left and no accept loop runs, or until
    /// `deadline`. Returns whether everything ended.
    fn wait_all(&self, deadline: Instant) -> bool {
        let mut st = self.state();
        loop {
            if st.conns.is_empty() && st.serving == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Graceful shutdown: stops accepting, lets every connection finish the
    /// requests it has started (new ones are no longer read), writes every
    /// answer a handler produces, then closes. Whatever is still running
    /// after `grace` is closed at once, as [`Server::shutdown_now`].
    ///
    /// Returns `true` if everything finished within `grace`.
    pub fn shutdown(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        for conn in self.stop_accepting() {
            conn.begin_graceful();
        }
        if self.wait_all(deadline) {
            return true;
        }
        self.shutdown_now();
        false
    }

    /// Immediate shutdown: stops accepting and closes every connection at
    /// once; answers not yet written are dropped. Waits up to one second
    /// for the connection threads to exit (a connection running an inline
    /// handler, with `max_concurrent_handlers = 1`, exits when the handler
    /// returns). Returns whether they all did.
    pub fn shutdown_now(&self) -> bool {
        for conn in self.stop_accepting() {
            conn.fail(ttrpc_core::ConnectionError::LocallyClosed);
        }
        self.wait_all(Instant::now() + Duration::from_secs(1))
    }

    /// The accept loop's counters and the connections' buffered bytes.
    #[must_use]
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        let conns: Vec<Arc<Conn>> = self.state().conns.values().cloned().collect();
        ServerStats {
            accept_calls: c.accept_calls.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
            active: self.state().conns.len() as u64,
            buffered_bytes: conns.iter().map(|c| c.buffered_bytes() as u64).sum(),
        }
    }
}
