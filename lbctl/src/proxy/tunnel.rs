//! Upgrade (WebSocket) pass-through: after a backend's `101 Switching Protocols` the
//! client connection, once hyper lets go of it, and the backend connection are joined
//! byte for byte until either side closes. The tunnel runs as a task of its own so the
//! request that asked for it can complete (hyper sends the 101, then hands over).

use super::client::{Conn, Upload};
use super::server::ConnState;
use crate::balance::Pick;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
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
    tokio::spawn(run(t).instrument(tracing::Span::current()));
}

async fn run(t: Tunnel) {
    let Tunnel {
        client,
        backend,
        upload,
        pick,
        state,
    } = t;
    let _keep = (state, &pick);
    drop(upload);
    let Ok(mut stream) = Arc::try_unwrap(backend.stream) else {
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
    match tokio::io::copy_bidirectional(&mut c, &mut stream).await {
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
