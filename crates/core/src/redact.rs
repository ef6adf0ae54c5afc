//! Credentials out of what is shown: a URL's userinfo (`https://user:token@host/…`) and
//! the values of its query parameters (`?private_token=…`) become `****`, in logs, errors
//! and API answers.
//!
//! Every query value is redacted, not only those whose names look like credentials: a git
//! remote is named by its path, so the query of a git URL carries nothing but access
//! (GitLab's `private_token`, `access_token`, presigned `X-Amz-Signature`/`X-Amz-Credential`,
//! Azure's `sig`, `token`, `key`, …), and a list of names would miss the next spelling. The
//! parameter names stay, so the URL still says which one is set.

/// A URL with any credentials in it (`https://user:token@host/...`, `...?token=...`)
/// replaced by `****`, for logs and error messages. Text that is not a `scheme://` URL
/// is returned as it is.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("****@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    format!("{head}{authority}{}", redact_query(path))
}

/// The path with every query parameter's value (a parameter without `=` whole) as `****`;
/// the fragment is kept.
fn redact_query(path: &str) -> String {
    let Some(question) = path.find('?') else {
        return path.to_string();
    };
    let (before, after) = path.split_at(question + 1);
    let (query, fragment) = after.split_at(after.find('#').unwrap_or(after.len()));
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, "")) => format!("{name}="),
            Some((name, _)) => format!("{name}=****"),
            None if param.is_empty() => String::new(),
            None => "****".to_string(),
        })
        .collect();
    format!("{before}{}{fragment}", params.join("&"))
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

    #[test]
    fn query_parameter_values_are_redacted_whatever_their_names() {
        for (url, shown) in [
            (
                "https://gitlab.example/g/r.git?private_token=glpat-s3cret",
                "https://gitlab.example/g/r.git?private_token=****",
            ),
            (
                "https://u:p@h/r.git?access_token=a1&token=b2&key=c3&sig=d4#frag",
                "https://****@h/r.git?access_token=****&token=****&key=****&sig=****#frag",
            ),
            (
                "https://s3.example/b/r.bundle?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff00",
                "https://s3.example/b/r.bundle?X-Amz-Credential=****&X-Amz-Signature=****",
            ),
            // Right after the host, a bare token, an empty value, a doubled `&`.
            (
                "http://h?tok3n-without-name&empty=&&x=1",
                "http://h?****&empty=&&x=****",
            ),
            ("https://h/r.git?a=1;token=s3cret", "https://h/r.git?a=****"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        // git repeats the URL with a `/` after the query in its errors.
        assert_eq!(
            redact_urls(
                "fatal: unable to access 'http://127.0.0.1:9/r.git?private_token=abc123&x=1/': Failed"
            ),
            "fatal: unable to access 'http://127.0.0.1:9/r.git?private_token=****&x=****': Failed"
        );
        // Text that is not a URL keeps its question marks.
        assert_eq!(redact_urls("why? because=yes"), "why? because=yes");
    }
}
