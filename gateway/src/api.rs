//! The HTTP API (DESIGN §4). One table, [`ROUTES`], builds both the router and the OpenAPI
//! document, so the document cannot list a path the router lacks, or miss one it has.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use events::{MemberId, RejectCode, RoomId};
use futures::StreamExt;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

use crate::App;
use crate::frames::close;

mod accounts;
mod dms;
pub mod documents;
mod rewatch;
pub mod wire;
use crate::socket::{self, Params};
pub(crate) use accounts::signed_in;

use apierror::{ApiError, ErrorKind};

fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response()
}

fn room_id(id: &str) -> Result<RoomId, ApiError> {
    RoomId::new(id).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The schema of a body, from its Rust type: `SchemaGenerator::subschema_for::<T>`.
pub type BodySchema = fn(&mut SchemaGenerator) -> Schema;

/// A query parameter: name, JSON type (`string`, `integer`), description.
pub type Param = (&'static str, &'static str, &'static str);

/// Whether a route needs an account's access token (`Authorization: Bearer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// It does not look at one.
    None,
    /// It may take one (signed in, the answer is the account's).
    Optional,
    /// 401 without a valid one.
    Required,
}

/// One documented route.
#[derive(Debug)]
pub struct Route {
    /// `get`, `post`.
    pub method: &'static str,
    /// The path, in axum and OpenAPI syntax.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Query parameters.
    pub query: &'static [Param],
    /// Whether it takes an access token.
    pub auth: Auth,
    /// The JSON body it reads, if any.
    pub request: Option<BodySchema>,
    /// The JSON body of its success (2xx) answer, if any.
    pub reply: Option<BodySchema>,
    /// Responses: (status, description). Errors (4xx, 5xx) answer the error envelope.
    pub responses: &'static [(u16, &'static str)],
    handler: fn() -> MethodRouter<App>,
}

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Every route of the gateway.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/api/rooms",
        summary: "Create a room from a 4chan thread or a list of media URLs",
        auth: Auth::Optional,
        query: &[],
        request: Some(schema::<protocol::CreateRequest>),
        reply: Some(schema::<wire::Created>),
        responses: &[
            (201, "created: room_id, member_id, host_token, url"),
            (400, "invalid request"),
            (
                401,
                "a bearer token that is not a valid access token (the room would be the account's)",
            ),
            (404, "thread not found"),
            (415, "the body is not application/json"),
            (429, "too many rooms created from this address"),
            (503, "unavailable"),
        ],
        handler: || post(create),
    },
    Route {
        method: "get",
        path: "/api/rooms",
        summary: "The lobby: listed open rooms, most recently active first, a page at a time",
        auth: Auth::None,
        query: &[
            ("limit", "integer", "rooms per page, 1 to 200 (default 50)"),
            (
                "cursor",
                "string",
                "the next_cursor of the previous page (opaque): the page after it; a room \
                 that becomes active meanwhile moves to the front and is not repeated",
            ),
            (
                "q",
                "string",
                "only rooms whose title contains this text, ignoring case (at most 100 characters)",
            ),
            (
                "closed",
                "boolean",
                "true: the listed rooms closed most recently that can be rewatched, newest first \
                 (at most 100; one page, no cursor)",
            ),
        ],
        request: None,
        reply: Some(schema::<wire::LobbyPage>),
        responses: &[
            (
                200,
                "rooms, and next_cursor (null on the last page; a search page may hold fewer \
                 than limit rooms and still have one)",
            ),
            (400, "bad limit, cursor or q"),
            (503, "unavailable"),
        ],
        handler: || get(lobby),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}",
        summary: "The room's current state with its version",
        auth: Auth::None,
        query: &[],
        request: None,
        reply: Some(schema::<events::view::RoomView<'static>>),
        responses: &[
            (200, "state"),
            (400, "bad room id"),
            (404, "no such room"),
            (429, "too many lookups of rooms that do not exist from this address"),
            (503, "unavailable"),
        ],
        handler: || get(state),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}/members",
        summary: "The room's members with name, role and online state, a page at a time (in (re)join order)",
        auth: Auth::None,
        query: &[
            ("offset", "integer", "how many members to skip (default 0)"),
            ("limit", "integer", "how many members, 1 to 1000 (default 1000)"),
            (
                "ids",
                "string",
                "comma-separated member ids (up to 100): just those, whatever offset and limit say",
            ),
        ],
        request: None,
        reply: Some(schema::<wire::MembersPage<'static>>),
        responses: &[
            (200, "members"),
            (400, "bad room id, paging or ids"),
            (404, "no such room"),
            (429, "too many lookups of rooms that do not exist from this address"),
            (503, "unavailable"),
        ],
        handler: || get(members),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}/events",
        summary: "The room's commits after a version, in order (deleted chat shown as deleted; at most 1 MiB a page; refused when the host turned rewatching off)",
        auth: Auth::None,
        query: &[
            ("after", "integer", "the version to start after (default 0)"),
            ("limit", "integer", "how many commits, 1 to 1000 (default 100)"),
            (
                "token",
                "string",
                "a member token (or `Authorization: Bearer`): required for unlisted rooms",
            ),
        ],
        request: None,
        reply: Some(schema::<wire::EventsPage<'static>>),
        responses: &[
            (200, "commits and the version to continue after"),
            (400, "bad parameters"),
            (403, "an unlisted room and no member token of it, or the host turned rewatching off"),
            (429, "too many reads from this address"),
            (404, "no such room"),
            (410, "the commits after that version have left the log (the archive holds them)"),
            (503, "unavailable"),
        ],
        handler: || get(events),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}/rewatch",
        summary: "The room's session as a timeline (activity, item changes) for a rewatch",
        auth: Auth::None,
        query: &[(
            "token",
            "string",
            "a member token (or `Authorization: Bearer`): required for unlisted rooms",
        )],
        request: None,
        reply: Some(schema::<wire::Rewatch>),
        responses: &[
            (200, "the timeline: where the replayable history starts and ends, its activity"),
            (400, "bad room id"),
            (403, "an unlisted room and no member token of it, or the host turned rewatching off"),
            (404, "no such room"),
            (429, "too many reads from this address"),
            (503, "unavailable"),
        ],
        handler: || get(rewatch::timeline),
    },
    Route {
        method: "put",
        path: "/api/rooms/{id}/rewatch",
        summary: "The host turns rewatching of the room on or off: {rewatch} (also once it closed)",
        auth: Auth::Optional,
        query: &[],
        request: Some(schema::<wire::SetRewatch>),
        reply: None,
        responses: &[
            (204, "set"),
            (400, "bad room id or body"),
            (
                401,
                "no credentials: send the host's member token, or the creator account's access \
                 token, as Authorization: Bearer",
            ),
            (403, "not the room's host (nor the account that created it)"),
            (404, "no such room"),
            (415, "the body is not application/json"),
            (429, "too many lookups of rooms that do not exist from this address"),
            (503, "unavailable"),
        ],
        handler: || axum::routing::put(rewatch::set),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}/rewatch/state",
        summary: "The room's state at a point of its history (deleted chat shown as deleted)",
        auth: Auth::None,
        query: &[
            ("version", "integer", "the state after this version"),
            ("at_ms", "integer", "or: the state at this time (ms since the Unix epoch)"),
            (
                "token",
                "string",
                "a member token (or `Authorization: Bearer`): required for unlisted rooms",
            ),
        ],
        request: None,
        reply: Some(schema::<events::view::RoomView<'static>>),
        responses: &[
            (200, "the state at that point"),
            (400, "bad parameters, a version past the head, or a time before the room"),
            (403, "an unlisted room and no member token of it, or the host turned rewatching off"),
            (404, "no such room"),
            (410, "that point has left the log (the timeline's start is the first it can show)"),
            (429, "too many reads from this address"),
            (503, "unavailable"),
        ],
        handler: || get(rewatch::state),
    },
    Route {
        method: "get",
        path: "/api/rooms/{id}/ws",
        summary: "The room WebSocket (docs/protocol.md)",
        auth: Auth::None,
        query: &[
            ("name", "string", "nickname, for a new member"),
            ("token", "string", "a token from an earlier welcome"),
            ("resume", "integer", "the last version the client has"),
            ("epoch", "string", "the epoch of that version"),
            ("access_token", "string", "an account's access token: join signed in"),
            (
                "batch",
                "integer",
                "1: the client takes `commits` frames (a big room's membership changes, together)",
            ),
        ],
        request: None,
        reply: None,
        responses: &[
            (101, "switching to the WebSocket protocol"),
            (400, "bad room id or not a WebSocket request"),
            (403, "the page's origin may not open room sockets"),
            (429, "too many new sockets, or lookups of rooms that do not exist, from this address"),
        ],
        handler: || get(ws),
    },
    Route {
        method: "post",
        path: "/api/accounts",
        summary: "Sign up: {username, password}",
        auth: Auth::None,
        query: &[],
        request: Some(schema::<wire::Credentials>),
        reply: Some(schema::<wire::Account>),
        responses: &[
            (201, "account_id, username"),
            (
                400,
                "invalid: the rule broken (username 3-32 of a-z0-9_-, password 10-256 characters, not a common one)",
            ),
            (409, "username_taken"),
            (415, "the body is not application/json"),
            (429, "too many accounts created from this address"),
            (503, "unavailable"),
        ],
        handler: || post(accounts::register),
    },
    Route {
        method: "post",
        path: "/api/sessions",
        summary: "Sign in: {username, password}",
        auth: Auth::None,
        query: &[],
        request: Some(schema::<wire::Credentials>),
        reply: Some(schema::<wire::TokenPair>),
        responses: &[
            (200, "access_token, refresh_token, expires_in, account_id, username"),
            (400, "invalid request"),
            (401, "bad_credentials: unknown username or wrong password, alike"),
            (415, "the body is not application/json"),
            (
                429,
                "rate_limited after repeated failures for the account or from the address (Retry-After)",
            ),
            (503, "unavailable"),
        ],
        handler: || post(accounts::sign_in),
    },
    Route {
        method: "delete",
        path: "/api/sessions",
        summary: "Sign out (Authorization: Bearer <access token>): the session's refresh tokens are revoked",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: None,
        responses: &[
            (204, "signed out"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || axum::routing::delete(accounts::sign_out),
    },
    Route {
        method: "post",
        path: "/api/sessions/refresh",
        summary: "Spend a refresh token for a new pair: {refresh_token}",
        auth: Auth::None,
        query: &[],
        request: Some(schema::<wire::Refresh>),
        reply: Some(schema::<wire::TokenPair>),
        responses: &[
            (200, "access_token, refresh_token, expires_in, account_id, username"),
            (400, "invalid request"),
            (415, "the body is not application/json"),
            (
                401,
                "unauthorized (unknown token) or session_revoked (signed out, or a spent token presented again: the session is revoked)",
            ),
            (503, "unavailable"),
        ],
        handler: || post(accounts::refresh),
    },
    Route {
        method: "get",
        path: "/api/me",
        summary: "The signed-in account (Authorization: Bearer <access token>)",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: Some(schema::<wire::Account>),
        responses: &[
            (200, "account_id, username"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || get(accounts::me),
    },
    Route {
        method: "get",
        path: "/api/me/rooms",
        summary: "Rooms the signed-in account created or joined, most recently visited first",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: Some(schema::<wire::MyRooms>),
        responses: &[
            (200, "rooms"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || get(accounts::my_rooms),
    },
    Route {
        method: "get",
        path: "/api/me/ws",
        summary: "The account socket: direct messages with sent, delivered and read receipts (/asyncapi.json)",
        auth: Auth::None,
        query: &[("access_token", "string", "the account's access token")],
        request: None,
        reply: None,
        responses: &[
            (101, "switching to the WebSocket protocol (a bad token closes with 4401)"),
            (400, "not a WebSocket request"),
            (403, "the page's origin may not open sockets"),
            (429, "too many new sockets from this address"),
            (503, "direct messages are not served here"),
        ],
        handler: || get(crate::account_socket::upgrade),
    },
    Route {
        method: "get",
        path: "/api/me/conversations",
        summary: "The account's conversations, newest first: the other account, the last message (with its status) and the unread count",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: Some(schema::<Vec<views::dm::ConversationEntry>>),
        responses: &[
            (200, "conversations"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || get(dms::conversations),
    },
    Route {
        method: "get",
        path: "/api/me/conversations/{username}",
        summary: "A conversation's messages, newest first, each with its status (sent, delivered, read)",
        auth: Auth::Required,
        query: &[
            (
                "before",
                "integer",
                "only messages before this seq (the last page's oldest): the page before it",
            ),
            ("limit", "integer", "messages per page, 1 to 200 (default 50)"),
        ],
        request: None,
        reply: Some(schema::<Vec<views::dm::Message>>),
        responses: &[
            (200, "messages"),
            (400, "bad username, before or limit"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || get(dms::history),
    },
    Route {
        method: "post",
        path: "/api/me/blocks/{username}",
        summary: "Block an account: its direct messages are refused with `blocked`",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: None,
        responses: &[
            (204, "blocked"),
            (400, "bad username, or oneself"),
            (401, "unauthorized or session_revoked"),
            (404, "no account has that username"),
            (503, "unavailable"),
        ],
        handler: || post(dms::block),
    },
    Route {
        method: "delete",
        path: "/api/me/blocks/{username}",
        summary: "Unblock an account",
        auth: Auth::Required,
        query: &[],
        request: None,
        reply: None,
        responses: &[
            (204, "not blocked (also when it was not)"),
            (400, "bad username, or oneself"),
            (401, "unauthorized or session_revoked"),
            (503, "unavailable"),
        ],
        handler: || axum::routing::delete(dms::unblock),
    },
    Route {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: Auth::None,
        query: &[],
        request: None,
        reply: None,
        responses: &[(200, "the OpenAPI 3.1 document")],
        handler: || get(openapi),
    },
    Route {
        method: "get",
        path: "/asyncapi.json",
        summary: "The AsyncAPI 3 document of the room WebSocket",
        auth: Auth::None,
        query: &[],
        request: None,
        reply: None,
        responses: &[(200, "the AsyncAPI 3.0 document")],
        handler: || get(asyncapi),
    },
    Route {
        method: "get",
        path: "/api/docs",
        summary: "This document, to read (an HTML page; the socket's document is linked from it)",
        auth: Auth::None,
        query: &[],
        request: None,
        reply: None,
        responses: &[(200, "the API reference page")],
        handler: || get(|| async { crate::ui::docs_page() }),
    },
];

/// The gateway's routes.
pub fn router(app: App) -> Router {
    ROUTES
        .iter()
        .fold(Router::new(), |router, route| router.route(route.path, (route.handler)()))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 10))
        .route("/r/{id}/rewatch", get(rewatch::page))
        .merge(crate::ui::router())
        .with_state(app)
}

async fn openapi() -> Response {
    json_text(StatusCode::OK, documents::openapi_text().to_owned())
}

async fn asyncapi() -> Response {
    json_text(StatusCode::OK, documents::asyncapi_text().to_owned())
}

async fn create(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let client = app.client_ip(peer, &headers);
    require_json(&headers)?;
    let request: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("bad json: {e}")))?;
    let mut request: protocol::CreateRequest = serde_json::from_value(request)
        .map_err(|e| ApiError::invalid(format!("bad create request: {e}")))?;
    // The owner is whoever the bearer token says, never what the body says.
    request.account = match bearer(&headers) {
        Some(_) => {
            let claims = signed_in(&app, &headers).await?;
            Some(events::AccountRef { account_id: claims.sub, username: claims.name })
        }
        None => None,
    };
    app.per_minute(
        |i| &i.creations,
        client,
        app.inner.limits.creations_per_minute,
        "rooms created",
    )?;
    // Resolving a thread may wait for the shared upstream budget: longer than a command.
    let services = app.inner.services.with_timeout(std::time::Duration::from_secs(20));
    let reply = services.create(&request).await.map_err(|error| match error {
        protocol::RequestError::Timeout { .. } => ApiError::unavailable("room creation timed out"),
        error => ApiError::unavailable(format!("room creation unavailable: {error}")),
    })?;
    match reply {
        protocol::CreateReply::Created { room_id, member_id, host_token, .. } => {
            let url = format!("/r/{room_id}");
            let body = wire::Created { room_id, member_id, host_token, url };
            Ok((StatusCode::CREATED, axum::Json(body)).into_response())
        }
        protocol::CreateReply::Rejected { code: RejectCode::NotFound, message } => {
            Err(ApiError::not_found(message))
        }
        protocol::CreateReply::Rejected { message, .. } => Err(ApiError::invalid(message)),
        protocol::CreateReply::Error { message, .. } => Err(ApiError::unavailable(message)),
    }
}

/// `GET /api/rooms` query parameters.
#[derive(Debug, Deserialize)]
struct LobbyQuery {
    #[serde(default = "default_lobby_limit")]
    limit: usize,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    closed: bool,
}

fn default_lobby_limit() -> usize {
    50
}

/// The longest lobby search.
const MAX_SEARCH_CHARS: usize = 100;

/// A lobby cursor on the wire: base64url of `v1:{updated_ms}:{room}`. Opaque to clients.
fn encode_cursor(cursor: &views::LobbyCursor) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1:{}:{}", cursor.updated_ms, cursor.room))
}

fn decode_cursor(text: &str) -> Option<views::LobbyCursor> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (updated_ms, room) = text.strip_prefix("v1:")?.split_once(':')?;
    let room = RoomId::new(room).ok()?;
    Some(views::LobbyCursor { updated_ms: updated_ms.parse().ok()?, room: room.to_string() })
}

async fn lobby(
    State(app): State<App>,
    query: Result<Query<LobbyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !(1..=200).contains(&query.limit) {
        return Err(ApiError::invalid("limit must be 1 to 200"));
    }
    let after = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            ApiError::invalid("bad cursor: pass the next_cursor of a previous page")
        })?),
    };
    if query.closed {
        if after.is_some() || query.q.is_some() {
            return Err(ApiError::invalid("closed rooms come in one page: no cursor, no q"));
        }
        let rooms =
            app.inner.views.recently_closed(query.limit).await.map_err(ApiError::unavailable)?;
        return Ok(axum::Json(wire::LobbyPage { rooms, next_cursor: None }).into_response());
    }
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
        return Err(ApiError::invalid(format!("q is longer than {MAX_SEARCH_CHARS} characters")));
    }
    let page = app
        .inner
        .views
        .lobby_page(after.as_ref(), query.limit, search)
        .await
        .map_err(ApiError::unavailable)?;
    let next_cursor = page.next.as_ref().map(encode_cursor);
    Ok(axum::Json(wire::LobbyPage { rooms: page.rooms, next_cursor }).into_response())
}

