//! Sizes and durations with units, for every `*_bytes*` and `*_ms` setting
//! in flags, environment variables and the TOML file: `256MiB`, `64KiB`,
//! `1GiB`, `10s`, `500ms`, `2m`, or a plain number (bytes, milliseconds),
//! which means what it always meant. Settings in microseconds
//! (`slowlog-log-slower-than`) take `us` too, and a sign.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Longest input echoed back in an error, so a huge value cannot make a
/// huge message.
const SHOWN_CHARS_MAX: usize = 40;

/// Byte units: binary (IEC) and decimal (SI), matched case-insensitively.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];
const BYTE_UNITS_SHOWN: &str = "B, KiB, MiB, GiB, TiB, kB, MB, GB, TB";

/// Duration units in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];
const DURATION_UNITS_SHOWN: &str = "ms, s, m, h, d";

/// Duration units in microseconds (settings in µs, as Redis's
/// `slowlog-log-slower-than`).
const DURATION_US_UNITS: &[(&str, u64)] = &[
    ("us", 1),
    ("µs", 1),
    ("ms", 1_000),
    ("s", 1_000_000),
    ("m", 60_000_000),
    ("h", 3_600_000_000),
];
const DURATION_US_UNITS_SHOWN: &str = "us, ms, s, m, h";

/// A size or duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{shown:?} is not a whole number with an optional unit ({units})")]
    Malformed { shown: String, units: &'static str },
    #[error("{shown:?} has an unknown unit (known: {units})")]
    UnknownUnit { shown: String, units: &'static str },
    #[error("{shown:?} is too large (the limit is {max})")]
    TooLarge { shown: String, max: u64 },
}

/// A size in bytes: `4096`, `64KiB`, `256 MiB`, `1GB`.
pub fn parse_size_bytes(s: &str) -> Result<u64, UnitError> {
    parse_with_units(s, BYTE_UNITS, BYTE_UNITS_SHOWN, u64::MAX)
}

/// A size in bytes that must fit in `usize` (in-memory limits).
pub fn parse_size_bytes_usize(s: &str) -> Result<usize, UnitError> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let v = parse_with_units(s, BYTE_UNITS, BYTE_UNITS_SHOWN, max)?;
    usize::try_from(v).map_err(|_| UnitError::TooLarge {
        shown: shown(s),
        max,
    })
}

/// A duration in milliseconds: `500`, `500ms`, `10s`, `2m`, `1h`.
pub fn parse_duration_ms(s: &str) -> Result<u64, UnitError> {
    parse_with_units(s, DURATION_UNITS, DURATION_UNITS_SHOWN, u64::MAX)
}

/// A duration in microseconds that may be negative (meaning "off", as in
/// Redis's `slowlog-log-slower-than`): `10000`, `10ms`, `250us`, `-1`.
pub fn parse_duration_us_signed(s: &str) -> Result<i64, UnitError> {
    let trimmed = s.trim();
    let (negative, magnitude) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let max = i64::MAX.unsigned_abs();
    let v = parse_with_units(magnitude, DURATION_US_UNITS, DURATION_US_UNITS_SHOWN, max).map_err(
        |e| match e {
            // Name the whole input, sign included.
            UnitError::Malformed { units, .. } => UnitError::Malformed {
                shown: shown(s),
                units,
            },
            UnitError::UnknownUnit { units, .. } => UnitError::UnknownUnit {
                shown: shown(s),
                units,
            },
            UnitError::TooLarge { max, .. } => UnitError::TooLarge {
                shown: shown(s),
                max,
            },
        },
    )?;
    // At most i64::MAX: the conversion cannot fail.
    let v = i64::try_from(v).unwrap_or(i64::MAX);
    Ok(if negative { -v } else { v })
}

fn shown(s: &str) -> String {
    s.chars().take(SHOWN_CHARS_MAX).collect()
}

/// `<digits>[ ]<unit>`; the unit is optional (then the number is taken as
/// it is). Whole numbers only: `1.5GiB` is refused rather than rounded.
fn parse_with_units(
    s: &str,
    units: &[(&str, u64)],
    units_shown: &'static str,
    max: u64,
) -> Result<u64, UnitError> {
    let s_trimmed = s.trim();
    let digits_end = s_trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(s_trimmed.len());
    let (digits, unit) = s_trimmed.split_at(digits_end);
    let unit = unit.trim_start();
    if digits.is_empty() {
        return Err(UnitError::Malformed {
            shown: shown(s),
            units: units_shown,
        });
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        units
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, m)| m)
            .ok_or_else(|| {
                let malformed = unit.starts_with(|c: char| c == '.' || c.is_ascii_digit());
                if malformed {
                    UnitError::Malformed {
                        shown: shown(s),
                        units: units_shown,
                    }
                } else {
                    UnitError::UnknownUnit {
                        shown: shown(s),
                        units: units_shown,
                    }
                }
            })?
    };
    let too_large = || UnitError::TooLarge {
        shown: shown(s),
        max,
    };
    // Only digits here: a parse failure can only be an overflow.
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    number
        .checked_mul(multiplier)
        .filter(|&v| v <= max)
        .ok_or_else(too_large)
}

/// Reads a TOML integer or a string with a unit through `parse`.
struct UnitVisitor(fn(&str) -> Result<u64, UnitError>);

impl Visitor<'_> for UnitVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a string with a unit, like \"64MiB\" or \"10s\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        (self.0)(v).map_err(E::custom)
    }
}

/// serde `deserialize_with` for an optional size in bytes (u64).
pub fn de_size_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(UnitVisitor(parse_size_bytes)).map(Some)
}

/// serde `deserialize_with` for an optional size in bytes (usize).
pub fn de_size_bytes_usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let v = d.deserialize_any(UnitVisitor(parse_size_bytes))?;
    usize::try_from(v)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{v} is too large for this machine")))
}

