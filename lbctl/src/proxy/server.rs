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
//! - busy (requests in flight): the client has `client_ms` (HAProxy's `timeout client`)
//!   to take each next part of our response once a write would block, else the connection
//!   is closed (a client that stops reading must not hold its slot forever); a stalled
//!   request body is `client_ms` too (408, see `client`); the backend side has `server_ms`;
//! - upgraded: the tunnel's own inactivity limit, `tunnel_ms` (see `tunnel`).
//!
//! A connection task that panics is contained ([`contain`]): counted in `panics`, and the
//! guards it holds (connection slot, thread load, open-connection gauge, backend pick)
//! are released by their `Drop` while it unwinds.
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
                        tokio::spawn(contain(conn, c.stats.clone()).instrument(span));
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
    let mut accept_errors = crate::log_limit::LogLimit::new(Duration::from_secs(5));
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
                    // EMFILE and friends: back off instead of spinning (and flooding the log).
                    if let Some(suppressed) = accept_errors.hit_now() {
                        tracing::warn!(error = %e, suppressed, "accept failed");
                    }
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
        tokio::spawn(contain(conn, c.stats.clone()).instrument(span));
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
    /// A write to the client would block: since when, and the bytes then in the
    /// socket's send queue (the client has taken none of them if that has not shrunk).
    write_blocked: Mutex<Option<(Instant, u64)>>,
    /// Fast path for the writes that do not block (nearly all): no lock taken.
    blocked: AtomicBool,
    /// X-Forwarded-For and Forwarded for this client, made once.
    forwarding: forward::Forwarding,
    /// `tunnel_ms`: an Upgrade tunnel with no byte either way for this long is closed.
    tunnel_idle: Duration,
    /// The timer each request's first-byte wait borrows (see `timer`).
    timer: Arc<super::timer::TimerSlot>,
    stats: Arc<FrontendStats>,
    /// The connection slot, released when the connection (and any tunnel) is gone.
    _permit: OwnedSemaphorePermit,
}

impl ConnState {
    fn set(&self, f: impl FnOnce(Phase) -> Option<Phase>, served: bool) {
        let mut p = crate::locks::lock(&self.phase);
        if let Some(n) = f(p.0) {
            *p = (n, Instant::now(), p.2 || served);
        }
    }

    fn on_bytes(&self) {
        // Cheap check first: this runs on every read.
        if crate::locks::lock(&self.phase).0 == Phase::Idle {
            self.set(|p| (p == Phase::Idle).then_some(Phase::Head), false);
        }
    }

    /// A write to the client would block (`true`, with the socket for its send queue)
    /// or took bytes (`false`).
    fn on_write(&self, blocked: bool, stream: &TcpStream) {
        if self.blocked.load(Ordering::Relaxed) == blocked {
            return;
        }
        self.blocked.store(blocked, Ordering::Relaxed);
        *crate::locks::lock(&self.write_blocked) =
            blocked.then(|| (Instant::now(), unsent(stream)));
    }

