//! Streaming bodies between client and backend: nothing is buffered whole; bytes are
//! counted per backend (`bytes_in`: request bytes sent to it, `bytes_out`: response bytes
//! sent to the client); a backend body that fails (backend died mid-body) fails the
//! client's response too, so hyper aborts the client connection instead of ending the
//! body as if it were complete.

use super::client::{Conn, Pool, Upload};
use super::h1::{Decoded, Decoder, RespFraming};
use super::server::InFlight;
use super::FrontendStats;
use crate::balance::backend::BackendState;
use crate::balance::Pick;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Who an exchange is waiting for, and since when: decides between 408 (client too slow
/// sending its body) and 504 (backend too slow), and makes both inactivity timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The request body needs more bytes from the client.
    Client(Instant),
    /// The backend has to read what we handed over, or to answer.
    Backend(Instant),
}

/// Shared between a [`ReqBody`] and the dispatch loop.
#[derive(Debug)]
pub struct Progress(Mutex<Waiting>);

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress(Mutex::new(Waiting::Backend(Instant::now()))))
    }

    pub fn get(&self) -> Waiting {
        *crate::locks::lock(&self.0)
    }

    fn set(&self, w: Waiting) {
        *crate::locks::lock(&self.0) = w;
    }

    fn waiting_client(&self) {
        let mut w = crate::locks::lock(&self.0);
        if !matches!(*w, Waiting::Client(_)) {
            *w = Waiting::Client(Instant::now());
        }
    }
}

/// The body of a request forwarded to a backend.
pub struct ReqBody {
    inner: Option<Incoming>,
    backend: Option<Arc<BackendState>>,
    progress: Arc<Progress>,
}

impl ReqBody {
    pub fn new(inner: Incoming, progress: Arc<Progress>) -> ReqBody {
        ReqBody {
            inner: Some(inner),
            backend: None,
            progress,
        }
    }

