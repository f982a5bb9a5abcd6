//! lbctl's one blocking HTTP/1.1 client: `GET` with one deadline for connect, write and
//! every read, for the tools that run on a thread that entered a node's namespace, where
//! there is no runtime (`lbctl probe`, the agent's peers reading `/stats`, `verify`'s
//! client loops). The response is read with the proxy's own codec (httparse for the head,
//! Content-Length / chunked / until-close for the body), so it stops as soon as the body
//! is complete instead of waiting for the server to close.
#![forbid(unsafe_code)]

use crate::proxy::h1::{self, Decoded, Decoder, ResponseHead};
use anyhow::{bail, Context as _, Result};
use bytes::BytesMut;
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Most bytes of response (head and body) read before giving up.
const MAX_RESPONSE: usize = 4 << 20;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, its transfer coding removed.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// `GET path` from `addr` (HTTP/1.1, `Host: host`, `Connection: close`), all of it within
/// `deadline`.
pub fn get(addr: SocketAddr, host: &str, path: &str, deadline: Duration) -> Result<Response> {
    let until = Instant::now() + deadline;
    let mut s = TcpStream::connect_timeout(&addr, deadline)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_write_timeout(Some(left(until)?))
        .context("setting a write timeout")?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lbctl\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("sending GET {path} to {addr}"))?;
    let mut reader = Reader::default();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(r) = reader.step(false)? {
            return Ok(r);
        }
        s.set_read_timeout(Some(left(until)?))
            .context("setting a read timeout")?;
        let n = s
            .read(&mut chunk)
            .with_context(|| format!("reading the response of {addr}"))?;
        if n == 0 {
            return reader
                .step(true)?
                .context("connection closed before the response was complete");
        }
        reader.feed(&chunk[..n])?;
    }
}

/// Parses a complete response (the bytes a server sent before it closed).
pub fn parse(raw: &[u8]) -> Result<Response> {
    let mut reader = Reader::default();
    reader.feed(raw)?;
    match reader.step(false)? {
        Some(r) => Ok(r),
        None => reader.step(true)?.context("incomplete response"),
    }
}

/// Time left until `until`; an error once it has passed (a zero socket timeout would
/// mean none).
fn left(until: Instant) -> Result<Duration> {
    match until.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => bail!("deadline passed"),
    }
}

/// The response as it is read, sans I/O: bytes in, a response out once complete.
#[derive(Default)]
struct Reader {
    buf: BytesMut,
    head: Option<(ResponseHead, Decoder)>,
    body: Vec<u8>,
    total: usize,
}

impl Reader {
    fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.total += bytes.len();
        if self.total > MAX_RESPONSE {
            bail!("response larger than {MAX_RESPONSE} bytes");
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The response once complete (`eof`: the server closed, nothing more will come).
    fn step(&mut self, eof: bool) -> Result<Option<Response>> {
        if self.head.is_none() {
            let Some(h) = h1::parse_response_head(&mut self.buf, &Method::GET)? else {
                if eof {
                    bail!("connection closed before a complete response head");
                }
                return Ok(None);
            };
            let decoder = Decoder::new(h.framing);
            self.head = Some((h, decoder));
        }
        let (_, decoder) = self.head.as_mut().expect("set above");
        loop {
            match decoder.decode(&mut self.buf)? {
                Decoded::Data(d) => self.body.extend_from_slice(&d),
                Decoded::Done => break,
                Decoded::NeedMore if eof => {
                    decoder.eof()?;
                    break;
                }
                Decoded::NeedMore => return Ok(None),
            }
        }
        let (head, _) = self.head.take().expect("set above");
        Ok(Some(Response {
            status: head.status,
            headers: head.headers,
            body: std::mem::take(&mut self.body),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn responses_by_their_framing() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nok").unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ok"[..]));
        assert_eq!(r.headers["x"], "y");
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.text(), "abc");
        let r = parse(b"HTTP/1.0 404 Not Found\r\n\r\nuntil close").unwrap();
        assert_eq!((r.status.as_u16(), r.text().as_ref()), (404, "until close"));
        assert!(parse(b"garbage").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    /// A server on loopback that answers each connection with `answer`, then holds it
    /// open for `hold`.
    fn server(answer: &'static [u8], hold: Duration) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(answer);
                    std::thread::sleep(hold);
                });
            }
        });
        addr
    }

    #[test]
    fn a_complete_body_ends_the_request_without_waiting_for_the_close() {
        let addr = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Duration::from_secs(5),
        );
        let t = Instant::now();
        let r = get(addr, "x", "/", Duration::from_secs(2)).unwrap();
        assert_eq!(r.text(), "hello");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[test]
    fn the_deadline_covers_the_whole_response() {
        // The head comes at once, the body never: the request fails at the deadline.
        let addr = server(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe",
            Duration::from_secs(5),
        );
        let t = Instant::now();
        assert!(get(addr, "x", "/", Duration::from_millis(300)).is_err());
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
