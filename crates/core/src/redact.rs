//! Credentials out of what is shown: a URL's userinfo (`https://user:token@host/…`)
//! becomes `****`, in logs, errors and API answers.

/// A URL with any credentials in it (`https://user:token@host/...`) replaced by `****`,
/// for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}****@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Every URL in `text` with its credentials redacted (git repeats the URL in errors).
pub fn redact_urls(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .map(|word| {
            let trimmed =
                word.trim_end_matches(|c: char| c.is_whitespace() || c == '\'' || c == '"');
            let tail = &word[trimmed.len()..];
            format!("{}{tail}", redact_url(trimmed))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact_url("https://user:s3cret@git.example/r.git"),
            "https://****@git.example/r.git"
        );
        assert_eq!(
            redact_url("https://git.example/r.git"),
            "https://git.example/r.git"
        );
        assert_eq!(
            redact_url("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert_eq!(
            redact_urls("fatal: unable to access 'https://x:tok@h/r/': 403"),
            "fatal: unable to access 'https://****@h/r/': 403"
        );
    }
}
