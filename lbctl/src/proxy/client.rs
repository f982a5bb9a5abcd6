//! Backend connections: a keep-alive pool per backend (hyper's HTTP/1 client connections,
//! opened from the balancer's internal address), and the dispatch loop with HAProxy-like
//! redispatch and retries.
//!
//! Rules:
//! - connect failure (refused, reset, unreachable, `connect_ms` timeout): nothing was sent,
//!   so for any method the failure is recorded against the backend (passive, `failures`)
//!   and the request is redispatched to another up backend of the pool (`redispatches` on
//!   the failed one); when none is left: 503 at once.
//! - a pooled connection found closed before the request was written (hyper returns the
//!   request unsent): the request is sent again on a fresh connection to the same backend
//!   (any method; counted in `retries`). This is what hyper-util's
//!   `retry_canceled_requests` does.
//! - a reused pooled connection that the backend closes after the request was written but
//!   before any response byte (keep-alive race): an idempotent request (GET, HEAD, PUT,
//!   DELETE, OPTIONS, TRACE) without a body is retried once on a fresh connection to the
//!   same backend (`retries`), nothing recorded. Requests with a body are not replayed
//!   (they are streamed, not buffered): 502.
//! - otherwise a closed/reset connection or a response that is not HTTP: 502; no response
//!   head within `server_ms`: 504; both recorded as passive failures.

use super::body::{Progress, ReqBody, Waiting};
use super::error::ProxyError;
use super::server::Shared;
use crate::balance::backend::BackendState;
use crate::balance::Pick;
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

/// Longest a backend connection stays idle in the pool: below common server keep-alive
/// timeouts (Apache's 5 s) so we rarely reuse a connection the server is closing.
const POOL_IDLE_MAX: Duration = Duration::from_secs(4);
const POOL_MAX_IDLE_PER_BACKEND: usize = 64;

struct Idle {
    tx: SendRequest<ReqBody>,
    since: Instant,
}

pub struct Pool {
    idle: Vec<Mutex<Vec<Idle>>>,
    source: Option<IpAddr>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(
        backends: usize,
        source: Option<IpAddr>,
        connect_timeout: Duration,
        keep_alive: Duration,
    ) -> Pool {
        Pool {
            idle: (0..backends).map(|_| Mutex::new(Vec::new())).collect(),
            source,
            connect_timeout,
            idle_timeout: keep_alive.min(POOL_IDLE_MAX),
        }
    }

    /// The most recently used idle connection of backend `idx` that is still open.
    fn checkout(&self, idx: usize) -> Option<SendRequest<ReqBody>> {
        let mut idle = self.idle[idx].lock().expect("pool lock");
        while let Some(c) = idle.pop() {
            if c.tx.is_ready() && !c.tx.is_closed() && c.since.elapsed() < self.idle_timeout {
                return Some(c.tx);
            }
        }
        None
    }

    /// Returns a connection to the pool once its response has been read completely (hyper
    /// reports it ready again); a connection closed or upgraded meanwhile is dropped.
    fn checkin(self: &Arc<Self>, idx: usize, mut tx: SendRequest<ReqBody>) {
        // Checked in when the response head arrives: when nothing of the response is left
        // to read the connection is ready at once and goes back without a task; otherwise
        // a task waits until the body is done.
        if tx.is_ready() {
            self.put_idle(idx, tx);
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            if tx.ready().await.is_ok() {
                pool.put_idle(idx, tx);
            }
        });
    }

    fn put_idle(&self, idx: usize, tx: SendRequest<ReqBody>) {
        // One clock read per check-in, not one per idle connection.
        let now = Instant::now();
        let mut idle = self.idle[idx].lock().expect("pool lock");
        idle.retain(|c| !c.tx.is_closed() && now.duration_since(c.since) < self.idle_timeout);
        if idle.len() < POOL_MAX_IDLE_PER_BACKEND {
            idle.push(Idle { tx, since: now });
        }
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(src) = self.source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
            // The port is chosen at connect() time (per destination), not at bind().
            let one: libc::c_int = 1;
            // SAFETY: valid fd, option value of the documented size.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::SOL_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            sock.bind(SocketAddr::new(src, 0))?;
        }
        let s = tokio::time::timeout(self.connect_timeout, sock.connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// A new HTTP/1.1 connection to `addr`; Err is the reason, for logs and stats.
    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<ReqBody>, String> {
        let stream = self.tcp_connect(addr).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::TimedOut => "connect timeout".to_string(),
            _ => format!("connect: {e}"),
        })?;
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "backend connection ended");
            }
        });
        Ok(tx)
    }
}

