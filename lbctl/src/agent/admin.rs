//! The agent's admin listener (its own port): Prometheus `/metrics` with names after
//! HAProxy's exporter (`lbctl_server_*` for what HAProxy calls `haproxy_server_*`), and a
//! JSON `/stats` that `lbctl status` reads.

use crate::balance::backend::BackendState;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// One backend as `/stats` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct BackendStats {
    pub name: String,
    pub address: String,
    pub pool: String,
    pub weight: u32,
    pub up: bool,
    pub active: u64,
    pub requests: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    pub failures: u64,
    pub retries: u64,
    pub redispatches: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub avg_response_ms: f64,
    pub check_ok: Option<bool>,
    pub check_reason: Option<String>,
    pub check_duration_ms: Option<u64>,
    pub check_passive: Option<bool>,
    pub last_change: f64,
    pub transitions: u64,
    /// Why the last up/down transition happened.
    #[serde(default)]
    pub change_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Stats {
    pub node: String,
    /// Where these figures were read: "agent" (its admin port) or "bpf" (its pinned maps).
    #[serde(default)]
    pub source: Option<String>,
    /// Client-side counters of the proxy (requests, responses, errors by kind).
    #[serde(default)]
    pub frontend: Option<crate::proxy::FrontendSnapshot>,
    /// The VRRP instance, when this agent runs one.
    #[serde(default)]
    pub vrrp: Option<crate::vrrp::VrrpSnapshot>,
    pub backends: Vec<BackendStats>,
}

pub fn snapshot(
    node: &str,
    backends: &[Arc<BackendState>],
    vrrp: Option<&crate::vrrp::VrrpHandle>,
) -> Stats {
    let backends = backends
        .iter()
        .map(|b| {
            let c = &b.counters;
            let ck = b.check_state();
            let total: u64 = c.responses.iter().map(|r| r.load(Ordering::Relaxed)).sum();
            let rt = c.response_time_us_total.load(Ordering::Relaxed);
            BackendStats {
                name: b.name.clone(),
                address: b.addr.to_string(),
                pool: b.pool.clone(),
                weight: b.weight,
                up: b.is_up(),
                active: b.active.load(Ordering::Relaxed),
                requests: c.requests.load(Ordering::Relaxed),
                responses: std::array::from_fn(|i| c.responses[i].load(Ordering::Relaxed)),
                failures: c.failures.load(Ordering::Relaxed),
                retries: c.retries.load(Ordering::Relaxed),
                redispatches: c.redispatches.load(Ordering::Relaxed),
                bytes_in: c.bytes_in.load(Ordering::Relaxed),
                bytes_out: c.bytes_out.load(Ordering::Relaxed),
                avg_response_ms: if total > 0 {
                    rt as f64 / total as f64 / 1000.0
                } else {
                    0.0
                },
                check_ok: ck.last.as_ref().map(|l| l.ok),
                check_reason: ck.last.as_ref().map(|l| l.reason.clone()),
                check_duration_ms: ck.last.as_ref().map(|l| l.duration_ms),
                check_passive: ck.last.as_ref().map(|l| l.passive),
                last_change: ck.last_change,
                transitions: ck.transitions,
                change_reason: ck.change_reason.clone(),
            }
        })
        .collect();
    Stats {
        node: node.to_string(),
        source: Some("agent".into()),
        frontend: Some(crate::proxy::frontend_stats().snapshot()),
        vrrp: vrrp.map(|h| h.snapshot()),
        backends,
    }
}

/// Label value escaping for the Prometheus text format.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition (version 0.0.4): the server families, the VRRP and
/// frontend ones when present, and the servers' last change last (the order scrapers and
/// tests have always seen).
pub fn metrics(s: &Stats) -> String {
    let mut o = Exposition::default();
    o.per_server(&s.backends, &SERVER_GAUGES);
    o.family(
        "lbctl_server_http_responses_total",
        "counter",
        "HTTP responses from the server by code class.",
        s.backends.iter().flat_map(|b| {
            let l = server_labels(b);
            b.responses
                .iter()
                .enumerate()
                .map(move |(i, n)| (format!("{l},code=\"{}xx\"", i + 1), n.to_string()))
        }),
    );
    o.per_server(&s.backends, &SERVER_COUNTERS);
    if let Some(v) = &s.vrrp {
        vrrp_families(&mut o, v);
    }
    if let Some(f) = &s.frontend {
        frontend_families(&mut o, f);
    }
    o.per_server(&s.backends, &[SERVER_LAST_CHANGE]);
    o.0
}

