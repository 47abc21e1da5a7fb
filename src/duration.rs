//! Durations as Istio writes them: `500ms`, `5s`, `20m`, `24h` (and combinations like `1m30s`).

use std::time::Duration;

/// Parses a duration string; returns a message that names what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has a number without a unit (use ms, s, m or h)"))?;
        let (number, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 500ms, 5s, 20m or 24h"))?;
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => {
                return Err(format!(
                    "`{text}` has unknown unit `{unit}` (use ms, s, m or h)"
                ))
            }
        };
        let seconds = value * seconds_per_unit;
        if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86400.0 {
            return Err(format!("`{text}` is out of range"));
        }
        total = total.saturating_add(Duration::from_secs_f64(seconds));
        rest = next;
    }
    Ok(total)
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

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "5", "5x", "s", "abc", "-1s", "1e400h"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }
}
