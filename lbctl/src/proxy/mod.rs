//! The balancer's L7 proxy (HTTP/1.1 over tokio + hyper): listeners bound with
//! IP_FREEBIND, per-connection limits and timeouts (408/414/431/400 like HAProxy), request
//! forwarding over kept-alive pooled backend connections bound to the balancer's internal
//! address, passive health accounting, redispatch and retries, WebSocket/Upgrade
//! pass-through, and counters.
//!
//! Behaviour summary (details in each module):
//! - client side (`server`): a request head must arrive within `http_request_ms` of its
//!   first byte, else `408` and close; an idle connection (no byte of a next request) is
//!   closed silently after `keep_alive_ms` (`http_request_ms` for a fresh connection's
//!   first request); heads over `max_header_bytes` or with more than `max_headers` fields
//!   get `431`, URIs over 8 KiB `414`, malformed requests `400`; every close is a lingering
//!   close (shut the write side, drain what the client still sends) so the client reads
//!   the error instead of a reset; at most `max_conns` connections, more wait in the
//!   kernel's accept queue.
//! - smuggling (`forward::check_request`): hyper refuses two different Content-Lengths, a
//!   non-final or missing `chunked` and Transfer-Encoding in HTTP/1.0 (400); we also refuse
//!   any Transfer-Encoding other than exactly `chunked` (400), several Host headers or
//!   none in HTTP/1.1 (400), CONNECT (405). Transfer-Encoding + Content-Length: handled HAProxy-like (hyper drops the
//!   Content-Length, the body is read as chunked, re-framed towards the backend, and the
//!   client connection is closed after the response).
//! - timeouts while a request is in flight are inactivity timeouts: the client stalling
//!   its request body for `client_ms` gets 408 (not held against the backend), and a
//!   client not taking our response for `client_ms` is closed; the backend not
//!   reading/answering for `server_ms` gives 504 (passive failure), and a backend stalling
//!   mid-body for `server_ms` aborts the client connection; an Upgrade tunnel with no byte
//!   either way for `tunnel_ms` is closed.
//! - a request's path (`request`): route → select → forward → respond, one named stage
//!   each; a `101` hands both connections to an Upgrade tunnel (`tunnel`).
//! - backend side (`client`): see there for the exact retry/redispatch rules.
//! - counters: `FrontendStats` (process-wide, [`frontend_stats`]); per backend in
//!   `BackendState::counters` (`bytes_in` = request bytes sent to it, `bytes_out` = its
//!   response bytes sent to clients, `active` = requests in flight until their response
//!   body is done; 408 for a stalled body counts in `header_timeout`).
#[cfg(test)]
mod alloc_tests;
mod body;
mod client;
mod error;
mod forward;
pub(crate) mod h1;
mod request;
mod retry;
mod server;
mod sock;
pub(crate) mod tcp_info;
#[cfg(test)]
mod tests;
mod timer;
mod tunnel;

use crate::balance::backend::BackendState;
use crate::balance::counter::Counter;
use serde::Serialize;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use tracing::Instrument as _;

/// What `lbctl agent` runs on a balancer.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Bound with IP_FREEBIND (so the VIP can be listened on before VRRP gives it to us)
    /// and SO_REUSEADDR.
    pub listen: Vec<SocketAddr>,
    /// Local address of backend connections (the balancer's internal address).
    pub source: Option<IpAddr>,
    pub timeouts: crate::config::Timeouts,
    pub limits: crate::config::Limits,
    pub balance: crate::config::Balance,
    pub cookie: Option<String>,
    pub routes: Vec<crate::config::Route>,
    /// Passive failure accounting: `BackendState::record(false, .., passive = true, rise, fall)`.
    pub rise: u32,
    pub fall: u32,
    /// `observe layer4` error limit (`check.error_limit`; 0: off).
    pub error_limit: u32,
    /// Event-loop threads (HAProxy's `nbthread`), at least 1.
    pub threads: usize,
}

/// Process-wide frontend counters (see [`frontend_stats`]).
#[derive(Debug, Default)]
pub struct FrontendStats {
    /// Requests received, including those refused before reaching a backend.
    pub requests: Counter,
    /// Responses sent to clients by class 1xx..5xx (ours and the backends').
    pub responses: [Counter; 5],
    pub conns_current: Counter,
    pub conns_total: Counter,
    /// 400: malformed request, smuggling attempt.
    pub bad_request: Counter,
    /// 408: request head not complete within `http_request_ms`.
    pub header_timeout: Counter,
    /// 414/431: URI or request head too large, too many header fields.
    pub too_large: Counter,
    /// 503: no up backend could be reached.
    pub no_backend: Counter,
    /// 502: backend refused/reset/closed or answered something that is not HTTP.
    pub bad_gateway: Counter,
    /// 504: backend did not answer within `server_ms`.
    pub gateway_timeout: Counter,
    /// Responses whose body the backend did not finish: the client connection is aborted.
    pub aborted_mid_body: Counter,
    /// Connections closed because the client took none of our response for `client_ms`.
    pub client_timeout: Counter,
    /// Upgrade tunnels closed after `tunnel_ms` without a byte either way.
    pub tunnel_timeout: Counter,
    /// Connection tasks that panicked (each closed alone; see `server::contain`).
    pub panics: Counter,
}

