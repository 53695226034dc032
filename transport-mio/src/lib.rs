//! A [ttrpc] client and server on [`mio`], single-threaded, driving the
//! sans-IO engine [`ttrpc-core`](ttrpc_core) from **the caller's own event
//! loop**: an init system or an agent that already polls can serve and
//! call ttrpc without an async runtime and without extra threads.
//!
//! # Embedding
//!
//! The caller owns the [`mio::Poll`]. A [`Server`] is granted a token
//! range (its waker, its listener, one token per connection); a [`Client`]
//! one token. Offer each event to each component (`handle_event` returns
//! whether the token was its own), call `handle_timeout` after every
//! `poll`, and take the `poll` timeout from `poll_timeout`:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mio::{Events, Poll, Token};
//! use ttrpc_mio::{CallOptions, Client, Config, Registry, Server, ServerConfig};
//!
//! let mut handlers = Registry::new();
//! handlers.register_fn("demo.Greeter", "Hello", |req| {
//!     Ok(format!("hello, {}", String::from_utf8_lossy(&req.payload)).into())
//! });
//!
//! let mut poll = Poll::new()?;
//! let path = std::env::temp_dir().join(format!("ttrpc-mio-doc-{}.sock", std::process::id()));
//! let address = format!("unix://{}", path.display());
//! // Tokens 100..200: waker, listener, and up to 98 connections.
//! let mut server = Server::bind(&address, handlers, ServerConfig::default(), poll.registry(), 100..200)?;
//! let mut client = Client::connect(&address, Config::default(), poll.registry(), Token(1))?;
//! // Token(0) stays the caller's own, e.g. a timer fd or a signal pipe.
//!
//! let id = client.call("demo.Greeter", "Hello", b"mio", &CallOptions::with_timeout(Duration::from_secs(5)))?;
//! let mut events = Events::with_capacity(64);
//! let answer = loop {
//!     if let Some((done, result)) = client.poll_completion() {
//!         assert_eq!(done, id);
//!         break result?;
//!     }
//!     let next = [server.poll_timeout(), client.poll_timeout()].into_iter().flatten().min();
//!     poll.poll(&mut events, next.map(|at| at.saturating_duration_since(Instant::now())))?;
//!     for event in &events {
//!         let _ = server.handle_event(event) || client.handle_event(event);
//!     }
//!     server.handle_timeout(Instant::now());
//!     client.handle_timeout(Instant::now());
//! };
//! assert_eq!(&answer[..], b"hello, mio");
//!
//! server.shutdown(Duration::from_secs(1)); // stops listening: the file goes
//! assert!(!path.exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Without a loop of your own, [`Server::run`] is one, stopped through a
//! [`ServerHandle`] from another thread.
//!
//! # Threads
//!
//! This crate creates **no threads**. Handlers run inline on the loop
//! thread unless [`ServerConfig::executor`] hands them (per request: it
//! sees the method) to threads of the caller's choosing. A handler may keep its [`Responder`] and answer
//! later: from the loop thread the answer is queued directly; from another
//! thread it goes through a mutex-protected queue and the server's
//! [`mio::Waker`] (on the first token of its range). mio allows one waker
//! per `Poll`: a caller with a waker of its own (or a second server) passes
//! it to [`Server::with_waker`] instead.
//!
//! # Streams
//!
//! ttrpc 1.2 streams follow the same loop, with nothing that blocks:
//!
//! - **Client**: [`Client::open_stream`] returns the stream's id;
//!   [`Client::send`] queues a message and returns [`Error::Busy`] (queuing
//!   nothing) while the transmit queue is full, after which
//!   [`StreamEvent::Writable`] says when to send again;
//!   [`Client::close_send`] half-closes; [`StreamEvent::Readable`] (from
//!   [`Client::poll_stream_event`]) says a stream has items to take with
//!   [`Client::recv`]: messages, then one [`StreamItem::End`].
//!   [`Client::cancel`] forgets a stream (half-closing it first).
//! - **Server**: [`Server::register_stream`] maps a method to an opener
//!   that makes a [`StreamSession`] per stream. The loop calls
//!   [`StreamSession::on_readable`] when the stream opens and whenever the
//!   client's messages arrive, and [`StreamSession::on_writable`] after a
//!   [`StreamCtx::send`] said `Busy` and the queue drained; the session
//!   finishes with [`StreamCtx::close`] (a streaming answer) or
//!   [`StreamCtx::respond`] (a final Response).
//!
//! ```
//! use ttrpc_mio::{StreamCtx, StreamItem, StreamSession};
//!
//! /// Answers each message with its length until the client half-closes.
//! struct Lengths;
//!
//! impl StreamSession for Lengths {
//!     fn on_readable(&mut self, stream: &mut StreamCtx<'_>) {
//!         while let Some(item) = stream.recv() {
//!             match item {
//!                 StreamItem::Message(m) => {
//!                     // A real session would keep unsent answers for
//!                     // on_writable when this says Busy.
//!                     let _ = stream.send(&(m.len() as u32).to_le_bytes());
//!                 }
//!                 StreamItem::End(Ok(())) => return stream.close(),
//!                 StreamItem::End(Err(_)) => return, // the client is gone
//!             }
//!         }
//!     }
//! }
//! // server.register_stream("demo.Lengths", "Measure", |_req| Box::new(Lengths));
//! ```
//!
//! Blocking stream handlers registered on the [`Registry`]
//! (`Registry::register_stream`, which generated server traits use) would
//! block the loop, so this crate does not run them: a stream opened on such
//! a method is answered `Unimplemented` (`method NAME`). Register a
//! session opener with [`Server::register_stream`] instead.
//!
//! A peer that vanishes mid-stream ends the stream with
//! `ConnectionClosed` on either side. Receive bounds are the core's
//! ([`Config::stream_queue_len`], [`Config::stream_stall_timeout`],
//! [`Config::max_stream_bytes`]); `poll_timeout` includes the stall timers.
//!
//! # Server behaviour
//!
//! - Readiness is edge-triggered: sockets are read until `WouldBlock`
//!   (or a per-turn budget of 16 reads, so one busy peer cannot starve the
//!   others; the rest is continued from `handle_timeout`, which
//!   `poll_timeout` then asks for at once).
//! - Interest is `READABLE` only while the core `wants_read()` and
//!   `WRITABLE` only while it `wants_write()`; sockets are re-registered
//!   only when that changes. A peer that stops reading makes its
//!   responses queue up to [`Config::max_tx_bytes`], then *that*
//!   connection stops being read; nobody else is delayed.
//! - A partial frame delays no one; [`Config::partial_frame_timeout`]
//!   closes a peer that stalls in one.
//! - One 64 KiB read buffer is shared by every connection; an idle
//!   connection holds its socket and an empty core (a few hundred bytes).
//! - At [`ServerConfig::max_connections`], accepting resumes when a
//!   connection closes; after `EMFILE`/`ENFILE` (or any accept error) it
//!   resumes on a timer (1 ms doubling to 1 s) and then accepts until
//!   `WouldBlock`. The listener stays registered throughout.
//! - A panicking handler is answered `Internal` (core's
//!   [`Registry::dispatch`] catches it).
//! - Graceful shutdown: the listener and its socket file go at once, no new
//!   requests are handed out, those in flight are answered and flushed,
//!   then each connection closes; a deadline closes the rest.
//! - Socket files and the peer-credential check follow `ttrpc-std`
//!   ([`Address`], [`CredentialCheck`]); writes use `MSG_NOSIGNAL`.
//!
//! [ttrpc]: https://github.com/containerd/ttrpc

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod handle;
mod io;
mod server;
mod stream;

pub use client::{Client, Completion, StreamEvent};
pub use config::{Executor, Job, ServerConfig, ServerStats};
pub use error::Error;
pub use handle::ServerHandle;
pub use server::{READ_CHUNK, Server};
pub use stream::{StreamCtx, StreamOpener, StreamSession};
pub use ttrpc_core::{
    self as core, CallOptions, Code, Config, ConnectionError, IncomingRequest, Metadata, Registry,
    Responder, Status, StreamId, StreamItem, StreamKind,
};
pub use ttrpc_std::{Address, CredentialCheck, PeerCred, UidGid};