/// An idempotent request without a body can be sent again: its head is kept.
pub struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    pub fn of(parts: &hyper::http::request::Parts, body_empty: bool) -> Option<Replay> {
        let idempotent = matches!(
            parts.method,
            Method::GET
                | Method::HEAD
                | Method::PUT
                | Method::DELETE
                | Method::OPTIONS
                | Method::TRACE
        );
        (idempotent && body_empty).then(|| Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }

    fn request(&self) -> Request<ReqBody> {
        let mut r = Request::new(ReqBody::empty());
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.uri.clone();
        *r.version_mut() = Version::HTTP_11;
        *r.headers_mut() = self.headers.clone();
        r
    }
}

fn passive_failure(sh: &Shared, b: &BackendState, reason: &str, took: Duration) {
    b.counters.failures.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = b.record(false, reason, took, true, sh.cfg.rise, sh.cfg.fall) {
        tracing::warn!(backend = %t.backend, reason = %t.reason, "backend is DOWN (passive)");
    }
}

/// A success resets the consecutive-failure count of an up backend (HAProxy `observe`);
/// it never brings a down backend up (that is the health checker's job).
fn passive_success(sh: &Shared, b: &BackendState, took: Duration) {
    if b.is_up() && b.check_state().consecutive_fail > 0 {
        b.record(true, "response", took, true, sh.cfg.rise, sh.cfg.fall);
    }
}

/// The backend went away before a complete response head: EOF or a connection-level I/O
/// error (reset, broken pipe). Not a parse error: a backend answering garbage is reported.
fn closed_without_answer(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() {
        return true;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        src = s.source();
    }
    false
}

fn describe(e: &hyper::Error) -> String {
    if e.is_incomplete_message() {
        "backend closed the connection before answering".into()
    } else if e.is_parse() {
        format!("invalid response from backend: {e}")
    } else {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    }
}

/// Awaits `fut` unless the exchange stalls: `server` while waiting for the backend (to
/// read our request body, or to answer once it has all of it), `client` while waiting for
/// the client's request body. Both are inactivity timeouts; Err says who stalled.
async fn wait<T>(
    fut: impl std::future::Future<Output = T>,
    progress: &Progress,
    server: Duration,
    client: Duration,
) -> Result<T, Waiting> {
    tokio::pin!(fut);
    loop {
        let w = progress.get();
        let deadline = match w {
            Waiting::Client(t) => t + client,
            Waiting::Backend(t) => t + server,
        };
        // Re-check at least every 250 ms: who we wait for may change meanwhile.
        let check = deadline.min(tokio::time::Instant::now() + Duration::from_millis(250));
        tokio::select! {
            r = &mut fut => return Ok(r),
            _ = tokio::time::sleep_until(check) => {
                if progress.get() == w && tokio::time::Instant::now() >= deadline {
                    return Err(w);
                }
            }
        }
    }
}

/// After `failed` could not be reached: the next up backend of `pool` not tried yet
/// (counted as a redispatch of `failed`), or 503 with `why` when none is left.
fn redispatch(
    sh: &Shared,
    pool: &str,
    tried: &mut Vec<usize>,
    failed: &Pick,
    why: impl FnOnce() -> String,
) -> Result<Pick, ProxyError> {
    tried.push(failed.idx);
    match sh.balancer.pick(pool, tried) {
        Some(next) => {
            failed
                .backend
                .counters
                .redispatches
                .fetch_add(1, Ordering::Relaxed);
            Ok(next)
        }
        None => Err(ProxyError::NoBackend(why())),
    }
}

