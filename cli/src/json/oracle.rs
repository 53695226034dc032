//! The former JSON output, kept in test builds as the oracle the
//! table-driven printer must match byte for byte: serde derives on every
//! generated message (`build.rs` adds them under `cfg(test)`), serde_json's
//! pretty printer, and prost's decoders. `differential` feeds both the same
//! wire bytes, generated from the schema table, valid and broken.

use std::collections::HashMap;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::proto::containerd::runc::v1::ProcessDetails;
use crate::proto::io::containerd::cgroups;
use crate::wkt::{Any, Timestamp, base64};

/// Values Go's `omitempty` leaves out: zero numbers, `false`, empty strings
/// and lists, nil messages.
pub(crate) trait IsEmpty {
    fn is_empty_value(&self) -> bool;
}

macro_rules! zero_is_empty {
    ($($t:ty),*) => {$(
        impl IsEmpty for $t {
            fn is_empty_value(&self) -> bool {
                *self == <$t>::default()
            }
        }
    )*};
}
zero_is_empty!(bool, u32, i32, u64, i64, f32, f64);

impl IsEmpty for String {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}
impl<T> IsEmpty for Vec<T> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}
impl<T> IsEmpty for Option<T> {
    fn is_empty_value(&self) -> bool {
        self.is_none()
    }
}
impl<K, V, S> IsEmpty for HashMap<K, V, S> {
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}
/// A `time.Time` is a struct: `omitempty` never drops it.
impl IsEmpty for Timestamp {
    fn is_empty_value(&self) -> bool {
        false
    }
}

/// For `#[serde(skip_serializing_if = "crate::json::oracle::is_empty")]`.
pub(crate) fn is_empty<T: IsEmpty + ?Sized>(v: &T) -> bool {
    v.is_empty_value()
}

/// Serialises with a 4-space indent and a trailing newline.
pub(crate) fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser).unwrap();
    let mut s = String::from_utf8(out).unwrap();
    s.push('\n');
    s
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// Writes `value` as the decoded message `M`, if it decodes.
fn entry<M, S>(map: &mut S, value: &[u8]) -> Result<bool, S::Error>
where
    M: prost::Message + Default + Serialize,
    S: SerializeMap,
{
    match M::decode(value) {
        Ok(m) => map.serialize_entry("value", &m).map(|()| true),
        Err(_) => Ok(false),
    }
}

impl Serialize for Any {
    /// The payloads shims answer with decoded; anything else, or a payload
    /// that does not decode, as base64.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type_url", &self.type_url)?;
        let v = &self.value;
        let done = match self.type_url.rsplit('/').next().unwrap_or("") {
            "containerd.runc.v1.ProcessDetails" => entry::<ProcessDetails, _>(&mut map, v)?,
            "io.containerd.cgroups.v1.Metrics" => entry::<cgroups::v1::Metrics, _>(&mut map, v)?,
            "io.containerd.cgroups.v2.Metrics" => entry::<cgroups::v2::Metrics, _>(&mut map, v)?,
            _ => false,
        };
        if !done {
            map.serialize_entry("value", &base64(v))?;
        }
        map.end()
    }
}

/// What the oracle prints for `bytes` as the response `root`: the JSON, or
/// `None` where prost refuses the bytes.
pub(crate) fn render(root: crate::schema::MessageId, bytes: &[u8]) -> Option<String> {
    use crate::proto::{shim_v1, task};
    use crate::schema as s;
    use prost::Message;
    fn p<M: Message + Default + Serialize>(b: &[u8]) -> Option<String> {
        M::decode(b).ok().map(|m| pretty(&m))
    }
    match root {
        r if r == s::TASK_STATE => p::<task::StateResponse>(bytes),
        r if r == s::TASK_PIDS => p::<task::PidsResponse>(bytes),
        r if r == s::TASK_STATS => p::<task::StatsResponse>(bytes),
        r if r == s::TASK_CONNECT => p::<task::ConnectResponse>(bytes),
        r if r == s::V1_STATE => p::<shim_v1::StateResponse>(bytes),
        r if r == s::V1_LIST_PIDS => p::<shim_v1::ListPidsResponse>(bytes),
        other => panic!("no oracle for {other:?}"),
    }
}
