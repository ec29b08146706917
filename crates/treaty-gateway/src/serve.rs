//! Serving the application on a listener, with the edge protecting
//! itself: a deadline for each request's header block (which also closes
//! idle keep-alive connections, and slowloris ones), a deadline for the
//! body (in [`crate::body`]), a ceiling on connections served at once, and
//! the open-file limit raised as far as the system allows.
//!
//! HTTP/1.1 only: it is what OpenAI clients speak to a gateway, and
//! hyper's protocol auto-detection reads the first bytes with no timer at
//! all, so it would let a silent connection stay open forever. With
//! `[server.tls]` the listener terminates TLS itself ([`crate::tls`]); the
//! handshake must finish within the header deadline.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::tls::Tls;

/// Room for a request head (and its first body bytes) that hyper buffers
/// before the app sees it. It exceeds the largest URL and header limits
/// the config allows, so a head over Treaty's limits reaches
/// [`crate::head`] and is refused in the OpenAI shape; only a head past
/// this gets hyper's own empty 431. A connection's buffer grows to it
/// only as bytes arrive, within `header_read_timeout`.
///
/// hyper also answers a request with more than 100 headers, or a URL
/// over 64 KiB, itself: raising its header count would allocate per
/// request on the hot path, and no SDK sends a tenth of that.
const HEAD_BUFFER: usize = treaty_config::ServerConfig::URI_BYTES_CEILING
    + treaty_config::ServerConfig::HEADER_BYTES_CEILING
    + 192 * 1024;

/// How the edge protects itself; from `[server]` (see
/// `treaty_config::ServerConfig`).
#[derive(Debug, Clone)]
pub struct Edge {
    /// The whole header block of a request must arrive within this, from
    /// the connection's start or the end of the previous response.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Terminate TLS with this certificate; plain HTTP when `None`.
    pub tls: Option<Tls>,
}

impl Default for Edge {
    fn default() -> Self {
        Edge {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            tls: None,
        }
    }
}

impl Edge {
    /// The edge `[server]` describes; loads its TLS certificate, if any
    /// (an unreadable pair is an error: the server must not start).
    pub fn from_config(server: &treaty_config::ServerConfig) -> Result<Edge, crate::tls::TlsError> {
        let tls = match &server.tls {
            Some(files) => Some(Tls::load(crate::tls::TlsFiles::from_config(files))?),
            None => None,
        };
        Ok(Edge {
            header_read_timeout: server.header_read_timeout,
            max_connections: server.max_connections,
            tls,
        })
    }
}

/// Raises this process's soft limit on open files to its hard limit, so
/// idle clients cannot exhaust descriptors at a default of 1,024. Returns
/// the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Serves `app` on `listener` with the default [`Edge`] until `shutdown`
/// resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, Edge::default(), shutdown).await
}

/// Serves `app` on `listener` within `edge`'s limits until `shutdown`
/// resolves; then stops accepting, closes idle connections and waits for
/// in-flight requests to finish.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    edge: Edge,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(edge.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(edge.header_read_timeout)
        .max_buf_size(HEAD_BUFFER)
        .keep_alive(true);
    let http = Arc::new(http);
    // The certificate follows its files while the listener runs.
    let _reload = edge.tls.as_ref().map(|tls| AbortOnDrop(tls.watch()));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Streamed chunks are small writes: without TCP_NODELAY, Nagle's
        // algorithm and the client's delayed ACK add ~40 ms stalls.
        let _ = tcp.set_nodelay(true);
        let (http, app, watcher) = (http.clone(), app.clone(), graceful.watcher());
        let Some(tls) = edge.tls.clone() else {
            tokio::spawn(async move {
                serve_connection(&http, TokioIo::new(tcp), app, addr, false, watcher).await;
                drop(permit);
            });
            continue;
        };
        let handshake_deadline = edge.header_read_timeout;
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_deadline, tls.acceptor().accept(tcp)).await {
                Ok(Ok(stream)) => {
                    serve_connection(&http, TokioIo::new(stream), app, addr, true, watcher).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake not finished in time"),
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves one connection's requests until it closes, or until a graceful
/// shutdown finds it idle.
async fn serve_connection<I>(
    http: &http1::Builder,
    io: I,
    app: Router,
    addr: SocketAddr,
    over_tls: bool,
    watcher: Watcher,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Handlers learn the client's address (the failed-authentication
    // limiter and admin records use it), and the web UI whether its
    // cookies must be `Secure`.
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        if over_tls {
            req.extensions_mut().insert(treaty_ui::auth::ServedOverTls);
        }
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    if let Err(e) = watcher.watch(http.serve_connection(io, service)).await {
        tracing::debug!(error = %e, %addr, "connection ended");
    }
}

/// Stops a background task when its owner goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
