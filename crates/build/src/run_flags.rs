//! An instruction's flags and a `RUN --mount`'s options read exactly as BuildKit's
//! Dockerfile frontend reads them, so that what Capstan checks and rewrites (cache mount
//! ids, secret mounts, `from=` images) is what BuildKit will use, in every spelling:
//!
//! - flag words as `extractBuilderFlags` splits them: shell-like quotes and backslash
//!   escapes inside a word, any of BuildKit's whitespace between words, `--` ending them;
//! - a mount's options as Go's `encoding/csv` reads one record (quoted fields, `""`), each
//!   key lower-cased, `type` lower-cased, the last of a repeated key winning, and the
//!   aliases `src`/`source`, `dst`/`destination`/`target`.
//!
//! Written out again, flags are quoted so that BuildKit reads back the same values. The
//! CSV reader is hand-written rather than the `csv` crate because it must accept and
//! refuse exactly what Go's reader does (the crate is lenient with bare quotes).

use std::fmt;

/// Why an instruction's flags or a mount's options cannot be read safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("a flag holds a non-ASCII character, which BuildKit reads byte by byte")]
    NonAscii,
    #[error("the mount options are empty")]
    EmptyMount,
    #[error("the mount options hold a line break")]
    LineBreak,
    #[error("a quote inside an unquoted mount option")]
    BareQuote,
    #[error("an unterminated or misplaced quote in the mount options")]
    Quote,
}

/// One flag word, `--name=value` (`value` is `None` for `--name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flag {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
}

impl fmt::Display for Flag {
    /// The flag as a word BuildKit reads back as this flag: quoted when it holds
    /// whitespace, a quote or a backslash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match &self.value {
            Some(value) => format!("{}={value}", self.name),
            None => self.name.clone(),
        };
        if !word
            .bytes()
            .any(|b| is_go_space(b) || matches!(b, b'"' | b'\'' | b'\\'))
        {
            return write!(f, "--{word}");
        }
        let escaped: String = word
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        write!(f, "--\"{escaped}\"")
    }
}

/// Whether BuildKit's flag reader takes this byte for whitespace (Go's `unicode.IsSpace`
/// of the byte taken as a rune).
fn is_go_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// Splits an instruction's arguments (after the keyword) into its flags and the rest, as
/// BuildKit's `extractBuilderFlags` does.
pub(crate) fn split_flags(args: &str) -> Result<(Vec<Flag>, &str), FlagError> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(u8),
    }
    let bytes = args.as_bytes();
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut word: Vec<u8> = Vec::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    let rest_at = loop {
        if pos == bytes.len() {
            if phase != Phase::Spaces && word != b"--" && (blank_ok || !word.is_empty()) {
                words.push(std::mem::take(&mut word));
            }
            break bytes.len();
        }
        let ch = bytes[pos];
        match phase {
            Phase::Spaces => {
                if is_go_space(ch) {
                    pos += 1;
                    continue;
                }
                if ch != b'-' || bytes.get(pos + 1) != Some(&b'-') {
                    break pos;
                }
                phase = Phase::Word;
                continue;
            }
            Phase::Word if is_go_space(ch) => {
                if word == b"--" {
                    break pos;
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                phase = Phase::Spaces;
            }
            Phase::Word if ch == b'\'' || ch == b'"' => {
                phase = Phase::Quote(ch);
                blank_ok = true;
            }
            Phase::Quote(quote) if ch == quote => phase = Phase::Word,
            Phase::Word | Phase::Quote(_) => {
                if ch == b'\\' {
                    if pos + 1 == bytes.len() {
                        if phase != Phase::Word {
                            phase = Phase::Word;
                        }
                        pos += 1;
                        continue;
                    }
                    pos += 1;
                }
                word.push(bytes[pos]);
            }
        }
        pos += 1;
    };
    let mut flags = Vec::with_capacity(words.len());
    for word in words {
        let word = String::from_utf8(word)
            .ok()
            .filter(|w| w.is_ascii())
            .ok_or(FlagError::NonAscii)?;
        let body = word.strip_prefix("--").unwrap_or(&word);
        flags.push(match body.split_once('=') {
            Some((name, value)) => Flag {
                name: name.to_string(),
                value: Some(value.to_string()),
            },
            None => Flag {
                name: body.to_string(),
                value: None,
            },
        });
    }
    let rest = args.get(rest_at..).ok_or(FlagError::NonAscii)?;
    Ok((flags, rest))
}

