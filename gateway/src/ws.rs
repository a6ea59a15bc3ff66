//! The WebSocket upgrade and the socket both of the gateway's sockets run on.
//!
//! Why not axum's: a WebSocket connection keeps its write buffer at the size of the largest
//! frame it ever sent (tungstenite's output `Vec` never shrinks), so one join snapshot of a full
//! room left every idle socket holding tens of KiB for the rest of its life (issue 22).
//! [`Socket::send`] sends a large text message as a fragmented message, pieces of at most
//! [`PIECE`] bytes, so what a socket keeps is bounded by the piece, whatever it sent. Clients see
//! the same messages: browsers and WebSocket libraries put fragments back together.
//!
//! Messages are axum's types, so the session code (and its in-memory tests) does not change.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self as ts, handshake::derive_accept_key};

use apierror::ApiError;

/// The largest piece of a message sent in one frame: what a connection's write buffer keeps at
/// most (a join snapshot of a room of 50 is ~2.5 KB).
pub const PIECE: usize = 1024;

/// A WebSocket upgrade request, checked: `GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a key. Anything else is refused with 400.
pub struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: HeaderValue,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let refuse = || ApiError::invalid("not a WebSocket request");
        let headers = &parts.headers;
        let has = |name: header::HeaderName, token: &str| {
            headers.get_all(name).iter().any(|value| {
                value
                    .to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        if parts.method != axum::http::Method::GET
            || !has(header::CONNECTION, "upgrade")
            || !has(header::UPGRADE, "websocket")
            || headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13")
        {
            return Err(refuse());
        }
        let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or_else(refuse)?;
        let accept =
            HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| refuse())?;
        let on_upgrade =
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>().ok_or_else(refuse)?;
        Ok(Self { on_upgrade, accept })
    }
}

impl Upgrade {
    /// Answers 101 and runs `callback` on the socket once the connection is switched. The slot
    /// or anything else `callback` holds is dropped unrun if the switch fails.
    pub fn on_upgrade<F, Fut>(self, config: WebSocketConfig, callback: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(async move {
            let Ok(upgraded) = self.on_upgrade.await else { return };
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            callback(Socket { stream }).await;
        });
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        (StatusCode::SWITCHING_PROTOCOLS, headers).into_response()
    }
}

/// A server-side WebSocket.
pub struct Socket {
    stream: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
}

impl Socket {
    /// The client's next message; `None` once the connection is gone.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => return Some(Err(axum::Error::new(error))),
            };
            let message = match message {
                ts::Message::Text(text) => Message::Text(Utf8Bytes::from(text.as_str())),
                ts::Message::Binary(bytes) => Message::Binary(bytes),
                ts::Message::Ping(bytes) => Message::Ping(bytes),
                ts::Message::Pong(bytes) => Message::Pong(bytes),
                ts::Message::Close(frame) => Message::Close(frame.map(|frame| CloseFrame {
                    code: frame.code.into(),
                    reason: Utf8Bytes::from(frame.reason.as_str()),
                })),
                // Reading never yields raw frames.
                ts::Message::Frame(_) => continue,
            };
            return Some(Ok(message));
        }
    }

    /// Sends `message`: a text over [`PIECE`] bytes as a fragmented message.
    pub async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        let result = match message {
            Message::Text(text) if text.len() > PIECE => self.send_pieces(Bytes::from(text)).await,
            // The same bytes (a commit frame is shared by every socket of its room), neither
            // copied nor checked again: it is text already.
            Message::Text(text) => {
                let frame = Frame::message(Bytes::from(text), OpCode::Data(Data::Text), true);
                self.stream.send(ts::Message::Frame(frame)).await
            }
            Message::Binary(bytes) => self.stream.send(ts::Message::Binary(bytes)).await,
            Message::Ping(bytes) => self.stream.send(ts::Message::Ping(bytes)).await,
            Message::Pong(bytes) => self.stream.send(ts::Message::Pong(bytes)).await,
            Message::Close(frame) => {
                let frame = frame.map(|frame| ts::protocol::CloseFrame {
                    code: CloseCode::from(frame.code),
                    reason: frame.reason.as_str().into(),
                });
                match self.stream.send(ts::Message::Close(frame)).await {
                    // The client closed first: the answer to its close is queued, and goes
                    // out with a flush (our own close would be one too many).
                    Err(ts::Error::Protocol(ts::error::ProtocolError::SendAfterClosing)) => {
                        self.stream.flush().await
                    }
                    sent => sent,
                }
            }
        };
        result.map_err(axum::Error::new)
    }

    /// The text `bytes` as a first frame and continuations, [`PIECE`] bytes each (slices of the
    /// one buffer; a piece may end inside a character: the message is checked whole). Each piece
    /// is written out before the next is queued, so a slow reader holds back the sender, not a
    /// growing buffer.
    async fn send_pieces(&mut self, bytes: Bytes) -> Result<(), ts::Error> {
        let pieces = bytes.len().div_ceil(PIECE);
        for n in 0..pieces {
            let piece = bytes.slice(n * PIECE..((n + 1) * PIECE).min(bytes.len()));
            let opcode = OpCode::Data(if n == 0 { Data::Text } else { Data::Continue });
            let frame = Frame::message(piece, opcode, n + 1 == pieces);
            self.stream.send(ts::Message::Frame(frame)).await?;
        }
        Ok(())
    }
}
