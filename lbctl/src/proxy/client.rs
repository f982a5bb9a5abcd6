//! Backend connections: a keep-alive pool per backend (plain sockets opened from the
//! balancer's internal address, spoken to with our HTTP/1.1 codec in `h1`), and the
//! dispatch loop with HAProxy-like redispatch and retries.
//!
//! The request's own task drives the backend socket (no connection task, no channel):
//! the head is written, the body streamed, the response head read here, and the response
//! body read by [`super::body::RespBody`] as the client takes it, after which the
//! connection goes back to the pool of its thread.
//!
//! Rules (one deadline of `server_ms` per request covers every attempt below):
//! - connect failure (refused, reset, unreachable, connect timeout): nothing was sent,
//!   so for any method the failure is recorded against the backend (passive, `failures`,
//!   and a layer-4 error for `observe`) and the request is redispatched to another up
//!   backend of the pool (`redispatches` on the failed one); when none is left: 503 at
//!   once. The connect timeout is `connect_ms`, or when absent the backend's own,
//!   derived from its measured connect times (`balance::estimate`).
//! - `error_limit` layer-4 errors in a row (connect failures, connect timeouts,
//!   silences) mark the backend down at once (`balance::observe`); its pooled connections
//!   are then never reused (they carry the backend's down-transition count).
//! - a pooled connection is checked before use: one the backend has closed (or that holds
//!   unexpected bytes) is dropped and the next one, or a new one, is used. Writing the
//!   request head to a reused connection that fails: nothing of the request reached the
//!   backend, so it is sent again on a fresh connection to the same backend (any method;
//!   counted in `retries`).
//! - silence: a request without a body whose first response byte has not come within
//!   `first_byte_ms` (automatic: from the connect-time estimate, at least 100 ms) is
//!   checked in TCP_INFO; if the backend's TCP stack has not acknowledged it, it is
//!   replayable (`retry::replayable`) and a new connect to the backend fails as well
//!   (black hole, dead host, cut path: a live host answers a SYN at once, while its ACK
//!   of a request may be delayed up to its delayed-ACK timer), it goes to the next up
//!   backend (a redispatch, counted as a failure and a layer-4 error of the silent one).
//!   An acknowledged request, or a backend that still accepts connects, only means a slow
//!   backend: the request keeps waiting.
//! - a reused pooled connection that the backend closes or resets after the request was
//!   written but before any response byte (keep-alive race): an idempotent request (GET,
//!   HEAD, PUT, DELETE, OPTIONS, TRACE) without a body is retried once on a fresh
//!   connection to the same backend (`retries`), nothing recorded. Requests with a body
//!   are not replayed (they are streamed, not buffered): 502.
//! - a fresh connection closed or reset before any answer (a server stopping between
//!   accept and response): a replayable request is redispatched to another up backend.
//! - otherwise a closed/reset connection or a response that is not HTTP: 502; no response
//!   head within the deadline (a body: `server_ms` of backend inactivity): 504; both
//!   recorded as passive failures.

use super::body::{Progress, ReqBody, Waiting};
use super::error::ProxyError;
use super::h1::{self, ReqFraming, ResponseHead};
use super::retry::{self, Deadline, Quiet};
use super::server::Shared;
use super::tcp_info;
use crate::balance::backend::BackendState;
use crate::balance::estimate;
use crate::balance::observe::L4;
use crate::balance::Pick;
use crate::locks::lock;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::Method;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

/// Longest a backend connection stays idle in the pool: below common server keep-alive
/// timeouts (Apache's 5 s) so we rarely reuse a connection the server is closing.
const POOL_IDLE_MAX: Duration = Duration::from_secs(4);
const POOL_MAX_IDLE_PER_BACKEND: usize = 64;
/// Read buffer of a backend connection: one read takes a typical small response whole.
const READ_BUF: usize = 16 * 1024;
/// The most one read of a response body of known length takes.
const MAX_READ: usize = 64 * 1024;

