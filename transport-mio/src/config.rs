//! Server configuration and counters.

use std::fmt;
use std::sync::Arc;

use ttrpc_core::{Config, IncomingRequest, Registry, Responder};
use ttrpc_std::CredentialCheck;

/// Decides where each handler runs: the server hands it every request as
/// a [`Job`], instead of running the handler inline. It may run the job at
/// once (on the loop thread: for cheap methods) or send it to threads of
/// the caller's choosing (a pool, a thread per job, ...); this crate
/// creates none.
pub type Executor = Arc<dyn Fn(Job) + Send + Sync>;

/// One request and its handler, ready to run anywhere.
pub struct Job {
    pub(crate) registry: Arc<Registry>,
    pub(crate) request: IncomingRequest,
    pub(crate) responder: Responder,
}

impl Job {
    /// The request, e.g. to route by [`IncomingRequest::method`].
    #[must_use]
    pub fn request(&self) -> &IncomingRequest {
        &self.request
    }

    /// Runs the handler (through [`Registry::dispatch`]: unknown methods
    /// answer `Unimplemented`, a panic answers `Internal`).
    pub fn run(self) {
        self.registry.dispatch(self.request, self.responder);
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("service", &self.request.service)
            .field("method", &self.request.method)
            .field("id", &self.request.id)
            .finish_non_exhaustive()
    }
}

/// How a server runs its connections.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Limits of each connection's core (message size, requests in flight,
    /// transmit queue, partial-frame timeout).
    pub connection: Config,
    /// Connections served at once (default 1024; also bounded by the token
    /// range). At the cap, new clients wait in the listen backlog.
    pub max_connections: usize,
    /// Which peers may connect (default: anyone who can open the socket).
    pub credentials: CredentialCheck,
    /// Where handlers run: `None` (default) runs them inline on the loop
    /// thread, so they must not block; they may keep their [`Responder`]
    /// and answer later from any thread. See [`Executor`].
    pub executor: Option<Executor>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            connection: Config::default(),
            max_connections: 1024,
            credentials: CredentialCheck::None,
            executor: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("connection", &self.connection)
            .field("max_connections", &self.max_connections)
            .field("credentials", &self.credentials)
            .field("executor", &self.executor.is_some())
            .finish()
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

    /// Sets [`ServerConfig::credentials`].
    #[must_use]
    pub fn credentials(mut self, check: CredentialCheck) -> Self {
        self.credentials = check;
        self
    }

    /// Sets [`ServerConfig::executor`].
    #[must_use]
    pub fn executor(mut self, executor: Executor) -> Self {
        self.executor = Some(executor);
        self
    }
}

/// Counters of a server; never reset (except `active`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// `accept` system calls made (including failed ones).
    pub accept_calls: u64,
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections closed at once by the credential check.
    pub refused: u64,
    /// `accept` failures that paused accepting (`EMFILE`, `ENFILE`, ...).
    pub accept_errors: u64,
    /// Times accepting paused because `max_connections` were open.
    pub at_capacity: u64,
    /// Connections being served now.
    pub active: u64,
}
