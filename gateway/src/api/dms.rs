//! The direct-message routes (DESIGN §4b): the inbox, a conversation's history (both from the
//! Redis views the DM projector keeps), and blocks. (The messages travel on the account socket,
//! `crate::account_socket`.)

use apierror::{ApiError, ErrorKind};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dm::DmError;
use events::Username;
use events::dm::DmRejection;

use super::signed_in;
use crate::App;

fn service(app: &App) -> Result<&dm::Messages, ApiError> {
    app.inner
        .dm
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("direct messages are not served here"))
}

fn api_error(error: DmError) -> ApiError {
    match error {
        DmError::Rejected(DmRejection::UnknownUser) => {
            ApiError::not_found("no account has that username")
        }
        DmError::Rejected(rejection) => ApiError::invalid(rejection.to_string()),
        DmError::Unavailable(cause) => ApiError::unavailable(cause),
    }
}

fn username(raw: &str) -> Result<Username, ApiError> {
    Username::parse(raw).map_err(|e| ApiError::invalid(format!("bad username: {e}")))
}

/// `GET /api/me/conversations`: the account's conversations, newest first.
pub(super) async fn conversations(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let me = signed_in(&app, &headers).await?.name;
    let entries = app.inner.views.conversations(&me, 100).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(entries).into_response())
}

/// `GET /api/me/conversations/{username}` query parameters.
#[derive(Debug, serde::Deserialize)]
pub(super) struct Page {
    before: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/me/conversations/{username}?before=SEQ&limit=N`: messages, newest first.
pub(super) async fn history(
    State(app): State<App>,
    Path(partner): Path<String>,
    headers: HeaderMap,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::invalid(e.body_text()))?;
    let me = signed_in(&app, &headers).await?.name;
    let partner = username(&partner)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 200"));
    }
    let messages = app
        .inner
        .views
        .history(&me, &partner, page.before, limit)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(axum::Json(messages).into_response())
}

/// `POST /api/me/blocks/{username}`: their messages are refused with `blocked` from now on.
pub(super) async fn block(
    State(app): State<App>,
    Path(whom): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let me = signed_in(&app, &headers).await?.name;
    let whom = username(&whom)?;
    let messages = service(&app)?;
    if !messages.exists(&whom).await.map_err(api_error)? {
        return Err(ApiError::new(ErrorKind::NotFound, "no account has that username"));
    }
    messages.block(&me, &whom).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/me/blocks/{username}`.
pub(super) async fn unblock(
    State(app): State<App>,
    Path(whom): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let me = signed_in(&app, &headers).await?.name;
    let whom = username(&whom)?;
    service(&app)?.unblock(&me, &whom).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
