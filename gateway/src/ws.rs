//! The WebSocket upgrade and the socket both of the gateway's sockets run on.
//!
//! Why not axum's: a WebSocket connection keeps its write buffer at the size of the largest
//! frame it ever sent (tungstenite's output `Vec` never shrinks), so one join snapshot of a full
//! room left every idle socket holding tens of KiB for the rest of its life (issue 22).
//! [`Socket::send`] writes a text message straight to the connection instead: its frame header,
//! then the message's own bytes (shared by every socket of a room, never copied), in one
//! vectored write. Tungstenite's buffer then only ever holds control frames (close, pong).
//!
//! Messages are axum's types, so the session code (and its in-memory tests) does not change.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::{Buf as _, Bytes};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self as ts, handshake::derive_accept_key};

use apierror::ApiError;

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
            callback(Socket { stream, unsent: None }).await;
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
    /// What is left of a text frame whose send was dropped (a timeout) before it was all
    /// written: it goes out before anything else, so the connection stays well framed.
    unsent: Option<bytes::buf::Chain<Bytes, Bytes>>,
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

    /// Sends `message`; a text is written straight to the connection (see the module).
    pub async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        if let Err(error) = self.finish_unsent().await {
            return Err(axum::Error::new(error));
        }
        let result = match message {
            Message::Text(text) => self.send_text(Bytes::from(text)).await,
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

    /// Writes `text` (text already: not checked again) as one unmasked text frame, header and
    /// bytes in one vectored write, after whatever tungstenite has queued (a pong).
    async fn send_text(&mut self, text: Bytes) -> Result<(), ts::Error> {
        self.stream.flush().await?;
        let header = Bytes::from(text_header(text.len()));
        self.unsent = Some(header.chain(text));
        self.finish_unsent().await
    }

    /// Writes what is left of the last text frame (all of it, unless an earlier send was
    /// dropped part way).
    async fn finish_unsent(&mut self) -> Result<(), ts::Error> {
        if let Some(frame) = self.unsent.as_mut() {
            // Advances `frame` as it writes: if this is dropped, the rest stays for next time.
            self.stream.get_mut().write_all_buf(frame).await?;
            self.unsent = None;
        }
        Ok(())
    }
}

/// The header of a final, unmasked text frame of `len` bytes (RFC 6455 §5.2).
fn text_header(len: usize) -> Vec<u8> {
    const FIN_TEXT: u8 = 0x81;
    match len {
        0..=125 => vec![FIN_TEXT, len as u8],
        126..=0xffff => [&[FIN_TEXT, 126][..], &(len as u16).to_be_bytes()].concat(),
        _ => [&[FIN_TEXT, 127][..], &(len as u64).to_be_bytes()].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::text_header;

    #[test]
    fn text_headers_carry_the_length_in_the_fewest_bytes() {
        assert_eq!(text_header(0), [0x81, 0]);
        assert_eq!(text_header(125), [0x81, 125]);
        assert_eq!(text_header(126), [0x81, 126, 0, 126]);
        assert_eq!(text_header(65_535), [0x81, 126, 0xff, 0xff]);
        assert_eq!(text_header(65_536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
