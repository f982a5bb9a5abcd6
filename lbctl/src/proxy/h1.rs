//! HTTP/1.1 towards the backends, sans-IO: the request head we write, the response head we
//! parse (with httparse, the parser hyper itself uses) and the response body framing
//! (Content-Length, chunked, or until close).
//!
//! Why not hyper's client: its connection runs as a task of its own, so every request
//! crossed tasks twice (request in through a channel, response head and body chunks out
//! through others) and a spawned task waited for each response body to end before the
//! connection went back to the pool. Profiles showed the scheduler at about a fifth of
//! the proxy's time. With this codec the client connection's task drives the backend
//! socket itself, as HAProxy's single event loop does: no hop, no extra task.

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::TRANSFER_ENCODING;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH};
use hyper::{Method, StatusCode, Version};
use std::fmt;

/// Most header fields accepted in a backend response head.
pub const MAX_RESPONSE_HEADERS: usize = 128;
/// Longest backend response head (and chunk-size or trailer line) accepted.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_CHUNK_LINE: usize = 4096;

/// How the request body is framed towards the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqFraming {
    /// No body, no framing header (GET without Content-Length).
    None,
    Length(u64),
    Chunked,
}

/// Writes `METHOD target HTTP/1.1`, every field of `headers` except Content-Length and
/// Transfer-Encoding, and the framing field `framing` calls for.
pub fn encode_request_head(
    buf: &mut BytesMut,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: ReqFraming,
) {
    // Exactly the head's size: a frozen buffer whose length is its capacity becomes `Bytes`
    // without a second allocation for the shared header.
    let mut digits = itoa_buf();
    let length = match framing {
        ReqFraming::Length(n) => Some(fmt_u64(n, &mut digits)),
        _ => None,
    };
    buf.reserve(head_size(method, target, headers, framing, length));
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(target.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in forwarded(headers) {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    match (framing, length) {
        (ReqFraming::Length(_), Some(n)) => {
            buf.extend_from_slice(b"content-length: ");
            buf.extend_from_slice(n);
            buf.extend_from_slice(b"\r\n");
        }
        (ReqFraming::Chunked, _) => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    buf.extend_from_slice(b"\r\n");
}

/// The request's own headers that go to the backend as they are (its framing headers are
/// written anew).
fn forwarded(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| *name != CONTENT_LENGTH && *name != TRANSFER_ENCODING)
}

/// The bytes [`encode_request_head`] writes.
fn head_size(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: ReqFraming,
    length: Option<&[u8]>,
) -> usize {
    let line = method.as_str().len() + 1 + target.len() + b" HTTP/1.1\r\n".len();
    let fields: usize = forwarded(headers)
        .map(|(n, v)| n.as_str().len() + 2 + v.len() + 2)
        .sum();
    let framing = match framing {
        ReqFraming::None => 0,
        ReqFraming::Length(_) => b"content-length: \r\n".len() + length.map_or(0, <[u8]>::len),
        ReqFraming::Chunked => b"transfer-encoding: chunked\r\n".len(),
    };
    line + fields + framing + 2
}

/// Room for the decimal digits of any u64.
fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written at the end of `buf` (no allocation).
fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The size line of one chunk of `len` bytes (the chunk is followed by CRLF).
pub fn chunk_header(len: usize) -> String {
    format!("{len:x}\r\n")
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespFraming {
    /// HEAD, 1xx, 204, 304: nothing follows the head.
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes: the connection cannot be reused.
    Close,
}

/// A parsed backend response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: RespFraming,
    /// The backend will keep the connection open after this response.
    pub keep_alive: bool,
}

/// Why a backend response could not be used: the 502's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Invalid(String),
    TooLarge,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Invalid(why) => write!(f, "invalid response from backend: {why}"),
            ParseError::TooLarge => write!(f, "response head from backend too large"),
        }
    }
}

impl std::error::Error for ParseError {}

fn invalid(why: impl Into<String>) -> ParseError {
    ParseError::Invalid(why.into())
}