async fn state(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let client = app.client_ip(peer, &headers);
    app.check_misses(client)?;
    let (version, state) = app.state_json(&room).await.map_err(ApiError::unavailable)?;
    if version == 0 {
        return Err(app.missed(client));
    }
    Ok(json_text(StatusCode::OK, state))
}

async fn members(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    page: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(page) = page.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !(1..=MEMBERS_PAGE_MAX).contains(&page.limit) {
        return Err(ApiError::invalid(format!("limit must be 1 to {MEMBERS_PAGE_MAX}")));
    }
    let ids = match &page.ids {
        None => None,
        Some(ids) => Some(member_ids(ids)?),
    };
    let client = app.client_ip(peer, &headers);
    app.check_misses(client)?;
    // A room with sockets here: the page is read from the state its hub keeps, in place (a big
    // room's fold is megabytes); else from the view's fold and the commits after it.
    let page = |state: &events::RoomState| members_page(state, &page, ids.as_ref());
    let hub = app.inner.hubs.get(&room).and_then(|hub| hub.feed.with_state(page));
    let body = match hub {
        Some(body) => body,
        None => page(&app.room_state(&room).await.map_err(ApiError::unavailable)?),
    };
    match body {
        Some(body) => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
        None => Err(app.missed(client)),
    }
}

