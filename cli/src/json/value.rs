//! A JSON document as a tree, without dependencies: the built-in shim reads an
//! OCI bundle's `config.json` and the OCI process specs clients send with it,
//! and `exec` edits the bundle's `process` before sending it. serde_json did
//! this before at several times the code size (cli/README.md).
//!
//! The parser is strict RFC 8259 over UTF-8 bytes: no comments, no trailing
//! commas, no leading zeros, no NaN, no BOM; `\u` escapes must pair
//! surrogates. Peer input is bounded: nesting deeper than [`MAX_DEPTH`] is a
//! typed error (the parser keeps its own stack, so a hostile `[[[[…` never
//! reaches the thread's). Numbers are kept as written ([`Number`]). Objects
//! keep their members in input order, duplicates included; [`Value::get`]
//! answers the first.

use std::fmt;

/// Containers nested deeper than this are refused by [`Value::parse`].
pub(crate) const MAX_DEPTH: usize = 128;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Self>),
    /// Members in document order; duplicates are kept.
    Object(Vec<(String, Self)>),
}

/// A JSON number, kept as the text it was written as (which the parser
/// checked against JSON's grammar). What `exec` and the shim pass on goes
/// back out exactly: an `f64` would turn an rlimit's u64 "unlimited",
/// `18446744073709551615`, into `1.8446744073709552e+19`, which Go then
/// refuses to read into a `uint64`. It also needs no float code at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Number(String);

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

    /// The number, if it is written as an integer (no fraction or
    /// exponent, as Go's `encoding/json` wants for an integer field) that
    /// fits a `u64`.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(n) => n.0.parse().ok(),
            _ => None,
        }
    }

    /// [`Value::as_u64`] for an `i64`.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Number(n) => n.0.parse().ok(),
            _ => None,
        }
    }

    /// Appends the value without any whitespace (numbers as they were
    /// written).
    pub(crate) fn write_compact(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(n) => out.push_str(&n.0),
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
        Self::Number(Number(n.to_string()))
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Self::Number(Number(n.to_string()))
    }
}

impl From<Vec<Self>> for Value {
    fn from(items: Vec<Self>) -> Self {
        Self::Array(items)
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
    fn number(&mut self) -> Result<Number, ParseError> {
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
        let text = &self.bytes[start..self.pos];
        // Only ASCII digits, signs, '.' and 'e' got here.
        Ok(Number(text.iter().map(|&b| char::from(b)).collect()))
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
mod tests;
