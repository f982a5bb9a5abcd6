//! Streaming bodies between client and backend: nothing is buffered whole; bytes are
//! counted per backend (`bytes_in`: request bytes sent to it, `bytes_out`: response bytes
//! sent to the client); a backend body that fails (backend died mid-body) fails the
//! client's response too, so hyper aborts the client connection instead of ending the
//! body as if it were complete.

use super::FrontendStats;
use crate::balance::backend::BackendState;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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
        *self.0.lock().expect("progress lock")
    }

    fn set(&self, w: Waiting) {
        *self.0.lock().expect("progress lock") = w;
    }

    fn waiting_client(&self) {
        let mut w = self.0.lock().expect("progress lock");
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

    pub fn empty() -> ReqBody {
        ReqBody {
            inner: None,
            backend: None,
            progress: Progress::new(),
        }
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

enum Kind {
    Full(Option<Bytes>),
    Stream(Incoming),
}

/// The body of a response sent to a client: ours (errors) or a backend's, streamed.
pub struct RespBody {
    kind: Kind,
    backend: Option<Arc<BackendState>>,
    stats: Option<Arc<FrontendStats>>,
    /// Inactivity limit while waiting for the backend's next bytes (`server_ms`), and the
    /// timer armed when we start waiting.
    idle: Option<(Duration, Pin<Box<Sleep>>, bool)>,
    /// Dropped when the body is done or abandoned: the backend pick (its `active` count)
    /// and the connection's in-flight marker (keep-alive timing).
    guards: Vec<Box<dyn Any + Send + Sync>>,
}

impl RespBody {
    pub fn full(b: Bytes) -> RespBody {
        RespBody {
            kind: Kind::Full((!b.is_empty()).then_some(b)),
            backend: None,
            stats: None,
            idle: None,
            guards: Vec::new(),
        }
    }

    pub fn empty() -> RespBody {
        RespBody::full(Bytes::new())
    }

    pub fn stream(
        inner: Incoming,
        backend: Arc<BackendState>,
        stats: Arc<FrontendStats>,
        idle_timeout: Duration,
    ) -> RespBody {
        RespBody {
            kind: Kind::Stream(inner),
            backend: Some(backend),
            stats: Some(stats),
            idle: Some((
                idle_timeout,
                Box::pin(tokio::time::sleep(idle_timeout)),
                false,
            )),
            guards: Vec::new(),
        }
    }

    /// Keeps `g` alive until the body is finished or dropped.
    pub fn guard(&mut self, g: impl Any + Send + Sync) {
        self.guards.push(Box::new(g));
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
        self.guards.clear();
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
            Kind::Stream(inner) => inner,
        };
        let r = Pin::new(inner).poll_frame(cx);
        let mut stalled = None;
        if let Some((limit, sleep, waiting)) = &mut this.idle {
            if r.is_pending() {
                // Time spent waiting for the backend only, not for a slow client to read.
                if !*waiting {
                    *waiting = true;
                    sleep.as_mut().reset(Instant::now() + *limit);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    stalled = Some(*limit);
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
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(d), Some(b)) = (f.data_ref(), &this.backend) {
                    b.counters
                        .bytes_out
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(this.abort(e.to_string())))),
            Poll::Ready(None) => {
                this.guards.clear();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(i) => i.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(i) => i.size_hint(),
        }
    }
}
