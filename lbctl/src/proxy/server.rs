//! The client side: listeners, proxy threads and the handover of connections between
//! them, and the per-connection hyper server with limits and our own timeouts (each
//! request then takes the path of [`super::request`]).
//!
//! Timeouts are ours rather than hyper's `header_read_timeout` (which closes without a
//! response and runs while a kept-alive connection is idle too): each connection has a
//! phase, moved by the bytes read (IO wrapper) and by requests starting and finishing
//! (service and response body):
//! - idle (no byte of a next request): closed silently after `keep_alive_ms`, or
//!   `http_request_ms` before the first request (like HAProxy's `http-ignore-probes`);
//! - reading a head (some bytes, no complete head yet): after `http_request_ms` from the
//!   first byte, `408 Request Timeout` is written and the connection closed;
//! - busy (requests in flight) or upgraded: no deadline here (backend side has `server_ms`).
//!
//! Every close is lingering: write side shut, then what the client still sends is read
//! and dropped (up to 1 s / 1 MiB) so a client that is still sending gets our error
//! response rather than a TCP reset.

use super::client::{self, Pool};
use super::error;
use super::forward;
use super::request;
use super::{FrontendStats, ProxyConfig};
use crate::balance::backend::BackendState;
use crate::balance::Balancer;
use anyhow::Context as _;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

const LINGER: Duration = Duration::from_secs(1);
const LINGER_MAX_BYTES: usize = 1 << 20;
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A listening socket with SO_REUSEADDR and IP_FREEBIND (the address, e.g. the VIP, need
/// not be configured yet).
#[cfg(test)]
pub fn bind_listener(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    bind_listener_with(addr, false)
}

/// [`bind_listener`], with SO_REUSEPORT when `reuseport`: every proxy thread binds its own
/// socket to the same address and the kernel spreads new connections over them, so no
/// thread wakes for a connection another one takes.
pub fn bind_listener_with(addr: SocketAddr, reuseport: bool) -> anyhow::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating listening socket")?;
    sock.set_reuseaddr(true)?;
    if reuseport {
        sock.set_reuseport(true).context("setting SO_REUSEPORT")?;
    }
    let one: libc::c_int = 1;
    // SAFETY: valid fd, option value of the documented size. IP_FREEBIND also applies to
    // IPv6 sockets on Linux.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_IP,
            libc::IP_FREEBIND,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("setting IP_FREEBIND");
    }
    sock.bind(addr)
        .with_context(|| format!("binding proxy listener {addr}"))?;
    sock.listen(1024)
        .with_context(|| format!("listening on {addr}"))
}

/// What every connection and request of one proxy thread shares.
pub struct Shared {
    pub cfg: ProxyConfig,
    /// One balancer for all threads: round robin stays exact whichever thread accepted.
    pub balancer: Arc<Balancer>,
    /// Backend connections are registered with one thread's event loop: a pool per thread.
    pub pool: Arc<Pool>,
    pub stats: Arc<FrontendStats>,
}

/// What the threads of one proxy share: balancing state, counters, the connection limit
/// and the stop signal.
#[derive(Clone)]
pub struct Common {
    pub balancer: Arc<Balancer>,
    pub stats: Arc<FrontendStats>,
    pub sem: Arc<Semaphore>,
    pub max_conns: usize,
    pub stop: watch::Receiver<bool>,
    /// Each thread's connection count and the way to hand it a connection.
    pub threads: Arc<Vec<ThreadSlot>>,
}

/// A proxy thread as the others see it.
pub struct ThreadSlot {
    /// Client connections the thread serves or has been handed.
    conns: AtomicUsize,
    handoff: mpsc::UnboundedSender<Handoff>,
}

/// A client connection accepted by one thread for another, less loaded one.
pub struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
}

/// Counts a connection on its thread until dropped.
struct ThreadLoad(Arc<Vec<ThreadSlot>>, usize);

