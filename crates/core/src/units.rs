//! Quantities as people read them: a size in bytes in the binary unit that reads best.

/// A size in the binary unit that reads best: `512 B`, `1.5 KiB`, `73.4 GiB`, `734 GiB`,
/// `2.1 TiB`: at most three digits before the point, one after it below 100.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the number would show four digits (999.5 MiB rounds to 1000).
    while value >= 999.5 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 99.95 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_best_unit() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(1024 * 1024 - 1), "1.0 MiB", "never 1024.0 KiB");
        assert_eq!(size(5 * 1024 * 1024 + 300 * 1024), "5.3 MiB");
        assert_eq!(size(200 * 1024 * 1024), "200 MiB");
        // The server page's case: 75157.9 MiB.
        assert_eq!(size(78_809_601_638), "73.4 GiB");
        assert_eq!(size(999 * 1024 * 1024 * 1024), "999 GiB");
        assert_eq!(size(1_048_156_570), "1.0 GiB", "999.6 MiB: never 1000 MiB");
        assert_eq!(size(1000 * 1024 * 1024 * 1024), "1.0 TiB");
        assert_eq!(size(3 * 1024u64.pow(4) / 2), "1.5 TiB");
        assert_eq!(size(u64::MAX), "16384 PiB");
    }
}
