//! What each forge's commit-status API is asked, without IO: the repository read from the
//! app's git URL, the API root, and per forge the endpoint, the auth header, the state's
//! name and the body (GitHub and Gitea `POST /repos/{owner}/{repo}/statuses/{sha}`, GitLab
//! `POST /projects/{id}/statuses/{sha}`, Bitbucket Cloud
//! `POST /repositories/{workspace}/{repo}/commit/{sha}/statuses/build`).

use capstan_forge::Provider;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

/// The longest description sent: GitHub refuses more than 140 characters; the others take
/// more, but one limit keeps the four alike.
pub const MAX_DESCRIPTION: usize = 140;

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where a deployment stands, in Capstan's words; each forge names it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    /// Superseded or cancelled: neither passed nor failed.
    Stopped,
}

impl StatusState {
    /// The state as `provider` spells it.
    pub fn name(self, provider: Provider) -> &'static str {
        use StatusState::*;
        match (provider, self) {
            (Provider::Github | Provider::Gitea, Pending) => "pending",
            (Provider::Github | Provider::Gitea, Success) => "success",
            (Provider::Github | Provider::Gitea, Failure) => "failure",
            (Provider::Github | Provider::Gitea, Stopped) => "error",
            (Provider::Gitlab, Pending) => "pending",
            (Provider::Gitlab, Success) => "success",
            (Provider::Gitlab, Failure) => "failed",
            (Provider::Gitlab, Stopped) => "canceled",
            (Provider::Bitbucket, Pending) => "INPROGRESS",
            (Provider::Bitbucket, Success) => "SUCCESSFUL",
            (Provider::Bitbucket, Failure) => "FAILED",
            (Provider::Bitbucket, Stopped) => "STOPPED",
        }
    }
}

/// A repository on a forge, as its API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `https://host[:port]` when the git URL is http(s), else `https://host`.
    pub web_root: String,
    /// The path without `.git`: `owner/name`, or `group/sub/project` on GitLab.
    pub path: String,
}

/// The repository of a git URL (`https://github.com/o/r.git`, `git@host:o/r.git`,
/// `ssh://git@host:2222/group/sub/p`); `None` for a local path or a path of one segment.
pub fn repository(git_url: &str) -> Option<Repository> {
    let normal = capstan_forge::normalize_repo_url(git_url)?;
    let (host, path) = normal.split_once('/')?;
    if host.is_empty() || !path.contains('/') {
        return None;
    }
    let web_root = match url::Url::parse(git_url.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", url.scheme(), url.host_str()?)
        }
        // An SSH port says nothing about where the web API answers.
        _ => format!("https://{}", host.split(':').next().unwrap_or(host)),
    };
    Some(Repository {
        web_root: web_root.to_ascii_lowercase(),
        path: path.to_owned(),
    })
}

/// The API root: the configured one, else the forge's default for the repository.
pub fn api_root(provider: Provider, configured: Option<&str>, repo: &Repository) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    match provider {
        Provider::Github => "https://api.github.com".into(),
        Provider::Gitlab => format!("{}/api/v4", repo.web_root),
        Provider::Gitea => format!("{}/api/v1", repo.web_root),
        Provider::Bitbucket => "https://api.bitbucket.org/2.0".into(),
    }
}

/// One status to report on one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub sha: String,
    pub state: StatusState,
    /// `capstan/<app>`: the forge keeps one status per commit and context.
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// An HTTP request to a forge, ready to send.
#[derive(Debug, Clone)]
pub struct ForgeRequest {
    pub url: String,
    pub auth_header: &'static str,
    /// The auth header's value; it holds the token, so it is never logged.
    pub auth_value: String,
    pub body: serde_json::Value,
}