/// Sends `req` to `pick` (or, when it cannot be reached, to the next up backends of
/// `pool`). Returns the response head, the backend that answered and its response time.
pub async fn dispatch(
    sh: &Shared,
    mut pick: Pick,
    pool: &str,
    mut req: Request<ReqBody>,
    replay: Option<Replay>,
    progress: &Progress,
) -> Result<(Response<hyper::body::Incoming>, Pick, Duration), ProxyError> {
    let mut tried: Vec<usize> = Vec::new();
    let mut fresh_only = false;
    let mut replayed = false;
    let server_timeout = Duration::from_millis(sh.cfg.timeouts.server_ms.max(1));
    let client_timeout = Duration::from_millis(sh.cfg.timeouts.http_request_ms.max(1));
    loop {
        let b = pick.backend.clone();
        let started = Instant::now();
        let pooled = if fresh_only {
            None
        } else {
            sh.pool.checkout(pick.idx)
        };
        let reused = pooled.is_some();
        let conn = match pooled {
            Some(tx) => Ok(tx),
            None => sh.pool.connect(b.addr).await,
        };
        fresh_only = false;
        let mut tx = match conn {
            Ok(tx) => tx,
            Err(reason) => {
                tracing::info!(backend = %b.name, %reason, "cannot connect to backend, redispatching");
                passive_failure(sh, &b, &reason, started.elapsed());
                pick = redispatch(sh, pool, &mut tried, &pick, || {
                    format!("no backend reachable (last: {}: {reason})", b.name)
                })?;
                continue;
            }
        };
        b.counters.requests.fetch_add(1, Ordering::Relaxed);
        req.body_mut().set_backend(b.clone());
        let sent = wait(
            tx.try_send_request(req),
            progress,
            server_timeout,
            client_timeout,
        )
        .await;
        match sent {
            Err(Waiting::Client(_)) => {
                // The client stopped sending its request body: its fault, not the backend's.
                return Err(ProxyError::ClientTimeout);
            }
            Err(Waiting::Backend(_)) => {
                let reason = format!("no response within {} ms", server_timeout.as_millis());
                tracing::info!(backend = %b.name, %reason, "backend timeout");
                passive_failure(sh, &b, "timeout", started.elapsed());
                return Err(ProxyError::GatewayTimeout(format!("{}: {reason}", b.name)));
            }
            Ok(Ok(resp)) => {
                let took = started.elapsed();
                sh.pool.checkin(pick.idx, tx);
                passive_success(sh, &b, took);
                return Ok((resp, pick, took));
            }
            Ok(Err(mut e)) => {
                if let Some(unsent) = e.take_message() {
                    // The connection was closed before the request could be written.
                    req = unsent;
                    b.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(backend = %b.name, reused, "connection closed before sending, retrying on a new one");
                    if reused {
                        fresh_only = true;
                        continue;
                    }
                    // A brand new connection that is already dead: a connect failure.
                    let reason = "connection closed right after connect".to_string();
                    passive_failure(sh, &b, &reason, started.elapsed());
                    pick = redispatch(sh, pool, &mut tried, &pick, || {
                        format!("{}: {reason}", b.name)
                    })?;
                    continue;
                }
                let err = e.into_error();
                if err.is_user() {
                    // Our side failed: the client's request body (client went away).
                    return Err(ProxyError::ClientAborted(describe(&err)));
                }
                if reused && err.is_incomplete_message() && !replayed {
                    if let Some(r) = &replay {
                        tracing::debug!(backend = %b.name, "reused connection closed by backend before answering, retrying once");
                        b.counters.retries.fetch_add(1, Ordering::Relaxed);
                        replayed = true;
                        fresh_only = true;
                        req = r.request();
                        continue;
                    }
                }
                let reason = describe(&err);
                passive_failure(sh, &b, &reason, started.elapsed());
                // The backend closed or reset the connection without a complete answer
                // head (a server stopping between accept and response): a request that can
                // be replayed goes to another up backend, like HAProxy's `retry-on
                // empty-response conn-failure` with `option redispatch`. Nothing reached
                // the client yet, and the request is idempotent without a body.
                if closed_without_answer(&err) {
                    if let Some(r) = &replay {
                        tried.push(pick.idx);
                        if let Some(next) = sh.balancer.pick(pool, &tried) {
                            tracing::info!(backend = %b.name, %reason, next = %next.backend.name, "empty response, redispatching");
                            b.counters.redispatches.fetch_add(1, Ordering::Relaxed);
                            pick = next;
                            req = r.request();
                            continue;
                        }
                    }
                }
                tracing::info!(backend = %b.name, %reason, reused, "bad gateway");
                return Err(ProxyError::BadGateway(format!("{}: {reason}", b.name)));
            }
        }
    }
}