/// Parses one response head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// On success the head's bytes are removed from `buf` (what follows is body); on an
/// error `buf` may have lost them too (the connection is not used again).
pub fn parse_response_head(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, ParseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let strict = httparse::ParserConfig::default();
    let Some(len) = run_httparse(&strict, &mut resp, buf, MAX_RESPONSE_HEAD)? else {
        return Ok(None);
    };
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status {code}")))?;
    // Header names and values are read from the head's own bytes once it is frozen (the
    // values stay slices of it, no copy): note where each one is first.
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let from = s.as_ptr() as usize - base;
        (from, from + s.len())
    };
    let mut spans = [((0usize, 0usize), (0usize, 0usize)); MAX_RESPONSE_HEADERS];
    let n = resp.headers.len();
    for (h, span) in resp.headers.iter().zip(spans.iter_mut()) {
        *span = (at(h.name.as_bytes()), at(h.value));
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(n);
    for &((nf, nt), (vf, vt)) in &spans[..n] {
        let name = HeaderName::from_bytes(&head[nf..nt]).map_err(|_| {
            invalid(format!(
                "header name {:?}",
                String::from_utf8_lossy(&head[nf..nt])
            ))
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(vf..vt))
            .map_err(|_| invalid(format!("value of header {name}")))?;
        headers.append(name, value);
    }
    let framing = framing(status, request_method, &headers)?;
    let keep_alive = framing != RespFraming::Close && keeps_alive(version, &headers);
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// httparse over the response head at the start of `buf`: its length once complete,
/// `Ok(None)` while it is not and is still within `max_head` bytes.
fn run_httparse<'b>(
    config: &httparse::ParserConfig,
    resp: &mut httparse::Response<'_, 'b>,
    buf: &'b [u8],
    max_head: usize,
) -> Result<Option<usize>, ParseError> {
    match config.parse_response(resp, buf) {
        Ok(httparse::Status::Complete(n)) if n > max_head => Err(ParseError::TooLarge),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf.len() > max_head => Err(ParseError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ParseError::TooLarge),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// The status code and length of the response head at the start of `buf`, for a reader
/// that only needs to know how the server answered (the health checker); `Ok(None)`
/// while incomplete. The same httparse parse as [`parse_response_head`], so it refuses
/// a prefix that cannot start a response at once, without waiting for more bytes; it
/// takes obsolete folded header lines (they do not change the status), and the head
/// may be at most `max_head` bytes.
pub fn response_status(buf: &[u8], max_head: usize) -> Result<Option<(u16, usize)>, ParseError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let mut lenient = httparse::ParserConfig::default();
    lenient.allow_obsolete_multiline_headers_in_responses(true);
    let len = run_httparse(&lenient, &mut resp, buf, max_head)?;
    Ok(len.map(|n| (resp.code.unwrap_or(0), n)))
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn keeps_alive(version: Version, headers: &HeaderMap) -> bool {
    if version == Version::HTTP_10 {
        has_token(headers, &CONNECTION, "keep-alive")
    } else {
        !has_token(headers, &CONNECTION, "close")
    }
}

/// RFC 9112 §6.3. A response with both Transfer-Encoding and Content-Length loses the
/// Content-Length (it must not reach the client next to our re-framing); a Content-Length
/// that is not one decimal number, or several that differ, makes the response invalid.
fn framing(
    status: StatusCode,
    method: &Method,
    headers: &HeaderMap,
) -> Result<RespFraming, ParseError> {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(RespFraming::Empty);
    }
    let codings: Vec<&[u8]> = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        // Chunked last: chunked. Anything else: the body runs until close.
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            RespFraming::Chunked
        } else {
            RespFraming::Close
        });
    }
    let mut length: Option<u64> = None;
    for v in headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(invalid("Content-Length"));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid("Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("several different Content-Lengths"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => RespFraming::Empty,
        Some(n) => RespFraming::Length(n),
        None => RespFraming::Close,
    })
}

/// One step of body decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// The buffer holds no complete next piece: read more.
    NeedMore,
    /// The body is complete; what is left in the buffer is not ours.
    Done,
}

