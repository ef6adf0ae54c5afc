//! The headers each forge names its deliveries and events with, read as trimmed text.

use http::HeaderMap;

use crate::Provider;

/// Longest delivery id kept: forges send UUIDs or short hex; anything longer is not one.
const MAX_DELIVERY_ID: usize = 128;

/// A header's value as trimmed, non-empty text (`None` when absent, empty or not text).
pub(crate) fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// The first of `names` present as text.
fn first_text<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names.iter().find_map(|name| text(headers, name))
}

/// The header that names the event, as said in errors.
pub(crate) fn event_header(provider: Provider) -> &'static str {
    match provider {
        Provider::Github => "X-GitHub-Event",
        Provider::Gitlab => "X-Gitlab-Event",
        Provider::Gitea => "X-Gitea-Event",
        Provider::Bitbucket => "X-Event-Key",
    }
}

pub(crate) fn event_name(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match provider {
        Provider::Gitea => &["X-Gitea-Event", "X-Forgejo-Event"],
        other => &[event_header(other)],
    };
    first_text(headers, names).map(str::to_owned)
}

pub(crate) fn delivery_id(provider: Provider, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match provider {
        Provider::Github => &["X-GitHub-Delivery"],
        // `Idempotency-Key` (GitLab 17.4+) stays the same when GitLab retries a delivery.
        Provider::Gitlab => &["Idempotency-Key", "X-Gitlab-Event-UUID"],
        Provider::Gitea => &["X-Gitea-Delivery", "X-Forgejo-Delivery"],
        Provider::Bitbucket => &["X-Request-UUID"],
    };
    let id = first_text(headers, names)?;
    let printable = id.chars().all(|c| c.is_ascii_graphic());
    (printable && id.len() <= MAX_DELIVERY_ID).then(|| id.to_owned())
}
