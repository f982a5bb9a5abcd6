//! Upgrade (WebSocket) pass-through: after a backend's `101 Switching Protocols` the
//! client connection, once hyper lets go of it, and the backend connection are joined
//! byte for byte until either side closes. The tunnel runs as a task of its own so the
//! request that asked for it can complete (hyper sends the 101, then hands over).
//!
//! A tunnel with no byte either way for `tunnel_ms` (HAProxy's `timeout tunnel`) is
//! closed: a peer that vanished without a FIN or RST would otherwise hold its client
//! connection slot and its backend's `active` count forever.

use super::client::{Conn, Upload};
use super::server::ConnState;
use crate::balance::Pick;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tracing::Instrument;

/// Everything a tunnel holds while it runs.
pub struct Tunnel {
    /// The client's side, available once hyper has sent the 101.
    pub client: OnUpgrade,
    /// The backend connection, with what it sent right after its 101 in `buf`.
    pub backend: Conn,
    /// A request body still being sent: a 101 ends the request, so it is dropped.
    pub upload: Option<Upload>,
    /// The backend, counted active (and in `bytes_in`/`bytes_out`) while the tunnel lasts.
    pub pick: Pick,
    /// The client connection's slot: released only when the tunnel is gone too.
    pub state: Arc<ConnState>,
}

/// Runs `t` on a task of its own, in the current span.
pub fn spawn(t: Tunnel) {
    let stats = t.state.stats();
    let task = super::server::contain(run(t), stats);
    tokio::spawn(task.instrument(tracing::Span::current()));
}

async fn run(t: Tunnel) {
    let Tunnel {
        client,
        backend,
        upload,
        pick,
        state,
    } = t;
    let keep = (state, &pick);
    drop(upload);
    let Ok(stream) = Arc::try_unwrap(backend.stream) else {
        tracing::warn!("backend connection still shared, cannot tunnel");
        return;
    };
    let mut early = backend.buf;
    let c = match client.await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "client upgrade failed");
            return;
        }
    };
    let mut c = TokioIo::new(c);
    // What the backend sent right after its 101 goes first.
    let early = early.split();
    if !early.is_empty() {
        if let Err(e) = c.write_all(&early).await {
            tracing::debug!(error = %e, "tunnel ended");
            return;
        }
    }
    let (idle, stats) = (keep.0.tunnel_idle(), keep.0.stats());
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let mut c = Active::new(c, &last, start);
    let mut b = Active::new(stream, &last, start);
    let copy = tokio::io::copy_bidirectional(&mut c, &mut b);
    let Some(r) = until_idle(copy, &last, start, idle).await else {
        stats.tunnel_timeout.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            idle_ms = idle.as_millis() as u64,
            "tunnel idle for tunnel_ms, closing"
        );
        return;
    };
    match r {
        Ok((up, down)) => {
            let down = down + early.len() as u64;
            let counters = &pick.backend.counters;
            counters.bytes_in.fetch_add(up, Ordering::Relaxed);
            counters.bytes_out.fetch_add(down, Ordering::Relaxed);
            tracing::debug!(up, down, "tunnel closed");
        }
        Err(e) => tracing::debug!(error = %e, "tunnel ended"),
    }
}

/// Runs `copy` until it ends (`Some`) or `last` (ms after `start` of the last byte either
/// way) is `idle` old (`None`).
async fn until_idle<T>(
    copy: impl std::future::Future<Output = T>,
    last: &AtomicU64,
    start: Instant,
    idle: Duration,
) -> Option<T> {
    tokio::pin!(copy);
    let mut at = start + idle;
    loop {
        tokio::select! {
            r = &mut copy => return Some(r),
            _ = tokio::time::sleep_until(at) => {
                let seen = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if seen + idle <= Instant::now() {
                    return None;
                }
                at = seen + idle;
            }
        }
    }
}

/// One side of a tunnel, noting in `last` when it last moved a byte (ms after `start`).
struct Active<'a, T> {
    io: T,
    last: &'a AtomicU64,
    start: Instant,
}

impl<'a, T> Active<'a, T> {
    fn new(io: T, last: &'a AtomicU64, start: Instant) -> Self {
        Active { io, last, start }
    }

    fn moved(&self, n: usize) {
        if n > 0 {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.moved(buf.filled().len() - before);
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.moved(n);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
