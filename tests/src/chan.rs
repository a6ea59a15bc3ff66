//! A fake 4chan: the API and the CDN served from `../shared/fixtures/chan/`, with the knobs tests
//! need (If-Modified-Since, Range, latency, faults, the after-refresh thread, threads a test
//! writes, a request log), and the board list (`/api/boards.json`, see [`BOARDS`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What to do to the next matching request instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Send the first half of the body only (Content-Length says the whole).
    Truncate,
    /// Send the right length with one byte changed.
    WrongBytes,
}

/// One request the fixture saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Its path (`/api/wsg/thread/5812345.json`).
    pub path: String,
}

#[derive(Debug, Default)]
struct Knobs {
    after_refresh: AtomicBool,
    latency: Mutex<Duration>,
    api_faults: Mutex<VecDeque<Fault>>,
    media_faults: Mutex<VecDeque<Fault>>,
    seen: Mutex<Vec<Seen>>,
    /// Thread JSON by `{board}/{no}`, served in place of (or beside) the files.
    threads: Mutex<HashMap<String, Vec<u8>>>,
}

#[derive(Debug, Clone)]
struct Fixture {
    root: PathBuf,
    knobs: Arc<Knobs>,
    /// The `boards.json` served.
    boards: Arc<Vec<u8>>,
}

/// The fixture server, running until dropped.
#[derive(Debug)]
pub struct ChanFixture {
    addr: SocketAddr,
    knobs: Arc<Knobs>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChanFixture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The fixtures directory (`CHANSHARE_FIXTURES`, or `shared/fixtures/chan` beside the checkout).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("CHANSHARE_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/chan")
    })
}

/// `Last-Modified` of the live thread, before and after its refresh, and of other threads.
pub const LAST_MODIFIED: &str = "Thu, 27 Mar 2025 18:30:00 GMT";
/// `Last-Modified` of the live thread after one more reply.
pub const LAST_MODIFIED_AFTER: &str = "Thu, 27 Mar 2025 18:45:00 GMT";

