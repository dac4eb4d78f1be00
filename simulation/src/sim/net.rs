//! The simulated network as the real code sees it: a `Dialer` for tonic clients, and accepted
//! connections in the shape tonic's server takes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ledger_sm::types::Timestamp;
use raft::network::Dialer;
use raft::Clock;
use tonic::transport::Endpoint;

use super::PORT;

/// Dials turmoil's network instead of TCP.
pub(super) fn dialer() -> Dialer {
    Dialer(Arc::new(|endpoint: Endpoint| {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: http::Uri| async move {
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(PORT);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }))
    }))
}

/// An admin client of `host`, over the simulated network.
pub(super) fn admin(
    host: &str,
) -> api::proto::ledger::admin_client::AdminClient<tonic::transport::Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{host}:{PORT}"))
        .expect("a valid address")
        .timeout(std::time::Duration::from_secs(5));
    api::proto::ledger::admin_client::AdminClient::new((dialer().0)(endpoint))
}

/// Simulated time as the ledger's clock.
pub(super) fn clock() -> Clock {
    Clock::new(|| {
        let since = turmoil::since_epoch().unwrap_or_default();
        Timestamp(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    })
}

/// Simulated time since the start, in nanoseconds: the history's clock.
pub(super) fn sim_now() -> u64 {
    u64::try_from(turmoil::sim_elapsed().unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
}

/// The accepted connections of `listener`, as tonic's server takes them.
pub(super) fn incoming(
    listener: turmoil::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<Connection>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| Connection(stream));
        Some((accepted, listener))
    })
}

/// A simulated connection, as tonic's server takes it.
pub(super) struct Connection(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
