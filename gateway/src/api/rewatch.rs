//! Rewatch (docs/rewatch.md): what the page `/r/{id}/rewatch` reads besides `/events`: the
//! session's timeline, and the room's state at any point of its history. Both answer only what
//! `/events` would (the same access rule, [`super::history_access`]), and both start from the
//! room's checkpoints, not its first commit: opening a rewatch reads the log once per room (the
//! timeline, then cached and extended), and each scrub at most a checkpoint's worth of commits.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use events::timeline::Timeline;
use events::{RoomId, RoomState};
use futures::StreamExt;
use serde::Deserialize;
use tracing::warn;

use super::{history_access, json_text, log_turn, member_of, require_json, room_id, wire};
use crate::App;
use apierror::{ApiError, ErrorKind};

/// `GET /api/rooms/{id}/rewatch` and `…/rewatch/state` query parameters.
#[derive(Debug, Deserialize)]
pub(super) struct RewatchQuery {
    /// A member token: required for unlisted rooms.
    #[serde(default)]
    token: Option<String>,
    /// The state after this version.
    #[serde(default)]
    version: Option<u64>,
    /// The state at this time (ms since the Unix epoch): every commit at or before it.
    #[serde(default)]
    at_ms: Option<u64>,
}

/// `GET /api/rooms/{id}/rewatch`: the session's timeline, and the titles of the items its marks
/// name.
pub(super) async fn timeline(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<RewatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let client = app.client_ip(peer, &headers);
    let state = history_access(&app, &room, query.token.as_deref(), &headers, client).await?;
    let timeline = session_timeline(&app, &room).await?;
    let titles = state
        .playlist
        .iter()
        .filter(|item| timeline.marks.iter().any(|m| m.item_id.as_ref() == Some(&item.item_id)))
        .map(|item| (item.item_id.clone(), item.media.title.clone()))
        .collect();
    let member = member_of(&app, &room, &state, query.token.as_deref(), &headers).await;
    let host =
        member.is_some_and(|m| state.host.as_ref() == Some(&m) || state.owner.as_ref() == Some(&m));
    let body = wire::Rewatch {
        host,
        room_id: room,
        title: state.title.clone(),
        closed: state.closed.is_some(),
        timeline,
        titles,
    };
    Ok(axum::Json(body).into_response())
}

/// The room's timeline up to its head: the cached one extended by the commits since, or folded
/// from where a replay of the room starts.
async fn session_timeline(app: &App, room: &RoomId) -> Result<Timeline, ApiError> {
    let log = &app.inner.log;
    let head = log.head(room).await.map_err(ApiError::unavailable)?.map_or(0, |h| h.version);
    let cached = app.inner.views.timeline(room).await.unwrap_or_else(|error| {
        warn!(%room, %error, "rewatch timeline cache unreadable");
        None
    });
    // A timeline that starts before what the log still holds (retention removed its first
    // commits since) is folded again from where a replay can start now.
    let first = log.first_version(room).await.map_err(ApiError::unavailable)?;
    let cached = cached.filter(|t| first.is_some_and(|first| t.start.version + 1 >= first));
    if let Some(cached) = &cached
        && cached.end.version >= head
    {
        return Ok(cached.clone());
    }
    let _turn = log_turn(app).await?;
    let mut timeline = match cached {
        Some(cached) => cached,
        None => Timeline::starting_at(&start(app, room).await?),
    };
    match extend(app, room, &mut timeline).await {
        Ok(()) => {}
        // The commits after the cached end have left since: start again after the gap.
        Err(eventlog::LogError::Expired { .. }) => {
            timeline = Timeline::starting_at(&start(app, room).await?);
            extend(app, room, &mut timeline).await.map_err(ApiError::unavailable)?;
        }
        Err(error) => return Err(ApiError::unavailable(error)),
    }
    if let Err(error) = app.inner.views.store_timeline(room, &timeline).await {
        warn!(%room, %error, "rewatch timeline not cached");
    }
    Ok(timeline)
}

async fn start(app: &App, room: &RoomId) -> Result<RoomState, ApiError> {
    app.inner.log.replay_start(room).await.map_err(ApiError::unavailable)
}

/// Folds the commits after the timeline's end into it.
async fn extend(
    app: &App,
    room: &RoomId,
    timeline: &mut Timeline,
) -> Result<(), eventlog::LogError> {
    let mut commits = app.inner.log.read(room, timeline.end.version).await?;
    while let Some(stored) = commits.next().await {
        timeline.add(&stored?.commit);
    }
    Ok(())
}

