//! A blocking [ttrpc] client and server over `std::os::unix` sockets, with
//! no async runtime: plain threads driving the sans-IO engine
//! [`ttrpc-core`](ttrpc_core).
//!
//! ```
//! use std::time::Duration;
//! use ttrpc_std::{CallOptions, Client, Registry, Server};
//!
//! // A server: register handlers on core's registry, bind, serve.
//! let mut registry = Registry::new();
//! registry.register_fn("demo.Greeter", "Hello", |req| {
//!     let name = String::from_utf8_lossy(&req.payload);
//!     Ok(format!("hello, {name}").into())
//! });
//! let server = Server::new(registry)?;
//! let path = std::env::temp_dir().join(format!("ttrpc-std-doc-{}.sock", std::process::id()));
//! let address = format!("unix://{}", path.display());
//! let listener = ttrpc_std::Address::parse(&address)?.bind()?; // mode 0600
//! let serving = std::thread::spawn({
//!     let server = server.clone();
//!     move || server.serve(listener)
//! });
//!
//! // A client: `&self` calls, shareable across threads.
//! let client = Client::connect(&address)?;
//! let options = CallOptions::with_timeout(Duration::from_secs(5));
//! let answer = client.call_raw("demo.Greeter", "Hello", b"ttrpc", &options)?;
//! assert_eq!(&answer[..], b"hello, ttrpc");
//!
//! // Prost messages work the same way: `client.call::<Req, Resp>(...)`.
//! let err = client.call_raw("demo.Greeter", "Nope", b"", &options).unwrap_err();
//! assert_eq!(err.code(), ttrpc_std::Code::Unimplemented);
//!
//! drop(client);
//! assert!(server.shutdown(Duration::from_secs(5))); // graceful
//! serving.join().unwrap()?;
//! assert!(!path.exists()); // the listener removed its socket file
//! # Ok::<(), ttrpc_std::Error>(())
//! ```
//!
//! # Streams
//!
//! ttrpc 1.2 streams (client-streaming, server-streaming, bidirectional)
//! block like calls do. A client opens one with [`Client::open_stream`]
//! and gets a [`ClientStream`]: `send` (waits while the connection's
//! transmit queue is full: ttrpc has no flow control, so that is the only
//! back-pressure), `close_send`, `recv` (waits for the next message,
//! `Ok(None)` at the end; a waiting `recv` reads for everyone, as a
//! waiting call does). A server registers a stream handler with
//! [`Registry::register_stream`]; it runs on a handler thread with a
//! [`ServerStream`] to `recv`, `send`, and finish with `close` (streaming
//! answer) or `respond` (a final Response: a client-streaming call's
//! answer, or an error).
//!
//! ```
//! use std::time::Duration;
//! use ttrpc_std::{CallOptions, Client, Registry, Server, ServerStream, StreamKind};
//!
//! let mut registry = Registry::new();
//! // Bidirectional: answer each message with its length, until the client
//! // half-closes.
//! registry.register_stream("demo.Lengths", "Measure", |_req, mut stream: ServerStream| {
//!     while let Ok(Some(message)) = stream.recv() {
//!         if stream.send(&(message.len() as u32).to_le_bytes()).is_err() {
//!             return; // the connection ended; dropping the stream is fine
//!         }
//!     }
//!     stream.close();
//! });
//! let server = Server::new(registry)?;
//! let path = std::env::temp_dir().join(format!("ttrpc-std-stream-doc-{}.sock", std::process::id()));
//! let listener = ttrpc_std::Address::Path(path.clone()).bind()?;
//! let serving = std::thread::spawn({
//!     let server = server.clone();
//!     move || server.serve(listener)
//! });
//!
//! let client = Client::connect(path.to_str().unwrap())?;
//! let options = CallOptions::with_timeout(Duration::from_secs(5));
//! let stream = client.open_stream("demo.Lengths", "Measure", StreamKind::Bidirectional, b"", &options)?;
//! for word in ["a", "stream", "of", "words"] {
//!     stream.send(word.as_bytes())?;
//!     let answer = stream.recv()?.expect("one answer per message");
//!     assert_eq!(u32::from_le_bytes(answer[..].try_into().unwrap()), word.len() as u32);
//! }
//! stream.close_send()?;
//! assert_eq!(stream.recv()?, None); // the server closed: the end
//!
//! drop((stream, client));
//! assert!(server.shutdown(Duration::from_secs(5)));
//! serving.join().unwrap()?;
//! # Ok::<(), ttrpc_std::Error>(())
//! ```
//!
//! A stream handler blocks in `recv` until the client sends, so it never
//! runs inline on the connection's reader: it goes to a handler thread
//! (holding it until it returns), and with `max_concurrent_handlers = 1`
//! each stream handler gets a `ttrpc-stream` thread of its own. A peer that vanishes mid-stream ends
//! the stream with [`Error::Closed`] on the client and
//! `CallError::ConnectionClosed` in the handler. Graceful shutdown keeps
//! reading a connection while a stream still waits for the client's
//! messages.
//!
//! # Addresses
//!
//! [`Address`] is shared with `ttrpc-mio`: `unix://PATH`, `@NAME`
//! (abstract), a bare path naming a socket file, or a bare name meaning
//! the abstract socket Go makes of `"\x00"+NAME` (bytes `\0NAME\0`,
//! checked against Debian's `containerd-shim`; see [`Address`]). Servers
//! never listen on an abstract socket unless given `@NAME`
//! (CVE-2020-15257). A client or server can also take an already
//! connected stream: [`Client::new`], [`Client::from_fd`] (any stream
//! socket, e.g. vsock), [`Server::serve_connection`].
//!
//! # Threads
//!
//! Every thread this crate creates:
//!
//! | thread | how many | lives |
//! |---|---|---|
//! | `ttrpc-client-reader` | one per [`Client`]; reads only while no call waits | until the client is dropped (joined) or its connection ends |
//! | `ttrpc-conn` | one per served connection | until the connection closes (it may serve as a handler worker after a worker took over reading) |
//! | `ttrpc-handler` | per connection, up to [`ServerConfig::max_concurrent_handlers`] (default 16), spawned on demand | exits after 5 s idle or when its connection ends |
//! | `ttrpc-stream` | one per open stream, only with `max_concurrent_handlers = 1` | until its stream handler returns |
//!
//! [`Server::serve`] runs its accept loop on the calling thread. With
//! `max_concurrent_handlers = 1` handlers run inline on `ttrpc-conn`.
//!
//! # How the client multiplexes: the reader role
//!
//! Callers queue their request in the core under a state lock, then write
//! it outside that lock (writer lock → core lock → `take_transmit` → unlock
//! core → `write_all` → unlock writer, so frames keep queue order). Reading
//! is a role that one thread holds at a time: a caller waiting for its
//! answer takes it if it is free, `poll`s the socket (and a wake-up socket)
//! until the earliest deadline, reads once, feeds the core, stores every
//! answer with its caller and unparks that caller, then releases the role
//! (unparking one caller still waiting, to read next). So with one call in
//! flight the caller reads its own answer: one thread wake-up per call,
//! as with a plain socket. The other waiters park until their answer or
//! their deadline (then `handle_timeout`); [`Canceller::cancel`] stores
//! `Cancelled`, unparks the call and wakes the `poll` if it was reading.
//!
//! The background thread `ttrpc-client-reader` holds the role only while
//! no call waits (it checks every 50 ms), so an idle client still notices
//! its connection closing; a caller that finds it reading wakes it through
//! the wake-up socket and takes over. This replaced a design where the
//! background thread read every answer and passed it to its caller through
//! a per-call channel: two thread wake-ups per call and three allocations
//! (16-byte round trip, pinned: ≈ 2.5× faster, see `BENCHMARKS.md`).