/// One backend connection: the socket and what has been read from it but not used yet.
/// The socket is shared with the request body's upload while the response is already
/// coming (see [`Upload`]).
pub struct Conn {
    pub stream: Arc<TcpStream>,
    pub buf: BytesMut,
    /// Index of the backend in the balancer (which pool the connection returns to).
    pub idx: usize,
    /// The backend's down-transition count when the connection was opened: once the
    /// backend has been marked down since, the connection is not reused.
    pub epoch: u64,
}

impl Conn {
    /// Reads more of the backend's bytes into `buf`; 0 means the backend closed.
    pub fn poll_fill(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<usize>> {
        self.poll_fill_for(cx, None)
    }

    /// [`Conn::poll_fill`] for a body with `expected` bytes still to come: the buffer
    /// grows to take them in one read (up to [`MAX_READ`]), so a 64 kB body is one
    /// `recv` and one `send` to the client rather than four of each through 16 KiB.
    pub fn poll_fill_for(
        &mut self,
        cx: &mut std::task::Context<'_>,
        expected: Option<u64>,
    ) -> std::task::Poll<io::Result<usize>> {
        let want = expected.map_or(1024, |n| n.clamp(1024, MAX_READ as u64) as usize);
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            if self.buf.capacity() - self.buf.len() < want {
                self.buf.reserve(want.max(READ_BUF));
            }
            let room = self.buf.capacity() - self.buf.len();
            match self.stream.try_read_buf(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Ok(n) if n > 0 && n < room => {
                    drained(&self.stream);
                    return std::task::Poll::Ready(Ok(n));
                }
                r => return std::task::Poll::Ready(r),
            }
        }
    }

