//! JSON number text → `f64`, correctly rounded (to nearest, ties to even),
//! in about a kilobyte of code: core's `str::parse::<f64>` brings 16 KiB
//! into a static binary, mostly a 10 KiB table of powers of five.
//!
//! Short numbers (at most 15 digits, decimal exponent within ±22: every
//! number an OCI document holds) take Clinger's fast path, one exact
//! multiplication or division. Anything else is divided out exactly with a
//! small big integer. Only the first 800 significant digits are kept, with
//! a flag for a non-zero tail: a halfway point between two doubles has at
//! most 767, so the rounding is the same, and a hostile megabyte of digits
//! costs one pass over the text.

/// Significant digits kept.
const MAX_DIGITS: usize = 800;

/// The powers of ten an `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The value of `text`, which must match JSON's number grammar (the parser
/// checked it); `None` when it is too large for an `f64`.
pub(super) fn parse(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = parse_magnitude(rest)?;
    Some(if negative { -magnitude } else { magnitude })
}

fn parse_magnitude(text: &[u8]) -> Option<f64> {
    // Significant digits (leading zeros dropped) and the decimal exponent
    // of the last one kept: value = digits × 10^exp10.
    let mut digits: Vec<u8> = Vec::new();
    let mut tail = false;
    let mut exp10: i64 = 0;
    let mut fraction = false;
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        match c {
            b'0'..=b'9' => {
                if digits.is_empty() && c == b'0' {
                    // A leading zero only moves the point.
                } else if digits.len() < MAX_DIGITS {
                    digits.push(c - b'0');
                } else {
                    tail |= c != b'0';
                    exp10 += 1;
                }
                if fraction {
                    exp10 -= 1;
                }
            }
            b'.' => fraction = true,
            _ => break,
        }
        i += 1;
    }
    if let Some(b'e' | b'E') = text.get(i) {
        let exp = text.get(i + 1..).unwrap_or_default();
        let (sign, exp) = match exp.split_first() {
            Some((b'-', e)) => (-1, e),
            Some((b'+', e)) => (1, e),
            _ => (1, exp),
        };
        // Saturating: 1e999999999999999999999 is simply out of range.
        let e = exp.iter().fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
        exp10 = exp10.saturating_add(sign * e);
    }
    if digits.is_empty() {
        return Some(0.0);
    }
    if tail {
        // Anything non-zero below the kept digits rounds like a final 1.
        digits.push(1);
        exp10 -= 1;
    } else {
        while digits.last() == Some(&0) {
            digits.pop();
            exp10 = exp10.saturating_add(1);
        }
    }
    let n = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // The leading digit's power of ten decides the easy extremes.
    let lead = exp10.saturating_add(n - 1);
    if lead > 309 {
        return None;
    }
    if lead < -325 {
        return Some(0.0);
    }
    if n <= 15 && (-22..=22).contains(&exp10) {
        let mut m = 0u64;
        for d in &digits {
            m = m * 10 + u64::from(*d);
        }
        #[allow(clippy::cast_precision_loss, reason = "below 10^15, exact")]
        let m = m as f64;
        let p = POW10[usize::try_from(exp10.unsigned_abs()).unwrap_or(0)];
        return Some(if exp10 < 0 { m / p } else { m * p });
    }
    // Within ±1200 here, so the casts below cannot truncate.
    let exp10 = i32::try_from(exp10).ok()?;
    slow(&digits, exp10)
}

/// `digits × 10^exp10` by exact division: numerator / denominator as big
/// integers, 66 quotient bits and a sticky bit, then rounded.
fn slow(digits: &[u8], exp10: i32) -> Option<f64> {
    let mut num = Big::default();
    for chunk in digits.chunks(9) {
        let mut v = 0u32;
        for d in chunk {
            v = v * 10 + u32::from(*d);
        }
        let scale = 10u32.pow(u32::try_from(chunk.len()).unwrap_or(0));
        num.mul_add(scale, v);
    }
    let mut den = Big::from(1);
    if exp10 >= 0 {
        num.mul_pow10(exp10.unsigned_abs());
    } else {
        den.mul_pow10(exp10.unsigned_abs());
    }
    // Scale so that the quotient has 65 or 66 bits: value = q × 2^-shift.
    let shift = 65 - (i64::from(num.bits()) - i64::from(den.bits()));
    if shift >= 0 {
        num.shl(u32::try_from(shift).unwrap_or(0));
    } else {
        den.shl(u32::try_from(-shift).unwrap_or(0));
    }
    let mut q = 0u128;
    den.shl(66);
    for bit in (0..=66).rev() {
        if num.cmp(&den) != std::cmp::Ordering::Less {
            num.sub(&den);
            q |= 1 << bit;
        }
        den.shr1();
    }
    let sticky = !num.is_zero();
    round(q, -shift, sticky)
}