/// `GET /api/rooms/{id}/rewatch/state`: the state after `version`, or at `at_ms`, in the pinned
/// shape, chat messages deleted since shown deleted.
pub(super) async fn state(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<RewatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let at = match (query.version, query.at_ms) {
        (Some(version), None) => At::Version(version),
        (None, Some(at_ms)) => At::Time(at_ms),
        _ => return Err(ApiError::invalid("pass version or at_ms (one of them)")),
    };
    let client = app.client_ip(peer, &headers);
    let now = history_access(&app, &room, query.token.as_deref(), &headers, client).await?;
    let _turn = log_turn(&app).await?;
    let folded = app
        .inner
        .log
        .fold_while(&room, |version, at_ms| match at {
            At::Version(upto) => version <= upto,
            At::Time(ms) => at_ms <= ms,
        })
        .await
        .map_err(|error| match error {
            eventlog::LogError::Expired { .. } => ApiError::new(
                ErrorKind::Expired,
                "that part of the room's history has left the log: the rewatch timeline's start \
                 is the first point it can show",
            ),
            error => ApiError::unavailable(error),
        })?;
    if folded.version == 0 {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "the room did not exist yet at that time: its timeline says when it starts",
        ));
    }
    // (Checked against the log's fold, not a view that may trail it.)
    if let At::Version(version) = at
        && folded.version < version
    {
        return Err(ApiError::invalid(format!("the room is at version {}", folded.version)));
    }
    let mut view = serde_json::to_value(folded.view()).map_err(ApiError::unavailable)?;
    let deleted: std::collections::HashSet<&str> =
        now.deleted.iter().map(events::MessageId::as_str).collect();
    if let Some(chat) = view.get_mut("chat").and_then(serde_json::Value::as_array_mut) {
        for message in chat {
            let mut posted = serde_json::json!({"type": "chat_posted", "message": message.take()});
            events::json::redact_event(&mut posted, &|id: &str| deleted.contains(id));
            *message = posted["message"].take();
        }
    }
    Ok(json_text(StatusCode::OK, view.to_string()))
}

#[derive(Debug, Clone, Copy)]
enum At {
    Version(u64),
    Time(u64),
}

/// `/r/{id}/rewatch`: the page, answered with the status its room's history would get: 404
/// for no such room, 403 once the host turned rewatching off (the page then says why).
/// Lookups of rooms that do not exist count against the address, as the API's do.
pub(crate) async fn page(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client = app.client_ip(peer, &headers);
    if let Err(error) = app.check_misses(client) {
        return error.into_response();
    }
    let status = match RoomId::new(&id) {
        Err(_) => StatusCode::NOT_FOUND,
        Ok(room) => match app.room_state(&room).await {
            Ok(state) if !state.exists() => {
                app.missed(client);
                StatusCode::NOT_FOUND
            }
            Ok(state) if state.rewatch_off => StatusCode::FORBIDDEN,
            // Unknown for now: the page's own reads will tell.
            _ => StatusCode::OK,
        },
    };
    crate::ui::rewatch_page(status)
}

/// `PUT /api/rooms/{id}/rewatch`: the host (or the account that created the room) turns
/// rewatching on or off, also once the room closed (when no socket can reach it any more). The
/// command goes to the commands service like a socket's, as the member the credentials name.
pub(super) async fn set(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<RewatchQuery>, axum::extract::rejection::QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    require_json(&headers)?;
    let wire::SetRewatch { rewatch } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("bad body, expected {{\"rewatch\": bool}}: {e}")))?;
    let client = app.client_ip(peer, &headers);
    app.check_misses(client)?;
    let state = app.room_state(&room).await.map_err(ApiError::unavailable)?;
    if !state.exists() {
        return Err(app.missed(client));
    }
    let member = member_of(&app, &room, &state, query.token.as_deref(), &headers)
        .await
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::Unauthorized,
                "send the host's member token, or the creator account's access token, as \
             Authorization: Bearer",
            )
        })?;
    let request = protocol::CommandRequest {
        id: events::CommandId(uuid::Uuid::new_v4()),
        actor: events::Actor::Member(member),
        command: events::Command::SetRewatch { rewatch },
        traceparent: telemetry::current_traceparent(),
    };
    match app.inner.services.command(&room, &request).await {
        Ok(protocol::CommandReply::Accepted { .. }) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(protocol::CommandReply::Rejected { code, message }) => Err(match code {
            events::RejectCode::Forbidden | events::RejectCode::Closed => ApiError::new(
                ErrorKind::Forbidden,
                "only the room's host, or the account that created it, decides on rewatching",
            ),
            events::RejectCode::NotFound => ApiError::not_found(message),
            _ => ApiError::invalid(message),
        }),
        Ok(protocol::CommandReply::Error { message, .. }) => Err(ApiError::unavailable(message)),
        Err(error) => Err(ApiError::unavailable(error)),
    }
}