    /// At the `client_ms` deadline of a blocked write: whether the client took bytes of
    /// the send queue since (then the clock starts again). A socket becomes writable
    /// only once its queue has drained to two thirds, so a client reading slowly but
    /// steadily can keep our writes blocked for longer than `client_ms`.
    fn client_took_bytes(&self, stream: &TcpStream) -> bool {
        let mut b = crate::locks::lock(&self.write_blocked);
        let now_unsent = unsent(stream);
        match b.as_mut() {
            Some((since, queued)) if now_unsent < *queued => {
                *since = Instant::now();
                *queued = now_unsent;
                true
            }
            Some(_) => false,
            None => true,
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

    /// The connection's timer, lent to each request in turn.
    pub fn timer(&self) -> &Arc<super::timer::TimerSlot> {
        &self.timer
    }

    /// `tunnel_ms`: how long an Upgrade tunnel may carry no byte either way.
    pub fn tunnel_idle(&self) -> Duration {
        self.tunnel_idle
    }

    /// The frontend counters (a tunnel's timeout and panic are counted there).
    pub fn stats(&self) -> Arc<FrontendStats> {
        self.stats.clone()
    }

    /// The current deadline and what expires then.
    fn deadline(&self, t: &crate::config::Timeouts) -> Option<(Instant, Phase)> {
        let (phase, since, served) = *crate::locks::lock(&self.phase);
        let blocked = crate::locks::lock(&self.write_blocked).map(|b| b.0);
        deadline(phase, since, served, blocked, t)
    }
}

/// Bytes in `stream`'s send queue, sent or not, that the peer has not acknowledged
/// (SIOCOUTQ); 0 if it cannot be read (then any later check finds no progress).
fn unsent(stream: &TcpStream) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: valid socket fd; TIOCOUTQ writes one int.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc == 0 {
        n.max(0) as u64
    } else {
        0
    }
}

/// When a connection in `phase` (entered at `since`; `served`: a request was answered on
/// it; `blocked`: since when a write to the client would block) times out, and what
/// expires then (the pure part of the watchdog).
fn deadline(
    phase: Phase,
    since: Instant,
    served: bool,
    blocked: Option<Instant>,
    t: &crate::config::Timeouts,
) -> Option<(Instant, Phase)> {
    let (from, ms) = match (phase, blocked) {
        (Phase::Idle, _) if served => (since, t.keep_alive_ms),
        (Phase::Idle | Phase::Head, _) => (since, t.http_request_ms),
        (Phase::Busy(_), Some(b)) => (b, t.client_ms),
        _ => return None,
    };
    Some((from + Duration::from_millis(ms.max(1)), phase))
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

impl ClientIo {
    /// One write, telling the connection's state whether the client takes our bytes (the
    /// `client_ms` clock runs while a write would block).
    fn write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if self.stream.poll_write_ready(cx)?.is_pending() {
                self.state.on_write(true, &self.stream);
                return Poll::Pending;
            }
            match write(&self.stream) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => {
                    self.state.on_write(false, &self.stream);
                    return Poll::Ready(r);
                }
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
        self.write_with(cx, |s| {
            super::sock::send_vectored(s, &[io::IoSlice::new(buf)])
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_with(cx, |s| super::sock::send_vectored(s, bufs))
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
    /// The client did not take our response for `client_ms`.
    ClientTimeout,
}

/// Runs a connection (or tunnel) task so that a panic in it stays its own: counted in
/// `panics` and logged; every guard the task held was dropped while it unwound, so its
/// slot, thread load and backend pick are released and the other connections go on.
/// A combinator rather than an `async fn`: that would keep the task twice in its state
/// (the argument and the running future), doubling every connection's task allocation.
pub fn contain(
    task: impl std::future::Future<Output = ()>,
    stats: Arc<FrontendStats>,
) -> impl std::future::Future<Output = ()> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(task)
        .catch_unwind()
        .map(move |r| {
            if let Err(p) = r {
                stats.panics.fetch_add(1, Ordering::Relaxed);
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %what, "a connection task panicked; its connection is closed");
            }
        })
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
    let accepted = Instant::now();
    if !first_byte(&stream, accepted, &sh.cfg.timeouts, &mut stop).await {
        tracing::debug!("connection closed before its first request");
        linger(stream, None).await;
        return;
    }
    let stream = Arc::new(stream);
    let state = Arc::new(ConnState {
        phase: Mutex::new((Phase::Idle, accepted, false)),
        write_blocked: Mutex::new(None),
        blocked: AtomicBool::new(false),
        forwarding: forward::Forwarding::new(peer, local),
        tunnel_idle: Duration::from_millis(sh.cfg.timeouts.tunnel_ms.max(1)),
        timer: Arc::default(),
        stats: stats.clone(),
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
    let mut conn = Box::pin(
        builder(&sh.cfg.limits)
            .serve_connection(TokioIo::new(io), svc)
            .with_upgrades(),
    );
    let end = with_timeouts(conn.as_mut(), &state, &stream, &sh.cfg.timeouts, &mut stop).await;
    drop(conn);
    let prefix = report(end, &stats);
    // Upgraded connections belong to their tunnel now.
    if let Ok(stream) = Arc::try_unwrap(stream) {
        linger(stream, prefix).await;
    }
}

/// Waits for a fresh connection's first byte (or its end) before any HTTP state exists:
/// hyper's read and write buffers (8 KiB each) and its connection state are made only
/// then, so a connection that sends nothing costs its socket and this task alone (the
/// agent's memory per idle connection). False when it stays silent past
/// `http_request_ms` from `accepted` (the same deadline the idle phase has once hyper
/// runs: closed silently) or the proxy stops.
async fn first_byte(
    stream: &TcpStream,
    accepted: Instant,
    t: &crate::config::Timeouts,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let until = accepted + Duration::from_millis(t.http_request_ms.max(1));
    let mut byte = [0u8; 1];
    tokio::select! {
        // A peek, not readiness alone: tokio reports a fresh socket readable before any
        // byte came (readiness is a hint); a peek that would block waits on.
        r = tokio::time::timeout_at(until, stream.peek(&mut byte)) => matches!(r, Ok(Ok(_))),
        _ = stopped(stop) => false,
    }
}

/// hyper's HTTP/1 server with our limits and none of its timeouts (ours are in [`with_timeouts`]).
fn builder(limits: &crate::config::Limits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_headers(limits.max_headers.max(1))
        .max_header_size(limits.max_header_bytes.max(1))
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
}

/// Drives `conn` until it ends, a timeout of its phase expires or (after a graceful
/// shutdown on `stop`) it finishes its current request.
async fn with_timeouts<C>(
    mut conn: Pin<&mut C>,
    state: &ConnState,
    stream: &TcpStream,
    timeouts: &crate::config::Timeouts,
    stop: &mut watch::Receiver<bool>,
) -> End
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Graceful,
{
    let mut stopping = false;
    // One timer per connection, and no wake-up per request: a phase change never moves a
    // deadline earlier than `step` from now, so a timer that fires at most `step` after
    // it was last armed is never late; when it fires the deadline is looked up again and
    // the timer re-armed (at most every `step` on a busy or idle connection). Waking the
    // watchdog on every phase change cost two extra polls of the connection per request.
    let step = [
        timeouts.keep_alive_ms,
        timeouts.http_request_ms,
        timeouts.client_ms,
    ];
    let step = Duration::from_millis(step.into_iter().min().unwrap_or(1).max(1));
    let sleep = tokio::time::sleep_until(Instant::now() + step);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            // The connection first (it is what wakes us nearly every time), no shuffling.
            biased;
            r = conn.as_mut() => break End::Done(r),
            _ = &mut sleep => {
                let now = Instant::now();
                match state.deadline(timeouts) {
                    Some((at, Phase::Head)) if at <= now => break End::HeadTimeout,
                    Some((at, Phase::Idle)) if at <= now => break End::Idle,
                    Some((at, Phase::Busy(_))) if at <= now => {
                        if !state.client_took_bytes(stream) {
                            break End::ClientTimeout;
                        }
                        sleep.as_mut().reset(now + step);
                    }
                    Some((at, _)) => sleep.as_mut().reset(at.min(now + step)),
                    None => sleep.as_mut().reset(now + step),
                }
            }
            _ = stopped(stop), if !stopping => {
                stopping = true;
                conn.as_mut().shutdown_gracefully();
            }
        }
    }
}

/// A hyper connection that can be asked to finish its current request and close.
trait Graceful {
    fn shutdown_gracefully(self: Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Counts and logs how a connection ended; the response to write before closing, if any.
fn report(end: End, stats: &FrontendStats) -> Option<Vec<u8>> {
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
        End::ClientTimeout => {
            stats.client_timeout.fetch_add(1, Ordering::Relaxed);
            tracing::info!("client took none of the response for client_ms, closing");
        }
        End::HeadTimeout => {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            stats.header_timeout.fetch_add(1, Ordering::Relaxed);
            stats.count_response(408);
            tracing::info!("request head not received in time: 408");
            prefix = Some(error::raw(StatusCode::REQUEST_TIMEOUT));
        }
    }
    prefix
}

/// Writes `prefix` (if any), shuts the write side and drains what the client still sends,
/// so that closing does not reset the connection before the client read our response.
async fn linger(mut stream: TcpStream, prefix: Option<Vec<u8>>) {
    let until = Instant::now() + LINGER;
    if let Some(p) = prefix {
        let _ = tokio::time::timeout_at(until, stream.write_all(&p)).await;
    }
    let _ = stream.shutdown().await;
    // Small: this buffer lives in every connection task's state (the memory of each
    // idle connection), and draining is rare and bounded anyway.
    let mut buf = [0u8; 512];
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

#[cfg(test)]
mod timeout_tests {
    use super::*;
    use crate::config::Timeouts;

    fn t() -> Timeouts {
        Timeouts {
            http_request_ms: 100,
            keep_alive_ms: 200,
            client_ms: 300,
            ..Timeouts::default()
        }
    }

    #[test]
    fn each_phase_has_its_timeout() {
        let s = Instant::now();
        let ms = |n| s + Duration::from_millis(n);
        let d = |phase, served, blocked| deadline(phase, s, served, blocked, &t());
        // A fresh connection's first request: http_request_ms, idle or mid-head.
        assert_eq!(d(Phase::Idle, false, None), Some((ms(100), Phase::Idle)));
        assert_eq!(d(Phase::Head, true, None), Some((ms(100), Phase::Head)));
        // Between requests: keep_alive_ms.
        assert_eq!(d(Phase::Idle, true, None), Some((ms(200), Phase::Idle)));
        // A request in flight: no deadline until a write to the client blocks, then
        // client_ms from when it blocked.
        assert_eq!(d(Phase::Busy(1), true, None), None);
        let b = Some(ms(50));
        assert_eq!(d(Phase::Busy(2), true, b), Some((ms(350), Phase::Busy(2))));
        // A tunnel has its own (tunnel_ms, in `tunnel`).
        assert_eq!(d(Phase::Upgraded, true, b), None);
    }

    #[tokio::test]
    async fn a_panicking_connection_task_gives_back_what_it_held() {
        let stats = Arc::new(FrontendStats::default());
        let sem = Arc::new(Semaphore::new(2));
        let (tx, _rx) = mpsc::unbounded_channel();
        let threads = Arc::new(vec![ThreadSlot {
            conns: AtomicUsize::new(0),
            handoff: tx,
        }]);
        let permit = sem.clone().acquire_owned().await.unwrap();
        assert_eq!(choose_thread(&threads, 0), 0);
        let load = ThreadLoad(threads.clone(), 0);
        let task = async move {
            let _held = (permit, load);
            tokio::task::yield_now().await;
            panic!("a request handler bug");
        };
        tokio::spawn(contain(task, stats.clone())).await.unwrap();
        assert_eq!(stats.snapshot().panics, 1);
        assert_eq!(sem.available_permits(), 2);
        assert_eq!(threads[0].conns.load(Ordering::Relaxed), 0);
    }
}