/// Metric families written one after the other in the text format.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// `# HELP`, `# TYPE`, then one `name{labels} value` line per row.
    fn family(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        rows: impl IntoIterator<Item = (String, String)>,
    ) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }

    /// One family per entry of `table`, one row per backend.
    fn per_server(&mut self, backends: &[BackendStats], table: &[PerServer]) {
        for (name, kind, help, value) in table {
            let rows = backends.iter().map(|b| (server_labels(b), value(b)));
            self.family(name, kind, help, rows);
        }
    }
}

/// A family with one row per backend: name, type, help, and the backend's value.
type PerServer = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BackendStats) -> String,
);

fn server_labels(b: &BackendStats) -> String {
    format!("proxy=\"service\",server=\"{}\"", esc(&b.name))
}

/// The per-backend families written before the responses by class.
const SERVER_GAUGES: [PerServer; 4] = [
    (
        "lbctl_server_status",
        "gauge",
        "Current status of the server (1 = UP, 0 = DOWN).",
        |b| (b.up as u8).to_string(),
    ),
    (
        "lbctl_server_weight",
        "gauge",
        "Effective weight of the server.",
        |b| b.weight.to_string(),
    ),
    (
        "lbctl_server_current_sessions",
        "gauge",
        "Requests in flight to the server.",
        |b| b.active.to_string(),
    ),
    (
        "lbctl_server_sessions_total",
        "counter",
        "Requests sent to the server.",
        |b| b.requests.to_string(),
    ),
];

/// The per-backend families written after the responses by class.
const SERVER_COUNTERS: [PerServer; 9] = [
    (
        "lbctl_server_bytes_in_total",
        "counter",
        "Request bytes sent to the server.",
        |b| b.bytes_in.to_string(),
    ),
    (
        "lbctl_server_bytes_out_total",
        "counter",
        "Response bytes received from the server.",
        |b| b.bytes_out.to_string(),
    ),
    (
        "lbctl_server_connection_errors_total",
        "counter",
        "Failed connections, resets and timeouts on live traffic.",
        |b| b.failures.to_string(),
    ),
    (
        "lbctl_server_retry_warnings_total",
        "counter",
        "Requests retried on a fresh connection.",
        |b| b.retries.to_string(),
    ),
    (
        "lbctl_server_redispatch_warnings_total",
        "counter",
        "Requests redispatched to another server after this one failed.",
        |b| b.redispatches.to_string(),
    ),
    (
        "lbctl_server_response_time_average_seconds",
        "gauge",
        "Average time to the response head.",
        |b| format!("{:.6}", b.avg_response_ms / 1000.0),
    ),
    (
        "lbctl_server_check_status",
        "gauge",
        "Result of the last health check (1 passed, 0 failed, -1 none yet).",
        |b| {
            match b.check_ok {
                Some(true) => "1",
                Some(false) => "0",
                None => "-1",
            }
            .to_string()
        },
    ),
    (
        "lbctl_server_check_duration_seconds",
        "gauge",
        "Duration of the last health check.",
        |b| format!("{:.6}", b.check_duration_ms.unwrap_or(0) as f64 / 1000.0),
    ),
    (
        "lbctl_server_check_up_down_total",
        "counter",
        "UP/DOWN transitions of the server.",
        |b| b.transitions.to_string(),
    ),
];

/// Written last of all.
const SERVER_LAST_CHANGE: PerServer = (
    "lbctl_server_last_change_seconds",
    "gauge",
    "Time of the last UP/DOWN transition (Unix seconds).",
    |b| format!("{:.3}", b.last_change),
);

fn vrrp_families(o: &mut Exposition, v: &crate::vrrp::VrrpSnapshot) {
    let vl = format!("instance=\"{}\",vrid=\"{}\"", esc(&v.instance), v.vrid);
    let one = |n: u64| [(vl.clone(), n.to_string())];
    o.family(
        "lbctl_vrrp_state",
        "gauge",
        "VRRP state of the instance (1 for the current one).",
        ["INIT", "BACKUP", "MASTER", "FAULT"].iter().map(|st| {
            let current = (v.state == *st) as u8;
            (format!("{vl},state=\"{st}\""), current.to_string())
        }),
    );
    let scalars = [
        (
            "lbctl_vrrp_transitions_total",
            "counter",
            "VRRP state transitions.",
            v.transitions,
        ),
        (
            "lbctl_vrrp_priority",
            "gauge",
            "Effective VRRP priority (after the health penalty).",
            u64::from(v.effective_priority),
        ),
        (
            "lbctl_vrrp_adverts_sent_total",
            "counter",
            "VRRP advertisements sent.",
            v.adverts_sent,
        ),
        (
            "lbctl_vrrp_adverts_received_total",
            "counter",
            "VRRP advertisements accepted.",
            v.adverts_received,
        ),
    ];
    for (name, kind, help, n) in scalars {
        o.family(name, kind, help, one(n));
    }
    o.family(
        "lbctl_vrrp_dropped_total",
        "counter",
        "VRRP packets dropped, by reason.",
        v.drops
            .iter()
            .map(|(r, n)| (format!("{vl},reason=\"{}\"", esc(r)), n.to_string())),
    );
}

