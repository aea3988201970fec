//! The numbers of INCR, INCRBYFLOAT and the argument parsers: Redis's
//! exact rules for integer and float text, and a decimal sum that answers
//! as Redis's long double does. Pure functions of bytes, so every replica
//! computes the same text.

use super::MutationError;

/// Redis's `string2ll`: optional '-', no '+', no spaces, no leading zeros.
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 20 {
        return None;
    }
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    match digits {
        [] => return None,
        [b'0'] => return (raw.len() == 1).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

/// A float as Redis's INCRBYFLOAT accepts it: no spaces, not NaN.
/// Infinities parse (Redis then refuses the *result*, with its own error).
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// INCRBYFLOAT's sum. Redis adds in 80-bit long double and prints 17
/// significant digits, so `0.1 + 0.2` answers `0.3`; plain f64 would answer
/// `0.30000000000000004`. We add exactly in decimal (28 digits) and round
/// to 17 significant digits, which gives Redis's answers for ordinary
/// inputs; numbers outside the decimal range fall back to f64. Both paths
/// are deterministic, as a replicated state machine requires.
pub fn add_decimal_text(current: &[u8], delta: &[u8]) -> Result<String, MutationError> {
    let a = parse_f64(current).ok_or(MutationError::NotFloat)?;
    let b = parse_f64(delta).ok_or(MutationError::NotFloat)?;
    let sum = a + b;
    if !sum.is_finite() {
        return Err(MutationError::NanOrInfinity);
    }
    let decimal = |raw: &[u8]| {
        let s = std::str::from_utf8(raw).ok()?;
        s.parse::<rust_decimal::Decimal>()
            .ok()
            .or_else(|| rust_decimal::Decimal::from_scientific(s).ok())
    };
    if let (Some(x), Some(y)) = (decimal(current), decimal(delta))
        && let Some(d) = x.checked_add(y).and_then(|d| d.round_sf(17))
    {
        {
            let d = d.normalize();
            return Ok(if d.is_zero() {
                "0".into()
            } else {
                d.to_string()
            });
        }
    }
    Ok(format_f64(sum))
}

/// Formats like Redis's human-readable long double: shortest exact digits,
/// no exponent, no trailing ".0".
pub fn format_f64(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    format!("{v}")
}