/// Why a body could not be decoded: the backend broke its framing or went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer fields after the last chunk, up to the empty line.
    Trailers,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// Decodes a response body out of the connection's read buffer, without copying data.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn new(framing: RespFraming) -> Decoder {
        Decoder {
            state: match framing {
                RespFraming::Empty | RespFraming::Length(0) => State::Done,
                RespFraming::Length(n) => State::Length(n),
                RespFraming::Chunked => State::Chunked(Chunk::Size),
                RespFraming::Close => State::Close,
            },
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of body still expected, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(n) as usize;
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::Chunked(c) => match self.chunked(c, buf)? {
                    Some(d) => return Ok(d),
                    None => continue,
                },
            }
        }
    }

    /// One chunked-coding step; `None` when the state moved and decoding goes on.
    fn chunked(&mut self, c: Chunk, buf: &mut BytesMut) -> Result<Option<Decoded>, BodyError> {
        let bad = |why: &str| BodyError(format!("invalid chunked body from backend: {why}"));
        match c {
            Chunk::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    self.state = State::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                    Ok(None)
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    Err(bad("chunk-size line too long"))
                }
                Ok(httparse::Status::Partial) => Ok(Some(Decoded::NeedMore)),
                Err(_) => Err(bad("chunk size")),
            },
            Chunk::Data(n) => {
                if buf.is_empty() {
                    return Ok(Some(Decoded::NeedMore));
                }
                let take = (buf.len() as u64).min(n) as usize;
                let left = n - take as u64;
                self.state = State::Chunked(if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                });
                Ok(Some(Decoded::Data(buf.split_to(take).freeze())))
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Some(Decoded::NeedMore));
                }
                if &buf[..2] != b"\r\n" {
                    return Err(bad("no CRLF after chunk data"));
                }
                buf.advance(2);
                self.state = State::Chunked(Chunk::Size);
                Ok(None)
            }
            Chunk::Trailers => {
                // Trailer fields are dropped (we never asked for them with TE: trailers).
                match buf.windows(2).position(|w| w == b"\r\n") {
                    Some(0) => {
                        buf.advance(2);
                        self.state = State::Chunked(Chunk::Done);
                        Ok(None)
                    }
                    Some(end) => {
                        buf.advance(end + 2);
                        Ok(None)
                    }
                    None if buf.len() > MAX_CHUNK_LINE => Err(bad("trailer line too long")),
                    None => Ok(Some(Decoded::NeedMore)),
                }
            }
            Chunk::Done => {
                self.state = State::Done;
                Ok(None)
            }
        }
    }

    /// The backend closed the connection: fine only for a body delimited by the close.
    pub fn eof(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(n) => Err(BodyError(format!(
                "backend closed the connection with {n} bytes of body missing"
            ))),
            State::Chunked(_) => Err(BodyError(
                "backend closed the connection before the last chunk".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<ResponseHead>, ParseError> {
        parse_response_head(&mut BytesMut::from(raw), &Method::GET)
    }

    fn body(framing: RespFraming, pieces: &[&[u8]]) -> Result<Vec<u8>, BodyError> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pieces = pieces.iter();
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::Done => return Ok(out),
                Decoded::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => {
                        d.eof()?;
                        return Ok(out);
                    }
                },
            }
        }
    }

    #[test]
    fn request_head_has_our_framing_only() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("svc"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("content-length", HeaderValue::from_static("99"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let mut b = BytesMut::new();
        encode_request_head(&mut b, &Method::POST, "/p?q=1", &h, ReqFraming::Length(5));
        assert_eq!(
            &b[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: svc\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 5\r\n\r\n"
        );
        let mut b = BytesMut::new();
        encode_request_head(&mut b, &Method::GET, "/", &h, ReqFraming::Chunked);
        assert!(b.ends_with(b"x-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"));
        let mut b = BytesMut::new();
        encode_request_head(
            &mut b,
            &Method::GET,
            "/",
            &HeaderMap::new(),
            ReqFraming::None,
        );
        assert_eq!(&b[..], b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(chunk_header(255), "ff\r\n");
    }

    #[test]
    fn a_request_head_is_allocated_at_its_exact_size() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("svc"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.insert("content-length", HeaderValue::from_static("99"));
        for framing in [
            ReqFraming::None,
            ReqFraming::Length(0),
            ReqFraming::Length(1_234_567),
            ReqFraming::Length(u64::MAX),
            ReqFraming::Chunked,
        ] {
            let mut b = BytesMut::new();
            encode_request_head(&mut b, &Method::PUT, "/x?y", &h, framing);
            assert_eq!(b.len(), b.capacity(), "{framing:?}: {b:?}");
        }
        let mut d = itoa_buf();
        assert_eq!(fmt_u64(0, &mut d), b"0");
        assert_eq!(fmt_u64(10, &mut d), b"10");
        assert_eq!(fmt_u64(u64::MAX, &mut d), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn response_heads_and_their_framing() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nokNEXT");
        let h = parse_response_head(&mut buf, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, RespFraming::Length(2));
        assert!(h.keep_alive);
        assert_eq!(h.headers["x"], "y");
        assert_eq!(&buf[..], b"okNEXT");

        assert!(head("HTTP/1.1 200 OK\r\nContent-Len").unwrap().is_none());
        use RespFraming::*;
        for (raw, framing, keep_alive) in [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n",
                Chunked,
                true,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Close, false),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Close,
                false,
            ),
            (
                "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
                Empty,
                true,
            ),
            ("HTTP/1.1 304 Not Modified\r\n\r\n", Empty, true),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n",
                Length(3),
                true,
            ),
            // Keep-alive rules of 1.0 and 1.1.
            (
                "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n",
                Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
                Length(1),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                Length(1),
                true,
            ),
        ] {
            let h = head(raw).unwrap().unwrap();
            assert_eq!((h.framing, h.keep_alive), (framing, keep_alive), "{raw:?}");
        }
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        let h = parse_response_head(&mut b, &Method::HEAD).unwrap().unwrap();
        assert_eq!(h.framing, RespFraming::Empty);
    }

    #[test]
    fn garbage_and_oversized_heads_are_refused() {
        for bad in [
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(ParseError::Invalid(_))), "{bad:?}");
        }
        let many: String = (0..200).map(|i| format!("x{i}: y\r\n")).collect();
        assert_eq!(
            head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err(),
            ParseError::TooLarge
        );
        let long = "a".repeat(MAX_RESPONSE_HEAD + 1);
        assert_eq!(
            head(&format!("HTTP/1.1 200 OK\r\nx: {long}")).unwrap_err(),
            ParseError::TooLarge
        );
    }

    #[test]
    fn length_bodies_stop_at_their_length() {
        assert_eq!(
            body(RespFraming::Length(5), &[b"he", b"llo"]).unwrap(),
            b"hello"
        );
        let mut d = Decoder::new(RespFraming::Length(2));
        let mut buf = BytesMut::from("okEXTRA");
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Decoded::Data(Bytes::from("ok"))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"EXTRA");
        assert!(body(RespFraming::Length(5), &[b"hel"]).is_err());
        assert_eq!(body(RespFraming::Close, &[b"a", b"b"]).unwrap(), b"ab");
        assert_eq!(body(RespFraming::Empty, &[b"x"]).unwrap(), b"");
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        for cut in 0..wire.len() {
            let got = body(RespFraming::Chunked, &[&wire[..cut], &wire[cut..]]).unwrap();
            assert_eq!(got, b"hello world", "cut at {cut}");
        }
        let one_by_one: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(
            body(RespFraming::Chunked, &one_by_one).unwrap(),
            b"hello world"
        );
        // What follows the body stays in the buffer.
        let mut d = Decoder::new(RespFraming::Chunked);
        let mut buf = BytesMut::from("1\r\na\r\n0\r\n\r\nHTTP");
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Data(Bytes::from("a")));
        assert_eq!(d.decode(&mut buf).unwrap(), Decoded::Done);
        assert_eq!(&buf[..], b"HTTP");
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        assert!(body(RespFraming::Chunked, &[b"zz\r\n"]).is_err());
        assert!(body(RespFraming::Chunked, &[b"2\r\nabX\r\n"]).is_err());
        assert!(body(RespFraming::Chunked, &[b"5\r\nhel"]).is_err());
        assert!(body(RespFraming::Chunked, &[&[b'1'; MAX_CHUNK_LINE + 2]]).is_err());
        assert!(body(RespFraming::Chunked, &[b"5\r\nhello\r\n"]).is_err());
    }
}