/// The request that reports `status` on `repo` through `provider`'s API at `root`.
pub fn request(
    provider: Provider,
    root: &str,
    repo: &Repository,
    status: &CommitStatus,
    token: &str,
) -> ForgeRequest {
    let enc = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
    let segments: Vec<&str> = repo.path.rsplitn(2, '/').collect();
    let (name, owner) = (segments[0], segments.get(1).copied().unwrap_or_default());
    // The owner of a two-level path; deeper paths keep only their last two segments.
    let owner = owner.rsplit('/').next().unwrap_or(owner);
    let sha = enc(&status.sha);
    let state = status.state.name(provider);
    let description = truncate(&status.description, MAX_DESCRIPTION);
    let (url, auth_header, auth_value, mut body) = match provider {
        Provider::Github | Provider::Gitea => (
            format!("{root}/repos/{}/{}/statuses/{sha}", enc(owner), enc(name)),
            "authorization",
            if provider == Provider::Github {
                format!("Bearer {token}")
            } else {
                format!("token {token}")
            },
            json!({"state": state, "context": status.context, "description": description}),
        ),
        Provider::Gitlab => (
            format!("{root}/projects/{}/statuses/{sha}", enc(&repo.path)),
            "private-token",
            token.to_owned(),
            json!({"state": state, "name": status.context, "description": description}),
        ),
        Provider::Bitbucket => (
            format!(
                "{root}/repositories/{}/{}/commit/{sha}/statuses/build",
                enc(owner),
                enc(name)
            ),
            "authorization",
            format!("Bearer {token}"),
            json!({"state": state, "key": status.context, "name": status.context,
                   "description": description}),
        ),
    };
    if let Some(target) = &status.target_url {
        let field = if provider == Provider::Bitbucket {
            "url"
        } else {
            "target_url"
        };
        body[field] = json!(target);
    }
    ForgeRequest {
        url,
        auth_header,
        auth_value,
        body,
    }
}

/// At most `max` characters, the last one `…` when some were cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: StatusState) -> CommitStatus {
        CommitStatus {
            sha: "a".repeat(40),
            state,
            context: "capstan/web".into(),
            description: "d".into(),
            target_url: Some("https://web.example.com".into()),
        }
    }

    #[test]
    fn repositories_are_read_from_every_form_of_git_url() {
        let gh = repository("git@github.com:Owner/Repo.git").unwrap();
        assert_eq!(gh.path, "owner/repo");
        assert_eq!(
            api_root(Provider::Github, None, &gh),
            "https://api.github.com"
        );
        let gl = repository("ssh://git@gitlab.example.com:2222/team/sub/app.git").unwrap();
        assert_eq!(gl.path, "team/sub/app");
        assert_eq!(
            api_root(Provider::Gitlab, None, &gl),
            "https://gitlab.example.com/api/v4"
        );
        let gitea = repository("http://127.0.0.1:3000/o/r").unwrap();
        assert_eq!(
            api_root(Provider::Gitea, None, &gitea),
            "http://127.0.0.1:3000/api/v1"
        );
        assert_eq!(
            api_root(Provider::Gitea, Some("https://x/api/v1/"), &gitea),
            "https://x/api/v1"
        );
        assert_eq!(repository("file:///srv/git/app.git"), None);
        assert_eq!(repository("https://github.com/only"), None);
    }

    #[test]
    fn each_forge_gets_its_endpoint_auth_and_state_names() {
        let repo = repository("https://gitlab.com/group/sub/project.git").unwrap();
        let gl = request(
            Provider::Gitlab,
            "R",
            &repo,
            &status(StatusState::Failure),
            "tk",
        );
        assert_eq!(
            gl.url,
            format!(
                "R/projects/group%2Fsub%2Fproject/statuses/{}",
                "a".repeat(40)
            )
        );
        assert_eq!(
            (gl.auth_header, gl.auth_value.as_str()),
            ("private-token", "tk")
        );
        assert_eq!(gl.body["state"], "failed");
        assert_eq!(gl.body["name"], "capstan/web");
        let repo = repository("https://bitbucket.org/ws/repo").unwrap();
        let bb = request(
            Provider::Bitbucket,
            "R",
            &repo,
            &status(StatusState::Pending),
            "tk",
        );
        assert!(bb.url.ends_with("/repositories/ws/repo/commit/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/statuses/build"), "{}", bb.url);
        assert_eq!(bb.body["state"], "INPROGRESS");
        assert_eq!(bb.body["key"], "capstan/web");
        assert_eq!(bb.body["url"], "https://web.example.com");
        let gt = request(
            Provider::Gitea,
            "R",
            &repo,
            &status(StatusState::Stopped),
            "tk",
        );
        assert_eq!(gt.auth_value, "token tk");
        assert_eq!(gt.body["state"], "error");
        assert_eq!(gt.body["target_url"], "https://web.example.com");
    }

    #[test]
    fn long_descriptions_are_cut_to_the_limit() {
        let long = "é".repeat(500);
        let cut = truncate(&long, MAX_DESCRIPTION);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", MAX_DESCRIPTION), "short");
    }
}
