//! A blocking ttrpc client and server (TODO docs)

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod address;
mod client;
mod connection;
mod creds;
mod error;
mod server;
mod wire;

pub use address::{Address, Listener};
pub use client::{Canceller, Client, PendingCall};
pub use creds::{CredentialCheck, PeerCred, UidGid};
pub use error::Error;
pub use server::{Server, ServerConfig, ServerStats};
pub use ttrpc_core::{
    self as core, CallOptions, Code, Config, ConnectionError, IncomingRequest, Metadata, Registry,
    Responder, Status,
};
