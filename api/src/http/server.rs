//! Serves HTTP/1.1 connections with hyper directly rather than `axum::serve`, which cannot set
//! hyper's header read timeout: a client that opens connections and never finishes its headers
//! (slowloris) would otherwise hold each one forever. The accept loop also bounds the
//! connections one client address holds (`MAX_CONNECTIONS_PER_PEER`), so that no one client
//! takes every descriptor the process has.

use crate::http::error::{ApiError, ErrorBody};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Pause after a failed accept (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How long a connection may take to send its headers, and how many one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// `HEADER_READ_TIMEOUT_SECS`; also how long an idle keep-alive connection stays.
    pub header_read_timeout: Duration,
    /// `MAX_CONNECTIONS_PER_PEER`: connections open at once per client address ([`peer_key`]).
    pub per_peer: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// the requests in flight to finish; idle connections are closed at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let peers = Peers::new(limits.per_peer);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = peers.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: MAX_CONNECTIONS_PER_PEER");
            refuse(stream);
            continue;
        };
        // Answers are small and written whole: waiting to coalesce them only adds latency.
        let _ = stream.set_nodelay(true);
        // The peer's address, for handlers that tell it on (an HTTP trigger's `sourceIp`).
        let service =
            app.clone()
                .map_request(move |mut request: axum::extract::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Counted until the connection ends, however it ends.
            let _slot = slot;
            // Clients that go away or time out are routine, not errors of the api.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection over its client's bound with 503 `overloaded` (if the socket takes it
/// at once: nothing here waits for a client) and closes it.
fn refuse(stream: TcpStream) {
    static ANSWER: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let error = ApiError::Overloaded(
            "this client address holds as many connections as it may (MAX_CONNECTIONS_PER_PEER); close some or retry shortly".into(),
        );
        let body = serde_json::to_string(&ErrorBody {
            detail: error.to_string(),
            code: error.error_code(),
        })
        .expect("an error body serializes");
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let _ = stream.try_write(&ANSWER);
}

/// Raises this process's soft limit of open files (`RLIMIT_NOFILE`) to its hard limit and logs
/// it: every connection is a descriptor, and the usual soft limit of 1024 would stop the api
/// at about a thousand connections, whoever holds them.
pub fn raise_open_files_limit() {
    let before = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(
            before = before.unwrap_or_default(),
            limit,
            "open files limit (RLIMIT_NOFILE) raised to its hard limit"
        ),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit (RLIMIT_NOFILE)"),
    }
}

/// The address a client's connections are counted under: an IPv4 address (also when it comes
/// as an IPv4-mapped IPv6 one), or an IPv6 address's /64, which one host usually holds whole.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// The connections open per client address.
#[derive(Clone)]
struct Peers {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Peers {
    fn new(max: usize) -> Self {
        Peers {
            max: max.max(1),
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `ip`, or `None` when its address holds the most
    /// already.
    fn admit(&self, ip: IpAddr) -> Option<PeerSlot> {
        let key = peer_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            key,
            open: self.open.clone(),
        })
    }
}

/// One connection counted for its client; given back when dropped.
struct PeerSlot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut count) = open.entry(self.key) {
            *count.get_mut() -= 1;
            // Forgotten at zero: the map holds only the clients connected now.
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_holds_at_most_max_connections_and_each_is_given_back_when_it_ends() {
        let peers = Peers::new(2);
        let first = peers.admit(ip("10.0.0.1")).expect("first");
        let second = peers.admit(ip("10.0.0.1")).expect("second");
        assert!(peers.admit(ip("10.0.0.1")).is_none(), "a third is refused");
        // Another client is not held up by the first.
        let other = peers.admit(ip("10.0.0.2")).expect("another address");
        drop(first);
        let again = peers.admit(ip("10.0.0.1")).expect("a place was given back");
        assert!(peers.admit(ip("10.0.0.1")).is_none());
        drop((second, again, other));
        assert!(
            peers.open.lock().unwrap().is_empty(),
            "no client is remembered once its connections ended"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            peer_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(peer_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(peer_key(ip("192.0.2.7")), ip("192.0.2.7"));
        let peers = Peers::new(1);
        let _held = peers.admit(ip("2001:db8::1")).unwrap();
        assert!(peers.admit(ip("2001:db8::2")).is_none(), "same /64");
        assert!(peers.admit(ip("2001:db8:0:1::1")).is_some(), "another /64");
    }

    #[test]
    fn a_bound_of_zero_still_lets_one_connection_in() {
        let peers = Peers::new(0);
        let _held = peers.admit(ip("10.0.0.1")).expect("one");
        assert!(peers.admit(ip("10.0.0.1")).is_none());
    }

    #[tokio::test]
    async fn a_refused_connection_reads_a_503_overloaded_and_is_closed() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        refuse(server_side);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
        assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], "overloaded");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("MAX_CONNECTIONS_PER_PEER")
        );
    }
}
