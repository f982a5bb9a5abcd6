//! The path of one request, in named stages, each taking what the one before produced:
//!
//! 1. [`route`]: the request is one we forward (smuggling guards, 400/405/414), to which
//!    pool of backends, and whether it asks to upgrade;
//! 2. [`select`]: the backend of that pool (a sticky cookie first, else the balancing
//!    algorithm), and the request's cookies for the response's Set-Cookie decision;
//! 3. [`forward`]: the head rewritten for the backend and sent, with retries and
//!    redispatch ([`client::dispatch`]), up to the backend's response head;
//! 4. [`respond`]: the client's response head, then its body streamed from the backend
//!    connection, or the connection handed to an Upgrade tunnel ([`super::tunnel`]).
//!
//! The stages are plain functions over borrowed state, composed in one future: no stage
//! allocates, locks, clones or spawns anything the request did not already need.

use super::body::{BackendBody, Progress, ReqBody, RespBody};
use super::client::{self, Dispatched};
use super::error::{self, ProxyError};
use super::forward;
use super::h1::{self, ReqFraming};
use super::server::{ConnState, InFlight, Shared};
use super::tunnel;
use crate::balance::Pick;
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, CONTENT_LENGTH, COOKIE, SET_COOKIE};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The service hyper calls for each request of a client connection: counts it, runs the
/// stages, and turns a failure into our error page.
pub async fn handle(
    req: Request<Incoming>,
    sh: Arc<Shared>,
    state: Arc<ConnState>,
) -> Result<Response<RespBody>, Infallible> {
    state.begin_request();
    let inflight = InFlight::new(state.clone());
    sh.stats.requests.fetch_add(1, Ordering::Relaxed);
    let span = tracing::debug_span!("req", method = %req.method(), uri = %req.uri());
    let mut resp = match proxy(req, &sh, &state).instrument(span.clone()).await {
        Ok(r) => r,
        Err(e) => {
            let status = e.status();
            error::count(&sh.stats, status);
            span.in_scope(
                || tracing::info!(status = status.as_u16(), reason = %e.reason(), "request failed"),
            );
            error::response(status)
        }
    };
    sh.stats.count_response(resp.status().as_u16());
    resp.body_mut().hold_inflight(inflight);
    Ok(resp)
}

/// route → select → forward → respond.
async fn proxy(
    mut req: Request<Incoming>,
    sh: &Arc<Shared>,
    state: &Arc<ConnState>,
) -> Result<Response<RespBody>, ProxyError> {
    let routed = route(&mut req, sh)?;
    let selected = select(sh, routed.pool, req.headers())?;
    let upgrading = routed.upgrade.is_some();
    let dispatched = forward(req, sh, state, routed.pool, upgrading, selected.pick).await?;
    respond(dispatched, sh, state, &selected.cookies, routed.upgrade)
}

/// What the route stage decided.
struct Routed<'s> {
    /// The pool of backends the request's path maps to.
    pool: &'s str,
    /// The client's side of the connection once upgraded, when it asked to upgrade.
    upgrade: Option<OnUpgrade>,
}

/// Stage 1: refuses what we do not forward, maps the path to its pool, and takes the
/// client's Upgrade handle when it asked for one (before the request is taken apart).
fn route<'s>(req: &mut Request<Incoming>, sh: &'s Shared) -> Result<Routed<'s>, ProxyError> {
    forward::check_request(req.method(), req.uri(), req.version(), req.headers())?;
    let upgrade =
        forward::wants_upgrade(req.version(), req.headers()).then(|| hyper::upgrade::on(&mut *req));
    Ok(Routed {
        pool: sh.balancer.pool_for(req.uri().path()),
        upgrade,
    })
}

/// What the select stage chose.
struct Selected {
    pick: Pick,
    /// The request's cookies, for the response's Set-Cookie decision (only read, and
    /// only copied, when stickiness is configured).
    cookies: HeaderMap,
}