    /// Who the exchange carrying this body waits for.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// The backend whose `bytes_in` counts what is sent from now on.
    pub fn set_backend(&mut self, b: Arc<BackendState>) {
        self.backend = Some(b);
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        match &r {
            Poll::Pending => this.progress.waiting_client(),
            Poll::Ready(Some(Ok(f))) => {
                this.progress.set(Waiting::Backend(Instant::now()));
                if let (Some(d), Some(b)) = (f.data_ref(), &this.backend) {
                    b.counters
                        .bytes_in
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(_) => this.progress.set(Waiting::Backend(Instant::now())),
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

/// A backend's response body, read straight from its connection by the task that writes
/// it to the client; the connection goes back to the pool when the body is complete.
pub struct BackendBody {
    conn: Option<Conn>,
    decoder: Decoder,
    /// The backend keeps the connection open after this response.
    keep_alive: bool,
    /// The request body's upload, when the backend answered before it was all sent.
    upload: Option<Upload>,
    /// A failure met right after data was handed over: reported on the next poll, so
    /// that hyper first sends the client what we have (as HAProxy forwards what arrived
    /// before aborting).
    deferred: Option<String>,
    pool: Arc<Pool>,
}

impl BackendBody {
    pub fn new(
        conn: Conn,
        framing: RespFraming,
        keep_alive: bool,
        upload: Option<Upload>,
        pool: Arc<Pool>,
    ) -> BackendBody {
        let mut b = BackendBody {
            conn: Some(conn),
            decoder: Decoder::new(framing),
            keep_alive,
            upload,
            deferred: None,
            pool,
        };
        if b.decoder.is_done() {
            b.finish();
        }
        b
    }

    /// The body is complete: the connection goes back to the pool, or is closed (when
    /// the backend said so, or our request body was not all sent).
    fn finish(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.keep_alive && self.upload.is_none() {
                self.pool.checkin(c);
            }
        }
        self.upload = None;
    }

    /// Drops the connection after a failure and reports the error on the next poll: the
    /// wake-up lets hyper flush what it already took from us to the client first.
    fn fail(&mut self, why: String, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        self.conn = None;
        self.upload = None;
        self.deferred = Some(why);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, String>>> {
        if let Some(why) = self.deferred.take() {
            return Poll::Ready(Some(Err(why)));
        }
        if let Some(up) = self.upload.as_mut() {
            if let Poll::Ready(r) = up.as_mut().poll(cx) {
                if let Err(e) = r {
                    // The response may still come whole; the connection is not reused.
                    tracing::debug!(error = %e, "request body upload ended early");
                    self.keep_alive = false;
                }
                self.upload = None;
            }
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Err(e) => return self.fail(e.to_string(), cx),
                Ok(Decoded::Data(b)) => {
                    // hyper stops polling once is_end_stream() says so: hand the
                    // connection back now rather than on a next poll that never comes.
                    if self.decoder.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Ok(Decoded::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
            }
            match ready!(conn.poll_fill_for(cx, self.decoder.remaining())) {
                Ok(0) => {
                    if let Err(e) = self.decoder.eof() {
                        return self.fail(e.to_string(), cx);
                    }
                    self.conn = None;
                    self.upload = None;
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => return self.fail(format!("reading the response body: {e}"), cx),
            }
        }
    }
}

/// `server_ms`, its timer (made the first time we wait) and whether we are waiting now.
type IdleTimer = (Duration, Option<Pin<Box<Sleep>>>, bool);

enum Kind {
    Full(Option<Bytes>),
    Backend(BackendBody),
}

/// The body of a response sent to a client: ours (errors) or a backend's, streamed.
pub struct RespBody {
    kind: Kind,
    backend: Option<Arc<BackendState>>,
    stats: Option<Arc<FrontendStats>>,
    /// Inactivity limit while waiting for the backend's next bytes (`server_ms`), and the
    /// timer, created the first time we have to wait (most small responses never do).
    idle: Option<IdleTimer>,
    /// Dropped when the body is done or abandoned: the backend pick (its `active` count)
    /// and the connection's in-flight marker (keep-alive timing).
    pick: Option<Pick>,
    inflight: Option<InFlight>,
}

impl RespBody {
    pub fn full(b: Bytes) -> RespBody {
        RespBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            backend: None,
            stats: None,
            idle: None,
            pick: None,
            inflight: None,
        }
    }

    pub fn empty() -> RespBody {
        RespBody::full(Bytes::new())
    }

    pub fn stream(
        inner: BackendBody,
        backend: Arc<BackendState>,
        stats: Arc<FrontendStats>,
        idle_timeout: Duration,
    ) -> RespBody {
        RespBody {
            kind: Kind::Backend(inner),
            backend: Some(backend),
            stats: Some(stats),
            idle: Some((idle_timeout, None, false)),
            pick: None,
            inflight: None,
        }
    }

    /// Keeps the backend pick until the body is finished or dropped.
    pub fn hold_pick(&mut self, p: Pick) {
        self.pick = Some(p);
    }

    /// Keeps the request counted in flight on its connection until the body is finished.
    pub fn hold_inflight(&mut self, f: InFlight) {
        self.inflight = Some(f);
    }

    fn release(&mut self) {
        self.pick = None;
        self.inflight = None;
    }
}

impl RespBody {
    /// The backend's body failed: count it, log it, and fail ours so hyper aborts the
    /// client connection (no last chunk, short of Content-Length).
    fn abort(&mut self, why: String) -> BoxError {
        if let Some(s) = &self.stats {
            s.aborted_mid_body.fetch_add(1, Ordering::Relaxed);
        }
        let name = self.backend.as_ref().map_or("", |b| b.name.as_str());
        tracing::info!(backend = name, reason = %why, "backend failed mid-body, aborting the client connection");
        self.release();
        why.into()
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let inner = match &mut this.kind {
            Kind::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Backend(inner) => inner,
        };
        let r = inner.poll_frame(cx);
        let mut stalled = None;
        if let Some((limit, sleep, waiting)) = &mut this.idle {
            if r.is_pending() {
                // Time spent waiting for the backend only, not for a slow client to read:
                // the clock is read once when a wait starts, not on every poll.
                if !*waiting {
                    *waiting = true;
                    let deadline = Instant::now() + *limit;
                    match sleep {
                        Some(s) => s.as_mut().reset(deadline),
                        None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                if let Some(s) = sleep {
                    if s.as_mut().poll(cx).is_ready() {
                        stalled = Some(*limit);
                    }
                }
            } else {
                *waiting = false;
            }
        }
        if let Some(limit) = stalled {
            let why = format!("no data from backend for {} ms", limit.as_millis());
            return Poll::Ready(Some(Err(this.abort(why))));
        }
        match r {
            Poll::Ready(Some(Ok(d))) => {
                if let Some(b) = &this.backend {
                    b.counters
                        .bytes_out
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                if inner_done(&this.kind) {
                    this.release();
                }
                Poll::Ready(Some(Ok(Frame::data(d))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(this.abort(e)))),
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        inner_done(&self.kind)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Backend(i) => match i.decoder.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

fn inner_done(k: &Kind) -> bool {
    match k {
        Kind::Full(b) => b.is_none(),
        Kind::Backend(i) => i.conn.is_none() && i.deferred.is_none(),
    }
}
