//! WebSocket clients for the load: small buffers (so that thousands fit in one process), a
//! chosen loopback source address (so that more than one address's ephemeral ports can be used),
//! and frame fields read without parsing whole frames.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, Stream, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub(crate) type Ws = WebSocketStream<TcpStream>;

/// How many loopback addresses the clients spread over (127.0.0.1 … 127.0.0.8).
const SOURCES: u8 = 8;

/// The loopback address client `n` connects from.
pub(crate) fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % usize::from(SOURCES)) as u8))
}

/// Opens `ws://{server}{path}` from `from`.
pub(crate) async fn connect(server: SocketAddr, from: IpAddr, path: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0)).with_context(|| format!("bind {from}"))?;
    let stream = socket.connect(server).await.with_context(|| format!("connect {server}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let url = format!("ws://{server}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// Opens `ws://{server}{path}` as client address `forwarded` behind a trusted proxy
/// (`X-Forwarded-For`); the HTTP status when the upgrade is refused.
pub(crate) async fn connect_as(
    server: SocketAddr,
    forwarded: &str,
    path: &str,
) -> anyhow::Result<Result<Ws, u16>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let stream = TcpStream::connect(server).await.with_context(|| format!("connect {server}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let mut request = format!("ws://{server}{path}").into_client_request()?;
    request.headers_mut().insert("x-forwarded-for", forwarded.parse()?);
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok((ws, _)) => Ok(Ok(ws)),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Ok(Err(response.status().as_u16()))
        }
        Err(error) => Err(error.into()),
    }
}

/// The next text frame of a socket (or its read half); an error when the socket closes or
/// nothing comes within 30 s.
pub(crate) async fn next_text<S>(ws: &mut S) -> anyhow::Result<String>
where
    S: Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
            Ok(Some(Ok(Message::Close(frame)))) => bail!("closed: {frame:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(error))) => return Err(error.into()),
            Ok(None) => bail!("closed"),
            Err(_) => bail!("no frame within 30 s"),
        }
    }
}

/// Reads the welcome and, unless the client resumed, the snapshot; the snapshot's size.
pub(crate) async fn welcome(ws: &mut Ws) -> anyhow::Result<usize> {
    Ok(joined(ws).await?.1.map_or(0, |snapshot| snapshot.len()))
}

/// The welcome and, unless the client resumed, the snapshot.
pub(crate) async fn joined(ws: &mut Ws) -> anyhow::Result<(String, Option<String>)> {
    let welcome = next_text(ws).await?;
    if field(&welcome, "type") != Some("welcome") {
        bail!("expected a welcome, got {welcome}");
    }
    if welcome.contains("\"recovered\":true") {
        return Ok((welcome, None));
    }
    let snapshot = next_text(ws).await?;
    if field(&snapshot, "type") != Some("snapshot") {
        bail!("expected a snapshot, got {}", &snapshot[..snapshot.len().min(200)]);
    }
    Ok((welcome, Some(snapshot)))
}

/// Sends a `command` frame.
pub(crate) async fn send_command(ws: &mut Ws, id: &str, command: &str) -> anyhow::Result<()> {
    let frame = format!(r#"{{"type":"command","id":"{id}","command":{command}}}"#);
    ws.send(Message::Text(frame.into())).await?;
    Ok(())
}

/// The value of the first `"key":` in `frame`, for string and number values (the frames the
/// gateway sends put `type`, `id`, `version` and `command_id` before any nested object).
pub(crate) fn field<'a>(frame: &'a str, key: &str) -> Option<&'a str> {
    let start = frame.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &frame[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()
    } else {
        rest.split([',', '}']).next()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_of_a_frame() {
        let frame = r#"{"type":"commit","version":12,"actor":"m1","command_id":"abc","events":[]}"#;
        assert_eq!(field(frame, "type"), Some("commit"));
        assert_eq!(field(frame, "version"), Some("12"));
        assert_eq!(field(frame, "command_id"), Some("abc"));
        assert_eq!(field(frame, "missing"), None);
        assert_eq!(field(r#"{"type":"ack","id":"x","version":3}"#, "version"), Some("3"));
    }
}