fn frontend_families(o: &mut Exposition, f: &crate::proxy::FrontendSnapshot) {
    let fl = "proxy=\"service\"";
    let one = |n: u64| [(fl.to_string(), n.to_string())];
    o.family(
        "lbctl_frontend_http_requests_total",
        "counter",
        "HTTP requests received.",
        one(f.requests),
    );
    o.family(
        "lbctl_frontend_http_responses_total",
        "counter",
        "HTTP responses sent to clients by code class.",
        f.responses
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("{fl},code=\"{}xx\"", i + 1), n.to_string())),
    );
    o.family(
        "lbctl_frontend_current_sessions",
        "gauge",
        "Open client connections.",
        one(f.conns_current),
    );
    o.family(
        "lbctl_frontend_sessions_total",
        "counter",
        "Client connections accepted.",
        one(f.conns_total),
    );
    let errs = [
        ("bad_request", f.bad_request),
        ("header_timeout", f.header_timeout),
        ("too_large", f.too_large),
        ("no_backend", f.no_backend),
        ("bad_gateway", f.bad_gateway),
        ("gateway_timeout", f.gateway_timeout),
        ("aborted_mid_body", f.aborted_mid_body),
        ("client_timeout", f.client_timeout),
        ("tunnel_timeout", f.tunnel_timeout),
        ("panic", f.panics),
    ];
    o.family(
        "lbctl_frontend_errors_total",
        "counter",
        "Requests answered with an error or aborted, by kind.",
        errs.iter()
            .map(|(k, v)| (format!("{fl},kind=\"{k}\""), v.to_string())),
    );
}

fn respond(
    node: &str,
    backends: &[Arc<BackendState>],
    vrrp: Option<&crate::vrrp::VrrpHandle>,
    dash: Option<&super::dashboard::Dashboard>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.uri().path(), dash) {
        ("/" | "/dashboard", Some(_)) => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            super::dashboard::PAGE.to_string(),
        ),
        ("/dashboard.json", Some(d)) => (
            StatusCode::OK,
            "application/json",
            d.json(snapshot(node, backends, vrrp)),
        ),
        ("/api/timeseries", Some(d)) => (StatusCode::OK, "application/json", d.timeseries_json()),
        ("/graph.svg", Some(d)) => match d.svg() {
            Some(svg) => (StatusCode::OK, "image/svg+xml", svg),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "the picture is being drawn\n".to_string(),
            ),
        },
        ("/favicon.ico", _) => (StatusCode::NO_CONTENT, "image/x-icon", String::new()),
        (path, _) => match path {
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                metrics(&snapshot(node, backends, vrrp)),
            ),
            "/stats" => (
                StatusCode::OK,
                "application/json",
                serde_json::to_string_pretty(&snapshot(node, backends, vrrp)).unwrap_or_default(),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                "lbctl agent admin: / (dashboard), /dashboard.json, /api/timeseries, /graph.svg, /metrics, /stats\n"
                    .to_string(),
            ),
        },
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

/// Most admin connections served at once; more wait in the listen queue. Far below the
/// proxy's `limits.max_conns` and our file limit, so scrapers or a flood of idle
/// connections on this port can never take the descriptors the proxy needs.
pub const MAX_CONNS: usize = 64;
/// A request head must arrive within this of the connection's start or of the previous
/// response (hyper's header-read timeout: it also ends idle kept-alive connections).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is asked to close (after its current request) at this age, so a
/// client reading at a trickle holds one of the `MAX_CONNS` slots for a bounded time.
pub const CONN_LIFETIME: Duration = Duration::from_secs(60);

/// Binds the admin listener and serves it in the background (at most [`MAX_CONNS`]
/// connections, each with [`HEADER_TIMEOUT`] and [`CONN_LIFETIME`]).
pub async fn serve(
    addr: SocketAddr,
    node: String,
    backends: Vec<Arc<BackendState>>,
    vrrp: Option<crate::vrrp::VrrpHandle>,
    dash: Option<Arc<super::dashboard::Dashboard>>,
) -> Result<JoinHandle<()>> {
    let listener = listen(addr).with_context(|| format!("binding admin listener {addr}"))?;
    let node = Arc::new(node);
    let backends = Arc::new(backends);
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    let mut accept_errors = crate::log_limit::LogLimit::new(Duration::from_secs(5));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if let Some(suppressed) = accept_errors.hit_now() {
                        warn!(error = %e, suppressed, "admin accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let node = node.clone();
            let backends = backends.clone();
            let vrrp = vrrp.clone();
            let dash = dash.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req: Request<Incoming>| {
                    let r = respond(&node, &backends, vrrp.as_ref(), dash.as_deref(), &req);
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                connection(stream, svc).await;
            });
        }
    }))
}

