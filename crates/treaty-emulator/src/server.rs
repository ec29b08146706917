//! The accept loop. Each connection is served by hyper's HTTP/1 connection
//! driver with the axum app, and carries a [`KillSwitch`] in every request's
//! extensions: the `reset` fault pulls it, the connection task drops the
//! connection and closes the socket with `SO_LINGER` 0 so the client sees a
//! TCP reset instead of any HTTP response. HTTP/1 only (the emulator speaks
//! plain HTTP, where clients use HTTP/1.1) because hyper's HTTP/1 driver
//! can borrow the socket, which the reset needs back afterwards.

use crate::app::{self, Shared};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Pulled by a handler to abort its connection with a TCP reset.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch(Arc<Notify>);

impl KillSwitch {
    pub(crate) fn trigger(&self) {
        // Stores a permit if the connection task is not waiting yet.
        self.0.notify_one();
    }
}

/// Serves until `shutdown` resolves; open connections are then dropped.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = app::router(shared);
    // Connections watch this; dropping the sender ends them all.
    let (stop, stopped) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, router.clone(), stopped.clone()));
            }
            Err(error) => {
                tracing::debug!(%error, "emulator accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(stop);
    Ok(())
}

async fn connection(mut stream: TcpStream, router: Router, mut stopped: watch::Receiver<()>) {
    // SSE chunks must leave as soon as they are written.
    let _ = stream.set_nodelay(true);
    let kill = KillSwitch::default();
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(kill.clone());
            router.clone().oneshot(request)
        })
    };
    let killed = {
        let connection = http1::Builder::new().serve_connection(TokioIo::new(&mut stream), service);
        let connection = pin!(connection);
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    tracing::debug!(%error, "emulator connection ended with an error");
                }
                false
            }
            () = kill.0.notified() => true,
            _ = stopped.changed() => false,
        }
    };
    if killed {
        // Closing with linger 0 sends RST rather than FIN.
        let _ = stream.set_zero_linger();
    }
}