//! # Server
//!
//! One thread per connection reads and decodes (through the core). Its
//! handlers run on a per-connection worker pool, so a handler that blocks,
//! like a shim's `Wait`, does not stall the others; but handing every
//! request to another thread costs two thread wake-ups per call, so while
//! an idle worker *watches* (ticking every 2 ms), the reader runs handlers
//! inline, and a handler still running after a whole tick is taken to
//! block: the watcher takes over reading and the old reader becomes a
//! worker when its handler returns. The first request on a connection, and
//! requests arriving while no worker is idle, go to the pool as before. A
//! handler's [`Responder`] queues and writes its answer itself, from
//! whichever thread replies. The connection thread's read timeout follows the core's
//! `poll_timeout` (the partial-frame timeout, if configured). When the core
//! holds decoding back (its in-flight or transmit bound), the thread waits
//! for an answer instead of reading. At [`ServerConfig::max_connections`]
//! the accept loop waits on a condition variable until a connection ends;
//! after `EMFILE`/`ENFILE` it backs off 1 ms doubling to 1 s. Shutdown
//! wakes the accept loop through `poll(2)` on a socket pair, and a
//! connection blocked in `read` with `shutdown(SHUT_RD)` — once no open
//! stream still waits for the client's messages.
//!
//! A handler that panics is caught by the core's dispatch and answered
//! `Internal`; the connection and server go on (the workspace's release
//! profile keeps `panic = "unwind"` for this).
//!
//! Writes use `send(MSG_NOSIGNAL)`, so a vanished peer is an `EPIPE` error,
//! never a `SIGPIPE`, whatever the host program did with that signal.
//!
//! [ttrpc]: https://github.com/containerd/ttrpc

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod address;
mod client;
mod connection;
mod creds;
mod error;
mod server;
mod stream;
mod wire;

pub use address::{Address, Listener};
pub use client::{Canceller, Client, PendingCall};
pub use creds::{CredentialCheck, PeerCred, UidGid};
pub use error::Error;
pub use server::{Server, ServerConfig, ServerStats};
pub use stream::ClientStream;
pub use ttrpc_core::{
    self as core, CallOptions, Code, Config, ConnectionError, IncomingRequest, Metadata, Registry,
    Responder, ServerStream, Status, StreamKind,
};
