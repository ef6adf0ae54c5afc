//! Durations as compose files and Docker write them (Go's `time.ParseDuration`): one or
//! more `<number><unit>` with units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` and optional
//! fractions, e.g. `1m30s`, `1.5s`, `500ms`, `1h`.

use std::time::Duration;

/// Parses a duration; `None` when it is not one (no unit, unknown unit, negative, empty).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_docker_accepts() {
        let ms = |text| parse_duration(text).map(|d| d.as_millis());
        assert_eq!(ms("1m30s"), Some(90_000));
        assert_eq!(ms("1.5s"), Some(1_500));
        assert_eq!(ms("500ms"), Some(500));
        assert_eq!(ms("1h"), Some(3_600_000));
        assert_eq!(ms("2h45m"), Some(9_900_000));
        assert_eq!(ms("10s"), Some(10_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms("250000us"), Some(250));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "10", "1x", "s", "-1s", "1.2.3s", "ten seconds", "1s 2s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
