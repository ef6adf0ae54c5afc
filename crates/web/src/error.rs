//! API errors: a status code and a message that says what was wrong, as JSON.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capstan_deploy::ActionError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to wait before trying again, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Tells the client how many seconds to wait before trying again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The `Retry-After` header this error asks for, if any.
    pub fn retry_after_header(&self) -> Option<[(axum::http::HeaderName, String); 1]> {
        self.retry_after
            .map(|secs| [(axum::http::header::RETRY_AFTER, secs.to_string())])
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, message = %self.message, "request failed");
        }
        let retry_after = self.retry_after_header();
        let body = axum::Json(serde_json::json!({ "error": self.message }));
        (self.status, retry_after, body).into_response()
    }
}

impl From<ActionError> for ApiError {
    fn from(err: ActionError) -> Self {
        let status = match &err {
            ActionError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ActionError::Forbidden(_) => StatusCode::FORBIDDEN,
            ActionError::NotFound(_) => StatusCode::NOT_FOUND,
            ActionError::Conflict(_) => StatusCode::CONFLICT,
            ActionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ActionError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ActionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ActionError::RateLimited {
                retry_after_secs, ..
            } => {
                let secs = *retry_after_secs;
                return Self::new(StatusCode::TOO_MANY_REQUESTS, err.to_string()).retry_after(secs);
            }
        };
        Self::new(status, err.to_string())
    }
}

impl From<capstan_store::StoreError> for ApiError {
    fn from(err: capstan_store::StoreError) -> Self {
        ActionError::from(err).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(
            status,
            format!("invalid JSON body: {}", rejection.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(format!("invalid query: {}", rejection.body_text()))
    }
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_status() {
        let status = |err: ActionError| ApiError::from(err).status;
        let engine_down = capstan_engine::EngineError::Proxy("not answering".into());
        assert_eq!(status(engine_down.into()), StatusCode::SERVICE_UNAVAILABLE);
        let unreachable = capstan_engine::EngineError::Docker(bollard_socket_gone());
        assert_eq!(status(unreachable.into()), StatusCode::SERVICE_UNAVAILABLE);
        let git_down = capstan_build::BuildError::Git {
            action: "clone".into(),
            detail: "fatal: unable to access 'https://h/r/': Could not resolve host: h".into(),
        };
        assert_eq!(status(git_down.into()), StatusCode::BAD_GATEWAY);
        let bad_ref = capstan_build::BuildError::UnknownRef {
            reference: "nope".into(),
            url: "https://h/r".into(),
        };
        assert_eq!(status(bad_ref.into()), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            status(ActionError::Forbidden("x".into())),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(ActionError::Conflict("x".into())),
            StatusCode::CONFLICT
        );
    }

    fn bollard_socket_gone() -> bollard::errors::Error {
        bollard::errors::Error::SocketNotFoundError("/var/run/docker.sock".into())
    }
}
