//! A JSON document as a tree, without dependencies: the built-in shim reads an
//! OCI bundle's `config.json` and the OCI process specs clients send with it,
//! and `exec` edits the bundle's `process` before sending it. serde_json did
//! this before at several times the code size (cli/README.md).
//!
//! The parser is strict RFC 8259 over UTF-8 bytes: no comments, no trailing
//! commas, no leading zeros, no NaN, no BOM; `\u` escapes must pair
//! surrogates. Peer input is bounded: nesting deeper than [`MAX_DEPTH`] is a
//! typed error (the parser keeps its own stack, so a hostile `[[[[…` never
//! reaches the thread's), and a number too large for an `f64` is an error
//! rather than infinity. Objects keep their members in input order,
//! duplicates included; [`Value::get`] answers the first.

use std::fmt;

/// Containers nested deeper than this are refused by [`Value::parse`].
pub(crate) const MAX_DEPTH: usize = 128;

/// JavaScript's `MAX_SAFE_INTEGER`, 2^53 − 1: an integral `f64` up to this
/// magnitude was read from exactly that number (2^53 itself is also what
/// `9007199254740993` rounds to).
const MAX_EXACT: f64 = 9_007_199_254_740_991.0;

/// A JSON value. Numbers are `f64`, as in JavaScript; see [`Value::as_u64`]
/// for reading integers back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Self>),
    /// Members in document order; duplicates are kept.
    Object(Vec<(String, Self)>),
}

/// Why [`Value::parse`] refused its input, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {what}")]
pub(crate) struct ParseError {
    /// Byte offset of the offending input.
    pub(crate) offset: usize,
    /// What was wrong there, in lower case.
    pub(crate) what: &'static str,
}

/// [`Value::set`] on something that is not an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON object")]
pub(crate) struct NotAnObject;

#[allow(dead_code, reason = "the accessors are for the built-in shim")]
impl Value {
    /// Parses one JSON document; whitespace may surround it, nothing else.
    ///
    /// # Errors
    /// [`ParseError`] with the byte offset of the first thing that is not
    /// RFC 8259 JSON, or of the container that nests deeper than
    /// [`MAX_DEPTH`].
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        Parser { bytes, pos: 0 }.document()
    }

    /// The first member named `key` of an object; `None` for a missing key
    /// or a value that is not an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Self> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// [`Value::get`], mutable.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Self> {
        match self {
            Self::Object(members) => members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Replaces the first member named `key` of an object, or appends one.
    ///
    /// # Errors
    /// [`NotAnObject`] (and nothing changes) if `self` is not an object.
    pub(crate) fn set(&mut self, key: &str, value: Self) -> Result<(), NotAnObject> {
        let Self::Object(members) = self else {
            return Err(NotAnObject);
        };
        match members.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => members.push((key.to_owned(), value)),
        }
        Ok(())
    }

    /// Removes every member named `key` of an object and returns the first;
    /// `None` if there was none or `self` is not an object.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Self> {
        let Self::Object(members) = self else {
            return None;
        };
        let mut first = None;
        let mut i = 0;
        while i < members.len() {
            if members[i].0 == key {
                let (_, v) = members.remove(i);
                first.get_or_insert(v);
            } else {
                i += 1;
            }
        }
        first
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Self]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&[(String, Self)]> {
        match self {
            Self::Object(m) => Some(m),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative integer below 2^53, where the `f64` is exactly the
    /// number written; `None` for fractions, negatives and larger numbers
    /// (which parsing may have rounded: `18446744073709551615` reads as
    /// 2^64, so a u64 "unlimited" is `None` here).
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "integral and within 0..2^53, checked just before"
            )]
            Self::Number(n) if n.fract() == 0.0 && (0.0..=MAX_EXACT).contains(n) => Some(*n as u64),
            _ => None,
        }
    }

    /// An integer of magnitude below 2^53 (see [`Value::as_u64`]).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "integral and of magnitude below 2^53, checked just before"
            )]
            Self::Number(n) if n.fract() == 0.0 && (-MAX_EXACT..=MAX_EXACT).contains(n) => {
                Some(*n as i64)
            }
            _ => None,
        }
    }

    /// Appends the value without any whitespace. Integral numbers below
    /// 2^63 print as exact integers (`1`, not `1.0`) so that Go reads them
    /// into integer fields; others print in the shortest form that reads
    /// back as the same `f64`. A non-finite number (only constructible,
    /// never parsed) prints as `null`, as JavaScript does.
    pub(crate) fn write_compact(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(n) => write_number(*n, out),
            Self::String(s) => write_string(s, out),
            Self::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_compact(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_compact(out);
                }
                out.push('}');
            }
        }
    }
}

