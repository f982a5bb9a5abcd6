//! Errors the proxy answers itself: status mapping, counting, and the small HTML pages
//! (with `Connection: close`, as HAProxy's error files).

use super::body::RespBody;
use super::FrontendStats;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::sync::atomic::Ordering;

/// Why a request could not be served by a backend.
#[derive(Debug)]
pub enum ProxyError {
    /// 400: refused before forwarding (smuggling guard, bad header...).
    BadRequest(&'static str),
    /// 405: CONNECT is not proxied.
    MethodNotAllowed,
    /// 414: URI longer than we accept.
    UriTooLong,
    /// 503: no up backend in the pool, or none could be connected to.
    NoBackend(String),
    /// 502: the backend closed, reset or answered something that is not HTTP.
    BadGateway(String),
    /// 504: no response head within `server_ms`.
    GatewayTimeout(String),
    /// 408: the client stalled while sending its request body.
    ClientTimeout,
    /// The client's own request body failed (client went away): 400, nothing recorded
    /// against the backend.
    ClientAborted(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::ClientAborted(_) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProxyError::NoBackend(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            ProxyError::BadRequest(r) => r.to_string(),
            ProxyError::MethodNotAllowed => "CONNECT is not supported".into(),
            ProxyError::UriTooLong => "URI too long".into(),
            ProxyError::ClientTimeout => "client stopped sending its request body".into(),
            ProxyError::NoBackend(r)
            | ProxyError::BadGateway(r)
            | ProxyError::GatewayTimeout(r)
            | ProxyError::ClientAborted(r) => r.clone(),
        }
    }
}

/// Counts an error we answer with `status` in its frontend counter.
pub fn count(stats: &FrontendStats, status: StatusCode) {
    let c = match status.as_u16() {
        400 => &stats.bad_request,
        408 => &stats.header_timeout,
        414 | 431 => &stats.too_large,
        502 => &stats.bad_gateway,
        503 => &stats.no_backend,
        504 => &stats.gateway_timeout,
        _ => return,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

fn message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Your browser sent an invalid request.",
        405 => "Method not allowed.",
        408 => "Your browser didn't send a complete request in time.",
        414 => "The requested URI is too long.",
        431 => "The request header fields are too large.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server didn't respond in time.",
        _ => "Error.",
    }
}

/// The HTML page of an error (HAProxy-like).
pub fn page(status: StatusCode) -> String {
    format!(
        "<html><body><h1>{} {}</h1>\n{}\n</body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        message(status)
    )
}

/// An error response with `Connection: close` (hyper then closes after sending it).
pub fn response(status: StatusCode) -> Response<RespBody> {
    let mut r = Response::new(RespBody::full(page(status).into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The raw bytes of an error response, for when hyper no longer owns the connection
/// (408 after our own head-read deadline).
pub fn raw(status: StatusCode) -> Vec<u8> {
    let body = page(status);
    format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n{}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        body
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_408_is_a_complete_response() {
        let r = String::from_utf8(raw(StatusCode::REQUEST_TIMEOUT)).unwrap();
        assert!(r.starts_with("HTTP/1.1 408 Request Timeout\r\n"));
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Connection: close"));
    }

    #[test]
    fn statuses() {
        assert_eq!(ProxyError::NoBackend("x".into()).status(), 503);
        assert_eq!(ProxyError::BadGateway("x".into()).status(), 502);
        assert_eq!(ProxyError::GatewayTimeout("x".into()).status(), 504);
        let s = FrontendStats::default();
        count(&s, StatusCode::BAD_GATEWAY);
        count(&s, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        count(&s, StatusCode::OK);
        assert_eq!(s.snapshot().bad_gateway, 1);
        assert_eq!(s.snapshot().too_large, 1);
    }
}