    /// Still usable for a new request: not closed by the backend, nothing unexpected
    /// waiting to be read. Costs no system call while the socket is not readable.
    fn alive(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A read returned less than it asked for: the socket's receive queue is empty, so its
/// cached readiness is cleared without the `recv` that would only say EAGAIN (HAProxy
/// does the same). Safe against a race: tokio clears readiness only if no new event
/// arrived since it was observed, and the socket is edge-triggered, so any later data
/// wakes us again. Halves the number of `recv` calls per proxied request.
pub fn drained(s: &TcpStream) {
    let _ = s.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one proxy thread (sockets are registered with one event loop).
pub struct Pool {
    idle: Vec<Mutex<Vec<Idle>>>,
    source: Option<IpAddr>,
    /// `timeouts.connect_ms`: None is the automatic, per-backend timeout.
    connect_ms: Option<u64>,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(
        backends: usize,
        source: Option<IpAddr>,
        connect_ms: Option<u64>,
        keep_alive: Duration,
    ) -> Pool {
        Pool {
            idle: (0..backends).map(|_| Mutex::new(Vec::new())).collect(),
            source,
            connect_ms,
            idle_timeout: keep_alive.min(POOL_IDLE_MAX),
        }
    }

    /// The most recently used idle connection of backend `idx` that is still open and
    /// was opened after the backend's last down transition (`epoch`): connections to a
    /// backend marked down are dropped, never reused.
    fn checkout(&self, idx: usize, epoch: u64) -> Option<Conn> {
        let mut idle = lock(&self.idle[idx]);
        if idle.last().is_some_and(|c| c.conn.epoch != epoch) {
            idle.retain(|c| c.conn.epoch == epoch);
        }
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < self.idle_timeout && c.conn.alive() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Takes back a connection whose response was read completely.
    pub fn checkin(&self, conn: Conn) {
        if !conn.buf.is_empty() {
            // Bytes beyond the response: the backend is out of step with us.
            return;
        }
        // One clock read per check-in, not one per idle connection.
        let now = Instant::now();
        let mut idle = lock(&self.idle[conn.idx]);
        idle.retain(|c| now.duration_since(c.since) < self.idle_timeout);
        if idle.len() < POOL_MAX_IDLE_PER_BACKEND {
            idle.push(Idle { conn, since: now });
        }
    }

    async fn tcp_connect(&self, addr: SocketAddr, limit: Duration) -> std::io::Result<TcpStream> {
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
        let s = tokio::time::timeout(limit, sock.connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// A new connection to backend `idx`, within its connect timeout (the configured one,
    /// else its estimate's) or `cap`, whichever is shorter. A successful connect's time
    /// feeds the estimate unless its SYN had to be retransmitted (Karn's rule). Err is the reason, for logs and stats.
    async fn connect(&self, idx: usize, b: &BackendState, cap: Duration) -> Result<Conn, String> {
        let epoch = b.epoch();
        let limit = estimate::connect_timeout(self.connect_ms, &b.estimate()).min(cap);
        let t0 = Instant::now();
        let stream = self
            .tcp_connect(b.addr, limit)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                io::ErrorKind::TimedOut => format!("connect timeout ({} ms)", limit.as_millis()),
                _ => format!("connect: {e}"),
            })?;
        if !tcp_info::retransmitted(&stream) {
            b.connect_sample(t0.elapsed());
        }
        Ok(Conn {
            stream: Arc::new(stream),
            buf: BytesMut::with_capacity(READ_BUF),
            idx,
            epoch,
        })
    }
}

/// A request ready for a backend: its head already encoded (the same bytes for every
/// backend, so a retry or redispatch writes them again as they are) and its body.
pub struct Outgoing {
    pub method: Method,
    pub head: Bytes,
    pub body: Option<ReqBody>,
    pub framing: ReqFraming,
    /// Idempotent and without a body: may be sent twice.
    pub replayable: bool,
    /// The client connection's timer, for the first-byte wait.
    pub timer: super::timer::Timer,
}

/// How an exchange with a backend failed.
enum Failed {
    /// Writing the head failed: nothing of the request was taken from the client yet.
    HeadWrite(io::Error),
    /// The backend closed (EOF) or reset the connection before a complete response head.
    Closed(String),
    /// Any other I/O failure on the backend socket.
    Io(String),
    /// The backend answered something that is not a usable HTTP response.
    Invalid(String),
    /// The client's request body failed (client went away).
    Client(String),
}

fn closed_or_io(e: io::Error, what: &str) -> Failed {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failed::Closed(format!("{what}: {e}")),
        _ => Failed::Io(format!("{what}: {e}")),
    }
}

/// Reads until a complete final response head (1xx other than 101 are skipped).
async fn read_head(conn: &mut Conn, method: &Method) -> Result<ResponseHead, Failed> {
    loop {
        match h1::parse_response_head(&mut conn.buf, method) {
            Ok(Some(h)) if h.status.is_informational() && h.status != 101 => continue,
            Ok(Some(h)) => return Ok(h),
            Ok(None) => {}
            Err(e) => return Err(Failed::Invalid(e.to_string())),
        }
        match std::future::poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) => {
                return Err(Failed::Closed(
                    "backend closed the connection before answering".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(closed_or_io(e, "reading the response")),
        }
    }
}

/// Writes all of `parts` to `s` (a shared socket: the upload and the response reader
/// use the two directions of one connection).
async fn write_all(s: &TcpStream, mut parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !parts.is_empty() {
        let n = match super::sock::send_vectored(s, parts) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.writable().await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        io::IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// The rest of a request body still being sent while the response is read (a backend
/// may answer before it has the whole body, an echo service streams it back): polled by
/// the response body until done. Ok(()) once the last byte is written.
pub type Upload = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Streams the request body, chunked or as is.
async fn send_body(s: Arc<TcpStream>, mut body: ReqBody, chunked: bool) -> Result<(), Failed> {
    let werr = |e: io::Error| closed_or_io(e, "writing the request body");
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failed::Client(e.to_string()))?;
        // Trailers are dropped: the backend was not told to expect them.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let size = h1::chunk_header(data.len());
            let mut parts = [
                io::IoSlice::new(size.as_bytes()),
                io::IoSlice::new(&data),
                io::IoSlice::new(b"\r\n"),
            ];
            write_all(&s, &mut parts).await.map_err(werr)?;
        } else {
            write_all(&s, &mut [io::IoSlice::new(&data)])
                .await
                .map_err(werr)?;
        }
    }
    if chunked {
        write_all(&s, &mut [io::IoSlice::new(b"0\r\n\r\n")])
            .await
            .map_err(werr)?;
    }
    Ok(())
}

/// One request/response exchange on `conn`, up to the response head. The head goes out
/// first; a body is streamed while the response is already being read, so a backend that
/// answers early (413, 401, an echo) is heard at once. Returns the head and, when the
/// body is not all sent yet, the rest of its upload.
async fn exchange(
    conn: &mut Conn,
    req: &mut Outgoing,
) -> Result<(ResponseHead, Option<Upload>), Failed> {
    write_all(&conn.stream, &mut [io::IoSlice::new(&req.head)])
        .await
        .map_err(Failed::HeadWrite)?;
    let Some(body) = req.body.take() else {
        return Ok((read_head(conn, &req.method).await?, None));
    };
    let chunked = req.framing == ReqFraming::Chunked;
    let mut send = Box::pin(send_body(conn.stream.clone(), body, chunked));
    let recv = read_head(conn, &req.method);
    tokio::pin!(recv);
    let mut sent = false;
    loop {
        tokio::select! {
            r = &mut send, if !sent => { r?; sent = true; }
            h = &mut recv => {
                let h = h?;
                let rest = (!sent).then(|| -> Upload {
                    Box::pin(async move {
                        send.await.map_err(|f| match f {
                            Failed::Client(why) => format!("client request body: {why}"),
                            Failed::HeadWrite(e) => e.to_string(),
                            Failed::Closed(why) | Failed::Io(why) | Failed::Invalid(why) => why,
                        })
                    })
                });
                return Ok((h, rest));
            }
        }
    }
}

fn passive_failure(sh: &Shared, b: &BackendState, reason: &str, took: Duration) {
    b.counters.failures.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = b.record(false, reason, took, true, sh.cfg.rise, sh.cfg.fall) {
        tracing::warn!(backend = %t.backend, reason = %t.reason, "backend is DOWN (passive)");
    }
}

/// A layer-4 observation of live traffic (`observe layer4`): `error_limit` errors in a
/// row mark the backend down at once, and its pooled connections are not reused.
fn observe_l4(sh: &Shared, b: &BackendState, seen: L4, reason: &str, took: Duration) {
    if let Some(t) = b.observe_l4(seen, sh.cfg.error_limit, reason, took) {
        tracing::warn!(backend = %t.backend, reason = %t.reason, "backend is DOWN (layer 4 errors on live traffic)");
    }
}

/// A success resets the consecutive-failure count of an up backend (HAProxy `observe`);
/// it never brings a down backend up (that is the health checker's job).
fn passive_success(sh: &Shared, b: &BackendState, took: Duration) {
    if b.is_up() && b.consecutive_fail() > 0 {
        b.record(true, "response", took, true, sh.cfg.rise, sh.cfg.fall);
    }
}

/// Awaits `fut` unless the exchange stalls: `server` while waiting for the backend (to
/// read our request body, or to answer once it has all of it), `client` while waiting for
/// the client's request body. Both are inactivity timeouts; Err says who stalled. Without
/// a request body (`progress` None) only the backend can stall: one plain timeout.
async fn wait<T>(
    fut: impl std::future::Future<Output = T>,
    progress: Option<&Progress>,
    server: Duration,
    client: Duration,
) -> Result<T, Waiting> {
    let Some(progress) = progress else {
        let start = tokio::time::Instant::now();
        return tokio::time::timeout(server, fut)
            .await
            .map_err(|_| Waiting::Backend(start));
    };
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

/// What a dispatched request brings back: the response head of the backend that
/// answered, and everything its body and the rest of the exchange still need.
pub struct Dispatched {
    pub head: ResponseHead,
    /// The backend connection: the response body follows in `conn.buf` and on the socket.
    pub conn: Conn,
    /// The rest of the request body's upload, when the backend answered before it had
    /// all of it.
    pub upload: Option<Upload>,
    /// The backend that answered; it counts the request as active until dropped.
    pub pick: Pick,
    /// Time from the attempt that answered to its response head.
    pub took: Duration,
}

/// The retry state of one request across its attempts.
#[derive(Default)]
struct Attempts {
    /// Backends that could not be reached or failed (not picked again).
    tried: Vec<usize>,
    /// The next attempt must open a new connection (a pooled one just failed).
    fresh_only: bool,
    /// The one replay of a replayable request has been used.
    replayed: bool,
}

/// What the next attempt of a request does after one failed.
enum Next {
    /// The same backend, on a new connection.
    Fresh,
    /// Another backend of the pool.
    Redispatch(Pick),
}

/// A connection to `pick`'s backend: the most recent pooled one unless `fresh_only`, else
/// a new one within `cap`. `bool`: reused from the pool. Err is the reason a new one failed.
async fn open(
    sh: &Shared,
    pick: &Pick,
    fresh_only: bool,
    cap: Duration,
) -> Result<(Conn, bool), String> {
    if !fresh_only {
        if let Some(c) = sh.pool.checkout(pick.idx, pick.backend.epoch()) {
            return Ok((c, true));
        }
    }
    let c = sh.pool.connect(pick.idx, &pick.backend, cap).await?;
    Ok((c, false))
}

/// Why an exchange ended without an answer or a failure of its own.
enum Stall {
    /// The client's request body or the backend stopped moving (see [`wait`]).
    Waiting(Waiting),
    /// The backend never acknowledged a replayable request: go on with this backend.
    Silent(Pick),
}

/// The exchange of a request without a body: the answer within the first-byte wait, or,
/// if the backend has not even acknowledged the request, it is replayable and a new
/// connect to the backend fails too (a live host answers a SYN at once, while its ACK of
/// a request may be delayed), `Silent` with the next backend (`next`, which also counts
/// the silence); otherwise the answer within what is left of the request's deadline.
async fn exchange_quiet(
    sh: &Shared,
    pick: &Pick,
    conn: &mut Conn,
    req: &mut Outgoing,
    first_byte: Duration,
    deadline: &Deadline,
    next: impl FnOnce() -> Option<Pick>,
) -> Result<Result<(ResponseHead, Option<Upload>), Failed>, Stall> {
    let start = tokio::time::Instant::now();
    let timed_out = || Stall::Waiting(Waiting::Backend(start));
    let stream = conn.stream.clone();
    let replayable = req.replayable;
    // Back to the client connection when this returns (see `timer`).
    let mut timer = std::mem::take(&mut req.timer);
    let fut = exchange(conn, req);
    tokio::pin!(fut);
    let wait = deadline
        .cap(first_byte, Instant::now())
        .ok_or_else(timed_out)?;
    if let Ok(r) = timer.timeout(wait, &mut fut).await {
        return Ok(r);
    }
    if retry::worth_probing(replayable, tcp_info::acknowledged(&*stream)) {
        let probe = answers_connect(sh, pick, deadline);
        tokio::pin!(probe);
        let answered = tokio::select! {
            r = &mut fut => return Ok(r),
            a = &mut probe => a,
        };
        if retry::when_quiet(replayable, false, answered) == Quiet::Retry {
            if let Some(p) = next() {
                return Err(Stall::Silent(p));
            }
        }
    }
    let rest = deadline.left(Instant::now());
    tokio::time::timeout(rest, fut)
        .await
        .map_err(|_| timed_out())
}

/// Whether `pick`'s backend still completes a TCP connect within its connect timeout
/// (the connection then joins the pool: it is a good one).
async fn answers_connect(sh: &Shared, pick: &Pick, deadline: &Deadline) -> bool {
    let Some(cap) = deadline.cap(Duration::MAX, Instant::now()) else {
        return true;
    };
    match sh.pool.connect(pick.idx, &pick.backend, cap).await {
        Ok(c) => {
            sh.pool.checkin(c);
            true
        }
        Err(_) => false,
    }
}

/// Sends `req` to `pick` (or, when it cannot be reached, to the next up backends of
/// `pool`), with the retry and redispatch rules of this module's header, all within one
/// deadline of `server_ms`.
pub async fn dispatch(
    sh: &Shared,
    mut pick: Pick,
    pool: &str,
    mut req: Outgoing,
) -> Result<Dispatched, ProxyError> {
    let mut at = Attempts::default();
    let server_timeout = Duration::from_millis(sh.cfg.timeouts.server_ms.max(1));
    let deadline = Deadline::new(Instant::now(), server_timeout);
    loop {
        let b = pick.backend.clone();
        let started = Instant::now();
        let Some(cap) = deadline.cap(server_timeout, started) else {
            let reason = format!(
                "no answer within the request's {} ms",
                server_timeout.as_millis()
            );
            return Err(ProxyError::GatewayTimeout(format!("{}: {reason}", b.name)));
        };
        let fresh_only = std::mem::take(&mut at.fresh_only);
        let (mut conn, reused) = match open(sh, &pick, fresh_only, cap).await {
            Ok(c) => c,
            Err(reason) => {
                tracing::info!(backend = %b.name, %reason, "cannot connect to backend, redispatching");
                passive_failure(sh, &b, &reason, started.elapsed());
                observe_l4(sh, &b, L4::ConnectFailed, &reason, started.elapsed());
                pick = redispatch(sh, pool, &mut at.tried, &pick, || {
                    format!("no backend reachable (last: {}: {reason})", b.name)
                })?;
                continue;
            }
        };
        if !reused {
            observe_l4(sh, &b, L4::Ok, "connected", started.elapsed());
        }
        b.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (tried, idx) = (&at.tried, pick.idx);
        let next = || silent(sh, &b, pool, tried, idx, started.elapsed());
        let sent = attempt(sh, &pick, &mut conn, &mut req, &deadline, next).await;
        let failed = match sent {
            Ok(Ok((head, upload))) => {
                let took = started.elapsed();
                passive_success(sh, &b, took);
                return Ok(Dispatched {
                    head,
                    conn,
                    upload,
                    pick,
                    took,
                });
            }
            Ok(Err(f)) => f,
            Err(Stall::Waiting(w)) => return Err(stalled(sh, &b, w, server_timeout, started)),
            Err(Stall::Silent(next)) => {
                at.tried.push(pick.idx);
                pick = next;
                continue;
            }
        };
        let attempt = Attempt {
            pick: &pick,
            pool,
            reused,
            replayable: req.replayable,
            started,
        };
        match recover(sh, &mut at, attempt, failed)? {
            Next::Fresh => {}
            Next::Redispatch(next) => pick = next,
        }
    }
}

/// One attempt's exchange with `pick` on `conn`, up to the response head: a request
/// without a body under the silence rule ([`exchange_quiet`], `next` giving the backend
/// to go on with),
/// one with a body under the inactivity rule ([`wait`]).
async fn attempt(
    sh: &Shared,
    pick: &Pick,
    conn: &mut Conn,
    req: &mut Outgoing,
    deadline: &Deadline,
    next: impl FnOnce() -> Option<Pick>,
) -> Result<Result<(ResponseHead, Option<Upload>), Failed>, Stall> {
    let b = &pick.backend;
    let t = &sh.cfg.timeouts;
    let Some(body) = req.body.as_mut() else {
        let first_byte = estimate::first_byte_wait(t.first_byte_ms, &b.estimate());
        return exchange_quiet(sh, pick, conn, req, first_byte, deadline, next).await;
    };
    body.set_backend(b.clone());
    let progress = body.progress();
    let server = Duration::from_millis(t.server_ms.max(1));
    // A stalled request body is the client's fault: `timeout client`, not http-request.
    let client = Duration::from_millis(t.client_ms.max(1));
    wait(exchange(conn, req), Some(&*progress), server, client)
        .await
        .map_err(Stall::Waiting)
}

/// Backend `idx` never acknowledged a request: counted against it (a passive failure
/// and a layer-4 error, which may mark it down), and the next up backend of `pool` not
/// tried yet, if any (counted as a redispatch).
fn silent(
    sh: &Shared,
    b: &BackendState,
    pool: &str,
    tried: &[usize],
    idx: usize,
    took: Duration,
) -> Option<Pick> {
    let reason = "request not acknowledged (backend silent)";
    tracing::info!(backend = %b.name, reason, "backend silent, retrying elsewhere");
    passive_failure(sh, b, reason, took);
    observe_l4(sh, b, L4::Silent, reason, took);
    let mut exclude = tried.to_vec();
    exclude.push(idx);
    let next = sh.balancer.pick(pool, &exclude)?;
    b.counters.redispatches.fetch_add(1, Ordering::Relaxed);
    Some(next)
}

/// The error of an exchange that stalled: the client's fault (408, its request body
/// stopped coming) or the backend's (504, recorded as a passive failure).
fn stalled(
    sh: &Shared,
    b: &BackendState,
    w: Waiting,
    server_timeout: Duration,
    started: Instant,
) -> ProxyError {
    match w {
        Waiting::Client(_) => ProxyError::ClientTimeout,
        Waiting::Backend(_) => {
            let reason = format!("no response within {} ms", server_timeout.as_millis());
            tracing::info!(backend = %b.name, %reason, "backend timeout");
            passive_failure(sh, b, "timeout", started.elapsed());
            ProxyError::GatewayTimeout(format!("{}: {reason}", b.name))
        }
    }
}

/// The attempt that just failed.
struct Attempt<'a> {
    pick: &'a Pick,
    pool: &'a str,
    /// Its connection came from the pool.
    reused: bool,
    /// The request may be sent again (idempotent, no body).
    replayable: bool,
    started: Instant,
}

/// Decides what follows a failed attempt: a new connection to the same backend, another
/// backend, or the error the client gets.
fn recover(
    sh: &Shared,
    at: &mut Attempts,
    a: Attempt<'_>,
    failed: Failed,
) -> Result<Next, ProxyError> {
    let b = &a.pick.backend;
    let reason = match failed {
        Failed::Client(why) => return Err(ProxyError::ClientAborted(why)),
        Failed::HeadWrite(e) => {
            b.counters.retries.fetch_add(1, Ordering::Relaxed);
            if a.reused {
                // Nothing of the request reached the backend: a new connection.
                tracing::debug!(backend = %b.name, error = %e, "pooled connection dead, retrying on a new one");
                at.fresh_only = true;
                return Ok(Next::Fresh);
            }
            // A brand new connection that is already dead: a connect failure.
            let reason = format!("connection closed right after connect: {e}");
            passive_failure(sh, b, &reason, a.started.elapsed());
            let next = redispatch(sh, a.pool, &mut at.tried, a.pick, || {
                format!("{}: {reason}", b.name)
            })?;
            return Ok(Next::Redispatch(next));
        }
        Failed::Closed(reason) => {
            if a.reused && a.replayable && !at.replayed {
                tracing::debug!(backend = %b.name, %reason, "reused connection closed by backend before answering, retrying once");
                b.counters.retries.fetch_add(1, Ordering::Relaxed);
                at.replayed = true;
                at.fresh_only = true;
                return Ok(Next::Fresh);
            }
            passive_failure(sh, b, &reason, a.started.elapsed());
            // The backend closed or reset the connection without a complete answer
            // head: a request that can be replayed goes to another up backend, like
            // HAProxy's `retry-on empty-response conn-failure` with `option
            // redispatch`. Nothing reached the client yet.
            if a.replayable {
                at.tried.push(a.pick.idx);
                if let Some(next) = sh.balancer.pick(a.pool, &at.tried) {
                    tracing::info!(backend = %b.name, %reason, next = %next.backend.name, "empty response, redispatching");
                    b.counters.redispatches.fetch_add(1, Ordering::Relaxed);
                    return Ok(Next::Redispatch(next));
                }
            }
            reason
        }
        Failed::Io(reason) | Failed::Invalid(reason) => {
            passive_failure(sh, b, &reason, a.started.elapsed());
            reason
        }
    };
    tracing::info!(backend = %b.name, %reason, reused = a.reused, "bad gateway");
    Err(ProxyError::BadGateway(format!("{}: {reason}", b.name)))
}