/// A plain copy of [`FrontendStats`] for JSON/Prometheus export.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default, serde::Deserialize)]
pub struct FrontendSnapshot {
    pub requests: u64,
    pub responses: [u64; 5],
    pub conns_current: u64,
    pub conns_total: u64,
    pub bad_request: u64,
    pub header_timeout: u64,
    pub too_large: u64,
    pub no_backend: u64,
    pub bad_gateway: u64,
    pub gateway_timeout: u64,
    pub aborted_mid_body: u64,
    #[serde(default)]
    pub client_timeout: u64,
    #[serde(default)]
    pub tunnel_timeout: u64,
    #[serde(default)]
    pub panics: u64,
}

impl FrontendStats {
    pub fn count_response(&self, code: u16) {
        let class = (code / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> FrontendSnapshot {
        let g = |a: &Counter| a.load(Ordering::Relaxed);
        FrontendSnapshot {
            requests: g(&self.requests),
            responses: std::array::from_fn(|i| g(&self.responses[i])),
            conns_current: g(&self.conns_current),
            conns_total: g(&self.conns_total),
            bad_request: g(&self.bad_request),
            header_timeout: g(&self.header_timeout),
            too_large: g(&self.too_large),
            no_backend: g(&self.no_backend),
            bad_gateway: g(&self.bad_gateway),
            gateway_timeout: g(&self.gateway_timeout),
            aborted_mid_body: g(&self.aborted_mid_body),
            client_timeout: g(&self.client_timeout),
            tunnel_timeout: g(&self.tunnel_timeout),
            panics: g(&self.panics),
        }
    }
}

fn global_stats() -> &'static Arc<FrontendStats> {
    static STATS: OnceLock<Arc<FrontendStats>> = OnceLock::new();
    STATS.get_or_init(Default::default)
}

/// The counters of every proxy started with [`run`] in this process (one per agent).
pub fn frontend_stats() -> &'static FrontendStats {
    global_stats()
}

/// Resolves with the index of the first of `threads` that has ended (polled: thread
/// deaths are rare and 50 ms is well inside a VRRP interval).
async fn first_finished<T>(threads: &[std::thread::JoinHandle<T>]) -> usize {
    loop {
        if let Some(i) = threads.iter().position(|t| t.is_finished()) {
            return i;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Binds every `listen` address, then serves until `shutdown` resolves (then stops
/// accepting, lets connections finish their current request for up to 2 s, and returns).
/// Returns Err if a listener cannot be bound, or if a proxy thread ends before the
/// shutdown. Counts into [`frontend_stats`].
///
/// Each of the `threads` proxy threads runs its own current-thread runtime, with its own
/// SO_REUSEPORT listeners and backend pool (HAProxy's model: no task ever moves between
/// threads, so there are no cross-thread wakeups on the request path; tokio's
/// work-stealing runtime was measured slower than one thread here). None of them is the
/// caller's: the agent's health checks, VRRP and admin port never delay a request.
pub async fn run(
    cfg: ProxyConfig,
    backends: Vec<Arc<BackendState>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let n = cfg.threads.max(1);
    let mut sets = Vec::with_capacity(n);
    for _ in 0..n {
        let set = cfg
            .listen
            .iter()
            .map(|a| {
                server::bind_listener_with(*a, n > 1)?
                    .into_std()
                    .context("detaching a listener")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        sets.push(set);
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (common, rxs) = server::Common::new(&cfg, backends, global_stats().clone(), rx, n);
    let attach = |set: Vec<std::net::TcpListener>| {
        set.into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<std::io::Result<Vec<_>>>()
    };
    let mut threads = Vec::new();
    for ((i, set), handoffs) in sets.into_iter().enumerate().zip(rxs) {
        let (cfg, c) = (cfg.clone(), common.clone());
        let t = std::thread::Builder::new()
            .name(format!("proxy-{i}"))
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a proxy thread's runtime")?;
                rt.block_on(async move {
                    let ls = attach(set).context("registering listeners")?;
                    server::serve_thread(ls, cfg, c, i, handoffs)
                        .instrument(tracing::info_span!("proxy", thread = i))
                        .await;
                    Ok(())
                })
            })
            .context("starting a proxy thread")?;
        threads.push(t);
    }
    // A proxy thread that ends before the shutdown (its runtime failed, it panicked) would
    // leave its share of the listeners without an acceptor and its handoffs unserved:
    // that ends the proxy with an error (the agent resigns and exits, its supervisor
    // restarts it).
    let dead = tokio::select! {
        () = shutdown => None,
        i = first_finished(&threads) => Some(i),
    };
    let _ = tx.send(true);
    if let Some(i) = dead {
        let how = match threads.swap_remove(i).join() {
            Ok(Ok(())) => "returned".to_string(),
            Ok(Err(e)) => format!("failed: {e:#}"),
            Err(_) => "panicked".to_string(),
        };
        anyhow::bail!("proxy thread {i} {how}");
    }
    for t in threads {
        match tokio::task::spawn_blocking(move || t.join()).await {
            Ok(Ok(Err(e))) => tracing::warn!("proxy thread: {e:#}"),
            Ok(Err(_)) => tracing::warn!("a proxy thread panicked"),
            _ => {}
        }
    }
    Ok(())
}
