//! A sans-IO [ttrpc] protocol engine: the frame codec, the envelope
//! messages, and the client and server connection state machines.
//!
//! ttrpc is containerd's small RPC protocol (gRPC's messages without
//! HTTP/2) spoken between containerd and its shims over unix sockets. This
//! crate does no IO: it never touches a socket, a file, a thread or the
//! clock. Bytes, time and commands go in; bytes, events and the next
//! deadline come out. `ttrpc-std` and `ttrpc-mio` drive it over sockets;
//! fuzzers and simulations drive it in memory.
//!
//! # The drive contract
//!
//! After every input (`handle_*`) or command (`send_*`), before waiting on IO
//! again:
//! 1. write out [`ClientConnection::poll_transmit`], reporting each write with
//!    `advance_transmit`;
//! 2. drain [`ClientConnection::poll_event`] (a handler may send: go to 1);
//! 3. sleep until [`ClientConnection::poll_timeout`], or until input arrives,
//!    reading only while `wants_read()`.
//!
//! Inputs carry a non-decreasing `now`; `handle_timeout` may be called early
//! or spuriously. Events come out in wire order, deadline expiries in
//! (deadline, stream id) order.
//!
//! ```
//! use std::time::Instant;
//! use ttrpc_core::{CallOptions, ClientConnection, ClientEvent, Config};
//! use ttrpc_core::{Registry, Responder, ServerConnection, ServerEvent};
//!
//! let mut registry = Registry::new();
//! registry.register_fn("demo.Echo", "Say", |req| Ok(req.payload.clone()));
//!
//! let now = Instant::now(); // the driver owns the clock, never the core
//! let mut client = ClientConnection::new(Config::default());
//! let mut server = ServerConnection::new(Config::default());
//! let id = client
//!     .send_request(now, "demo.Echo", "Say", b"hi", &CallOptions::default())
//!     .unwrap();
//!
//! // Client → server: a real driver writes these bytes to a socket.
//! while let Some(bytes) = client.poll_transmit() {
//!     let n = bytes.len();
//!     server.handle_input(now, bytes);
//!     client.advance_transmit(n);
//! }
//! let answers = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
//! while let Some(event) = server.poll_event() {
//!     if let ServerEvent::Request(req) = event {
//!         let answers = answers.clone();
//!         // Transports deliver through a channel or a waker; see `Responder`.
//!         let (tx, rx) = std::sync::mpsc::channel();
//!         registry.dispatch(req, Responder::new(id, Box::new(move |id, r| tx.send((id, r)).unwrap())));
//!         answers.borrow_mut().extend(rx.try_iter());
//!     }
//! }
//! for (id, result) in answers.borrow_mut().drain(..) {
//!     server.send_response(id, result).unwrap();
//! }
//!
//! // Server → client.
//! while let Some(bytes) = server.poll_transmit() {
//!     let n = bytes.len();
//!     client.handle_input(now, bytes);
//!     server.advance_transmit(n);
//! }
//! match client.poll_event() {
//!     Some(ClientEvent::Response { id: got, result }) => {
//!         assert_eq!(got, id);
//!         assert_eq!(&result.unwrap()[..], b"hi");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! # Typed stubs from `.proto` files (feature `codegen`)
//!
//! Add `ttrpc-core = { version = "0.1", features = ["codegen"] }` to
//! `[build-dependencies]` and call [`codegen::compile`] (or hand
//! `codegen::Generator` to your own prost-build config) from `build.rs`.
//! For each service the generator writes a client stub over any
//! [`stub::UnaryCall`] transport (`ttrpc-std`'s `Client` implements it), a
//! server trait whose methods get the decoded request and a typed
//! [`stub::Reply`] (answer now or later), and `register_<service>` to route
//! it on a [`Registry`]. No `protoc` is needed (protox parses). See the
//! `codegen` module docs (built with the feature) for the exact shapes.
//!
//! [ttrpc]: https://github.com/containerd/ttrpc

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub, elided_lifetimes_in_paths)]

mod client;
mod code;
#[cfg(feature = "codegen")]
pub mod codegen;
mod config;
mod decoder;
mod error;
mod frame;
mod message;
mod recv;
mod server;
mod service;
mod sorted;
mod stream;
pub mod stub;
mod timer;
mod tx;

pub use client::{CallOptions, ClientConnection, ClientEvent};
pub use code::{Code, Status};
pub use config::{Config, Stats};
pub use decoder::{Decoded, FrameDecoder};
pub use error::{CallError, ConnectionError, ProtocolError, SendError};
pub use frame::{
    DEFAULT_MAX_DATA_LEN, Flags, FrameHeader, FrameTooLarge, FrameType, HEADER_LEN, encode_frame,
};
pub use message::{KeyValue, Metadata, Request, Response, proto};
pub use recv::StreamItem;
pub use server::{IncomingRequest, ServerConnection, ServerEvent};
pub use service::{
    Dispatch, Handler, Registry, Responder, ResponseSink, ServerStream, StreamHandler, StreamIo,
};
pub use stream::{StreamId, StreamKind};

pub use bytes::Bytes;
pub use prost;
