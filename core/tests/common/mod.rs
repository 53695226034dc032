//! Helpers shared by core's integration tests.
#![allow(dead_code)]

use prost::Message;
use ttrpc_core::{
    ClientConnection, ClientEvent, Flags, FrameHeader, FrameType, Request, ServerConnection,
    ServerEvent, StreamId,
};

/// Decodes a lower-case hex string.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A whole frame: header plus data.
pub(crate) fn frame(id: u32, kind: u8, flags: u8, data: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        len: data.len() as u32,
        stream_id: StreamId::new(id),
        kind: FrameType::from(kind),
        flags: Flags(flags),
    };
    let mut out = header.encode().to_vec();
    out.extend_from_slice(data);
    out
}

/// A Request frame built with prost (independently of the client's encoder).
pub(crate) fn request_frame(id: u32, service: &str, method: &str, payload: &[u8]) -> Vec<u8> {
    let req = Request {
        service: service.into(),
        method: method.into(),
        payload: payload.to_vec().into(),
        ..Default::default()
    };
    frame(id, 1, 0, &req.encode_to_vec())
}

/// Every event the server has ready.
pub(crate) fn drain_server(server: &mut ServerConnection) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

/// Every event the client has ready.
pub(crate) fn drain_client(client: &mut ClientConnection) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}