impl Drop for ThreadLoad {
    fn drop(&mut self) {
        self.0[self.1].conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The thread that should serve a connection accepted by thread `me`: the least loaded
/// one, `me` on ties. The kernel spreads connections over the SO_REUSEPORT listeners by
/// a hash of the addresses, which left one thread with several more of wrk's 50
/// connections than the other: those connections waited longer (the p99), while
/// HAProxy gives each new connection to its least loaded thread.
fn choose_thread(threads: &[ThreadSlot], me: usize) -> usize {
    let load = |i: usize| threads[i].conns.load(Ordering::Relaxed);
    let best = (0..threads.len()).min_by_key(|&i| load(i)).unwrap_or(me);
    let chosen = if load(best) < load(me) { best } else { me };
    threads[chosen].conns.fetch_add(1, Ordering::Relaxed);
    chosen
}

impl Common {
    pub fn new(
        cfg: &ProxyConfig,
        backends: Vec<Arc<BackendState>>,
        stats: Arc<FrontendStats>,
        stop: watch::Receiver<bool>,
        threads: usize,
    ) -> (Common, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let max_conns = cfg.limits.max_conns.clamp(1, Semaphore::MAX_PERMITS >> 1);
        let (slots, rxs): (Vec<_>, Vec<_>) = (0..threads.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                let slot = ThreadSlot {
                    conns: AtomicUsize::new(0),
                    handoff: tx,
                };
                (slot, rx)
            })
            .unzip();
        let common = Common {
            balancer: Arc::new(Balancer::new(
                backends,
                cfg.balance,
                cfg.cookie.clone(),
                cfg.routes.clone(),
            )),
            stats,
            sem: Arc::new(Semaphore::new(max_conns)),
            max_conns,
            stop,
            threads: Arc::new(slots),
        };
        (common, rxs)
    }
}

/// Serves on `listeners` until `shutdown` resolves, on the calling task's thread.
#[cfg(test)]
pub async fn serve(
    listeners: Vec<TcpListener>,
    cfg: ProxyConfig,
    backends: Vec<Arc<BackendState>>,
    stats: Arc<FrontendStats>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = watch::channel(false);
    let (common, mut rxs) = Common::new(&cfg, backends, stats, rx, 1);
    let rx = rxs.pop().expect("one thread");
    let shard = tokio::spawn(serve_thread(listeners, cfg, common, 0, rx));
    shutdown.await;
    let _ = tx.send(true);
    let _ = shard.await;
}

/// One proxy thread: accepts on its `listeners` until the stop signal, then lets its
/// connections finish their current request (keep-alive disabled) within a grace period.
/// Runs on the thread's own event loop; backend connections go to this thread's pool.
pub async fn serve_thread(
    listeners: Vec<TcpListener>,
    cfg: ProxyConfig,
    c: Common,
    me: usize,
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
) {
    let pool = Arc::new(Pool::new(
        c.balancer.backends().len(),
        cfg.source,
        cfg.timeouts.connect_ms,
        Duration::from_millis(cfg.timeouts.keep_alive_ms),
    ));
    let shared = Arc::new(Shared {
        cfg,
        balancer: c.balancer.clone(),
        pool,
        stats: c.stats.clone(),
    });
    // This thread's own stop signal, relayed from the proxy's: every connection polls it
    // each time it wakes, and a receiver of a channel shared by all threads takes that
    // channel's lock on each of those polls.
    let mut stop = c.stop.clone();
    let (local_tx, local_rx) = watch::channel(false);
    let c = Common {
        stop: local_rx,
        ..c
    };
    let mut accepts = tokio::task::JoinSet::new();
    for l in listeners {
        let addr = l.local_addr().ok();
        tracing::info!(?addr, "proxy listening");
        accepts.spawn(accept_loop(l, shared.clone(), c.clone(), me));
    }
    loop {
        tokio::select! {
            h = handoffs.recv() => {
                let Some(h) = h else { break };
                // Registered with this thread's event loop from here on.
                match TcpStream::from_std(h.stream) {
                    Ok(stream) => {
                        let load = ThreadLoad(c.threads.clone(), me);
                        let span = tracing::info_span!("conn", peer = %h.peer);
                        let conn = connection(stream, h.peer, h.permit, shared.clone(), c.stop.clone(), load);
                        tokio::spawn(conn.instrument(span));
                    }
                    Err(e) => {
                        c.threads[me].conns.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "cannot take over a connection");
                    }
                }
            }
            _ = stopped(&mut stop) => break,
        }
    }
    let _ = local_tx.send(true);
    accepts.shutdown().await;
    // Wait until no connection holds a slot (every thread's connections share the
    // semaphore; the permits are released at once so other threads' waits end too).
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, c.sem.acquire_many(c.max_conns as u32)).await;
}

async fn accept_loop(listener: TcpListener, sh: Arc<Shared>, c: Common, me: usize) {
    let (sem, mut stop) = (c.sem.clone(), c.stop.clone());
    loop {
        // Take a connection slot first: above max_conns, clients wait in the backlog.
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let to = choose_thread(&c.threads, me);
        if to != me {
            match stream.into_std() {
                Ok(stream) => {
                    let h = Handoff {
                        stream,
                        peer,
                        permit,
                    };
                    if let Err(e) = c.threads[to].handoff.send(h) {
                        // That thread is stopping: the connection is dropped (closed).
                        c.threads[to].conns.fetch_sub(1, Ordering::Relaxed);
                        drop(e);
                    }
                }
                Err(e) => {
                    c.threads[to].conns.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot hand over a connection");
                }
            }
            continue;
        }
        let load = ThreadLoad(c.threads.clone(), me);
        let span = tracing::info_span!("conn", peer = %peer);
        let conn = connection(stream, peer, permit, sh.clone(), stop.clone(), load);
        tokio::spawn(conn.instrument(span));
    }
}