/// The first record of `input` as Go's `encoding/csv` reads it (comma-separated, fields
/// quoted with `"`, `""` a quote inside one; a quote elsewhere is an error).
fn read_csv(input: &str) -> Result<Vec<String>, FlagError> {
    if input.is_empty() {
        return Err(FlagError::EmptyMount);
    }
    if input.contains(['\n', '\r']) {
        return Err(FlagError::LineBreak);
    }
    let mut fields = Vec::new();
    let mut rest = input;
    loop {
        let Some(mut quoted) = rest.strip_prefix('"') else {
            let (field, next) = match rest.split_once(',') {
                Some((field, next)) => (field, Some(next)),
                None => (rest, None),
            };
            if field.contains('"') {
                return Err(FlagError::BareQuote);
            }
            fields.push(field.to_string());
            match next {
                Some(next) => rest = next,
                None => return Ok(fields),
            }
            continue;
        };
        let mut field = String::new();
        loop {
            let (before, after) = quoted.split_once('"').ok_or(FlagError::Quote)?;
            field.push_str(before);
            if let Some(after) = after.strip_prefix('"') {
                field.push('"');
                quoted = after;
            } else if let Some(after) = after.strip_prefix(',') {
                fields.push(std::mem::take(&mut field));
                rest = after;
                break;
            } else if after.is_empty() {
                fields.push(field);
                return Ok(fields);
            } else {
                return Err(FlagError::Quote);
            }
        }
    }
}

