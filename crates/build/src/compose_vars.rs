//! Variable interpolation in compose files, as the compose specification defines it:
//! `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?message}` and `${VAR?message}` (required), `${VAR:+alt}`/`${VAR+alt}`, and `$$`
//! for a literal `$`. Defaults may hold further variables.
//!
//! The variables are the app's environment, the repo's `.env` beside the compose file
//! (lower priority), and the app's secret names: a secret stays `${NAME}` in the result,
//! so the stored spec never holds its value; the container gets the value when it is
//! created.

use std::collections::{BTreeMap, BTreeSet};

/// What `${NAME}` can resolve to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    pub values: BTreeMap<String, String>,
    /// Names whose values are secrets: kept as `${NAME}`.
    pub secrets: BTreeSet<String>,
}

enum Lookup<'a> {
    Value(&'a str),
    Secret,
    Unset,
}

impl Variables {
    fn lookup(&self, name: &str) -> Lookup<'_> {
        if self.secrets.contains(name) {
            Lookup::Secret
        } else {
            match self.values.get(name) {
                Some(v) => Lookup::Value(v),
                None => Lookup::Unset,
            }
        }
    }

    /// Interpolates one string; the error names the variable and says why.
    pub fn interpolate(&self, text: &str) -> Result<String, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '$' {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            match chars.get(i + 1) {
                Some('$') => {
                    // Kept escaped: the file's parser turns `$$` into `$` where it applies.
                    out.push_str("$$");
                    i += 2;
                }
                Some('{') => {
                    let end = matching_brace(&chars, i + 1)
                        .ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
                    let inner: String = chars[i + 2..end].iter().collect();
                    out.push_str(&self.expand(&inner)?);
                    i = end + 1;
                }
                Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len()
                        && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                    {
                        end += 1;
                    }
                    let name: String = chars[start..end].iter().collect();
                    out.push_str(&self.plain(&name));
                    i = end;
                }
                _ => {
                    out.push('$');
                    i += 1;
                }
            }
        }
        Ok(out)
    }

    fn plain(&self, name: &str) -> String {
        match self.lookup(name) {
            Lookup::Value(v) => v.to_string(),
            Lookup::Secret => format!("${{{name}}}"),
            Lookup::Unset => String::new(),
        }
    }

    /// The inside of `${...}`.
    fn expand(&self, inner: &str) -> Result<String, String> {
        let name_len = inner
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(inner.len(), |(i, _)| i);
        let (name, rest) = inner.split_at(name_len);
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("${{{inner}}} does not start with a variable name"));
        }
        let lookup = self.lookup(name);
        let (set, nonempty) = match lookup {
            Lookup::Value(v) => (true, !v.is_empty()),
            Lookup::Secret => (true, true),
            Lookup::Unset => (false, false),
        };
        let value = || self.plain(name);
        let (op, arg) = if let Some(arg) = rest.strip_prefix(":-") {
            (":-", arg)
        } else if let Some(arg) = rest.strip_prefix(":?") {
            (":?", arg)
        } else if let Some(arg) = rest.strip_prefix(":+") {
            (":+", arg)
        } else if rest.is_empty() {
            ("", "")
        } else {
            rest.split_at(1)
        };
        match op {
            "" => Ok(value()),
            ":-" if nonempty => Ok(value()),
            "-" if set => Ok(value()),
            ":-" | "-" => self.interpolate(arg),
            ":?" if nonempty => Ok(value()),
            "?" if set => Ok(value()),
            ":?" | "?" => Err(if arg.is_empty() {
                format!("variable {name} is required but not set; set it in the app's environment or secrets")
            } else {
                format!("variable {name} is required: {}", self.interpolate(arg)?)
            }),
            ":+" if nonempty => self.interpolate(arg),
            "+" if set => self.interpolate(arg),
            ":+" | "+" => Ok(String::new()),
            _ => Err(format!("${{{inner}}}: unknown operator after {name}")),
        }
    }
}

/// The index of the `}` closing the `{` at `open`, counting nested `${`.
fn matching_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in chars.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Reads a `.env` file: `KEY=value` lines, `#` comments, optional `export `, and values in
/// single or double quotes.
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = match (value.chars().next(), value.chars().last()) {
            (Some(q @ ('"' | '\'')), Some(e)) if q == e && value.len() >= 2 => {
                value[1..value.len() - 1].to_string()
            }
            _ => value.split(" #").next().unwrap_or("").trim().to_string(),
        };
        values.insert(key.trim().to_string(), value);
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        Variables {
            values: BTreeMap::from([
                ("HOST".into(), "db".into()),
                ("EMPTY".into(), String::new()),
            ]),
            secrets: BTreeSet::from(["DB_PASSWORD".to_string()]),
        }
    }

    #[test]
    fn every_form_of_the_spec() {
        let v = vars();
        let cases = [
            ("postgres://${HOST}:5432", "postgres://db:5432"),
            ("$HOST/x", "db/x"),
            ("${MISSING:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY-fallback}", ""),
            ("${MISSING-fallback}", "fallback"),
            ("${MISSING:-${HOST}-2}", "db-2"),
            ("${HOST:+set}", "set"),
            ("${MISSING:+set}", ""),
            ("cost $$5", "cost $$5"),
            ("pw=${DB_PASSWORD}", "pw=${DB_PASSWORD}"),
            ("pw=${DB_PASSWORD:-x}", "pw=${DB_PASSWORD}"),
            ("$DB_PASSWORD", "${DB_PASSWORD}"),
            ("${MISSING}", ""),
            ("a $ b", "a $ b"),
        ];
        for (input, expected) in cases {
            assert_eq!(v.interpolate(input).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn a_required_variable_that_is_unset_is_named() {
        let v = vars();
        let err = v.interpolate("${API_KEY:?set an API key}").unwrap_err();
        assert!(
            err.contains("API_KEY") && err.contains("set an API key"),
            "{err}"
        );
        let err = v.interpolate("${API_KEY?}").unwrap_err();
        assert!(err.contains("API_KEY is required"), "{err}");
        assert!(v.interpolate("${EMPTY?}").is_ok(), "set, though empty");
        assert!(v.interpolate("${EMPTY:?}").is_err());
        assert!(v.interpolate("${HOST").is_err());
        assert!(v.interpolate("${1X}").is_err());
    }

    #[test]
    fn dotenv_files_are_read_as_compose_reads_them() {
        let values = parse_dotenv(
            "# comment\nexport TAG=1.2\nNAME=\"quoted value\"\nSINGLE='x y'\nPLAIN=abc # note\nbad line\n",
        );
        assert_eq!(values["TAG"], "1.2");
        assert_eq!(values["NAME"], "quoted value");
        assert_eq!(values["SINGLE"], "x y");
        assert_eq!(values["PLAIN"], "abc");
        assert_eq!(values.len(), 4);
    }
}
