//! A Dockerfile split into instructions exactly where BuildKit's parser splits it: the
//! `# escape=` directive, continuation lines (the escape character, then only spaces or
//! tabs), comment and blank lines inside a continuation skipped. Whatever Capstan checks or
//! rewrites in an instruction is the instruction BuildKit will run, never a line that
//! BuildKit would read as part of another one.

use crate::BuildError;

/// One instruction: its first line number, its text (its lines as written, joined with
/// newlines: continuation markers kept, comment and blank lines inside dropped), a heredoc
/// body if it has one, and the file's escape character.
#[derive(Debug, Clone)]
pub(crate) struct Instruction {
    pub(crate) line: usize,
    pub(crate) text: String,
    pub(crate) heredoc: Option<(String, String)>,
    pub(crate) escape: char,
}

impl Instruction {
    /// The instruction as BuildKit reads it: one line, continuation markers and line
    /// breaks removed, surrounding whitespace trimmed.
    pub(crate) fn logical(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            if lines.peek().is_some() {
                let trimmed = line.trim_end_matches([' ', '\t']);
                out.push_str(trimmed.strip_suffix(self.escape).unwrap_or(trimmed));
            } else {
                out.push_str(line);
            }
        }
        out.trim().to_string()
    }

    /// The keyword, upper-cased (`RUN`), as BuildKit finds it in [`Self::logical`].
    pub(crate) fn keyword(&self) -> String {
        split_keyword(&self.logical()).0.to_ascii_uppercase()
    }
}

/// A logical line split into its keyword and its arguments at the first run of the
/// whitespace BuildKit splits on (`[\t\v\f\r ]+`).
pub(crate) fn split_keyword(logical: &str) -> (&str, &str) {
    let is_split = |c: char| matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r');
    match logical.find(is_split) {
        Some(at) => (&logical[..at], logical[at..].trim_start_matches(is_split)),
        None => (logical, ""),
    }
}

/// The escape character the file's parser directives set (`# escape=\`` or the default
/// `\`). Directives count only before any other line, as BuildKit reads them.
fn escape_directive(lines: &[&str]) -> char {
    let mut escape = '\\';
    for line in lines {
        let Some(directive) = line.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((name, value)) = directive.split_once('=') else {
            break;
        };
        let name = name.trim_matches([' ', '\t', '\x0c', '\r']);
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid_name {
            break;
        }
        match name.to_ascii_lowercase().as_str() {
            "escape" => {
                if value.trim_matches([' ', '\t', '\x0c', '\r']) == "`" {
                    escape = '`';
                }
            }
            // Newer BuildKit reads `check` as a directive too, and an `escape` after it.
            "syntax" | "check" => {}
            _ => break,
        }
    }
    escape
}

/// Splits the file into instructions, as BuildKit does, collecting heredoc bodies;
/// comments and blank lines are dropped (the builders ignore them too).
pub(crate) fn split_instructions(
    text: &str,
    refuse: &dyn Fn(usize, &str) -> BuildError,
) -> Result<Vec<Instruction>, BuildError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_directive(&lines);
    let skipped = |line: &str| {
        let trimmed = line.trim_start();
        trimmed.is_empty() || trimmed.starts_with('#')
    };
    let continues = |line: &str| line.trim_end_matches([' ', '\t']).ends_with(escape);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if skipped(lines[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let mut joined = lines[i].to_string();
        let mut last = lines[i];
        while continues(last) && i + 1 < lines.len() {
            i += 1;
            if skipped(lines[i]) {
                continue; // comments and blank lines inside continuations, as BuildKit does
            }
            last = lines[i];
            joined.push('\n');
            joined.push_str(last);
        }
        let mut heredoc = None;
        if let Some((name, strip_tabs)) = heredoc_marker(&joined) {
            let mut body = String::new();
            loop {
                i += 1;
                let Some(line) = lines.get(i) else {
                    return Err(refuse(
                        start + 1,
                        &format!("an unterminated heredoc <<{name}"),
                    ));
                };
                let candidate = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if candidate == name {
                    break;
                }
                body.push_str(candidate);
                body.push('\n');
            }
            heredoc = Some((name, body));
        }
        out.push(Instruction {
            line: start + 1,
            text: joined,
            heredoc,
            escape,
        });
        i += 1;
    }
    Ok(out)
}

/// The instructions as a Dockerfile again, after `header` (instructions to put first),
/// with the escape directive they were read with.
pub(crate) fn render(instructions: &[Instruction], header: String) -> String {
    let mut rendered = String::new();
    if instructions.first().is_some_and(|i| i.escape == '`') {
        rendered.push_str("# escape=`\n");
    }
    rendered.push_str(&header);
    for inst in instructions {
        rendered.push_str(&inst.text);
        rendered.push('\n');
        if let Some((marker, body)) = &inst.heredoc {
            rendered.push_str(body);
            rendered.push_str(marker);
            rendered.push('\n');
        }
    }
    rendered
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` in an instruction: the end marker and whether tabs are
/// stripped.
fn heredoc_marker(text: &str) -> Option<(String, bool)> {
    let keyword = text.split_whitespace().next()?.to_ascii_uppercase();
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return None;
    }
    let at = text.find("<<")?;
    let rest = &text[at + 2..];
    let (rest, strip) = match rest.strip_prefix('-') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let name: String = rest
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some((name, strip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<Instruction> {
        split_instructions(text, &|_, what| BuildError::Source(what.to_string())).unwrap()
    }

    #[test]
    fn instructions_end_where_buildkit_ends_them() {
        // A blank or comment line inside a continuation does not end it; an indented
        // keyword, a keyword followed by its continuation, a form feed after `\` (no
        // continuation for BuildKit) are read as BuildKit reads them.
        let text = "FROM busybox\nRUN \\\n\n  --mount=type=cache,id=x,target=/c \\\n# note\n   true\n\
                    \x20 run\\\n  --mount=type=cache,target=/d true\nRUN echo \\\x0c\nRUN --mount=type=cache,target=/e true\n";
        let got: Vec<(usize, String, String)> = split(text)
            .iter()
            .map(|i| (i.line, i.keyword(), i.logical()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "FROM".into(), "FROM busybox".into()),
                (
                    2,
                    "RUN".into(),
                    "RUN   --mount=type=cache,id=x,target=/c    true".into()
                ),
                (
                    7,
                    "RUN".into(),
                    "run  --mount=type=cache,target=/d true".into()
                ),
                (9, "RUN".into(), "RUN echo \\".into()),
                (
                    10,
                    "RUN".into(),
                    "RUN --mount=type=cache,target=/e true".into()
                ),
            ]
        );
    }

    #[test]
    fn the_escape_directive_sets_the_continuation_character() {
        let text = "\u{feff}# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN `\n  --mount=type=cache,target=/c echo C:\\path\n";
        let insts = split(text);
        assert_eq!(insts.len(), 2);
        assert_eq!(
            insts[1].logical(),
            "RUN   --mount=type=cache,target=/c echo C:\\path"
        );
        assert!(render(&insts, String::new()).starts_with("# escape=`\nFROM busybox\n"));
        // After another line, it is a comment.
        let late = split("FROM busybox\n# escape=`\nRUN a `\nRUN b\n");
        assert_eq!(late.len(), 3);
        // A `check` directive before it does not end the directives (newer BuildKit).
        let checked = split("# check=skip=all\n# escape=`\nFROM busybox\nLABEL x=y \\\nRUN `\n  --mount=type=cache,target=/c true\n");
        assert_eq!(checked.len(), 3, "the RUN is its own instruction");
        assert_eq!(checked[2].keyword(), "RUN");
    }
}
