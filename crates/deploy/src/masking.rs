//! Secret values out of every log line and error: each value and its common encodings
//! (base64 standard and URL-safe at any offset, hex in both cases, URL-percent-encoding)
//! become `****`, matched after terminal escape sequences are removed, so colour codes
//! inserted in the middle of a value do not hide it.

use aho_corasick::AhoCorasick;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// Shorter values are refused as secrets: masking them would blank ordinary text.
pub const MIN_SECRET_LEN: usize = 4;

/// An encoded form shorter than this is not masked: it would blank ordinary text.
const MIN_ENCODED_LEN: usize = 8;

/// Replaces every occurrence of a secret value, or of one of its encodings, with `****`.
/// Multi-line values are also masked line by line (logs arrive a line at a time); where
/// occurrences overlap, their whole union is masked, so no secret keeps a visible part
/// because another one matched first.
///
/// A line holding a control character other than a tab is first stripped of terminal
/// escape sequences (CSI colour codes, OSC titles and links, DCS strings) and control
/// characters, with `strip-ansi-escapes` (a VT parser, so every sequence ends where a
/// terminal would end it); the masked line is that stripped text, which also keeps a log
/// from driving the terminal of whoever reads it.
#[derive(Clone, Default)]
pub struct Masker {
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.matcher.as_ref().map_or(0, AhoCorasick::patterns_len);
        write!(f, "Masker({count} patterns)")
    }
}

impl Masker {
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for value in values {
            let mut parts: Vec<&str> = value.lines().map(str::trim).collect();
            parts.push(value);
            for part in parts.into_iter().filter(|p| p.len() >= MIN_SECRET_LEN) {
                needles.push(part.to_string());
                needles.extend(
                    encodings(part.as_bytes())
                        .into_iter()
                        .filter(|e| e.len() >= MIN_ENCODED_LEN),
                );
            }
        }
        needles.sort();
        needles.dedup();
        if needles.is_empty() {
            return Self::default();
        }
        // Standard match kind: `find_overlapping_iter` reports every occurrence.
        let matcher = AhoCorasick::new(&needles).ok();
        Self { matcher }
    }

    pub fn mask(&self, text: &str) -> String {
        let clean = without_escapes(text);
        let Some(matcher) = &self.matcher else {
            return clean;
        };
        // Matches come ordered by where they end; merge them by where they start, so a
        // longer match that begins earlier is never cut short. Adjacent ones stay apart.
        let mut found: Vec<(usize, usize)> = matcher
            .find_overlapping_iter(&clean)
            .map(|m| (m.start(), m.end()))
            .collect();
        found.sort_unstable();
        let mut covered: Vec<(usize, usize)> = Vec::new();
        for (start, end) in found {
            match covered.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => covered.push((start, end)),
            }
        }
        if covered.is_empty() {
            return clean;
        }
        let mut out = String::with_capacity(clean.len());
        let mut at = 0;
        for (start, end) in covered {
            out.push_str(&clean[at..start]);
            out.push_str("****");
            at = end;
        }
        out.push_str(&clean[at..]);
        out
    }
}

/// `text` without terminal escape sequences and control characters (tabs kept), when it
/// has any; otherwise unchanged.
fn without_escapes(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.to_string();
    }
    // Tabs are kept: the stripper drops every control character but a newline.
    text.split('\t')
        .map(strip_ansi_escapes::strip_str)
        .collect::<Vec<_>>()
        .join("\t")
}

