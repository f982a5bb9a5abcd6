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
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a request forwarded to a backend.
pub struct ReqBody {
    inner: Option<Incoming>,
    backend: Option<Arc<BackendState>>,
}

impl ReqBody {
    pub fn new(inner: Incoming) -> ReqBody {
        ReqBody {
            inner: Some(inner),
            backend: None,
        }
    }

    pub fn empty() -> ReqBody {
        ReqBody {
            inner: None,
            backend: None,
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
        if let (Poll::Ready(Some(Ok(f))), Some(b)) = (&r, &this.backend) {
            if let Some(d) = f.data_ref() {
                b.counters
                    .bytes_in
                    .fetch_add(d.len() as u64, Ordering::Relaxed);
            }
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
    ) -> RespBody {
        RespBody {
            kind: Kind::Stream(inner),
            backend: Some(backend),
            stats: Some(stats),
            guards: Vec::new(),
        }
    }

    /// Keeps `g` alive until the body is finished or dropped.
    pub fn guard(&mut self, g: impl Any + Send + Sync) {
        self.guards.push(Box::new(g));
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
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(d), Some(b)) = (f.data_ref(), &this.backend) {
                    b.counters
                        .bytes_out
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(s) = &this.stats {
                    s.aborted_mid_body.fetch_add(1, Ordering::Relaxed);
                }
                let name = this.backend.as_ref().map(|b| b.name.as_str()).unwrap_or("");
                tracing::info!(backend = name, error = %e, "backend failed mid-body, aborting the client connection");
                Poll::Ready(Some(Err(Box::new(e))))
            }
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
