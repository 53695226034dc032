//! A response's wire bytes → the JSON `ctr shim` prints for it (Go's
//! encoding/json of the gogo struct): fields in declaration order by their
//! proto names, zero values left out (`omitempty`), enums as numbers,
//! timestamps in RFC 3339, known `Any` payloads decoded and others base64.
//!
//! Decoding follows protobuf's rules as prost applies them, so that a
//! response prints exactly when the typed stub would have decoded it: the
//! last value of a scalar wins, a message given twice is merged, repeated
//! numbers may be packed or not, unknown fields are skipped, and everything
//! is checked (UTF-8, wire types, lengths, depth) before a byte is printed.

use crate::schema::{self, Kind, MessageId};
use crate::wire::{RECURSION_LIMIT, Reader, WireError, WireType};
use crate::wkt;

use super::Pretty;

/// What a message is: one from the table, or a well-known type whose two
/// fields protobuf fixes.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Table(MessageId),
    /// `type_url = 1` (string), `value = 2` (bytes).
    Any,
    /// `seconds = 1` (int64), `nanos = 2` (int32).
    Timestamp,
}

/// How one field is read.
#[derive(Debug, Clone, Copy)]
struct Spec {
    /// Position among the message's fields.
    index: usize,
    kind: Kind,
    repeated: bool,
    /// The shape of a message-typed field.
    shape: Shape,
}

impl Shape {
    fn len(self) -> usize {
        match self {
            Self::Table(id) => id.fields().len(),
            Self::Any | Self::Timestamp => 2,
        }
    }

    fn spec(self, number: u32) -> Option<Spec> {
        let fixed = |index, kind| Spec {
            index,
            kind,
            repeated: false,
            shape: self,
        };
        match (self, number) {
            (Self::Table(id), _) => id.field(number).map(|(index, f)| Spec {
                index,
                kind: f.kind(),
                repeated: f.is_repeated(),
                shape: match f.kind() {
                    Kind::Any => Self::Any,
                    Kind::Timestamp => Self::Timestamp,
                    _ => Self::Table(f.message()),
                },
            }),
            (Self::Any, 1) => Some(fixed(0, Kind::String)),
            (Self::Any, 2) => Some(fixed(1, Kind::Bytes)),
            (Self::Timestamp, 1) => Some(fixed(0, Kind::I64)),
            (Self::Timestamp, 2) => Some(fixed(1, Kind::I32)),
            _ => None,
        }
    }
}

/// One decoded value. Numbers keep their raw varint or bits; the field's
/// kind says how to read them.
#[derive(Debug)]
enum Val<'a> {
    Num(u64),
    Str(&'a str),
    Bytes(&'a [u8]),
    Msg(Node<'a>),
}

/// A decoded message: each field's values (by position), in wire order.
#[derive(Debug)]
struct Node<'a> {
    shape: Shape,
    values: Vec<Vec<Val<'a>>>,
}

/// Prints the message `id` encoded in `bytes` with a 4-space indent and a
/// trailing newline.
///
/// # Errors
/// The first thing that makes `bytes` not a valid `id`.
pub(crate) fn to_pretty(id: MessageId, bytes: &[u8]) -> Result<String, WireError> {
    let node = decode(Shape::Table(id), &[bytes], RECURSION_LIMIT)?;
    let mut out = Pretty::new();
    print(&node, &mut out);
    Ok(out.finish())
}

/// The wire type a field's values come in (repeated numbers may also come
/// packed, as `Len`).
fn wire_type(kind: Kind) -> WireType {
    match kind {
        Kind::Bool | Kind::U32 | Kind::U64 | Kind::I32 | Kind::I64 => WireType::Varint,
        Kind::F64 => WireType::Fixed64,
        Kind::String | Kind::Bytes | Kind::Message | Kind::Any | Kind::Timestamp => WireType::Len,
    }
}

/// Decodes the concatenation of `chunks` (which is how protobuf merges a
/// message that occurs more than once); `budget` is what is left of the
/// recursion limit.
fn decode<'a>(shape: Shape, chunks: &[&'a [u8]], budget: u32) -> Result<Node<'a>, WireError> {
    let mut values: Vec<Vec<Val<'a>>> = (0..shape.len()).map(|_| Vec::new()).collect();
    // Occurrences of each singular message field, merged after the scan.
    let mut pending: Vec<(Spec, Vec<&'a [u8]>)> = Vec::new();
    for chunk in chunks {
        let mut r = Reader::new(chunk);
        while !r.is_empty() {
            let (number, wire) = r.key()?;
            let Some(spec) = shape.spec(number) else {
                r.skip(wire, number, budget)?;
                continue;
            };
            let list = values
                .get_mut(spec.index)
                .ok_or_else(|| r.error("field out of the table"))?;
            if spec.repeated && wire == WireType::Len && wire_type(spec.kind) != WireType::Len {
                // Packed numbers.
                let mut packed = Reader::new(r.len_delimited()?);
                while !packed.is_empty() {
                    list.push(number_value(spec.kind, &mut packed)?);
                }
                continue;
            }
            if wire != wire_type(spec.kind) {
                return Err(r.error("wrong wire type"));
            }
            match spec.kind {
                Kind::String => {
                    let at = r.clone();
                    let s = std::str::from_utf8(r.len_delimited()?)
                        .map_err(|_| at.error("string is not UTF-8"))?;
                    list.push(Val::Str(s));
                }
                Kind::Bytes => list.push(Val::Bytes(r.len_delimited()?)),
                Kind::Message | Kind::Any | Kind::Timestamp => {
                    let next = budget
                        .checked_sub(1)
                        .ok_or_else(|| r.error("nested too deep"))?;
                    let bytes = r.len_delimited()?;
                    if spec.repeated {
                        list.push(Val::Msg(decode(spec.shape, &[bytes], next)?));
                    } else {
                        match pending.iter_mut().find(|(s, _)| s.index == spec.index) {
                            Some((_, chunks)) => chunks.push(bytes),
                            None => pending.push((spec, vec![bytes])),
                        }
                    }
                }
                _ => list.push(number_value(spec.kind, &mut r)?),
            }
        }
    }
    for (spec, chunks) in pending {
        // `budget` is at least 1 here: a pending chunk passed the check.
        let node = decode(spec.shape, &chunks, budget.saturating_sub(1))?;
        if let Some(list) = values.get_mut(spec.index) {
            list.push(Val::Msg(node));
        }
    }
    Ok(Node { shape, values })
}