/// The admin listener, with room in its accept queue for [`BACKLOG`] connections beyond
/// the ones being served.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(BACKLOG)
}

/// Connections that wait in the kernel's accept queue while [`MAX_CONNS`] are served
/// (tokio's default, 128, would drop the SYNs of a burst of scrapers).
const BACKLOG: u32 = 1024;

/// Serves one admin connection within [`HEADER_TIMEOUT`] and [`CONN_LIFETIME`].
async fn connection<S>(stream: tokio::net::TcpStream, svc: S)
where
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc));
    let r = match tokio::time::timeout(CONN_LIFETIME, conn.as_mut()).await {
        Ok(r) => r,
        Err(_) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(HEADER_TIMEOUT, conn).await {
                Ok(r) => r,
                Err(_) => return debug!("admin connection: closed at its lifetime's end"),
            }
        }
    };
    if let Err(e) = r {
        debug!("admin connection: {e}");
    }
}

/// How long a peer's admin port has to answer.
const PEER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// A blocking `GET path` of an admin port (on a thread inside its namespace).
fn get(addr: SocketAddr, path: &str) -> Option<crate::http_get::Response> {
    crate::http_get::get(addr, &addr.to_string(), path, PEER_DEADLINE).ok()
}

/// Whether `GET path` answers 200.
pub fn http_get_ok(addr: SocketAddr, path: &str) -> bool {
    get(addr, path).is_some_and(|r| r.status == StatusCode::OK)
}

/// Reads a running agent's `/stats` (blocking; call on a thread in its namespace).
pub fn fetch_stats(addr: SocketAddr) -> Option<Stats> {
    serde_json::from_slice(&get(addr, "/stats")?.body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot with two backends (one with a name to escape), VRRP and frontend.
    fn full_stats() -> Stats {
        let b = |name: &str, up: bool, check: serde_json::Value| {
            serde_json::json!({
                "name": name, "address": "10.0.0.1:80", "pool": "default", "weight": 2,
                "up": up, "active": 3, "requests": 40, "responses": [0, 30, 1, 5, 4],
                "failures": 6, "retries": 7, "redispatches": 8, "bytes_in": 1000,
                "bytes_out": 20000, "avg_response_ms": 1.25,
                "check_ok": check,
                "check_reason": "status 200", "check_duration_ms": 12,
                "check_passive": false, "last_change": 1700000000.5, "transitions": 2,
            })
        };
        serde_json::from_value(serde_json::json!({
            "node": "bal1",
            "source": "agent",
            "frontend": {
                "requests": 100, "responses": [0, 90, 2, 3, 5], "conns_current": 4,
                "conns_total": 50, "bad_request": 1, "header_timeout": 2, "too_large": 3,
                "no_backend": 4, "bad_gateway": 5, "gateway_timeout": 6, "aborted_mid_body": 7,
            },
            "vrrp": {
                "instance": "VI_\"1", "state": "MASTER", "priority": 100,
                "effective_priority": 90, "master": null, "vrid": 51, "version": 2,
                "adverts_sent": 11, "adverts_received": 12, "transitions": 3,
                "last_change": 1.0, "drops": {"bad_ttl": 2, "auth": 1},
                "checksum_forms": {}, "events": [],
            },
            "backends": [b("serv1", true, true.into()), b("we\\ird\"name", false, serde_json::Value::Null)],
        }))
        .unwrap()
    }

    /// The whole exposition, byte for byte as the one-function writer before the split
    /// produced it (families, order, label escaping, number formats).
    #[test]
    fn metrics_text_is_unchanged() {
        assert_eq!(metrics(&full_stats()), include_str!("metrics.golden.prom"));
    }

    #[test]
    fn metrics_text_has_haproxy_like_names() {
        let b = Arc::new(BackendState::new(
            "serv1",
            "10.0.0.1:80".parse().unwrap(),
            1,
            "default",
        ));
        b.count_response(200);
        let m = metrics(&snapshot("bal1", &[b], None));
        assert!(
            m.contains("lbctl_server_status{proxy=\"service\",server=\"serv1\"} 1"),
            "{m}"
        );
        assert!(m.contains(
            "lbctl_server_http_responses_total{proxy=\"service\",server=\"serv1\",code=\"2xx\"} 1"
        ));
        assert!(m.contains("# TYPE lbctl_server_check_status gauge"));
    }
}