/// Resolves once shutdown has been signalled (or the proxy is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.is_ok();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request.
    Idle,
    /// Some bytes of a request head received.
    Head,
    /// This many requests in flight.
    Busy(u32),
    Upgraded,
}

/// Per-connection state shared by the IO wrapper, the handler and the watchdog.
pub struct ConnState {
    phase: Mutex<(Phase, Instant, bool)>,
    /// X-Forwarded-For and Forwarded for this client, made once.
    forwarding: forward::Forwarding,
    /// The connection slot, released when the connection (and any tunnel) is gone.
    _permit: OwnedSemaphorePermit,
}

impl ConnState {
    fn set(&self, f: impl FnOnce(Phase) -> Option<Phase>, served: bool) {
        let mut p = self.phase.lock().expect("phase lock");
        if let Some(n) = f(p.0) {
            *p = (n, Instant::now(), p.2 || served);
        }
    }

    fn on_bytes(&self) {
        // Cheap check first: this runs on every read.
        if self.phase.lock().expect("phase lock").0 == Phase::Idle {
            self.set(|p| (p == Phase::Idle).then_some(Phase::Head), false);
        }
    }

    pub fn begin_request(&self) {
        self.set(
            |p| match p {
                Phase::Busy(n) => Some(Phase::Busy(n + 1)),
                Phase::Upgraded => None,
                _ => Some(Phase::Busy(1)),
            },
            false,
        );
    }

    fn end_request(&self) {
        self.set(
            |p| match p {
                Phase::Busy(n) if n > 1 => Some(Phase::Busy(n - 1)),
                Phase::Busy(_) => Some(Phase::Idle),
                _ => None,
            },
            true,
        );
    }

    pub fn upgraded(&self) {
        self.set(|_| Some(Phase::Upgraded), true);
    }

    /// X-Forwarded-For and Forwarded for this client.
    pub fn forwarding(&self) -> &forward::Forwarding {
        &self.forwarding
    }

    /// The current deadline and what expires then.
    fn deadline(&self, t: &crate::config::Timeouts) -> Option<(Instant, Phase)> {
        let (phase, since, served) = *self.phase.lock().expect("phase lock");
        let ms = match phase {
            Phase::Idle if served => t.keep_alive_ms,
            Phase::Idle | Phase::Head => t.http_request_ms,
            _ => return None,
        };
        Some((since + Duration::from_millis(ms.max(1)), phase))
    }
}

/// Marks a request in flight on its connection until dropped (with the response body).
pub struct InFlight(Arc<ConnState>);

