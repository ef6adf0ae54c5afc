//! Repository URLs compared the way people write them: HTTPS, SSH and scp-like forms of
//! the same repository read as one `host/path` (host and path lower-cased, scheme,
//! user-info, default ports, trailing `/` and `.git` dropped); local paths and `file://`
//! URLs as their path, so bare repositories in tests can be matched.

/// Ports that say nothing about where a repository lives (ssh, http, https).
const DEFAULT_PORTS: [&str; 3] = ["22", "80", "443"];

/// `"https://GitHub.com/Owner/Repo.git"`, `"git@github.com:Owner/Repo.git"`,
/// `"ssh://git@github.com:22/Owner/Repo"` and `"https://user:tok@github.com/owner/repo/"`
/// all give `"github.com/owner/repo"`; `"file:///srv/git/app.git"` gives
/// `"/srv/git/app"`. `None` when there is no host or no path.
pub fn normalize_repo_url(url: &str) -> Option<String> {
    let url = url.trim();
    if let Some(path) = url.strip_prefix("file://") {
        // git ignores the host of a file URL; only `file:///path` and `file://localhost/path`
        // are written in practice.
        let path = path.strip_prefix("localhost").unwrap_or(path);
        return local_path(path);
    }
    if url.starts_with('/') {
        return local_path(url);
    }
    let (authority, path) = match url.split_once("://") {
        Some((_scheme, rest)) => rest.split_once('/').unwrap_or((rest, "")),
        None => scp_like(url)?,
    };
    let host = host_of(authority)?;
    let path = repo_path(path)?.to_lowercase();
    Some(format!("{host}/{path}"))
}

/// `[user@]host:path`, as git reads it when there is no `://` and the colon comes before
/// any slash.
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    if url[..colon].contains('/') {
        return None;
    }
    Some((&url[..colon], &url[colon + 1..]))
}

/// The host of `[userinfo@]host[:port]`, lower-cased, with a default port dropped.
fn host_of(authority: &str) -> Option<String> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        (&host_port[..inside.len() + 2], after.strip_prefix(':'))
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    match port {
        Some(port) if !port.is_empty() && !DEFAULT_PORTS.contains(&port) => {
            Some(format!("{host}:{port}"))
        }
        _ => Some(host),
    }
}

/// A repository path without query, fragment, surrounding slashes or `.git`.
fn repo_path(path: &str) -> Option<&str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_matches('/');
    let path = strip_git_suffix(path).trim_end_matches('/');
    (!path.is_empty()).then_some(path)
}

fn strip_git_suffix(path: &str) -> &str {
    let len = path.len();
    if len >= 4 && path.is_char_boundary(len - 4) && path[len - 4..].eq_ignore_ascii_case(".git") {
        &path[..len - 4]
    } else {
        path
    }
}

/// A local path as an absolute path without trailing `/` or `.git` (case kept: local
/// file systems tell cases apart).
fn local_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let trimmed = strip_git_suffix(path.trim_end_matches('/')).trim_end_matches('/');
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize_repo_url as n;

    #[test]
    fn forms_of_one_repository_read_the_same() {
        let want = Some("github.com/owner/repo".to_owned());
        for url in [
            "https://GitHub.com/Owner/Repo.git",
            "git@github.com:Owner/Repo.git",
            "ssh://git@github.com:22/Owner/Repo",
            "https://user:tok@github.com/owner/repo/",
            "http://github.com:80/owner/repo",
            "https://github.com:443/owner/repo.GIT/",
            "git+ssh://git@github.com/owner/repo.git",
            "github.com:owner/repo",
            "ssh://git@github.com/owner/repo.git?x=1#frag",
            "  https://github.com/owner/repo  ",
        ] {
            assert_eq!(n(url), want, "{url}");
        }
    }

    #[test]
    fn different_repositories_stay_different() {
        assert_ne!(
            n("https://github.com/owner/repo"),
            n("https://github.com/owner/repo2")
        );
        assert_ne!(
            n("https://github.com/owner/repo"),
            n("https://gitlab.com/owner/repo")
        );
        assert_eq!(
            n("ssh://git@git.example.com:2222/team/app.git").as_deref(),
            Some("git.example.com:2222/team/app")
        );
        assert_eq!(
            n("https://gitlab.com/Group/Sub/Project.git").as_deref(),
            Some("gitlab.com/group/sub/project")
        );
        assert_eq!(
            n("https://[::1]:8443/a/b.git").as_deref(),
            Some("[::1]:8443/a/b")
        );
        assert_eq!(n("ssh://git@[::1]:22/a/b").as_deref(), Some("[::1]/a/b"));
    }

    #[test]
    fn local_repositories_read_as_their_path() {
        assert_eq!(
            n("file:///srv/git/app.git").as_deref(),
            Some("/srv/git/app")
        );
        assert_eq!(
            n("file://localhost/srv/git/App/").as_deref(),
            Some("/srv/git/App")
        );
        assert_eq!(n("/srv/git/app.git/"), n("file:///srv/git/app"));
    }

    #[test]
    fn urls_without_host_or_path_are_none() {
        for url in [
            "",
            "   ",
            "https://",
            "https://github.com",
            "https://github.com/",
            "git@github.com:",
            "file://",
            "relative/path",
            "/",
            "file:///.git",
        ] {
            assert_eq!(n(url), None, "{url:?}");
        }
    }
}
