//! The ttrpc envelope messages (generated from `proto/` at build time) and the
//! hand-written encoders for the hot path.
//!
//! Requests are encoded from borrowed parts straight into the transmit queue,
//! so a call allocates no owned `Request` and copies its payload once.

use bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

/// The generated protobuf messages.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::use_self)]
pub mod proto {
    /// `package ttrpc`: Request, Response, KeyValue, StringList.
    pub mod ttrpc {
        include!(concat!(env!("OUT_DIR"), "/ttrpc.rs"));
    }
    /// `package google.rpc`.
    pub mod google {
        /// `google.rpc.Status`.
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}

pub use proto::ttrpc::{KeyValue, Request, Response};

/// Call metadata: an ordered multimap of string keys and values.
///
/// Each value travels as one `KeyValue`; order within a key is kept. Keys added
/// with [`Metadata::append`] are lower-cased, as Go's `ttrpc.MD` does (a Go
/// server's `Get` cannot see upper-case keys). Entries received from the wire
/// are kept exactly as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<KeyValue>,
}

impl Metadata {
    /// Empty metadata.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value under `key` (lower-cased), after any existing values.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let mut key = key.into();
        key.make_ascii_lowercase();
        self.entries.push(KeyValue {
            key,
            value: value.into(),
        });
        self
    }

    /// The first value of `key` (compared case-insensitively).
    #[must_use]
    pub fn get<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.get_all(key).next()
    }

    /// Every value of `key` (compared case-insensitively), in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |kv| kv.key.eq_ignore_ascii_case(key))
            .map(|kv| kv.value.as_str())
    }

    /// Every entry in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
    }

    /// The number of entries (values, not keys).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as wire messages.
    #[must_use]
    pub fn as_slice(&self) -> &[KeyValue] {
        &self.entries
    }
}

impl From<Vec<KeyValue>> for Metadata {
    /// Keeps the entries exactly as given (no lower-casing).
    fn from(entries: Vec<KeyValue>) -> Self {
        Self { entries }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut md = Self::new();
        for (k, v) in iter {
            md.append(k, v);
        }
        md
    }
}

/// The borrowed parts of a Request, encoded without building a [`Request`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestParts<'a> {
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) timeout_nano: i64,
    pub(crate) metadata: &'a [KeyValue],
}

fn bytes_field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(len as u64) + len
    }
}

fn put_bytes_field(tag: u32, value: &[u8], buf: &mut impl BufMut) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.put_slice(value);
    }
}

fn key_value_len(kv: &KeyValue) -> usize {
    bytes_field_len(1, kv.key.len()) + bytes_field_len(2, kv.value.len())
}

impl RequestParts<'_> {
    /// The encoded length, as prost (and Go's gogo) would encode it.
    pub(crate) fn encoded_len(&self) -> usize {
        let md: usize = self
            .metadata
            .iter()
            .map(|kv| {
                let n = key_value_len(kv);
                key_len(5) + encoded_len_varint(n as u64) + n
            })
            .sum();
        let timeout = if self.timeout_nano == 0 {
            0
        } else {
            key_len(4) + encoded_len_varint(self.timeout_nano as u64)
        };
        bytes_field_len(1, self.service.len())
            + bytes_field_len(2, self.method.len())
            + bytes_field_len(3, self.payload.len())
            + timeout
            + md
    }

    /// Writes the fields in number order, skipping defaults (proto3).
    pub(crate) fn encode(&self, buf: &mut impl BufMut) {
        put_bytes_field(1, self.service.as_bytes(), buf);
        put_bytes_field(2, self.method.as_bytes(), buf);
        put_bytes_field(3, self.payload, buf);
        self.encode_suffix(buf);
    }

    /// What [`Self::encode`] writes before the payload's bytes: the fields
    /// before it, then the payload's key and length. For a payload that is
    /// queued as it is; never empty then.
    pub(crate) fn encode_prefix(&self, buf: &mut impl BufMut) {
        put_bytes_field(1, self.service.as_bytes(), buf);
        put_bytes_field(2, self.method.as_bytes(), buf);
        encode_key(3, WireType::LengthDelimited, buf);
        encode_varint(self.payload.len() as u64, buf);
    }

    /// What [`Self::encode`] writes after the payload.
    pub(crate) fn encode_suffix(&self, buf: &mut impl BufMut) {
        if self.timeout_nano != 0 {
            encode_key(4, WireType::Varint, buf);
            encode_varint(self.timeout_nano as u64, buf);
        }
        for kv in self.metadata {
            encode_key(5, WireType::LengthDelimited, buf);
            encode_varint(key_value_len(kv) as u64, buf);
            put_bytes_field(1, kv.key.as_bytes(), buf);
            put_bytes_field(2, kv.value.as_bytes(), buf);
        }
    }
}