/// Rounds `q × 2^exp2` (plus a little more if `sticky`) to an `f64`.
fn round(q: u128, exp2: i64, sticky: bool) -> Option<f64> {
    let len = i64::from(128 - q.leading_zeros());
    // Exponent of the leading bit, then of the last bit an f64 keeps there.
    let top = len - 1 + exp2;
    let lsb = (top - 52).max(-1074);
    let drop = lsb - exp2;
    let (mut mant, rest, half) = if drop <= 0 {
        (q << u32::try_from(-drop).ok()?, 0, 1)
    } else if drop > 127 {
        (0, q, u128::MAX)
    } else {
        let d = u32::try_from(drop).ok()?;
        (q >> d, q & ((1 << d) - 1), 1 << (d - 1))
    };
    if rest > half || (rest == half && drop > 0 && (sticky || mant & 1 == 1)) {
        mant += 1;
    }
    let mant = u64::try_from(mant).ok()?;
    #[allow(clippy::cast_precision_loss, reason = "at most 2^53, exact")]
    let value = mant as f64 * pow2(lsb)?;
    value.is_finite().then_some(value)
}

/// 2^k for k in -1074..=971 (the scale of an f64's last bit).
fn pow2(k: i64) -> Option<f64> {
    let bits = if k >= -1022 {
        u64::try_from(k + 1023).ok()? << 52
    } else {
        1u64 << u32::try_from(k + 1074).ok()?
    };
    Some(f64::from_bits(bits))
}

/// An unsigned big integer, 32-bit limbs, least significant first.
#[derive(Debug, Default, Clone)]
struct Big(Vec<u32>);

impl From<u32> for Big {
    fn from(v: u32) -> Self {
        Self(vec![v])
    }
}

impl Big {
    /// self = self × m + a
    fn mul_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut e: u32) {
        while e >= 9 {
            self.mul_add(1_000_000_000, 0);
            e -= 9;
        }
        self.mul_add(10u32.pow(e), 0);
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bits(&self) -> u32 {
        let limbs = self.limbs();
        let n = u32::try_from(limbs.len()).unwrap_or(0);
        match limbs.last() {
            Some(top) => n * 32 - top.leading_zeros(),
            None => 0,
        }
    }

    fn is_zero(&self) -> bool {
        self.limbs().is_empty()
    }

    fn shl(&mut self, bits: u32) {
        let (limbs, bits) = ((bits / 32) as usize, bits % 32);
        if bits > 0 {
            let mut carry = 0;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry > 0 {
                self.0.push(carry);
            }
        }
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }

    fn shr1(&mut self) {
        let mut carry = 0;
        for limb in self.0.iter_mut().rev() {
            let v = (*limb >> 1) | carry;
            carry = *limb << 31;
            *limb = v;
        }
        self.trim();
    }

    /// The limbs up to the most significant non-zero one.
    fn limbs(&self) -> &[u32] {
        let len = self.0.iter().rposition(|l| *l != 0).map_or(0, |i| i + 1);
        self.0.get(..len).unwrap_or_default()
    }

    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = (self.limbs(), other.limbs());
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }

    /// self -= other; `other` is not larger.
    fn sub(&mut self, other: &Self) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = (v + (borrow << 32)) as u32;
        }
        self.trim();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same(text: &str) {
        let want: f64 = text.parse().unwrap();
        let got = parse(text.as_bytes());
        if want.is_finite() {
            assert_eq!(got.map(f64::to_bits), Some(want.to_bits()), "{text}");
        } else {
            assert_eq!(got, None, "{text}");
        }
    }

    #[test]
    fn hard_cases_as_core() {
        for text in [
            "0",
            "-0",
            "0.0e7",
            "1",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "9007199254740995",
            "18446744073709551615",
            "1e23",
            "8.98846567431158e307",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "2.2250738585072011e-308",
            "2.2250738585072012e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-400",
            "1e400",
            "123456789012345678901234567890e-20",
            "0.000000000000000000000000000000000001",
            "7.3177701707893310e+15",
            "1e999999999999999999999999",
            "1e-999999999999999999999999",
            "2.225073858507201136057409796709131975934819546351645648e-308",
        ] {
            same(text);
        }
        // A halfway point written out in full, then nudged by a far tail.
        let half = format!("9007199254740993{}", "0".repeat(900));
        same(&half);
        same(&format!("{half}1"));
        let long = format!("0.{}1e-300", "0".repeat(1000));
        same(&long);
    }

    proptest! {
        #[test]
        fn any_double_written_shortest_reads_back(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let text = zmij::Buffer::new().format_finite(v).to_owned();
            prop_assert_eq!(parse(text.as_bytes()).map(f64::to_bits), Some(v.to_bits()), "{}", text);
        }

        #[test]
        fn decimal_text_as_core(
            int in "[1-9][0-9]{0,40}",
            frac in proptest::option::of("[0-9]{1,40}"),
            exp in proptest::option::of(-350i32..350),
        ) {
            let mut text = int;
            if let Some(f) = frac {
                text.push('.');
                text.push_str(&f);
            }
            if let Some(e) = exp {
                text.push_str(&format!("e{e}"));
            }
            same(&text);
        }
    }
}