/// Compact JSON (see [`Value::write_compact`]).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_compact(&mut s);
        f.write_str(&s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Self::Number(f64::from(n))
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Self::Number(f64::from(n))
    }
}

impl From<Vec<Self>> for Value {
    fn from(items: Vec<Self>) -> Self {
        Self::Array(items)
    }
}

fn write_number(n: f64, out: &mut String) {
    use fmt::Write as _;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.fract() == 0.0 && (-TWO_63..TWO_63).contains(&n) {
        // The exact integer, so Go reads it into an integer field.
        #[allow(clippy::cast_possible_truncation, reason = "integral, below 2^63")]
        let i = n as i64;
        let _ = write!(out, "{i}");
    } else if n.is_finite() {
        // Shortest round-trip form, with an exponent for large and small
        // magnitudes (`0.5`, `1e-7`, `1.8446744073709552e+19`).
        out.push_str(zmij::Buffer::new().format_finite(n));
    } else {
        out.push_str("null");
    }
}

pub(super) fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 15]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A container being filled while the parser reads its members.
enum Open {
    Array(Vec<Value>),
    /// Members so far and the key of the member being read.
    Object(Vec<(String, Value)>, String),
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> ParseError {
        ParseError {
            offset: self.pos,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// The whole document, with an explicit stack of open containers so
    /// that depth costs heap (bounded by [`MAX_DEPTH`]), never call stack.
    fn document(mut self) -> Result<Value, ParseError> {
        let mut stack: Vec<Open> = Vec::new();
        'value: loop {
            self.skip_ws();
            let mut v = match self.peek() {
                None => return Err(self.err("unexpected end of input")),
                Some(open @ (b'[' | b'{')) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.err("nested deeper than 128"));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    if open == b'[' {
                        if self.eat(b']') {
                            Value::Array(Vec::new())
                        } else {
                            stack.push(Open::Array(Vec::new()));
                            continue 'value;
                        }
                    } else if self.eat(b'}') {
                        Value::Object(Vec::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Open::Object(Vec::new(), key));
                        continue 'value;
                    }
                }
                Some(b'"') => Value::String(self.string()?),
                Some(b't') => self.literal("true", Value::Bool(true))?,
                Some(b'f') => self.literal("false", Value::Bool(false))?,
                Some(b'n') => self.literal("null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
                Some(_) => return Err(self.err("expected a value")),
            };
            // `v` is complete: hand it to its container, closing containers
            // for as long as their closing bracket follows.
            loop {
                self.skip_ws();
                match stack.pop() {
                    None => {
                        return if self.pos == self.bytes.len() {
                            Ok(v)
                        } else {
                            Err(self.err("trailing characters after the value"))
                        };
                    }
                    Some(Open::Array(mut items)) => {
                        items.push(v);
                        if self.eat(b',') {
                            stack.push(Open::Array(items));
                            continue 'value;
                        }
                        if !self.eat(b']') {
                            return Err(self.err("expected ',' or ']'"));
                        }
                        v = Value::Array(items);
                    }
                    Some(Open::Object(mut members, key)) => {
                        members.push((key, v));
                        if self.eat(b',') {
                            self.skip_ws();
                            let key = self.key()?;
                            stack.push(Open::Object(members, key));
                            continue 'value;
                        }
                        if !self.eat(b'}') {
                            return Err(self.err("expected ',' or '}'"));
                        }
                        v = Value::Object(members);
                    }
                }
            }
        }
    }