/// serde `deserialize_with` for an optional duration in milliseconds.
pub fn de_duration_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(UnitVisitor(parse_duration_ms)).map(Some)
}

/// serde `deserialize_with` for an optional signed duration in
/// microseconds: a TOML integer (negative allowed) or a string with a unit.
pub fn de_duration_us_signed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct SignedVisitor;
    impl Visitor<'_> for SignedVisitor {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer (microseconds) or a string with a unit, like \"10ms\"")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            parse_duration_us_signed(v).map_err(E::custom)
        }
    }
    d.deserialize_any(SignedVisitor).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units() {
        assert_eq!(parse_size_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size_bytes("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("1 gib"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("2MB"), Ok(2_000_000));
        assert_eq!(parse_size_bytes("7B"), Ok(7));
        assert_eq!(parse_size_bytes(" 4096 "), Ok(4096));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        for bad in ["", "MiB", "-1", "1.5GiB", "1 5"] {
            assert!(
                matches!(parse_size_bytes(bad), Err(UnitError::Malformed { .. })),
                "{bad}: {:?}",
                parse_size_bytes(bad)
            );
        }
        assert!(parse_size_bytes("1e3").is_err());
        assert!(parse_size_bytes("0x10").is_err());
        let unknown = parse_size_bytes("5 parsecs").unwrap_err();
        assert!(unknown.to_string().contains("KiB"), "{unknown}");
        assert!(matches!(
            parse_duration_ms("10 fortnights"),
            Err(UnitError::UnknownUnit { .. })
        ));
        let huge = parse_size_bytes("20000000TiB").unwrap_err();
        assert!(huge.to_string().contains("too large"), "{huge}");
        assert!(matches!(
            parse_size_bytes("99999999999999999999999"),
            Err(UnitError::TooLarge { .. })
        ));
        let long = "9".repeat(10_000);
        assert!(parse_duration_ms(&long).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn signed_microseconds_take_units_and_a_sign() {
        assert_eq!(parse_duration_us_signed("10000"), Ok(10_000));
        assert_eq!(parse_duration_us_signed("10ms"), Ok(10_000));
        assert_eq!(parse_duration_us_signed("250us"), Ok(250));
        assert_eq!(parse_duration_us_signed("250µs"), Ok(250));
        assert_eq!(parse_duration_us_signed("2s"), Ok(2_000_000));
        assert_eq!(parse_duration_us_signed("0"), Ok(0));
        assert_eq!(parse_duration_us_signed("-1"), Ok(-1));
        assert_eq!(parse_duration_us_signed(" -5ms "), Ok(-5_000));
        for bad in ["", "-", "--1", "1.5ms", "ten", "+1"] {
            assert!(parse_duration_us_signed(bad).is_err(), "{bad}");
        }
        let unknown = parse_duration_us_signed("-3 weeks").unwrap_err();
        assert!(unknown.to_string().contains("-3 weeks"), "{unknown}");
        assert!(matches!(
            parse_duration_us_signed("99999999999999999999"),
            Err(UnitError::TooLarge { .. })
        ));
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "de_duration_us_signed")]
            t: Option<i64>,
        }
        let t = |text: &str| toml::from_str::<T>(text).map(|t| t.t);
        assert_eq!(t("t = -1").unwrap(), Some(-1));
        assert_eq!(t("t = 500").unwrap(), Some(500));
        assert_eq!(t("t = \"1ms\"").unwrap(), Some(1000));
        assert!(t("t = 1.5").is_err());
    }

    #[test]
    fn toml_takes_integers_and_strings() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "de_size_bytes")]
            size: Option<u64>,
            #[serde(default, deserialize_with = "de_duration_ms")]
            wait: Option<u64>,
            #[serde(default, deserialize_with = "de_size_bytes_usize")]
            small: Option<usize>,
        }
        let t: T = toml::from_str("size = \"64MiB\"\nwait = 250\nsmall = \"1KiB\"").unwrap();
        assert_eq!(
            (t.size, t.wait, t.small),
            (Some(64 << 20), Some(250), Some(1024))
        );
        let t: T = toml::from_str("size = 5\nwait = \"2m\"").unwrap();
        assert_eq!((t.size, t.wait, t.small), (Some(5), Some(120_000), None));
        assert!(toml::from_str::<T>("size = -1").is_err());
        assert!(toml::from_str::<T>("size = \"lots\"").is_err());
        assert!(toml::from_str::<T>("wait = 1.5").is_err());
    }

    proptest! {
        #[test]
        fn plain_numbers_are_unchanged(n in any::<u64>()) {
            prop_assert_eq!(parse_size_bytes(&n.to_string()), Ok(n));
            prop_assert_eq!(parse_duration_ms(&n.to_string()), Ok(n));
        }

        #[test]
        fn units_multiply_or_refuse_overflow(n in any::<u64>(), unit in 0usize..BYTE_UNITS.len()) {
            let (name, m) = BYTE_UNITS[unit];
            match n.checked_mul(m) {
                Some(v) => prop_assert_eq!(parse_size_bytes(&format!("{n}{name}")), Ok(v)),
                None => {
                    let refused = parse_size_bytes(&format!("{n}{name}"));
                    prop_assert!(matches!(refused, Err(UnitError::TooLarge { .. })), "{:?}", refused);
                }
            }
        }

        #[test]
        fn any_text_parses_or_is_refused(s in "\\PC{0,40}") {
            let _ = parse_size_bytes(&s);
            let _ = parse_size_bytes_usize(&s);
            let _ = parse_duration_ms(&s);
            let _ = parse_duration_us_signed(&s);
        }
    }
}
