//! Who is signed in to the panel: the session cookie, looked up server-side, and the
//! anti-forgery check every form post passes before its handler runs.

use crate::accounts::{role_of, SESSION_LIFETIME};
use crate::panel::flash::{Flash, Flashes};
use crate::panel::page::PanelError;
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use capstan_core::{AppName, Role, Scope};
use capstan_deploy::Caller;
use capstan_store::UserRecord;
use std::net::{IpAddr, SocketAddr};

pub const SESSION_COOKIE: &str = "capstan_session";

/// A signed-in user.
#[derive(Clone)]
pub struct SignedIn {
    pub user: UserRecord,
    pub role: Role,
    pub csrf: String,
    flashes: Flashes,
}

impl SignedIn {
    /// The one-time message waiting for this session's next page, taken.
    pub fn take_flash(&self) -> Option<Flash> {
        self.flashes.take(&self.csrf)
    }

    /// Answers a post that succeeded: a 303 to `to`, whose page then says `flash` once.
    pub fn redirect_with(&self, to: &str, flash: Flash) -> Response {
        self.flashes.put(&self.csrf, flash);
        Redirect::to(to).into_response()
    }

    /// Drops what waits for this session (it is ending).
    pub fn forget_flashes(&self) {
        self.flashes.forget(&self.csrf);
    }

    pub fn caller(&self) -> Caller {
        Caller::user(self.user.name.clone(), self.role)
    }

    pub fn can(&self, scope: Scope) -> bool {
        self.role.scopes().allows(scope)
    }

    /// Refuses with 403 naming the role when the user's role does not allow `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), PanelError> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(PanelError::forbidden(format!(
                "your role, {}, does not allow this (it needs the {} scope)",
                self.role.as_str(),
                scope.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PanelError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let store = state.deployer.store();
        if let Some(cookie) = jar.get(SESSION_COOKIE) {
            if let Some(session) = store.session(cookie.value()).await? {
                let role = role_of(&session.user);
                return Ok(SignedIn {
                    user: session.user,
                    role,
                    csrf: session.csrf,
                    flashes: state.accounts.flashes.clone(),
                });
            }
        }
        if store.user_count().await? == 0 {
            Err(PanelError::Redirect("/setup".into()))
        } else {
            Err(PanelError::Redirect(sign_in_then_back(parts)))
        }
    }
}

/// The sign-in page, told to come back here afterwards when this is a page the browser
/// navigated to (not a form post, nor a script's fetch of a page's part).
fn sign_in_then_back(parts: &Parts) -> String {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let navigated = match header("sec-fetch-mode") {
        "" => header("accept").contains("text/html"),
        mode => mode == "navigate",
    };
    let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    match local_path(here) {
        Some(path) if navigated && parts.method == axum::http::Method::GET && path != "/" => {
            let next =
                percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC);
            format!("/login?next={next}")
        }
        _ => "/login".into(),
    }
}

/// `next` when it is a path on this site (`/apps/x?tab=y`), the only place sign-in may
/// send the browser on to: one leading `/` (not `//` nor `/\`, which browsers read as
/// another host), no scheme, no backslash, whitespace or control character anywhere
/// (browsers drop tabs and newlines, and read `\` as `/`), at most 2 KiB.
pub fn local_path(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    let refused = rest.starts_with('/')
        || next.len() > 2048
        || next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    (!refused).then_some(next)
}

/// A form post from a signed-in user whose anti-forgery token matched.
pub struct Posted {
    pub session: SignedIn,
    pub fields: FormFields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = PanelError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = SignedIn::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let fields = FormFields::from_request(request, state).await?;
        let given = fields.get("csrf");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            session.csrf.as_bytes(),
        )) {
            return Err(stale_form());
        }
        Ok(Posted { session, fields })
    }
}

impl Posted {
    /// The checks every app action starts with: the role allows `scope`, and `app` is a
    /// valid app name. Returns the name and who acts.
    pub fn for_app(&self, scope: Scope, app: &str) -> Result<(AppName, Caller), PanelError> {
        self.session.require(scope)?;
        Ok((crate::apps::app_name(app)?, self.session.caller()))
    }
}

/// The fields of an urlencoded form, in order (a name may repeat).
#[derive(Debug, Default, Clone)]
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The first value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// A checkbox: present and not "off"/"false".
    pub fn checked(&self, name: &str) -> bool {
        self.has(name) && !matches!(self.get(name), "off" | "false" | "0")
    }
}

impl FromRequest<AppState> for FormFields {
    type Rejection = PanelError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|e| PanelError::bad_request(format!("unreadable form: {}", e.body_text())))?;
        Ok(FormFields(pairs))
    }
}

/// The address a request came from, when the server recorded it.
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The refusal of a post whose anti-forgery token does not match.
pub fn stale_form() -> PanelError {
    PanelError::forbidden(
        "the form's anti-forgery token is missing or stale; reload the page and try again",
    )
}

/// Whether a proxy in front says the request came over HTTPS (`X-Forwarded-Proto`).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when the panel is reached over
/// HTTPS (a proxy in front says so with `X-Forwarded-Proto`).
pub fn session_cookie(secret: String, headers: &HeaderMap) -> Cookie<'static> {
    let https = over_https(headers);
    Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX),
        ))
        .build()
}

/// The cookie that clears the session cookie.
pub fn cleared_cookie() -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, "")).path("/").build()
}