fn number_value<'a>(kind: Kind, r: &mut Reader<'a>) -> Result<Val<'a>, WireError> {
    Ok(Val::Num(match kind {
        Kind::F64 => r.fixed64()?,
        _ => r.varint()?,
    }))
}

/// The last value of field `index` (protobuf: the last one wins).
fn last<'v, 'a>(node: &'v Node<'a>, index: usize) -> Option<&'v Val<'a>> {
    node.values.get(index).and_then(|v| v.last())
}

/// Whether Go's `omitempty` (and the former serde output) leaves a
/// singular value out: zero numbers, `false`, "" (a message is never left
/// out once present).
#[allow(
    clippy::cast_possible_truncation,
    reason = "protobuf's int32/uint32 decoding truncates"
)]
fn is_zero(kind: Kind, v: &Val<'_>) -> bool {
    match (kind, v) {
        (Kind::U32 | Kind::I32, Val::Num(n)) => *n as u32 == 0,
        (Kind::F64, Val::Num(n)) => f64::from_bits(*n) == 0.0,
        (_, Val::Num(n)) => *n == 0,
        (_, Val::Str(s)) => s.is_empty(),
        (_, Val::Bytes(b)) => b.is_empty(),
        (_, Val::Msg(_)) => false,
    }
}

fn print(node: &Node<'_>, out: &mut Pretty) {
    let Shape::Table(id) = node.shape else {
        return print_wkt(node, out);
    };
    out.open('{');
    for (f, values) in id.fields().iter().zip(&node.values) {
        if f.is_repeated() {
            if values.is_empty() {
                continue;
            }
            out.key(f.name());
            out.open('[');
            for v in values {
                out.element();
                print_value(f.kind(), v, out);
            }
            out.close(']');
        } else if let Some(v) = values.last().filter(|v| !is_zero(f.kind(), v)) {
            out.key(f.name());
            print_value(f.kind(), v, out);
        }
    }
    out.close('}');
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "protobuf's varint decoding of int32/uint32/int64 truncates and wraps"
)]
fn print_value(kind: Kind, v: &Val<'_>, out: &mut Pretty) {
    match (kind, v) {
        (Kind::Bool, Val::Num(n)) => out.bool(*n != 0),
        (Kind::U32, Val::Num(n)) => out.uint(u64::from(*n as u32)),
        (Kind::I32, Val::Num(n)) => out.int(i64::from(*n as i32)),
        (Kind::I64, Val::Num(n)) => out.int(*n as i64),
        (Kind::F64, Val::Num(n)) => out.float(f64::from_bits(*n)),
        (_, Val::Num(n)) => out.uint(*n),
        (_, Val::Str(s)) => out.string(s),
        (_, Val::Bytes(b)) => out.string(&wkt::base64(b)),
        (_, Val::Msg(m)) => print(m, out),
    }
}

/// A `Timestamp` as an RFC 3339 string; an `Any` as `{"type_url": …,
/// "value": …}`, both always present, the payload decoded when its type is
/// known and it decodes, else base64.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "protobuf's varint decoding of int32/int64 truncates and wraps"
)]
fn print_wkt(node: &Node<'_>, out: &mut Pretty) {
    let num = |i| match last(node, i) {
        Some(Val::Num(n)) => *n,
        _ => 0,
    };
    if let Shape::Timestamp = node.shape {
        let t = wkt::Timestamp {
            seconds: num(0) as i64,
            nanos: num(1) as i32,
        };
        return out.string(&t.rfc3339());
    }
    let type_url = match last(node, 0) {
        Some(Val::Str(s)) => s,
        _ => "",
    };
    let value = match last(node, 1) {
        Some(Val::Bytes(b)) => b,
        _ => &[][..],
    };
    out.open('{');
    out.key("type_url");
    out.string(type_url);
    out.key("value");
    let decoded = schema::any_type(type_url)
        .and_then(|id| decode(Shape::Table(id), &[value], RECURSION_LIMIT).ok());
    match decoded {
        Some(node) => print(&node, out),
        None => out.string(&wkt::base64(value)),
    }
    out.close('}');
}
