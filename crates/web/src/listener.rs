//! The daemon's HTTP listener: connections are capped per address and in all, each is
//! served over HTTP/1.1 with a deadline for its request headers (which also ends idle
//! keep-alive connections, so trickled headers cannot hold connections open), the peer's
//! address is handed to the handlers, and shutdown lets in-flight requests end.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the listener protects itself from slow and greedy clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's headers must arrive whole within this time after the connection (or
    /// its previous response) is ready for them; then the connection is closed.
    pub header_timeout: Duration,
    /// Open connections one address may hold; more are closed at once.
    pub per_address: usize,
    /// Open connections in all.
    pub total: usize,
    /// How long shutdown waits for open connections (log streams follow for ever).
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            per_address: 64,
            total: 1024,
            drain: Duration::from_secs(10),
        }
    }
}

/// Open connections per address, and the guard that counts one.
#[derive(Clone, Default)]
struct OpenConnections(Arc<Mutex<HashMap<IpAddr, usize>>>);

struct Counted {
    open: OpenConnections,
    address: IpAddr,
}

impl OpenConnections {
    /// Counts a new connection from `address`, or `None` when a limit is reached.
    fn admit(&self, address: IpAddr, limits: &ConnectionLimits) -> Option<Counted> {
        let address = client_network(address);
        let mut open = self.0.lock().expect("connection counts poisoned");
        let total: usize = open.values().sum();
        let mine = open.get(&address).copied().unwrap_or(0);
        if mine >= limits.per_address || total >= limits.total {
            return None;
        }
        open.insert(address, mine + 1);
        Some(Counted {
            open: self.clone(),
            address,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().expect("connection counts poisoned");
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// What one client is counted as: an IPv4 address, or an IPv6 address's /64 (the block
/// one host is usually given, so it cannot take a fresh address for each connection).
pub(crate) fn client_network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits (at most
/// `limits.drain`) for open connections to finish.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = OpenConnections::default();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors and the like: pass, do not spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(counted) = open.admit(peer.ip(), &limits) else {
            tracing::debug!(%peer, "connection refused: too many open connections");
            continue;
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), connection_service(&app, peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!(%peer, error = %err, "connection ended");
            }
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("shutdown: connections still open after the drain end with the process");
    }
    Ok(())
}

/// The router for one connection: every request carries the peer's address.
fn connection_service(
    app: &Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    let app = app.clone();
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        tower::ServiceExt::oneshot(app.clone(), request)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_in_all() {
        let limits = ConnectionLimits {
            per_address: 2,
            total: 3,
            ..ConnectionLimits::default()
        };
        let open = OpenConnections::default();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = open.admit(a, &limits).unwrap();
        let _second = open.admit(a, &limits).unwrap();
        assert!(open.admit(a, &limits).is_none(), "a third from one address");
        let _third = open.admit(b, &limits).unwrap();
        assert!(open.admit(b, &limits).is_none(), "a fourth in all");
        drop(first);
        assert!(
            open.admit(a, &limits).is_some(),
            "a closed one is handed back"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_block() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(one), client_network(same));
        assert_ne!(client_network(one), client_network(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_network(mapped),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
