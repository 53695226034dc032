//! Writing indented JSON exactly as Go's `json.MarshalIndent(v, "", "    ")`
//! and serde_json's `PrettyFormatter` with a 4-space indent do (the two
//! agree on everything shimctl prints): `"key": value`, one member or
//! element a line, `{}` and `[]` when empty, and floats in the shortest
//! form that reads back, laid out as serde_json lays them out.

use std::fmt::Write as _;

/// An indented JSON document being written; callers pair every `open` with
/// a `close`, and precede every member with [`Pretty::key`] and every
/// array element with [`Pretty::element`].
#[derive(Debug, Default)]
pub(crate) struct Pretty {
    out: String,
    depth: usize,
    /// Nothing written yet in the innermost open object or array.
    empty: bool,
}

impl Pretty {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The document with a trailing newline.
    pub(crate) fn finish(mut self) -> String {
        self.out.push('\n');
        self.out
    }

    fn newline(&mut self) {
        if !self.empty {
            self.out.push(',');
        }
        self.out.push('\n');
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
        self.empty = false;
    }

    /// Opens an object (`{`) or array (`[`).
    pub(crate) fn open(&mut self, bracket: char) {
        self.out.push(bracket);
        self.depth += 1;
        self.empty = true;
    }

    /// Closes the innermost object (`}`) or array (`]`).
    pub(crate) fn close(&mut self, bracket: char) {
        self.depth = self.depth.saturating_sub(1);
        if !self.empty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("    ");
            }
        }
        self.out.push(bracket);
        self.empty = false;
    }

    /// Starts an object member: `"key": `.
    pub(crate) fn key(&mut self, key: &str) {
        self.newline();
        super::value::write_string(key, &mut self.out);
        self.out.push_str(": ");
    }

    /// Starts an array element.
    pub(crate) fn element(&mut self) {
        self.newline();
    }

    pub(crate) fn string(&mut self, s: &str) {
        super::value::write_string(s, &mut self.out);
    }

    pub(crate) fn bool(&mut self, b: bool) {
        self.out.push_str(if b { "true" } else { "false" });
    }

    /// A signed integer (narrower ones widen with `i64::from`).
    pub(crate) fn int(&mut self, n: i64) {
        let _ = write!(self.out, "{n}");
    }

    /// An unsigned integer (narrower ones widen with `u64::from`).
    pub(crate) fn uint(&mut self, n: u64) {
        let _ = write!(self.out, "{n}");
    }

    /// A float as serde_json writes one (it uses zmij too): shortest
    /// round-trip digits, plain with a fraction when the decimal exponent
    /// is in -5..=15 (`100.0`, `0.25`), else `1.5e-7` / `1e+16`; `null`
    /// for NaN and infinities.
    pub(crate) fn float(&mut self, v: f64) {
        if v.is_finite() {
            self.out.push_str(zmij::Buffer::new().format_finite(v));
        } else {
            self.out.push_str("null");
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn float(v: f64) -> String {
        let mut p = Pretty::new();
        p.float(v);
        p.out
    }

    #[test]
    fn layout() {
        let mut p = Pretty::new();
        p.open('{');
        p.key("a");
        p.uint(1);
        p.key("list");
        p.open('[');
        p.element();
        p.string("x\"\n");
        p.element();
        p.open('{');
        p.close('}');
        p.close(']');
        p.key("empty");
        p.open('[');
        p.close(']');
        p.key("b");
        p.bool(false);
        p.close('}');
        assert_eq!(
            p.finish(),
            "{\n    \"a\": 1,\n    \"list\": [\n        \"x\\\"\\n\",\n        {}\n    ],\n    \"empty\": [],\n    \"b\": false\n}\n"
        );
    }

    #[test]
    fn floats_as_serde_json() {
        for v in [
            0.0,
            -0.0,
            1.0,
            0.25,
            100.0,
            12.34,
            1e-7,
            1e16,
            1e15,
            123_456_789.125,
            5e-324,
            0.00001,
            0.000001,
            -1.5e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            1.0 / 3.0,
            9_007_199_254_740_993.0,
        ] {
            assert_eq!(float(v), serde_json::to_string(&v).unwrap(), "{v:e}");
        }
        assert_eq!(float(f64::NAN), "null");
        assert_eq!(float(f64::NEG_INFINITY), "null");
    }

    proptest! {
        #[test]
        fn any_float_as_serde_json(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(float(v), serde_json::to_string(&v).unwrap());
        }

        #[test]
        fn decimal_floats_as_serde_json(m in -1_000_000i64..1_000_000, e in -30i32..30) {
            let v = m as f64 * 10f64.powi(e);
            prop_assert_eq!(float(v), serde_json::to_string(&v).unwrap());
        }
    }
}
