//! The HTTP server: HTTP/1.1 by hyper on the agent's tokio runtime, routed by axum.
//!
//! No thread of its own and no timer while idle: an accept loop per bound address and a task
//! per connection, parked until a client sends something. (actix-web, which served the agent
//! before, woke its worker 4 times a second for its Date header, 351 of an idle agent's
//! 448 µs/s of CPU; hyper formats the Date header when it answers.)
//!
//! - A client that closes its side mid-request has gone away (`half_close(false)`): its
//!   connection ends and its handler is dropped, so an on-demand plugin run stops and frees
//!   its slot.
//! - A client gets [`HEADER_TIMEOUT`] to send a request's head (slow-header clients do not
//!   hold connections); an idle keep-alive connection is closed after as long.
//! - [`Server::stop`] stops accepting, lets requests in flight finish for up to
//!   [`SHUTDOWN_GRACE`], then drops what is left.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use super::state::Peer;

/// How long a client has to send a request's head, and how long an idle keep-alive
/// connection stays open (actix-web's defaults, which the agent had: 5 s).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long requests in flight may take to finish once the server is stopped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound, not yet serving, server.
#[derive(Debug)]
pub struct Bound {
    listeners: Vec<TcpListener>,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    stop: watch::Sender<bool>,
    loops: Vec<JoinHandle<()>>,
}

/// Binds every address `listen` resolves to (`localhost:9410` is two); fails when none
/// could be bound, with the last error. Must be called within a tokio runtime.
pub fn bind(listen: &str) -> std::io::Result<Bound> {
    let mut listeners = Vec::new();
    let mut last = None;
    for addr in listen.to_socket_addrs()? {
        match listener(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => last = Some(e),
        }
    }
    if listeners.is_empty() {
        return Err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                "the address resolved to nothing",
            )
        }));
    }
    Ok(Bound { listeners })
}

/// A listening socket as actix-web made them: `SO_REUSEADDR` (a restarted agent binds
/// while old connections linger in TIME_WAIT) and a backlog of 1024.
fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Bound {
    /// The addresses bound (with the port the system chose for port 0).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves `app` on every bound address until [`Server::stop`].
    pub fn serve(self, app: Router) -> Server {
        let (stop, stopped) = watch::channel(false);
        let loops = self
            .listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, app.clone(), stopped.clone())))
            .collect();
        Server { stop, loops }
    }
}

impl Server {
    /// Stops accepting, lets the requests in flight finish for up to [`SHUTDOWN_GRACE`],
    /// then closes every connection.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for l in self.loops {
            let _ = l.await;
        }
    }
}

async fn accept_loop(listener: TcpListener, app: Router, stopped: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            () = stopping(&mut stop) => break,
            // Reap finished connections as they end, so the set holds live ones only.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(connection(tcp, peer, app.clone(), stopped.clone()));
                }
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    // Out of file descriptors and the like: wait for some to be freed.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "requests still running {SHUTDOWN_GRACE:?} after shutdown began: closed"
        );
        conns.shutdown().await;
    }
}

/// Returns when the server is told to stop (or its handle is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, before the caller goes on.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Errors that concern one connection only (it was reset before it was accepted).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stopped: watch::Receiver<bool>,
) {
    // Responses go out in one write, but no reason to let Nagle hold a second one.
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(Peer(peer));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = http1::Builder::new()
        .half_close(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            return;
        }
        () = stopping(&mut stopped) => {}
    }
    // Shutting down: an idle connection closes now, one with a request in flight after
    // its response.
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
