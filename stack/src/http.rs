//! The HTTP server every process runs: the roles' axum router on hyper, with the edges a public
//! server needs that `axum::serve` does not offer. A client must send a request's headers within
//! `header_timeout` (slowloris: otherwise a trickle of header bytes holds a connection, and its
//! file descriptor, forever, and so do silent connections), and a request must be answered
//! within `request_timeout` (a body trickled in, a handler stuck on a dependency); upgraded
//! WebSockets and streamed media bodies are past both. Also: `TCP_NODELAY`, the peer address
//! for handlers (`ConnectInfo`), and a graceful stop.

use std::time::Duration;

use apierror::{ApiError, ErrorKind};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// The server's time limits.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// From a connection's first byte (or its opening, or the end of its previous request) to
    /// the end of a request's headers.
    pub header_timeout: Duration,
    /// From the headers to the response's head (body upload included).
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), request_timeout: Duration::from_secs(30) }
    }
}

/// Serves `router` on `listener` until `stopped` resolves, then lets the requests in flight
/// finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stopped: impl Future<Output = ()>,
) {
    let router =
        router.layer(axum::middleware::from_fn_with_state(limits.request_timeout, request_timeout));
    // hyper's own HTTP/1 server: hyper-util's version-sniffing `auto` server reads a
    // connection's first bytes with no timeout at all, so a silent connection stayed forever.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    // Each connection holds a sender: when the last is gone, every connection has ended.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(stopped);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait instead of spinning.
                    debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        // Frames and small responses go out at once: with Nagle's algorithm an ack written right
        // after a commit frame waited for the client's delayed ACK (~40 ms).
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%error, "could not set tcp_nodelay");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut router.clone(), request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let (open, stopping) = (open.clone(), stopping.clone());
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = &mut connection => ended,
                () = until_stopped(stopping) => {
                    // Finish the request in flight, take no new one.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                debug!(%peer, %error, "http connection ended");
            }
            drop(open);
        });
    }
    drop(listener);
    stop.send_replace(true);
    drop(open);
    if tokio::time::timeout(Duration::from_secs(10), all_closed.recv()).await.is_err() {
        debug!("http connections still open after 10 s of shutdown");
    }
}

async fn until_stopped(mut stopping: watch::Receiver<bool>) {
    // An error means no sender: then nothing will ever stop the server but its end.
    stopping.wait_for(|stop| *stop).await.ok();
}

/// Answers 503 `unavailable` (with `Retry-After`) when a request takes longer than `limit`.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorKind::Unavailable, "the request took too long")
            .retry_after(Duration::from_secs(1))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn server(
        limits: HttpLimits,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, limits, async {
            stopped.await.ok();
        }));
        (addr, stop)
    }

    /// Whether the server closed `tcp` within `within` (reads EOF or an error).
    async fn closed(tcp: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0; 512];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    #[tokio::test]
    async fn silent_and_trickling_connections_are_closed_at_the_header_timeout() {
        let limits = HttpLimits {
            header_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(30),
        };
        let (addr, _stop) = server(limits).await;

        let started = Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(closed(&mut silent, Duration::from_secs(3)).await, "a silent connection stays");
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());

        let started = Instant::now();
        let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
        trickle.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let dripping = async {
            for n in 0.. {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if trickle.write_all(format!("X-Drip-{n}: a\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(3), dripping).await.ok();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(3), "a trickling connection was never closed");

        // A prompt client is served as usual.
        let mut prompt = tokio::net::TcpStream::connect(addr).await.unwrap();
        prompt
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        prompt.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    #[tokio::test]
    async fn a_request_that_takes_too_long_gets_a_503() {
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_millis(300),
        };
        let (addr, _stop) = server(limits).await;
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(response.contains("\"unavailable\""), "{response}");
    }
}
