//! The errors Chanshare's HTTP edge answers with (the gateway's API and the content role's
//! `/media`), in one table: each [`ErrorKind`] has one status and one stable code, and every body
//! is the same envelope, `{"error": {"code", "message"}}` (DESIGN §4).
//!
//! A client error says what was wrong. A server error (5xx) never carries internal text: the
//! body says what failed in general words plus a request id, and the internal cause is logged
//! with that id, so an operator can find it (quickwit's `ServiceErrorCode` idea).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What went wrong, as clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (400 `invalid`).
    Invalid,
    /// Not allowed from here (403 `forbidden`), e.g. a WebSocket from a foreign page.
    Forbidden,
    /// No valid access token (401 `unauthorized`): absent, forged or expired.
    Unauthorized,
    /// Unknown username or wrong password, alike (401 `bad_credentials`).
    BadCredentials,
    /// The session was signed out or its refresh token reused (401 `session_revoked`).
    SessionRevoked,
    /// The username belongs to someone (409 `username_taken`).
    UsernameTaken,
    /// No such thing (404 `not_found`).
    NotFound,
    /// It existed, but has left by retention (410 `expired`).
    Expired,
    /// A body that is not JSON (415 `unsupported_media_type`).
    UnsupportedMediaType,
    /// Too many requests from this client (429 `rate_limited`, with `Retry-After`).
    RateLimited,
    /// The upstream (4chan) answered wrongly (502 `upstream`).
    Upstream,
    /// A service this one needs is down or overloaded: retry (503 `unavailable`).
    Unavailable,
}

impl ErrorKind {
    /// The table: status and stable code of each kind.
    pub fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::SessionRevoked => (StatusCode::UNAUTHORIZED, "session_revoked"),
            Self::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Expired => (StatusCode::GONE, "expired"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Upstream => (StatusCode::BAD_GATEWAY, "upstream"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    /// Every kind, for the table's tests and documents.
    pub const ALL: [ErrorKind; 12] = [
        Self::Invalid,
        Self::Forbidden,
        Self::Unauthorized,
        Self::BadCredentials,
        Self::SessionRevoked,
        Self::UsernameTaken,
        Self::NotFound,
        Self::Expired,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::Upstream,
        Self::Unavailable,
    ];
}

/// An error answer. `message` is shown to clients for 4xx kinds; for 5xx it is logged instead.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after: None }
    }

    /// 400 `invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 503 `unavailable`; `cause` is logged, never sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Unavailable, cause.to_string())
    }

    /// Asks the client to wait this long before trying again (`Retry-After`).
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.kind.status_and_code();
        let mut request_id = None;
        let message = if status.is_server_error() {
            let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
            tracing::warn!(request_id = %id, code, cause = %self.message, "request failed");
            let message = format!("{}; request id {id}", public_text(self.kind));
            request_id = Some(id);
            message
        } else {
            self.message
        };
        let body = serde_json::to_string(&ErrorBody { error: Detail { code, message: &message } })
            .unwrap_or_default();
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            response.headers_mut().insert("x-request-id", id);
        }
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize)]
pub struct ErrorBody<'a> {
    error: Detail<'a>,
}

#[derive(Debug, serde::Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl schemars::JsonSchema for ErrorBody<'_> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = ErrorKind::ALL.iter().map(|kind| kind.status_and_code().1).collect();
        schemars::json_schema!({
            "description": "every error answer",
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"description": "what went wrong, to match on", "type": "string", "enum": codes},
                    "message": {"description": "what went wrong, in words (a request id for 5xx)", "type": "string"},
                },
            }},
        })
    }
}

/// What a server error tells the client.
fn public_text(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Upstream => "the upstream server answered wrongly",
        _ => "a service this request needs is unavailable, retry",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn every_kind_has_its_own_status_and_code() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in ErrorKind::ALL {
            let (status, code) = kind.status_and_code();
            assert!(status.is_client_error() || status.is_server_error(), "{kind:?}");
            assert!(seen.insert(code), "{code} twice");
        }
    }

    #[tokio::test]
    async fn client_errors_say_what_was_wrong() {
        let response = ApiError::invalid("limit must be 1 to 200").into_response();
        assert_eq!(response.status(), 400);
        assert!(response.headers().get("x-request-id").is_none());
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": {"code": "invalid", "message": "limit must be 1 to 200"}})
        );
    }

    #[tokio::test]
    async fn server_errors_carry_a_request_id_and_no_internal_text() {
        let cause = "redis: connection refused at 10.1.2.3:6379";
        let response =
            ApiError::unavailable(cause).retry_after(Duration::from_secs(3)).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = body(response).await;
        assert_eq!(body["error"]["code"], "unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&id), "{message}");
        assert!(!message.contains("redis") && !message.contains("10.1.2.3"), "{message}");
    }
}
