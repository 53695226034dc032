//! JSON output like `ctr shim state`: Go's `json.MarshalIndent(v, "", "    ")`
//! of gogo structs (snake_case names, `omitempty`, enums as numbers).

use std::collections::HashMap;

mod value;
#[allow(unused_imports, reason = "for the built-in shim")]
pub(crate) use value::{MAX_DEPTH, NotAnObject, ParseError, Value};

use serde::Serialize;

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
impl IsEmpty for crate::wkt::Timestamp {
    fn is_empty_value(&self) -> bool {
        false
    }
}

/// For `#[serde(skip_serializing_if = "crate::json::is_empty")]`.
pub(crate) fn is_empty<T: IsEmpty + ?Sized>(v: &T) -> bool {
    v.is_empty_value()
}

/// Serialises with a 4-space indent and a trailing newline.
pub(crate) fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if v.serialize(&mut ser).is_err() {
        return "null\n".to_owned();
    }
    let mut s = String::from_utf8(out).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod golden;

/// What a command prints for the response `bytes` of type `root`; "error"
/// when they do not decode.
#[cfg(test)]
fn render_for_test(root: golden::Root, bytes: &[u8]) -> String {
    use crate::proto::{shim_v1, task};
    use golden::Root;
    use prost::Message;
    fn p<M: Message + Default + Serialize>(b: &[u8]) -> String {
        M::decode(b).map_or_else(|_| "error\n".to_owned(), |m| pretty(&m))
    }
    match root {
        Root::StateV2 => p::<task::StateResponse>(bytes),
        Root::StateV1 => p::<shim_v1::StateResponse>(bytes),
        Root::PidsV2 => p::<task::PidsResponse>(bytes),
        Root::PidsV1 => p::<shim_v1::ListPidsResponse>(bytes),
        Root::Stats => p::<task::StatsResponse>(bytes),
        Root::Connect => p::<task::ConnectResponse>(bytes),
    }
}
