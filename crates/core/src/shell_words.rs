//! An argv written as one line a POSIX shell would read back as the same words, for people
//! to read (change log, diffs); commands themselves always run as argv.

/// `argv` as one shell-quoted line: plain words as they are, others in single quotes
/// (`["sh", "-c", "exit 3"]` → `sh -c 'exit 3'`).
pub fn shell_line(argv: &[String]) -> String {
    let quoted: Vec<String> = argv.iter().map(|word| quote(word)).collect();
    quoted.join(" ")
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_line;

    #[test]
    fn words_that_need_it_are_single_quoted() {
        let line =
            |words: &[&str]| shell_line(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>());
        assert_eq!(line(&["sh", "-c", "exit 3"]), "sh -c 'exit 3'");
        assert_eq!(line(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
        assert_eq!(line(&["./migrate", "--to=v2"]), "./migrate --to=v2");
    }
}