/// The forms a secret is commonly printed in: hex (lower and upper case), percent-encoding
/// (both hex cases), and base64, standard and URL-safe, at each of the three offsets the
/// value can have inside a longer encoded string: for each, only the characters that
/// depend on the value's bytes alone.
fn encodings(value: &[u8]) -> Vec<String> {
    let mut out = vec![hex::encode(value), hex::encode_upper(value)];
    let percent = percent_encoded(value);
    if percent.as_bytes() != value {
        out.push(lower_hex_escapes(&percent));
        out.push(percent);
    }
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(value);
        let first = (offset * 8).div_ceil(6);
        let end = shifted.len() * 8 / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&shifted);
            if let Some(stable) = encoded.get(first..end) {
                out.push(stable.to_string());
            }
        }
    }
    out
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encoded(value: &[u8]) -> String {
    value
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `%2F` as `%2f`: lower-case hex digits after each `%`.
fn lower_hex_escapes(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut digits_left = 0;
    for c in percent.chars() {
        if c == '%' {
            digits_left = 2;
            out.push(c);
        } else if digits_left > 0 {
            digits_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_every_line_of_a_value() {
        let masker = Masker::new([
            "s3cr3t-token",
            "s3cr3t",
            "ab",
            "-----BEGIN-----\nKEYLINE1\n",
        ]);
        assert_eq!(
            masker.mask("got s3cr3t-token and s3cr3t, ab stays"),
            "got **** and ****, ab stays"
        );
        assert_eq!(masker.mask("  KEYLINE1  "), "  ****  ");
        assert_eq!(Masker::default().mask("plain"), "plain");
        assert!(!format!("{masker:?}").contains("s3cr3t"));
    }

    #[test]
    fn overlapping_secrets_are_masked_whole() {
        let masker = Masker::new(["abcd1234", "1234SECRETXYZ"]);
        assert_eq!(masker.mask("[abcd1234SECRETXYZ]"), "[****]");
        // A longer match that starts earlier but ends later than a shorter one inside it.
        let masker = Masker::new(["SECRETXYZ", "prefixSECRETXYZsuffix"]);
        assert_eq!(masker.mask("[prefixSECRETXYZsuffix]"), "[****]");
        // Two occurrences side by side are two masks.
        let masker = Masker::new(["abcd1234"]);
        assert_eq!(masker.mask("abcd1234abcd1234"), "********");
    }

    #[test]
    fn colour_codes_inside_a_value_do_not_hide_it() {
        let masker = Masker::new(["abcdefghSECRETVALUE"]);
        for line in [
            "token: abcdefghSEC\x1b[1;31mRETVALUE\x1b[0m",
            "token: \x1b[32mabcdefgh\x1b[0mSECRET\x1b[38;5;196mVALUE",
            // An OSC hyperlink and a title around it, a DCS string, a bare ESC pair.
            "token: \x1b]8;;https://x\x07abcdefghSECRET\x1b]8;;\x1b\\VALUE",
            "token: abcdefgh\x1bP1$r0m\x1b\\SECRETVALUE",
            "token: abcdefghSECRET\x1b(BVALUE",
            // Control characters a terminal would not print.
            "token: abcdefgh\x08SECRET\x00VALUE",
        ] {
            assert_eq!(masker.mask(line), "token: ****", "{line:?}");
        }
        // A line without escapes keeps its tabs; one with escapes does too.
        assert_eq!(masker.mask("a\tb"), "a\tb");
        assert_eq!(masker.mask("\x1b[1ma\tb\x1b[0m"), "a\tb");
    }

    #[test]
    fn encoded_forms_are_masked() {
        let secret = "abcdefghSECRETVALUE";
        let masker = Masker::new([secret, "p@ss word/+&="]);
        let mut lines = vec![
            hex::encode(secret),
            hex::encode_upper(secret),
            format!("0x{}!", hex::encode(secret)),
            "p%40ss%20word%2F%2B%26%3D".to_string(),
            "p%40ss%20word%2f%2b%26%3d".to_string(),
        ];
        // Base64 at every offset inside a longer string, with padding or none, standard
        // and URL-safe, and with a newline after the value (`echo $T | base64`).
        for prefix in ["", "x", "xy", "xyz"] {
            for suffix in ["", "\n", "tail"] {
                let plain = format!("{prefix}{secret}{suffix}");
                lines.push(base64::engine::general_purpose::STANDARD.encode(&plain));
                lines.push(URL_SAFE_NO_PAD.encode(&plain));
            }
        }
        let value = "p@ss word/+&=";
        for prefix in ["", "a", "ab"] {
            lines.push(STANDARD_NO_PAD.encode(format!("{prefix}{value}>?>?")));
            lines.push(URL_SAFE_NO_PAD.encode(format!("{prefix}{value}>?>?")));
        }
        for line in lines {
            let masked = masker.mask(&line);
            assert!(masked.contains("****"), "{line} -> {masked}");
            // At most the characters shared with the neighbouring bytes stay.
            let visible = masked.replace("****", "");
            assert!(visible.len() <= 12, "{line} -> {masked}");
        }
        // Short values have no encoded form masked (it would blank ordinary text).
        assert_eq!(Masker::new(["abcd"]).mask("YWJj"), "YWJj");
    }
}
