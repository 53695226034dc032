//! What the loop shares with other threads: the reply queue, the waker,
//! shutdown requests, and a few counters ([`ServerHandle`]).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;
use ttrpc_core::{Status, StreamId};

pub(crate) struct Reply {
    pub(crate) slot: usize,
    pub(crate) uid: u64,
    pub(crate) id: StreamId,
    pub(crate) result: Result<Bytes, Status>,
}

pub(crate) enum ShutdownRequest {
    Graceful(Duration),
    Now,
}

#[derive(Default)]
pub(crate) struct Queue {
    pub(crate) replies: Vec<Reply>,
    /// The loop thread is inside `handle_*` and drains the queue before it
    /// leaves, so a reply needs no wake-up.
    pub(crate) inside: bool,
    pub(crate) shutdown: Option<ShutdownRequest>,
    /// The server's counters as of the loop's last `handle_*`.
    pub(crate) stats: crate::ServerStats,
}

/// What handler threads and [`ServerHandle`]s share with the loop.
pub(crate) struct Shared {
    pub(crate) queue: Mutex<Queue>,
    pub(crate) waker: std::sync::Arc<Waker>,
    /// Sum of the connections' core buffered bytes, as of their last turn.
    pub(crate) buffered: AtomicUsize,
    /// Connections being served.
    pub(crate) active: AtomicUsize,
}

impl Shared {
    pub(crate) fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn post(&self, reply: Reply) {
        let wake = {
            let mut q = self.queue();
            q.replies.push(reply);
            !q.inside
        };
        if wake {
            let _ = self.waker.wake();
        }
    }
}

/// A handle to a [`Server`](crate::Server) for other threads: starts its shutdown and
/// wakes its loop. Cheap to clone.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Weak<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    fn request(&self, req: ShutdownRequest) {
        if let Some(shared) = self.shared.upgrade() {
            shared.queue().shutdown = Some(req);
            let _ = shared.waker.wake();
        }
    }

    /// Asks the loop for a graceful shutdown (see [`crate::Server::shutdown`]).
    pub fn shutdown(&self, grace: Duration) {
        self.request(ShutdownRequest::Graceful(grace));
    }

    /// Asks the loop for an immediate shutdown (see [`crate::Server::shutdown_now`]).
    pub fn shutdown_now(&self) {
        self.request(ShutdownRequest::Now);
    }

    /// [`crate::Server::buffered_bytes`], as of each connection's last turn in
    /// the loop (0 once the server is dropped).
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.shared
            .upgrade()
            .map_or(0, |s| s.buffered.load(Ordering::Relaxed))
    }

    /// [`crate::Server::stats`] as of the loop's last turn (default once
    /// the server is dropped).
    #[must_use]
    pub fn stats(&self) -> crate::ServerStats {
        self.shared
            .upgrade()
            .map_or_else(Default::default, |s| s.queue().stats)
    }

    /// [`crate::Server::active`], readable from any thread (0 once the server is
    /// dropped).
    #[must_use]
    pub fn active(&self) -> usize {
        self.shared
            .upgrade()
            .map_or(0, |s| s.active.load(Ordering::Relaxed))
    }
}