/// The page of `state`'s members the query asks for, as JSON; `None` when there is no room.
fn members_page(
    state: &events::RoomState,
    page: &MembersQuery,
    ids: Option<&std::collections::HashSet<MemberId>>,
) -> Option<String> {
    if !state.exists() {
        return None;
    }
    let (listed, next_offset) = match ids {
        // Those asked for that are listed, in (re)join order.
        Some(ids) => {
            let listed: Vec<_> =
                state.members.iter().filter(|m| ids.contains(&m.member_id)).collect();
            (listed, None)
        }
        None => {
            let end = page.offset.saturating_add(page.limit).min(state.members.len());
            let listed = state.members.get(page.offset..end).unwrap_or_default();
            (listed.iter().collect(), (end < state.members.len()).then_some(end))
        }
    };
    let body = wire::MembersPage {
        version: state.version,
        member_count: state.members.len(),
        online_count: state.shown_online(),
        members: listed.into_iter().map(|m| state.member_view(m)).collect(),
        next_offset,
    };
    serde_json::to_string(&body).ok()
}

/// The most members one `GET /api/rooms/{id}/members` lists.
const MEMBERS_PAGE_MAX: usize = 1000;

/// The most members one `GET /api/rooms/{id}/members?ids=` names.
const MEMBERS_BY_ID_MAX: usize = 100;

