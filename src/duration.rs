//! Durations as Istio reads them: Go's `time.ParseDuration` format, which is
//! what Istio's RequestAuthentication `timeout` goes through (istio/api's
//! generated `UnmarshalJSON` uses golang/protobuf's `jsonpb`, whose
//! `google.protobuf.Duration` case calls `time.ParseDuration`), and what the
//! CRD's CEL rule `duration(self)` accepts.
//!
//! A duration is a sequence of decimal numbers, each with an optional
//! fraction and a unit: `500ms`, `5s`, `1.5s`, `.5s`, `20m`, `24h`, `1h30m`,
//! `300us` (also `µs` and `μs`), `100ns`; `0` alone is zero. Go also accepts
//! a sign; kfauth accepts `+` and refuses a negative duration (no kfauth
//! setting has a meaning for one). The largest value is Go's, 2^63-1 ns
//! (about 292 years).

use std::time::Duration;

const UNITS: &str = "ns, us (µs), ms, s, m or h";

/// Nanoseconds per unit, as in Go's `time` package.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU, as Go.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's limit: a `time.Duration` is an int64 of nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a text is not a duration; its Display names the text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    Invalid(String),
    NoUnit(String),
    UnknownUnit { text: String, unit: String },
    OutOfRange(String),
    Negative(String),
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Empty => write!(f, "empty duration"),
            DurationError::Invalid(text) => write!(
                f,
                "`{text}` is not a duration like 500ms, 1.5s, 20m or 1h30m"
            ),
            DurationError::NoUnit(text) => {
                write!(f, "`{text}` has a number without a unit (use {UNITS})")
            }
            DurationError::UnknownUnit { text, unit } => {
                write!(f, "`{text}` has unknown unit `{unit}` (use {UNITS})")
            }
            DurationError::OutOfRange(text) => write!(f, "`{text}` is out of range"),
            DurationError::Negative(text) => write!(f, "`{text}` is negative"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration string.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let invalid = || DurationError::Invalid(text.into());
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::NoUnit(text.into()))?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(invalid());
        }
        let per_unit = unit_nanos(unit).ok_or_else(|| {
            if unit.is_empty() {
                DurationError::NoUnit(text.into())
            } else {
                DurationError::UnknownUnit {
                    text: text.into(),
                    unit: unit.into(),
                }
            }
        })?;
        let out_of_range = || DurationError::OutOfRange(text.into());
        // Whole part: digits until the value passes Go's limit.
        let mut value: u128 = 0;
        for digit in whole.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit.wrapping_sub(b'0'))))
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(out_of_range)?;
        }
        let mut nanos = value.checked_mul(per_unit).ok_or_else(out_of_range)?;
        // Fraction: as Go, digits past what a nanosecond can hold are dropped.
        let mut numerator: u128 = 0;
        let mut scale: u128 = 1;
        for digit in fraction.bytes().take(30) {
            numerator = numerator
                .saturating_mul(10)
                .saturating_add(u128::from(digit.wrapping_sub(b'0')));
            scale = scale.saturating_mul(10);
        }
        nanos = nanos
            .checked_add(
                numerator
                    .saturating_mul(per_unit)
                    .checked_div(scale)
                    .unwrap_or(0),
            )
            .ok_or_else(out_of_range)?;
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(out_of_range)?;
        rest = next;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(text.into()));
    }
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError::OutOfRange(text.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parses_istio_style_durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("20m").unwrap(), Duration::from_secs(1200));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    }

    /// Every form Go's `time.ParseDuration` accepts (its own test table).
    #[test]
    fn parses_every_unit_and_form_go_accepts() {
        let ns = Duration::from_nanos;
        for (text, expected) in [
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
            ("100ns", ns(100)),
            ("300us", Duration::from_micros(300)),
            ("300\u{b5}s", Duration::from_micros(300)),
            ("300\u{3bc}s", Duration::from_micros(300)),
            ("1h", Duration::from_secs(3600)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("5.0s", Duration::from_secs(5)),
            ("1.004s", Duration::from_millis(1004)),
            ("0.3s", Duration::from_millis(300)),
            ("0.000000001s", ns(1)),
            ("0.0000000015s", ns(1)),
            ("1.5h", Duration::from_secs(5400)),
            ("2h45m", Duration::from_secs(9900)),
            ("1h2m3s4ms5us6ns", ns(3_723_004_005_006)),
            ("39h9m14.425s", Duration::from_millis(140_954_425)),
            ("52763797000ns", ns(52_763_797_000)),
            ("9223372036854775807ns", ns(i64::MAX as u64)),
            ("9223372036.854775807s", ns(i64::MAX as u64)),
            ("0.100000000000000000000h", Duration::from_secs(360)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "5",
            "5x",
            "s",
            "abc",
            "-1s",
            "1e400h",
            ".",
            ".s",
            "+.s",
            "1..5s",
            "3000000h",
            "9223372036854775808ns",
            "9223372036.854775808s",
            "1d",
            "5 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            parse_duration("-1s").unwrap_err().to_string(),
            "`-1s` is negative"
        );
        assert_eq!(
            parse_duration("1d").unwrap_err().to_string(),
            "`1d` has unknown unit `d` (use ns, us (µs), ms, s, m or h)"
        );
    }
}