/// Writes `msg` exactly as prost's `encode_raw` does, but copies the
/// payload with one `put_slice`: prost writes a `Bytes` field through the
/// generic `BufMut::put` (a clone, a chunk loop and a drop).
pub(crate) fn encode_response(msg: &Response, buf: &mut impl BufMut) {
    if let Some(status) = &msg.status {
        prost::encoding::message::encode(1, status, buf);
    }
    put_bytes_field(2, &msg.payload, buf);
}

/// A payload for [`Response`] built from a handler's answer: Go omits the
/// status on success, and so do we, so the bytes match Go's.
pub(crate) fn response_message(result: Result<Bytes, crate::Status>) -> Response {
    match result {
        Ok(payload) => Response {
            status: None,
            payload,
        },
        Err(status) => Response {
            status: Some(status.into()),
            payload: Bytes::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn hand_encoder_matches_prost() {
        let metadata = vec![
            KeyValue {
                key: "k".into(),
                value: "v1".into(),
            },
            KeyValue {
                key: "".into(),
                value: "".into(),
            },
        ];
        for timeout_nano in [0, 1, -1, i64::MAX] {
            for payload in [&b""[..], b"x", &[9u8; 300]] {
                let parts = RequestParts {
                    service: "svc.S",
                    method: "",
                    payload,
                    timeout_nano,
                    metadata: &metadata,
                };
                let mut ours = Vec::new();
                parts.encode(&mut ours);
                assert_eq!(ours.len(), parts.encoded_len());
                let req = Request {
                    service: "svc.S".into(),
                    method: String::new(),
                    payload: Bytes::copy_from_slice(payload),
                    timeout_nano,
                    metadata: metadata.clone(),
                };
                assert_eq!(ours, req.encode_to_vec());
            }
        }
    }

    #[test]
    fn response_encoder_matches_prost() {
        let detail = prost_types::Any {
            type_url: "t".into(),
            value: vec![1, 2],
        };
        for status in [
            None,
            Some(proto::google::rpc::Status::default()),
            Some(proto::google::rpc::Status {
                code: 5,
                message: "gone".into(),
                details: vec![detail],
            }),
        ] {
            for payload in [&b""[..], b"x", &[7u8; 300]] {
                let msg = Response {
                    status: status.clone(),
                    payload: Bytes::copy_from_slice(payload),
                };
                let mut ours = Vec::new();
                encode_response(&msg, &mut ours);
                assert_eq!(ours, msg.encode_to_vec());
            }
        }
    }

    #[test]
    fn metadata_lowercases_appended_keys_and_keeps_value_order() {
        let mut md = Metadata::new();
        md.append("X-Key", "a")
            .append("x-key", "b")
            .append("other", "c");
        assert_eq!(md.get_all("x-KEY").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(md.get("other"), Some("c"));
        assert_eq!(md.len(), 3);
        let wire = Metadata::from(vec![KeyValue {
            key: "Upper".into(),
            value: "v".into(),
        }]);
        assert_eq!(wire.iter().next(), Some(("Upper", "v")));
    }
}