#[derive(Debug, Deserialize)]
struct MembersQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "members_page_max")]
    limit: usize,
    /// Comma-separated member ids: just those members.
    ids: Option<String>,
}

/// `a,b,c` as member ids: 1 to [`MEMBERS_BY_ID_MAX`] valid ones.
fn member_ids(ids: &str) -> Result<std::collections::HashSet<MemberId>, ApiError> {
    let ids: Vec<&str> = ids.split(',').collect();
    if ids.len() > MEMBERS_BY_ID_MAX {
        return Err(ApiError::invalid(format!("at most {MEMBERS_BY_ID_MAX} ids")));
    }
    ids.into_iter()
        .map(|id| MemberId::new(id).map_err(|_| ApiError::invalid("ids must be member ids")))
        .collect()
}

fn members_page_max() -> usize {
    MEMBERS_PAGE_MAX
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: usize,
    /// A member token of the room: the history of an unlisted room is for its members.
    #[serde(default)]
    token: Option<String>,
}

fn default_limit() -> usize {
    100
}

async fn events(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(page) = page.map_err(|e| ApiError::invalid(e.body_text()))?;
    if !(1..=1000).contains(&page.limit) {
        return Err(ApiError::invalid("limit must be 1 to 1000"));
    }
    let client = app.client_ip(peer, &headers);
    let state = history_access(&app, &room, page.token.as_deref(), &headers, client).await?;
    let _turn = log_turn(&app).await?;
    let log = &app.inner.log;
    let unavailable = ApiError::unavailable;
    let deleted: std::collections::HashSet<&str> =
        state.deleted.iter().map(events::MessageId::as_str).collect();
    let deleted = |id: &str| deleted.contains(id);
    let mut commits = match log.read(&room, page.after).await {
        Ok(commits) => commits.take(page.limit),
        Err(eventlog::LogError::Expired { after }) => {
            return Err(ApiError::new(
                ErrorKind::Expired,
                format!(
                    "the commits after version {after} have left the log; the archive holds them"
                ),
            ));
        }
        Err(e) => return Err(unavailable(e)),
    };
    // The page is written as it is read, and ends early at the byte cap (a commit is at most
    // a few hundred KiB: the first always fits): `next_after` says where the next page starts.
    let mut body = String::from("{\"commits\":[");
    let mut next = page.after;
    while let Some(stored) = commits.next().await {
        let stored = stored.map_err(ApiError::unavailable)?;
        let mut frame = serde_json::to_value(crate::frames::CommitFrame::new(&stored.commit))
            .map_err(ApiError::unavailable)?;
        events::json::redact_commit(&mut frame, &deleted);
        let frame = frame.to_string();
        if next != page.after && body.len() + frame.len() > app.inner.limits.page_bytes {
            break;
        }
        if next != page.after {
            body.push(',');
        }
        body.push_str(&frame);
        next = stored.commit.version;
    }
    body.push_str(&format!("],\"next_after\":{next}}}"));
    Ok(json_text(StatusCode::OK, body))
}

