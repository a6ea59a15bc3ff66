//! The account routes (DESIGN §4a): sign-up, sign-in, refresh, sign-out, the account and its
//! rooms. The rules and the storage are the `accounts` crate's; this is the wire.

use std::net::SocketAddr;

use accounts::{AccessClaims, AccountError, Tokens};
use apierror::{ApiError, ErrorKind};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::wire::{Account, Credentials, MyRooms, Refresh, TokenPair};
use super::{bearer, require_json};
use crate::App;

/// How an account failure is answered.
pub(crate) fn api_error(error: AccountError) -> ApiError {
    let message = error.to_string();
    match error {
        AccountError::Invalid(_) => ApiError::invalid(message),
        AccountError::Taken => ApiError::new(ErrorKind::UsernameTaken, message),
        AccountError::BadCredentials => ApiError::new(ErrorKind::BadCredentials, message),
        AccountError::RateLimited { retry_after_s } => {
            ApiError::new(ErrorKind::RateLimited, message)
                .retry_after(std::time::Duration::from_secs(retry_after_s))
        }
        AccountError::BadToken | AccountError::Expired => {
            ApiError::new(ErrorKind::Unauthorized, message)
        }
        AccountError::Revoked => ApiError::new(ErrorKind::SessionRevoked, message),
        AccountError::Unavailable(_) | AccountError::Config(_) => ApiError::unavailable(message),
    }
}

fn service(app: &App) -> Result<&accounts::Accounts, ApiError> {
    app.inner.accounts.as_ref().ok_or_else(|| ApiError::unavailable("accounts are not served here"))
}

fn body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    require_json(headers)?;
    // The error names the field, never echoes the body (it holds a password).
    serde_json::from_slice(body).map_err(|e| {
        let mut why = e.to_string();
        why.truncate(why.find(" at line").unwrap_or(why.len()));
        ApiError::invalid(format!("bad request: {why}"))
    })
}

fn tokens_json(tokens: Tokens) -> Response {
    axum::Json(TokenPair::from(tokens)).into_response()
}

/// The signed-in account of a request (`Authorization: Bearer <access token>`).
pub(crate) async fn signed_in(app: &App, headers: &HeaderMap) -> Result<AccessClaims, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(ErrorKind::Unauthorized, "sign in: send Authorization: Bearer <access token>")
    })?;
    service(app)?.authenticate(token).await.map_err(api_error)
}

pub(super) async fn register(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let Credentials { username, password } = body(&headers, &bytes)?;
    let client = app.client_ip(peer, &headers);
    app.per_minute(
        |i| &i.signups,
        client,
        app.inner.limits.creations_per_minute,
        "accounts created",
    )?;
    let registered = service(&app)?.register(&username, password).await.map_err(api_error)?;
    let body = Account { account_id: registered.account_id, username: registered.username };
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

pub(super) async fn sign_in(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let Credentials { username, password } = body(&headers, &bytes)?;
    let address = app.inner.signer.client_tag(app.client_ip(peer, &headers));
    let tokens = service(&app)?.sign_in(&username, password, &address).await.map_err(api_error)?;
    Ok(tokens_json(tokens))
}

pub(super) async fn refresh(
    State(app): State<App>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let Refresh { refresh_token } = body(&headers, &bytes)?;
    let tokens = service(&app)?.refresh(&refresh_token).await.map_err(api_error)?;
    Ok(tokens_json(tokens))
}

pub(super) async fn sign_out(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = bearer(&headers).ok_or_else(|| {
        ApiError::new(ErrorKind::Unauthorized, "send Authorization: Bearer <access token>")
    })?;
    service(&app)?.sign_out(token).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn me(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let claims = signed_in(&app, &headers).await?;
    Ok(axum::Json(Account { account_id: claims.sub, username: claims.name }).into_response())
}

pub(super) async fn my_rooms(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = signed_in(&app, &headers).await?;
    let rooms =
        app.inner.views.account_rooms(&claims.sub, 50).await.map_err(ApiError::unavailable)?;
    Ok(axum::Json(MyRooms { rooms }).into_response())
}