/// Stage 2: the backend of `pool` for a request with `headers` (503 when none is up).
fn select(sh: &Shared, pool: &str, headers: &HeaderMap) -> Result<Selected, ProxyError> {
    let pick = sh
        .balancer
        .select_in(pool, headers)
        .ok_or_else(|| ProxyError::NoBackend(format!("no backend up in pool {pool:?}")))?;
    let mut cookies = HeaderMap::new();
    if sh.balancer.cookie_name().is_some() {
        for v in headers.get_all(COOKIE) {
            cookies.append(COOKIE, v.clone());
        }
    }
    Ok(Selected { pick, cookies })
}

/// Stage 3: the head rewritten for the backends (origin form, hop-by-hop headers out,
/// forwarding headers in), encoded once, and dispatched from `pick` on.
async fn forward(
    req: Request<Incoming>,
    sh: &Shared,
    state: &ConnState,
    pool: &str,
    upgrading: bool,
    pick: Pick,
) -> Result<Dispatched, ProxyError> {
    let (mut parts, body) = req.into_parts();
    forward::to_backend(&mut parts, state.forwarding(), upgrading)?;
    let out = outgoing(parts, body, state.timer().lend());
    client::dispatch(sh, pick, pool, out).await
}

/// Stage 4: the client's response from the backend's head; its body streams from the
/// backend connection, or after a `101` the connection goes to a tunnel.
fn respond(
    d: Dispatched,
    sh: &Shared,
    state: &Arc<ConnState>,
    cookies: &HeaderMap,
    upgrade: Option<OnUpgrade>,
) -> Result<Response<RespBody>, ProxyError> {
    let b = &d.pick.backend;
    let status = d.head.status;
    b.count_response(status.as_u16());
    b.counters
        .response_time_us_total
        .fetch_add(d.took.as_micros() as u64, Ordering::Relaxed);
    b.counters.latency.record(d.took);
    tracing::debug!(backend = %b.name, status = status.as_u16(), "response");
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    if switching && upgrade.is_none() {
        return Err(ProxyError::BadGateway(format!(
            "{}: 101 to a request that did not ask to upgrade",
            b.name
        )));
    }
    let mut resp = Response::new(RespBody::empty());
    *resp.status_mut() = status;
    *resp.headers_mut() = d.head.headers;
    forward::strip_hop_by_hop(resp.headers_mut(), switching);
    if let Some(c) = sh.balancer.set_cookie_for(d.pick.idx, cookies) {
        resp.headers_mut().append(SET_COOKIE, c);
    }
    if let (true, Some(client)) = (switching, upgrade) {
        state.upgraded();
        tunnel::spawn(tunnel::Tunnel {
            client,
            backend: d.conn,
            upload: d.upload,
            pick: d.pick,
            state: state.clone(),
        });
        return Ok(resp);
    }
    let idle = Duration::from_millis(sh.cfg.timeouts.server_ms.max(1));
    let backend = d.pick.backend.clone();
    let body = BackendBody::new(
        d.conn,
        d.head.framing,
        d.head.keep_alive,
        d.upload,
        sh.pool.clone(),
    );
    let mut out = RespBody::stream(body, backend, sh.stats.clone(), idle);
    out.hold_pick(d.pick);
    *resp.body_mut() = out;
    Ok(resp)
}

/// Encodes the request head for the backends and decides the body's framing: the
/// client's Content-Length when it sent one, chunked for a body of unknown length (a
/// chunked upload, or Transfer-Encoding plus Content-Length, where the chunked coding
/// wins), none for a request without body.
fn outgoing(
    parts: hyper::http::request::Parts,
    body: Incoming,
    timer: super::timer::Timer,
) -> client::Outgoing {
    let had_length = parts.headers.contains_key(CONTENT_LENGTH);
    let framing = match body.size_hint().exact() {
        Some(n) if had_length || n > 0 => ReqFraming::Length(n),
        Some(_) => ReqFraming::None,
        None => ReqFraming::Chunked,
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("*");
    let mut head = bytes::BytesMut::new();
    h1::encode_request_head(&mut head, &parts.method, target, &parts.headers, framing);
    let empty = body.is_end_stream();
    client::Outgoing {
        replayable: super::retry::replayable(&parts.method, !empty),
        method: parts.method,
        head: head.freeze(),
        body: (!empty).then(|| ReqBody::new(body, Progress::new())),
        framing,
        timer,
    }
}