/// Who may read a room's history (`/events`, rewatch): anyone for a listed room, its members
/// (a member token, as `token` or a bearer header) for an unlisted one, nobody once its host
/// turned rewatch off. Counts the read against the address; answers the room as it is now.
pub(crate) async fn history_access(
    app: &App,
    room: &RoomId,
    token: Option<&str>,
    headers: &HeaderMap,
    client: std::net::IpAddr,
) -> Result<events::RoomState, ApiError> {
    app.check_misses(client)?;
    app.per_minute(|i| &i.reads, client, app.inner.limits.reads_per_minute, "history reads")?;
    if app.inner.log.is_free(room).await.map_err(ApiError::unavailable)? {
        return Err(app.missed(client));
    }
    let state = app.room_state(room).await.map_err(ApiError::unavailable)?;
    if !state.settings.listed && member_of(app, room, &state, token, headers).await.is_none() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "the history of an unlisted room is for its members: pass a member token, or sign in",
        ));
    }
    if state.rewatch_off {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "the host turned rewatching off for this room: its history is not shown",
        ));
    }
    Ok(state)
}

/// The member of `room` a request speaks for: a member token of the room (`token`, or a bearer
/// header), or a signed-in account's access token (bearer) whose member is in the room; `None`
/// for neither.
pub(crate) async fn member_of(
    app: &App,
    room: &RoomId,
    state: &events::RoomState,
    token: Option<&str>,
    headers: &HeaderMap,
) -> Option<events::MemberId> {
    let now_s = crate::now_ms() / 1000;
    if let Some(token) = token.or_else(|| bearer(headers))
        && let Ok(claims) = app.inner.signer.verify(token, room, now_s)
    {
        return Some(claims.member);
    }
    let account = signed_in(app, headers).await.ok()?;
    let member = app.inner.signer.account_member(room, &account.sub);
    // The creator's account stays the room's even after its member left.
    (state.accounts.contains_key(&member) || state.owner.as_ref() == Some(&member))
        .then_some(member)
}