    /// A member's key and its colon.
    fn key(&mut self) -> Result<String, ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string key"));
        }
        let key = self.string()?;
        self.skip_ws();
        if !self.eat(b':') {
            return Err(self.err("expected ':'"));
        }
        Ok(key)
    }

    fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expected a digit")),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.err("expected a digit after '.'"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        super::number::parse(&self.bytes[start..self.pos]).ok_or(ParseError {
            offset: start,
            what: "number out of range",
        })
    }

    /// A string starting at its opening quote.
    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.flush(run, &mut out)?;
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.flush(run, &mut out)?;
                    self.escape(&mut out)?;
                    run = self.pos;
                }
                Some(0..=0x1f) => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Appends the raw bytes `run..pos` of a string, which must be UTF-8.
    /// A run always ends before an ASCII `"` or `\`, which can never be
    /// inside a multi-byte sequence, so runs are checked independently.
    fn flush(&self, run: usize, out: &mut String) -> Result<(), ParseError> {
        match std::str::from_utf8(&self.bytes[run..self.pos]) {
            Ok(s) => {
                out.push_str(s);
                Ok(())
            }
            Err(e) => Err(ParseError {
                offset: run + e.valid_up_to(),
                what: "invalid UTF-8",
            }),
        }
    }

    /// One escape starting at its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
        let at = self.pos;
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let lone = ParseError {
                    offset: at,
                    what: "lone surrogate in \\u escape",
                };
                let code = match unit {
                    0xD800..=0xDBFF => {
                        if !(self.eat(b'\\') && self.eat(b'u')) {
                            return Err(lone);
                        }
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(lone);
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(lone),
                    _ => unit,
                };
                out.push(char::from_u32(code).ok_or(lone)?);
                return Ok(());
            }
            None => return Err(self.err("unterminated string")),
            Some(_) => return Err(self.err("invalid escape")),
        };
        self.pos += 1;
        out.push(c);
        Ok(())
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, ParseError> {
        let mut unit = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.err("expected four hex digits after \\u")),
            };
            unit = unit << 4 | u32::from(d);
            self.pos += 1;
        }
        Ok(unit)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(s: &str) -> Result<Value, ParseError> {
        Value::parse(s.as_bytes())
    }

    fn err_at(s: &[u8]) -> (usize, &'static str) {
        let e = Value::parse(s).unwrap_err();
        (e.offset, e.what)
    }

    #[test]
    fn parses_a_config_json_process() {
        let doc = br#" {"process": {"terminal": false, "user": {"uid": 0, "gid": 0,
            "additionalGids": [10]}, "args": ["sh", "-c", "echo \"hi\"\n"],
            "env": ["PATH=/bin"], "cwd": "/", "oomScoreAdj": -1000,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true, "x": null, "f": 0.5e1}} "#;
        let v = Value::parse(doc).unwrap();
        let p = v.get("process").unwrap();
        assert_eq!(p.get("terminal").unwrap().as_bool(), Some(false));
        assert_eq!(p.get("user").unwrap().get("uid").unwrap().as_u64(), Some(0));
        let args: Vec<&str> = p
            .get("args")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, ["sh", "-c", "echo \"hi\"\n"]);
        assert_eq!(p.get("oomScoreAdj").unwrap().as_i64(), Some(-1000));
        assert_eq!(p.get("oomScoreAdj").unwrap().as_u64(), None);
        assert_eq!(p.get("x"), Some(&Value::Null));
        assert_eq!(p.get("f"), Some(&Value::Number(5.0)));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.as_object().unwrap().len(), 10);
        assert_eq!(Value::Null.get("x"), None);
    }

    #[test]
    fn first_duplicate_wins_and_set_replaces_or_appends() {
        let mut v = parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(v.get("a").unwrap().as_u64(), Some(1));
        v.set("a", Value::from("x")).unwrap();
        v.set("b", Value::Array(vec![true.into(), 7u32.into()]))
            .unwrap();
        assert_eq!(v.to_string(), r#"{"a":"x","a":2,"b":[true,7]}"#);
        *v.get_mut("b").unwrap() = Value::Null;
        assert_eq!(v.remove("a"), Some(Value::from("x")));
        assert_eq!(v.to_string(), r#"{"b":null}"#);
        assert_eq!(v.remove("a"), None);
        assert_eq!(Value::Null.set("a", Value::Null), Err(NotAnObject));
        assert!(Value::Array(vec![]).get_mut("a").is_none());
    }

    #[test]
    fn numbers() {
        for (text, n) in [
            ("0", 0.0),
            ("-0", -0.0),
            ("12", 12.0),
            ("-3.25", -3.25),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("25e-1", 2.5),
            ("1e-400", 0.0),
            ("1.7976931348623157e308", f64::MAX),
        ] {
            assert_eq!(parse(text).unwrap(), Value::Number(n), "{text}");
        }
        for text in [
            "01", "-", "+1", ".5", "1.", "1e", "1e+", "0x10", "Infinity", "NaN", "--1",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert_eq!(err_at(b"[1e400]"), (1, "number out of range"));
        assert_eq!(err_at(b"-1e309"), (0, "number out of range"));
        let long = "9".repeat(400);
        assert_eq!(err_at(long.as_bytes()), (0, "number out of range"));
        let long = format!("0.{}", "1".repeat(10_000));
        assert!(parse(&long).is_ok());

        // Integers: exact below 2^53 only.
        let max = (1 << 53) - 1;
        assert_eq!(parse("9007199254740991").unwrap().as_u64(), Some(max));
        assert_eq!(parse("9007199254740992").unwrap().as_u64(), None);
        assert_eq!(parse("9007199254740993").unwrap().as_u64(), None);
        assert_eq!(parse("18446744073709551615").unwrap().as_u64(), None);
        assert_eq!(
            parse("-9007199254740991").unwrap().as_i64(),
            Some(-(max as i64))
        );
        assert_eq!(parse("-9007199254740992").unwrap().as_i64(), None);
        assert_eq!(parse("1.5").unwrap().as_u64(), None);
        assert_eq!(parse("1.0").unwrap().as_u64(), Some(1));
        assert_eq!(parse("-0").unwrap().as_u64(), Some(0));
        assert_eq!(parse("\"1\"").unwrap().as_u64(), None);

        // Written back: integral without ".0", Go-readable below 2^63.
        for (n, text) in [
            (0.0, "0"),
            (1.0, "1"),
            (-1000.0, "-1000"),
            (4_294_967_295.0, "4294967295"),
            (1_152_921_504_606_846_976.0, "1152921504606846976"),
            (-9_223_372_036_854_775_808.0, "-9223372036854775808"),
            (18_446_744_073_709_551_616.0, "1.8446744073709552e+19"),
            (1e21, "1e+21"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (1e-7, "1e-7"),
            (1e300, "1e+300"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ] {
            assert_eq!(Value::Number(n).to_string(), text);
        }
    }

    #[test]
    fn strings_and_escapes() {
        let v = parse(r#""a\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00é😀""#).unwrap();
        assert_eq!(v.as_str(), Some("a\"\\/\u{8}\u{c}\n\r\tAé€😀é😀"));
        assert_eq!(
            Value::from("q\"b\\n\n\u{1}\u{1f}\u{7f}é😀").to_string(),
            "\"q\\\"b\\\\n\\n\\u0001\\u001f\u{7f}é😀\""
        );
        // Lone surrogates, in either order, at the end, or half-paired.
        for s in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\n""#,
            r#""\ud800\u0041""#,
            r#""\ude00\ud83d""#,
        ] {
            assert_eq!(
                err_at(s.as_bytes()),
                (1, "lone surrogate in \\u escape"),
                "{s}"
            );
        }
        assert_eq!(err_at(br#""\u12""#).1, "expected four hex digits after \\u");
        assert_eq!(err_at(br#""\x""#), (2, "invalid escape"));
        assert_eq!(err_at(b"\"a\nb\""), (2, "control character in string"));
        assert_eq!(err_at(b"\"ab\xff\""), (3, "invalid UTF-8"));
        assert_eq!(err_at(b"\"\\n\xc3\""), (3, "invalid UTF-8"));
        assert_eq!(err_at(b"\"\xed\xa0\x80\""), (1, "invalid UTF-8")); // UTF-8 surrogate
        assert_eq!(err_at(b"\"abc"), (4, "unterminated string"));
        assert_eq!(err_at(b"\"abc\\"), (5, "unterminated string"));
    }

    #[test]
    fn structure_errors() {
        assert_eq!(err_at(b""), (0, "unexpected end of input"));
        assert_eq!(err_at(b"  "), (2, "unexpected end of input"));
        assert_eq!(err_at(b"[1,]"), (3, "expected a value"));
        assert_eq!(err_at(b"[1 2]"), (3, "expected ',' or ']'"));
        assert_eq!(err_at(b"{\"a\" 1}"), (5, "expected ':'"));
        assert_eq!(err_at(b"{\"a\":1,}"), (7, "expected a string key"));
        assert_eq!(err_at(b"{a:1}"), (1, "expected a string key"));
        assert_eq!(err_at(b"{\"a\":1]"), (6, "expected ',' or '}'"));
        assert_eq!(err_at(b"[1] x"), (4, "trailing characters after the value"));
        assert_eq!(err_at(b"1 2"), (2, "trailing characters after the value"));
        assert_eq!(err_at(b"tru"), (0, "expected a value"));
        assert_eq!(err_at(b"nul"), (0, "expected a value"));
        assert_eq!(err_at(b"\xef\xbb\xbf{}"), (0, "expected a value"));
        assert_eq!(err_at(b"// c\n{}"), (0, "expected a value"));
        assert_eq!(err_at(b"{\"a\":"), (5, "unexpected end of input"));
        assert_eq!(err_at(b"[[1,[2"), (6, "expected ',' or ']'"));
        assert!(parse(" \t\r\n[ ] \n").is_ok());
        assert!(parse("{ \"a\" : [ { } , [ ] , \"\" ] }").is_ok());
    }

    #[test]
    fn truncated_input_is_an_error_at_every_cut() {
        let doc = r#"{"a":[1,-2.5e3,true,false,null,"x\u00e9\ud83d\ude00"],"b":{"c":{}}}"#;
        assert!(parse(doc).is_ok());
        for cut in 0..doc.len() {
            assert!(
                Value::parse(&doc.as_bytes()[..cut]).is_err(),
                "{:?}",
                &doc[..cut]
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            err_at(deep.as_bytes()),
            (MAX_DEPTH, "nested deeper than 128")
        );
        let objects = "{\"a\":".repeat(MAX_DEPTH) + "{";
        assert_eq!(err_at(objects.as_bytes()).1, "nested deeper than 128");
        // Far deeper than any stack would take: still a typed error.
        let huge = "[".repeat(10_000_000);
        assert_eq!(err_at(huge.as_bytes()).1, "nested deeper than 128");
        let mixed = "[{\"k\":".repeat(1_000_000);
        assert_eq!(err_at(mixed.as_bytes()).1, "nested deeper than 128");
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_filter("finite", |n| n.is_finite())
                .prop_map(Value::Number),
            any::<i64>().prop_map(|n| Value::Number(n as f64)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..8).prop_map(Value::Object),
            ]
        })
    }

    proptest! {
        #[test]
        fn written_values_parse_back_equal(v in value()) {
            let text = v.to_string();
            prop_assert_eq!(Value::parse(text.as_bytes()), Ok(v), "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Value::parse(&bytes);
        }

        #[test]
        fn json_like_bytes_never_panic(
            bytes in prop::collection::vec(
                prop::sample::select(b"[]{}\",:\\u0123456789abcdefABCDEF-+.eEtrunlsx \n\xc3\xa9\xed".to_vec()),
                0..64,
            )
        ) {
            if let Ok(v) = Value::parse(&bytes) {
                // Whatever parses writes out as something that parses equal.
                prop_assert_eq!(Value::parse(v.to_string().as_bytes()), Ok(v));
            }
        }
    }
}
