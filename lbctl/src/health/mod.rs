//! Active health checks (HAProxy's `check inter fastinter downinter rise fall`): one task
//! per backend probes it every `inter_ms` (`fastinter_ms` while it changes state or right
//! after live traffic marked it down, `downinter_ms` while down) with a TCP connect or an
//! HTTP request, measures the connect time for the proxy's automatic timeouts, and feeds
//! each result to the shared [`BackendState::record`], which owns the rise/fall
//! hysteresis. Up/down
//! transitions are logged here with the backend, its address and the reason.
//!
//! The HTTP check sends one `Connection: close` request and reads only the response head,
//! parsed by the proxy's own response-head parser (httparse, see
//! [`crate::proxy::h1::response_status`]): the status line must be `HTTP/1.x NNN`, header
//! lines must be headers, 1xx interim heads are skipped, and anything else is an "invalid
//! HTTP response" as soon as it is seen (garbage does not have to wait for the timeout).
#![forbid(unsafe_code)]

use crate::balance::backend::BackendState;
use crate::config::{parse_status_range, Check, CheckKind};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

#[cfg(test)]
mod tests;

/// Largest response head read before the response is called invalid.
const MAX_HEAD: usize = 16 * 1024;

/// Starts one check task per backend; each runs every `check.inter_ms` (`fastinter_ms`
/// while the backend changes state, `downinter_ms` while it is down, see [`interval`];
/// first check at once, then jittered a little to avoid synchronised bursts), with `check.timeout_ms` per
/// check, connecting FROM `source` when given (bind the local address before connect:
/// tokio::net::TcpSocket), and records each result with BackendState::record(ok, reason,
/// duration, false, check.rise, check.fall). Every up/down transition is logged with
/// tracing (warn for down, info for up) with backend name, address and the reason
/// ("connection refused", "timeout after 2000 ms", "status 500", "connection reset",
/// "invalid HTTP response").
///
/// Must be called inside a tokio runtime. The tasks run until aborted (drop of the
/// runtime, or `JoinHandle::abort`).
pub fn spawn(
    backends: &[Arc<BackendState>],
    check: &Check,
    source: Option<IpAddr>,
) -> Vec<JoinHandle<()>> {
    backends
        .iter()
        .map(|b| {
            let b = Arc::clone(b);
            let check = check.clone();
            tokio::spawn(async move { run(b, check, source).await })
        })
        .collect()
}

/// The check loop of one backend.
async fn run(b: Arc<BackendState>, check: Check, source: Option<IpAddr>) {
    let mut jitter = Jitter::new(&b);
    loop {
        let started = tokio::time::Instant::now();
        let (res, connected) = probe(b.addr, &check, source).await;
        let took = started.elapsed();
        if let Some(c) = connected {
            b.connect_sample(c);
        }
        let (ok, reason) = match res {
            Ok(r) => (true, r),
            Err(r) => (false, r),
        };
        debug!(backend = %b.name, addr = %b.addr, ok, reason = %reason, ms = took.as_millis() as u64, "health check");
        if let Some(t) = b.record(ok, &reason, took, false, check.rise, check.fall) {
            if t.up {
                info!(backend = %b.name, addr = %b.addr, reason = %t.reason, "backend up");
            } else {
                warn!(backend = %b.name, addr = %b.addr, reason = %t.reason, "backend down");
            }
        }
        let st = b.check_state();
        let inter = interval(&check, b.is_up(), st.consecutive_ok, st.consecutive_fail);
        // The next check starts one (jittered) interval after this one started, so a slow
        // check does not stretch the cadence; a check longer than the interval is followed
        // at once by the next. Live traffic marking the backend down cuts the wait short.
        tokio::select! {
            _ = tokio::time::sleep_until(started + jitter.apply(inter)) => {}
            _ = b.recheck.notified() => {}
        }
    }
}

/// The interval before the next check (HAProxy's `inter`, `fastinter`, `downinter`):
/// `fastinter_ms` while the backend is changing state (an up backend with failures not
/// yet `fall`, a down one with successes not yet `rise`), `downinter_ms` while down,
/// `inter_ms` while up and well. Never below 10 ms.
pub fn interval(check: &Check, up: bool, ok_run: u32, fail_run: u32) -> Duration {
    let ms = match (up, ok_run, fail_run) {
        (true, _, 0) => check.inter_ms,
        (true, _, _) => check.fastinter_ms,
        (false, 0, _) => check.downinter_ms,
        (false, _, _) => check.fastinter_ms,
    };
    Duration::from_millis(ms.max(10))
}

/// ±5 % of the interval from a small xorshift generator seeded per backend and per start,
/// so checkers started together drift apart (HAProxy's spread-checks).
struct Jitter(u64);