impl InFlight {
    /// Call after [`ConnState::begin_request`]: the drop ends the request.
    pub fn new(state: Arc<ConnState>) -> InFlight {
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

/// The client socket as hyper sees it: shared so that we can still write a 408 and do a
/// lingering close once hyper has let go of it; reads move the connection's phase.
struct ClientIo {
    stream: Arc<TcpStream>,
    state: Arc<ConnState>,
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            // recv(2) straight into the unfilled (possibly uninitialised) part: zeroing
            // hyper's read buffer before every read showed up as memset in the profile.
            let fd = self.stream.as_raw_fd();
            // SAFETY: we only write into `dst` through recv and mark as initialised exactly
            // the bytes the kernel wrote.
            let dst = unsafe { buf.unfilled_mut() };
            let res = self.stream.try_io(tokio::io::Interest::READABLE, || {
                // SAFETY: fd is the open socket; dst is valid for dst.len() bytes.
                let r =
                    unsafe { libc::recv(fd, dst.as_mut_ptr() as *mut libc::c_void, dst.len(), 0) };
                if r < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(r as usize)
                }
            });
            match res {
                Ok(n) => {
                    if n > 0 {
                        self.state.on_bytes();
                        if n < dst.len() {
                            client::drained(&self.stream);
                        }
                    }
                    // SAFETY: recv initialised the first n bytes of the unfilled part.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ =
            nix::sys::socket::shutdown(self.stream.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

enum End {
    Done(Result<(), hyper::Error>),
    Idle,
    HeadTimeout,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    sh: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    _load: ThreadLoad,
) {
    let stats = sh.stats.clone();
    stats.conns_total.fetch_add(1, Ordering::Relaxed);
    stats.conns_current.fetch_add(1, Ordering::Relaxed);
    struct Current(Arc<FrontendStats>);
    impl Drop for Current {
        fn drop(&mut self) {
            self.0.conns_current.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _current = Current(stats.clone());
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let stream = Arc::new(stream);
    let state = Arc::new(ConnState {
        phase: Mutex::new((Phase::Idle, Instant::now(), false)),
        forwarding: forward::Forwarding::new(peer, local),
        _permit: permit,
    });
    tracing::debug!(%local, "connection accepted");
    let io = ClientIo {
        stream: stream.clone(),
        state: state.clone(),
    };
    let svc = {
        let sh = sh.clone();
        let state = state.clone();
        hyper::service::service_fn(move |req| request::handle(req, sh.clone(), state.clone()))
    };
    let limits = &sh.cfg.limits;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_headers(limits.max_headers.max(1))
        .max_header_size(limits.max_header_bytes.max(1))
        .max_buf_size(limits.max_header_bytes.max(8192));
    let mut conn = Box::pin(
        builder
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades(),
    );
    let timeouts = sh.cfg.timeouts.clone();
    let mut stopping = false;
    // One timer per connection, and no wake-up per request: a phase change never moves a
    // deadline earlier than `step` from now, so a timer that fires at most `step` after
    // it was last armed is never late; when it fires the deadline is looked up again and
    // the timer re-armed (at most every `step` on a busy or idle connection). Waking the
    // watchdog on every phase change cost two extra polls of the connection per request.
    let step = Duration::from_millis(timeouts.keep_alive_ms.min(timeouts.http_request_ms).max(1));
    let sleep = tokio::time::sleep_until(Instant::now() + step);
    tokio::pin!(sleep);
    let end = loop {
        tokio::select! {
            // The connection first (it is what wakes us nearly every time), no shuffling.
            biased;
            r = conn.as_mut() => break End::Done(r),
            _ = &mut sleep => {
                let now = Instant::now();
                match state.deadline(&timeouts) {
                    Some((at, Phase::Head)) if at <= now => break End::HeadTimeout,
                    Some((at, Phase::Idle)) if at <= now => break End::Idle,
                    Some((at, _)) => sleep.as_mut().reset(at.min(now + step)),
                    None => sleep.as_mut().reset(now + step),
                }
            }
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    drop(conn);
    let mut prefix = None;
    match end {
        End::Done(Ok(())) => tracing::debug!("connection closed"),
        End::Done(Err(e)) => {
            // hyper answered these itself (400/414/431) before closing.
            if e.is_parse_too_large() {
                stats.requests.fetch_add(1, Ordering::Relaxed);
                stats.too_large.fetch_add(1, Ordering::Relaxed);
                stats.count_response(431);
                tracing::info!(error = %e, "request head too large: 431");
            } else if e.is_parse() {
                stats.requests.fetch_add(1, Ordering::Relaxed);
                stats.bad_request.fetch_add(1, Ordering::Relaxed);
                stats.count_response(400);
                tracing::info!(error = %e, "malformed request: 400");
            } else {
                tracing::debug!(error = %e, "connection error");
            }
        }
        End::Idle => tracing::debug!("idle connection timed out, closing"),
        End::HeadTimeout => {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            stats.header_timeout.fetch_add(1, Ordering::Relaxed);
            stats.count_response(408);
            tracing::info!("request head not received in time: 408");
            prefix = Some(error::raw(StatusCode::REQUEST_TIMEOUT));
        }
    }
    // Upgraded connections belong to their tunnel now.
    if let Ok(stream) = Arc::try_unwrap(stream) {
        linger(stream, prefix).await;
    }
}

/// Writes `prefix` (if any), shuts the write side and drains what the client still sends,
/// so that closing does not reset the connection before the client read our response.
async fn linger(mut stream: TcpStream, prefix: Option<Vec<u8>>) {
    let until = Instant::now() + LINGER;
    if let Some(p) = prefix {
        let _ = tokio::time::timeout_at(until, stream.write_all(&p)).await;
    }
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < LINGER_MAX_BYTES {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    fn slots(loads: &[usize]) -> Vec<ThreadSlot> {
        loads
            .iter()
            .map(|&n| ThreadSlot {
                conns: AtomicUsize::new(n),
                handoff: mpsc::unbounded_channel().0,
            })
            .collect()
    }

    fn loads(s: &[ThreadSlot]) -> Vec<usize> {
        s.iter().map(|t| t.conns.load(Ordering::Relaxed)).collect()
    }

    #[test]
    fn new_connections_go_to_the_least_loaded_thread() {
        let s = slots(&[3, 1]);
        assert_eq!(choose_thread(&s, 0), 1);
        assert_eq!(loads(&s), [3, 2]);
        assert_eq!(choose_thread(&s, 0), 1);
        // A tie stays where it was accepted: no handover for nothing.
        assert_eq!(choose_thread(&s, 0), 0);
        assert_eq!(choose_thread(&s, 1), 1);
        assert_eq!(loads(&s), [4, 4]);
        // 50 connections accepted by one thread end up 25 / 25.
        let s = slots(&[0, 0]);
        for _ in 0..50 {
            choose_thread(&s, 0);
        }
        assert_eq!(loads(&s), [25, 25]);
    }
}