/// The fields as one CSV record that Go's reader reads back the same.
fn write_csv(fields: &[String]) -> String {
    fields
        .iter()
        .map(|field| {
            let needs_quotes = field.contains([',', '"', '\r', '\n'])
                || field.chars().next().is_some_and(char::is_whitespace);
            if needs_quotes {
                format!("\"{}\"", field.replace('"', "\"\""))
            } else {
                field.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The options of one `RUN --mount=...`, in their order (repeated keys kept: BuildKit
/// takes the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    fields: Vec<String>,
}

impl Mount {
    pub(crate) fn parse(value: &str) -> Result<Mount, FlagError> {
        Ok(Mount {
            fields: read_csv(value)?,
        })
    }

    /// The last value given under any of `keys` (matched case-insensitively).
    fn get(&self, keys: &[&str]) -> Option<&str> {
        self.fields.iter().rev().find_map(|field| {
            let (key, value) = field.split_once('=')?;
            keys.iter()
                .any(|k| key.eq_ignore_ascii_case(k))
                .then_some(value)
        })
    }

    /// `bind` (BuildKit's default), `cache`, `secret`, `tmpfs`, `ssh`, lower-cased.
    pub(crate) fn kind(&self) -> String {
        self.get(&["type"]).unwrap_or("bind").to_ascii_lowercase()
    }

    pub(crate) fn id(&self) -> Option<&str> {
        self.get(&["id"])
    }

    pub(crate) fn target(&self) -> Option<&str> {
        self.get(&["target", "dst", "destination"])
    }

    pub(crate) fn source(&self) -> Option<&str> {
        self.get(&["source", "src"])
    }

    pub(crate) fn from(&self) -> Option<&str> {
        self.get(&["from"])
    }

    /// The same mount with `id` as its only id.
    pub(crate) fn with_id(&self, id: &str) -> Mount {
        let mut fields: Vec<String> = self
            .fields
            .iter()
            .filter(|f| {
                !f.split_once('=')
                    .is_some_and(|(key, _)| key.eq_ignore_ascii_case("id"))
            })
            .cloned()
            .collect();
        fields.push(format!("id={id}"));
        Mount { fields }
    }

    /// A secret mount's secret id and the path it is mounted at, as BuildKit derives
    /// them (`source`, else `id`, else the target's file name; the target defaults to
    /// `/run/secrets/<id>`).
    pub(crate) fn secret(&self) -> Option<(String, String)> {
        let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
        let id = match self.source().or(self.id()) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => base(self.target()?),
        };
        let target = match self.target() {
            Some(target) if !target.is_empty() => target.to_string(),
            _ => format!("/run/secrets/{}", base(&id)),
        };
        Some((id, target))
    }

    /// `--mount=type=secret,id=<name>`: the secret mounted at `/run/secrets/<name>`.
    pub(crate) fn secret_flag(name: &str) -> Flag {
        Mount {
            fields: vec!["type=secret".into(), format!("id={name}")],
        }
        .flag()
    }

    /// The mount as a `--mount` flag.
    pub(crate) fn flag(&self) -> Flag {
        Flag {
            name: "mount".into(),
            value: Some(write_csv(&self.fields)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &str) -> (Vec<String>, String) {
        let (flags, rest) = split_flags(args).unwrap();
        let words = flags
            .iter()
            .map(|f| format!("{}={}", f.name, f.value.clone().unwrap_or_default()))
            .collect();
        (words, rest.to_string())
    }

    #[test]
    fn flag_words_are_split_as_buildkit_splits_them() {
        let (words, rest) = flags(
            "--mount=\"type=cache,id=a b\"\t--mount=ty\\pe=cache,'id'=x --network=none  sh -c 'x'",
        );
        assert_eq!(
            words,
            [
                "mount=type=cache,id=a b",
                "mount=type=cache,id=x",
                "network=none"
            ]
        );
        assert_eq!(rest, "sh -c 'x'");
        assert_eq!(flags("-- --mount=x echo").1, " --mount=x echo");
        assert_eq!(flags("--mount=x -x").1, "-x");
        assert_eq!(flags("[\"sh\"]").1, "[\"sh\"]");
        assert_eq!(flags("--mount=x").1, "");
        assert_eq!(
            split_flags("--mount=type=cache,id=\u{e0}x true"),
            Err(FlagError::NonAscii)
        );
    }

    #[test]
    fn mount_options_are_read_as_go_csv_reads_them() {
        let read = |s: &str| read_csv(s);
        assert_eq!(read("a,b=c,").unwrap(), ["a", "b=c", ""]);
        assert_eq!(
            read("\"id=a,b\",\"x=\"\"q\"\"\"").unwrap(),
            ["id=a,b", "x=\"q\""]
        );
        assert_eq!(read("id=a\"b"), Err(FlagError::BareQuote));
        assert_eq!(read("\"id=a"), Err(FlagError::Quote));
        assert_eq!(read("\"id=a\"b"), Err(FlagError::Quote));
        assert_eq!(read(""), Err(FlagError::EmptyMount));
        for fields in [
            vec!["type=cache".to_string(), "id=a,b".into(), " x".into()],
            vec!["id=\"q\"".into(), "".into()],
        ] {
            assert_eq!(read(&write_csv(&fields)).unwrap(), fields);
        }
    }

    #[test]
    fn mount_keys_and_aliases_in_every_spelling() {
        let mount = Mount::parse("TYPE=Cache,Dst=/a,ID=first,destination=/b,iD=last").unwrap();
        assert_eq!(mount.kind(), "cache");
        assert_eq!(mount.id(), Some("last"));
        assert_eq!(mount.target(), Some("/b"));
        let scoped = mount.with_id("cap/web/x");
        assert_eq!(scoped.id(), Some("cap/web/x"));
        assert_eq!(
            scoped.flag().to_string(),
            "--mount=TYPE=Cache,Dst=/a,destination=/b,id=cap/web/x"
        );
        assert_eq!(Mount::parse("target=/x").unwrap().kind(), "bind");
        assert_eq!(
            Mount::parse("type=secret,SRC=T").unwrap().secret(),
            Some(("T".into(), "/run/secrets/T".into()))
        );
        assert_eq!(
            Mount::parse("type=secret,target=/run/secrets/T")
                .unwrap()
                .secret(),
            Some(("T".into(), "/run/secrets/T".into()))
        );
        assert_eq!(
            Mount::parse("type=bind,FROM=cap/api,source=/")
                .unwrap()
                .from(),
            Some("cap/api")
        );
    }

    #[test]
    fn written_flags_read_back_the_same() {
        for value in ["type=cache,id=a b", "\"id=x,y\"", "a\\b'c", "plain"] {
            let flag = Flag {
                name: "mount".into(),
                value: Some(value.into()),
            };
            let text = format!("{flag} true");
            let (read, rest) = split_flags(&text).unwrap();
            assert_eq!(read, vec![flag], "{text}");
            assert_eq!(rest, "true");
        }
    }
}
