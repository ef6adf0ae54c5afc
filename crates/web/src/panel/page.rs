//! What every panel page shares: the navigation bar's view model (with the one-time
//! message of the post that led to the page), rendering a template into a response, the
//! error page, and how times, durations and sizes read.

use crate::panel::flash::Flash;
use crate::panel::session::SignedIn;
use crate::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use capstan_core::Scope;

/// The top bar: who is signed in, what they may do, and which section is open.
pub struct Nav {
    pub user: String,
    pub role: &'static str,
    pub is_admin: bool,
    pub can_deploy: bool,
    pub can_write: bool,
    pub csrf: String,
    pub section: &'static str,
    /// What the post that led here did, said once (see `flash`).
    pub flash: Option<Flash>,
    /// The address that shows this page by GET, for a page that may answer a post (a
    /// form shown again with its problems): the script makes it the history entry's
    /// address, so Back to it, or a reload, asks for the page instead of sending the
    /// form again.
    pub here: Option<String>,
}

impl Nav {
    /// The bar of a page about to be shown; takes the session's one-time message.
    pub fn new(session: &SignedIn, section: &'static str) -> Self {
        Nav::at(session, section, None)
    }

    /// The bar of a page that `here` shows by GET and a post may show again.
    pub fn at(session: &SignedIn, section: &'static str, here: Option<String>) -> Self {
        Nav {
            flash: session.take_flash(),
            here,
            user: session.user.name.clone(),
            role: session.role.as_str(),
            is_admin: session.can(Scope::Admin),
            can_deploy: session.can(Scope::Deploy),
            can_write: session.can(Scope::Write),
            csrf: session.csrf.clone(),
            section,
        }
    }
}

/// Renders a page; a template that fails to render is a 500 with the reason logged.
/// A record's id from the page address: a positive number, else a 404 saying it is not a
/// `what` id (`deployment`, `run`).
pub fn record_id(raw: &str, what: &str) -> Result<i64, PanelError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| PanelError::not_found(format!("{raw:?} is not a {what} id")))
}

pub fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

pub fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, "cannot render a panel page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: String,
    message: String,
}

/// A failure while serving a panel page: shown as a page that says what was wrong, or a
/// redirect (to sign in).
#[derive(Debug)]
pub enum PanelError {
    Redirect(String),
    Failed(ApiError),
}

impl PanelError {
    pub fn forbidden(message: impl Into<String>) -> Self {
        PanelError::Failed(ApiError::new(StatusCode::FORBIDDEN, message))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        PanelError::Failed(ApiError::bad_request(message))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        PanelError::Failed(ApiError::new(StatusCode::NOT_FOUND, message))
    }
}

impl<E: Into<ApiError>> From<E> for PanelError {
    fn from(err: E) -> Self {
        PanelError::Failed(err.into())
    }
}

impl IntoResponse for PanelError {
    fn into_response(self) -> Response {
        match self {
            PanelError::Redirect(to) => Redirect::to(&to).into_response(),
            PanelError::Failed(err) => {
                if err.status.is_server_error() {
                    tracing::error!(status = %err.status, message = %err.message, "panel request failed");
                }
                let retry_after = err.retry_after_header();
                let page = ErrorPage {
                    status: err.status.as_u16(),
                    title: err.status.canonical_reason().unwrap_or("Error").to_string(),
                    message: err.message,
                };
                (retry_after, render_with(err.status, &page)).into_response()
            }
        }
    }
}

/// A time as `2026-11-24 05:42 UTC`.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// How long ago `ms` was, in the largest whole unit: `just now`, `5 min ago`, `3 h ago`,
/// `2 days ago`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - ms).max(0) / 1000;
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A moment as a page shows it: `<time datetime="ISO" title="… UTC">5 min ago</time>`.
/// The panel's script keeps the relative text current and puts the moment in the
/// browser's own time zone in the title; without the script the UTC time is the title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// RFC 3339 in UTC, e.g. `2026-11-24T05:42:13Z`.
    pub iso: String,
    /// `2026-11-24 05:42 UTC`.
    pub utc: String,
    /// `5 min ago`.
    pub ago: String,
}

impl Moment {
    pub fn new(ms: i64, now_ms: i64) -> Self {
        Moment {
            iso: chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            utc: when(ms),
            ago: ago(ms, now_ms),
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every part is made here from a number: digits, ASCII letters, `:-+ `; escaped
        // all the same, so the markup cannot be broken whatever they hold.
        let escape = |text: &str| {
            text.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        write!(
            f,
            r#"<time datetime="{}" title="{}">{}</time>"#,
            escape(&self.iso),
            escape(&self.utc),
            escape(&self.ago)
        )
    }
}

/// A `Moment` is its own markup in a template (`{{ d.created }}`).
impl askama::filters::HtmlSafe for Moment {}

/// A time of day as a page shows it: `<time datetime="ISO" data-clock>05:42:13</time>`,
/// in UTC from the server; the panel's script shows it in the browser's own time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock(pub Moment);

impl Clock {
    pub fn new(ms: i64) -> Self {
        let mut moment = Moment::new(ms, ms);
        moment.ago = chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        Clock(moment)
    }
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let markup = self.0.to_string();
        f.write_str(&markup.replacen("<time ", "<time data-clock ", 1))
    }
}

impl askama::filters::HtmlSafe for Clock {}

pub use capstan_core::units::size;

/// A duration in milliseconds as `850 ms`, `12.4 s` or `3 min 5 s`.
pub fn took(ms: i64) -> String {
    match ms {
        ..=0 => "0 ms".into(),
        1..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_naturally() {
        assert_eq!(ago(0, 30_000), "just now");
        assert_eq!(ago(0, 5 * 60_000), "5 min ago");
        assert_eq!(ago(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(0, 2 * 86_400_000), "2 days ago");
        assert_eq!(took(850), "850 ms");
        assert_eq!(took(12_400), "12.4 s");
        assert_eq!(took(185_000), "3 min 5 s");
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            ago(10_000, 0),
            "just now",
            "a clock ahead is not the future"
        );
        assert_eq!(ago(0, 59_999), "just now");
        assert_eq!(ago(0, 60_000), "1 min ago");
        assert_eq!(ago(0, 86_399_999), "23 h ago");
    }

    #[test]
    fn a_moment_is_a_time_element_with_the_iso_time() {
        let moment = Moment::new(1_764_000_000_000, 1_764_000_300_000);
        assert_eq!(moment.iso, "2025-11-24T16:00:00Z");
        assert_eq!(
            moment.to_string(),
            r#"<time datetime="2025-11-24T16:00:00Z" title="2025-11-24 16:00 UTC">5 min ago</time>"#
        );
        assert_eq!(
            Clock::new(1_764_000_013_000).to_string(),
            r#"<time data-clock datetime="2025-11-24T16:00:13Z" title="2025-11-24 16:00 UTC">16:00:13</time>"#
        );
    }
}