/// A turn to read the log. Log reads are what JetStream pays for (a consumer each, far behind
/// the head): a burst waits a moment for a turn, then is told to come back.
pub(crate) async fn log_turn(app: &App) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
    tokio::time::timeout(std::time::Duration::from_secs(2), app.inner.log_readers.acquire())
        .await
        .map_err(|_| {
            ApiError::new(ErrorKind::Unavailable, "history reads are busy")
                .retry_after(std::time::Duration::from_secs(1))
        })?
        .map_err(ApiError::unavailable)
}

/// A socket's buffers and limits. Idle sockets dominate (members listen; clients send small
/// commands and pings): a 1 KiB read chunk instead of 4 KiB is what brings an idle socket under
/// 8 KiB (`connections` benchmark); larger frames are read in several chunks, up to the limit.
/// Nothing is buffered on the way out (large messages go in pieces: [`crate::ws`]).
pub(crate) fn socket_config(
    limits: &crate::limits::GatewayLimits,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .max_message_size(Some(limits.max_frame_bytes))
        .max_frame_size(Some(limits.max_frame_bytes))
}

/// Refuses a body that is not declared JSON: a form post from another site (text/plain, no
/// preflight) never gets further.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::UnsupportedMediaType, "send the body as application/json"))
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

async fn ws(
    State(app): State<App>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
    upgrade: crate::ws::Upgrade,
) -> Result<Response, ApiError> {
    let room = room_id(&id)?;
    let Query(params) = params.map_err(|e| ApiError::invalid(e.body_text()))?;
    let ip = app.client_ip(peer, &headers);
    app.check_misses(ip)?;
    if !app.origin_allowed(&headers) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this page may not open Chanshare's room sockets (CHANSHARE_ALLOWED_ORIGINS)",
        ));
    }
    let limits = app.inner.limits;
    app.per_minute(|i| &i.sockets_opened, ip, limits.sockets_per_minute, "new sockets")?;
    // The slot lives in the callback: a failed upgrade drops it unrun, and the slot with it.
    let slot = app.inner.connections.open(ip, limits.connections_per_ip);
    Ok(upgrade.on_upgrade(socket_config(&limits), move |mut socket| async move {
        let Some(_slot) = slot else {
            let frame = axum::extract::ws::CloseFrame {
                code: close::TOO_MANY,
                reason: "too many connections from this address".into(),
            };
            socket.send(axum::extract::ws::Message::Close(Some(frame))).await.ok();
            return;
        };
        app.inner.metrics.sockets.inc();
        socket::run(app.inner.sessions.clone(), socket, room, params, ip).await;
        app.inner.metrics.sockets.dec();
    }))
}