impl Jitter {
    fn new(b: &BackendState) -> Jitter {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        b.name.hash(&mut h);
        b.addr.hash(&mut h);
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .hash(&mut h);
        Jitter(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn apply(&mut self, inter: Duration) -> Duration {
        let ms = inter.as_millis() as u64;
        let span = ms / 10; // the window is [-5 %, +5 %]
        if span == 0 {
            return inter;
        }
        Duration::from_millis(ms - span / 2 + self.next() % (span + 1))
    }
}

/// One check, for tests and `lbctl` tooling: Ok(reason) on success, Err(reason) on failure.
pub async fn check_once(
    addr: SocketAddr,
    check: &Check,
    source: Option<IpAddr>,
) -> Result<String, String> {
    probe(addr, check, source).await.0
}

/// One check and, when the TCP connect succeeded without retransmission, how long it
/// took (a sample of the backend's connect time for the proxy's automatic timeouts).
async fn probe(
    addr: SocketAddr,
    check: &Check,
    source: Option<IpAddr>,
) -> (Result<String, String>, Option<Duration>) {
    let timeout_ms = check.timeout_ms.max(1);
    let request = match check.kind {
        CheckKind::Tcp => None,
        CheckKind::Http => match build_request(addr, check) {
            Ok(r) => Some(r),
            Err(e) => return (Err(e), None),
        },
    };
    let range = match check.kind {
        CheckKind::Tcp => (0, 0),
        CheckKind::Http => match parse_status_range(&check.expect_status) {
            Some(r) => r,
            None => {
                return (
                    Err(format!("invalid expect_status {:?}", check.expect_status)),
                    None,
                )
            }
        },
    };
    let mut connected = None;
    let work = async {
        let t0 = tokio::time::Instant::now();
        let mut stream = connect(addr, source).await.map_err(|e| io_reason(&e))?;
        // Karn's rule: a connect whose SYN was retransmitted measures the loss, not the
        // backend's connect time.
        if !crate::proxy::tcp_info::retransmitted(&stream) {
            connected = Some(t0.elapsed());
        }
        let Some(req) = request else {
            return Ok("connected".to_string());
        };
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| io_reason(&e))?;
        let code = read_status(&mut stream).await?;
        if (range.0..=range.1).contains(&code) {
            Ok(format!("status {code}"))
        } else {
            Err(format!("status {code}"))
        }
    };
    let res = match tokio::time::timeout(Duration::from_millis(timeout_ms), work).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {timeout_ms} ms")),
    };
    (res, connected)
}

/// Connects to `addr`, from `source` (any port) when given.
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source {
        if src.is_ipv4() != addr.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source address {src} is not of the same family as {addr}"),
            ));
        }
        sock.bind(SocketAddr::new(src, 0))?;
    }
    let stream = sock.connect(addr).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The request line and headers, refusing what would not be a valid request.
fn build_request(addr: SocketAddr, check: &Check) -> Result<String, String> {
    let m = &check.method;
    if m.is_empty() || !m.bytes().all(|c| c.is_ascii_alphabetic() || c == b'-') {
        return Err(format!("invalid check method {m:?}"));
    }
    let p = &check.path;
    if !p.starts_with('/') || p.bytes().any(|c| c <= b' ' || c == 0x7f) {
        return Err(format!("invalid check path {p:?}"));
    }
    Ok(format!(
        "{m} {p} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: lbctl-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ))
}

const INVALID: &str = "invalid HTTP response";

/// Reads response heads until a final (non-1xx) one and returns its status code.
async fn read_status(stream: &mut TcpStream) -> Result<u16, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        match parse_head(&buf) {
            Head::Final(code) => return Ok(code),
            Head::Interim(len) => {
                buf.drain(..len);
                continue;
            }
            Head::Invalid => return Err(INVALID.into()),
            Head::Partial => {}
        }
        let n = stream.read(&mut chunk).await.map_err(|e| io_reason(&e))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without response".into()
            } else {
                INVALID.into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Not enough bytes yet; nothing seen so far is wrong.
    Partial,
    /// A complete 1xx head of this many bytes, to skip.
    Interim(usize),
    /// A complete final head with this status.
    Final(u16),
    Invalid,
}

/// Classifies the response head at the start of `buf` with the proxy's response-head
/// parser (httparse), which refuses early: a prefix that cannot start `HTTP/1.x NNN` is
/// invalid without waiting for more bytes. A status outside 100..=599 is invalid too.
fn parse_head(buf: &[u8]) -> Head {
    match crate::proxy::h1::response_status(buf, MAX_HEAD) {
        Ok(None) => Head::Partial,
        Ok(Some((code, _))) if !(100..=599).contains(&code) => Head::Invalid,
        Ok(Some((code, len))) if (100..200).contains(&code) && code != 101 => Head::Interim(len),
        Ok(Some((code, _))) => Head::Final(code),
        Err(_) => Head::Invalid,
    }
}

/// A short, stable reason for a socket error.
fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset | ConnectionAborted | BrokenPipe => "connection reset".into(),
        TimedOut => "connect timed out".into(),
        _ => match e.raw_os_error() {
            // "No route to host (os error 113)" -> "no route to host"
            Some(code) => {
                let s = nix::errno::Errno::from_raw(code).desc().to_string();
                let mut c = s.chars();
                match c.next() {
                    Some(f) => f.to_lowercase().chain(c).collect(),
                    None => s,
                }
            }
            None => e.to_string(),
        },
    }
}