impl ChanFixture {
    /// Starts the server on a free loopback port (within the current tokio runtime).
    pub async fn start() -> ChanFixture {
        let root = fixtures_dir();
        assert!(
            root.join("api/wsg/thread/5812345.json").is_file(),
            "fixtures not found at {}",
            root.display()
        );
        let knobs = Arc::new(Knobs::default());
        let boards = Arc::new(boards_json(&root));
        let app = Router::new()
            .route("/api/boards.json", get(board_list))
            .route("/api/{board}/thread/{file}", get(thread))
            .route("/media/{board}/{file}", get(media))
            .with_state(Fixture { root, knobs: knobs.clone(), boards });
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fixture server");
        let addr = listener.local_addr().expect("fixture address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        ChanFixture { addr, knobs, task }
    }

    /// The API base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The media base URL.
    pub fn media_url(&self) -> String {
        format!("http://{}/media", self.addr)
    }

    /// Serves `5812345.after-refresh.json` in place of `5812345.json` from now on.
    pub fn switch_to_after_refresh(&self) {
        self.knobs.after_refresh.store(true, Ordering::SeqCst);
    }

    /// Serves `json` as thread `board`/`no` from now on (a thread the fixtures do not have, or
    /// another version of one they have).
    pub fn serve_thread(&self, board: &str, no: u64, json: impl Into<Vec<u8>>) {
        self.knobs
            .threads
            .lock()
            .expect("fixture lock")
            .insert(format!("{board}/{no}"), json.into());
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        *self.knobs.latency.lock().expect("fixture lock") = latency;
    }

    /// Applies `fault` to the next API request.
    pub fn fail_next_api(&self, fault: Fault) {
        self.knobs.api_faults.lock().expect("fixture lock").push_back(fault);
    }

    /// Applies `fault` to the next media request.
    pub fn fail_next_media(&self, fault: Fault) {
        self.knobs.media_faults.lock().expect("fixture lock").push_back(fault);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.knobs.api_faults.lock().expect("fixture lock").clear();
        self.knobs.media_faults.lock().expect("fixture lock").clear();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.knobs.seen.lock().expect("fixture lock").clone()
    }

    /// The paths of API requests (`/api/boards.json`, `/api/wsg/thread/5812345.json`).
    pub fn api_paths(&self) -> Vec<String> {
        self.seen().into_iter().filter(|s| s.path.starts_with("/api/")).map(|s| s.path).collect()
    }

    /// The arrival times of API requests.
    pub fn api_requests(&self) -> Vec<Instant> {
        self.seen().into_iter().filter(|s| s.path.starts_with("/api/")).map(|s| s.at).collect()
    }

    /// The paths of media requests.
    pub fn media_requests(&self) -> Vec<String> {
        self.seen().into_iter().filter(|s| s.path.starts_with("/media/")).map(|s| s.path).collect()
    }
}

impl Fixture {
    async fn arrive(&self, path: String) {
        self.knobs.seen.lock().expect("fixture lock").push(Seen { at: Instant::now(), path });
        let latency = *self.knobs.latency.lock().expect("fixture lock");
        tokio::time::sleep(latency).await;
    }
}

/// The boards the fixture adds to the board list when `api/boards.json` lacks them: a board
/// that is not worksafe (`gif`), for tests of `CHANSHARE_WORKSAFE_ONLY` (its threads are ones a
/// test writes with [`ChanFixture::serve_thread`]). Every board the fixtures' threads use
/// (`api/{board}/thread/`) is listed too, as worksafe.
pub const BOARDS: [(&str, &str, u8); 2] = [("wsg", "Worksafe GIF", 1), ("gif", "Adult GIF", 0)];

/// The board list in the real API's shape (`{"boards": [{"board", "title", "ws_board", …}]}`):
/// `api/boards.json` of the fixtures when there is one, with [`BOARDS`] and the boards of the
/// fixture threads added where missing (each a copy of the first entry, renamed).
fn boards_json(root: &std::path::Path) -> Vec<u8> {
    let mut list: serde_json::Value = std::fs::read(root.join("api/boards.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| serde_json::json!({"boards": []}));
    let mut wanted: Vec<(String, String, u8)> =
        BOARDS.iter().map(|(b, t, ws)| ((*b).to_owned(), (*t).to_owned(), *ws)).collect();
    for dir in std::fs::read_dir(root.join("api")).into_iter().flatten().flatten() {
        if dir.path().join("thread").is_dir() {
            let board = dir.file_name().to_string_lossy().into_owned();
            wanted.push((board.clone(), format!("/{board}/"), 1));
        }
    }
    let boards = list["boards"].as_array_mut().expect("boards.json has a boards array");
    let template = boards.first().cloned().unwrap_or_else(|| serde_json::json!({}));
    for (board, title, ws_board) in wanted {
        if boards.iter().any(|b| b["board"] == board.as_str()) {
            continue;
        }
        let mut entry = template.clone();
        entry["board"] = board.into();
        entry["title"] = title.into();
        entry["ws_board"] = ws_board.into();
        boards.push(entry);
    }
    serde_json::to_vec(&list).expect("board list json")
}

async fn board_list(State(fx): State<Fixture>) -> Response {
    fx.arrive("/api/boards.json".to_owned()).await;
    let fault = fx.knobs.api_faults.lock().expect("fixture lock").pop_front();
    if let Some(Fault::Status(code)) = fault {
        return StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::LAST_MODIFIED, LAST_MODIFIED), (header::CONTENT_TYPE, "application/json")],
        fx.boards.as_ref().clone(),
    )
        .into_response()
}

async fn thread(
    State(fx): State<Fixture>,
    Path((board, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    fx.arrive(format!("/api/{board}/thread/{file}")).await;
    let fault = fx.knobs.api_faults.lock().expect("fixture lock").pop_front();
    if let Some(Fault::Status(code)) = fault {
        return StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    let Some(no) = file.strip_suffix(".json") else { return StatusCode::NOT_FOUND.into_response() };
    let refreshed = fx.knobs.after_refresh.load(Ordering::SeqCst) && no == "5812345";
    let name = if refreshed { format!("{no}.after-refresh.json") } else { format!("{no}.json") };
    let written =
        fx.knobs.threads.lock().expect("fixture lock").get(&format!("{board}/{no}")).cloned();
    let Some(body) = written
        .or_else(|| std::fs::read(fx.root.join("api").join(&board).join("thread").join(name)).ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let last_modified = if refreshed { LAST_MODIFIED_AFTER } else { LAST_MODIFIED };
    if headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) == Some(last_modified) {
        return (StatusCode::NOT_MODIFIED, [(header::LAST_MODIFIED, last_modified)])
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::LAST_MODIFIED, last_modified), (header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn media(
    State(fx): State<Fixture>,
    Path((board, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    fx.arrive(format!("/media/{board}/{file}")).await;
    let fault = fx.knobs.media_faults.lock().expect("fixture lock").pop_front();
    if let Some(Fault::Status(code)) = fault {
        return StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
    }
    if file.contains("..") || file.contains('/') {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Ok(mut body) = std::fs::read(fx.root.join("media").join(&board).join(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match fault {
        Some(Fault::WrongBytes) => {
            let middle = body.len() / 2;
            if let Some(byte) = body.get_mut(middle) {
                *byte ^= 0xFF;
            }
        }
        Some(Fault::Truncate) => {
            // Claim the full length and send half: the client sees a broken body.
            let full = body.len();
            body.truncate(full / 2);
            let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = vec![
                Ok(body.into()),
                Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "truncated on purpose")),
            ];
            return Response::builder()
                .header(header::CONTENT_LENGTH, full)
                .body(axum::body::Body::from_stream(futures::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        _ => {}
    }
    let size = body.len();
    match headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|r| byte_range(r, size))
    {
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            [(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1))],
            body[start..end].to_vec(),
        )
            .into_response(),
        None => (StatusCode::OK, body).into_response(),
    }
}

fn byte_range(header: &str, size: usize) -> Option<(usize, usize)> {
    let spec = header.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    match (first.parse::<usize>().ok(), last.parse::<usize>().ok()) {
        (Some(start), Some(end)) if start <= end && start < size => {
            Some((start, (end + 1).min(size)))
        }
        (Some(start), None) if last.is_empty() && start < size => Some((start, size)),
        (None, Some(suffix)) if first.is_empty() => Some((size.saturating_sub(suffix), size)),
        _ => None,
    }
}
