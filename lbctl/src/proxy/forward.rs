//! Request checks and header rewriting between client and backend.

use super::error::ProxyError;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, FORWARDED, HOST, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use hyper::{Method, Uri, Version};
use std::net::{IpAddr, SocketAddr};

/// Longest request target we forward (nginx's default large header buffer): 414 above.
/// A request head over `max_header_bytes` is refused by hyper first (431).
pub const MAX_URI_BYTES: usize = 8192;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// What hyper lets through but we refuse before forwarding. hyper already answers 400 to
/// two different Content-Lengths, a Transfer-Encoding whose last coding is not `chunked`,
/// Transfer-Encoding in HTTP/1.0, HTTP/0.9 request lines and malformed heads; with
/// Transfer-Encoding and Content-Length together it drops the Content-Length, reads the
/// body as chunked and closes the connection after the response (HAProxy's behaviour).
pub fn check_request(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
) -> Result<(), ProxyError> {
    // Only exactly `chunked` (once): "gzip, chunked" would lose its gzip coding when we
    // re-frame, "chunked, chunked" is forbidden by RFC 9112 §7.
    let mut codings = headers
        .get_all(TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty());
    if let Some(first) = codings.next() {
        if !first.eq_ignore_ascii_case(b"chunked") || codings.next().is_some() {
            return Err(ProxyError::BadRequest("unsupported Transfer-Encoding"));
        }
    }
    match headers.get_all(HOST).iter().count() {
        0 if version == Version::HTTP_11 && uri.authority().is_none() => {
            // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host.
            return Err(ProxyError::BadRequest("no Host header"));
        }
        0 | 1 => {}
        _ => return Err(ProxyError::BadRequest("several Host headers")),
    }
    if *method == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    // The whole URI is formatted only when it has no path (an authority form): `map_or`
    // would format it for every request.
    let len = uri
        .path_and_query()
        .map_or_else(|| uri.to_string().len(), |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return Err(ProxyError::UriTooLong);
    }
    Ok(())
}

/// `Connection` tokens of a message, lowercased.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// An HTTP/1.1 request asking to switch protocols (`Connection: upgrade` + `Upgrade`).
pub fn wants_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(UPGRADE)
        && connection_tokens(headers).iter().any(|t| t == "upgrade")
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it names,
/// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding (hyper re-frames the
/// body) and Upgrade. With `upgrade`, keeps `Upgrade` and sets `Connection: upgrade`.
/// Host and Content-Length are never removed even if named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    for t in connection_tokens(headers) {
        if let Ok(name) = HeaderName::from_bytes(t.as_bytes()) {
            if name != HOST && name != CONTENT_LENGTH && !(upgrade && name == UPGRADE) {
                headers.remove(&name);
            }
        }
    }
    for h in [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
    ] {
        headers.remove(h);
    }
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// RFC 7239 node: IPv4 as is, IPv6 quoted in brackets.
fn node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("\"[{a}]\""),
        },
    }
}

fn plain_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Appends `value` to the (possibly several) existing `name` headers as one list.
fn append_list(headers: &mut HeaderMap, name: &HeaderName, value: &str) -> Result<(), ProxyError> {
    let mut parts: Vec<&[u8]> = headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty())
        .collect();
    parts.push(value.as_bytes());
    let joined = parts.join(&b", "[..]);
    // from_bytes refuses CR, LF and NUL: nothing we inject can split the head.
    let v = HeaderValue::from_bytes(&joined)
        .map_err(|_| ProxyError::BadRequest("invalid forwarding header"))?;
    headers.insert(name.clone(), v);
    Ok(())
}

/// The forwarding header values of one client connection, made once per connection
/// rather than formatted again for every request.
#[derive(Debug, Clone)]
pub struct Forwarding {
    xff: HeaderValue,
    fwd: HeaderValue,
}

impl Forwarding {
    /// `X-Forwarded-For: <client>` and `Forwarded: for=<client>;proto=http;by=<us>`.
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Forwarding {
        let xff = plain_ip(peer.ip()).to_string();
        let fwd = format!("for={};proto=http;by={}", node(peer.ip()), node(local.ip()));
        Forwarding {
            // Formatted addresses: never CR, LF or NUL.
            xff: HeaderValue::from_str(&xff).expect("an address is a valid header value"),
            fwd: HeaderValue::from_str(&fwd).expect("an address is a valid header value"),
        }
    }

    /// Adds both headers, appended to the lists the request already carries.
    pub fn apply(&self, headers: &mut HeaderMap) -> Result<(), ProxyError> {
        for (name, value) in [(&X_FORWARDED_FOR, &self.xff), (&FORWARDED, &self.fwd)] {
            if headers.contains_key(name) {
                let v = value.to_str().expect("ASCII");
                append_list(headers, name, v)?;
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        Ok(())
    }
}

/// Adds `X-Forwarded-For: <client>` (appended to an existing list) and
/// `Forwarded: for=<client>;proto=http;by=<our address>` (RFC 7239, appended too).
#[cfg(test)]
pub fn add_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<(), ProxyError> {
    Forwarding::new(peer, local).apply(headers)
}

/// Rewrites a client request head for the backend: origin-form target, HTTP/1.1 (so the
/// backend connection stays kept-alive), Host from an absolute-form target, hop-by-hop
/// headers removed, forwarding headers added.
pub fn to_backend(
    parts: &mut hyper::http::request::Parts,
    fwd: &Forwarding,
    upgrade: bool,
) -> Result<(), ProxyError> {
    if let Some(auth) = parts.uri.authority() {
        let host = HeaderValue::from_str(auth.as_str())
            .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
        parts.headers.insert(HOST, host);
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    // An origin-form target (nearly every request) is already what the backend gets:
    // re-parsing it would copy it into a new allocation per request.
    let origin_form = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
    parts.uri = if origin_form && target.starts_with('/') {
        std::mem::take(&mut parts.uri)
    } else if parts.method == Method::OPTIONS && parts.uri == "*" {
        Uri::from_static("*")
    } else {
        target
            .parse()
            .map_err(|_| ProxyError::BadRequest("invalid request target"))?
    };
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers, upgrade);
    fwd.apply(&mut parts.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn check(pairs: &[(&str, &str)]) -> Result<(), ProxyError> {
        let mut m = h(pairs);
        if !m.contains_key(HOST) {
            m.insert(HOST, HeaderValue::from_static("svc"));
        }
        check_request(&Method::POST, &Uri::from_static("/"), Version::HTTP_11, &m)
    }

    #[test]
    fn transfer_encoding_must_be_exactly_chunked() {
        assert!(check(&[("transfer-encoding", "chunked")]).is_ok());
        assert!(check(&[("transfer-encoding", "Chunked ")]).is_ok());
        assert!(check(&[("transfer-encoding", "identity")]).is_err());
        assert!(check(&[("transfer-encoding", "gzip, chunked")]).is_err());
        assert!(check(&[("transfer-encoding", "chunked, chunked")]).is_err());
        assert!(check(&[
            ("transfer-encoding", "identity"),
            ("transfer-encoding", "chunked")
        ])
        .is_err());
        assert!(check(&[("host", "a"), ("host", "b")]).is_err());
        assert!(check(&[("host", "a")]).is_ok());
        let none = HeaderMap::new();
        let root = Uri::from_static("/");
        assert!(check_request(&Method::GET, &root, Version::HTTP_11, &none).is_err());
        assert!(check_request(&Method::GET, &root, Version::HTTP_10, &none).is_ok());
        let abs = Uri::from_static("http://a/");
        assert!(check_request(&Method::GET, &abs, Version::HTTP_11, &none).is_ok());
    }

    #[test]
    fn long_uri_and_connect_are_refused() {
        let long: Uri = format!("/{}", "a".repeat(MAX_URI_BYTES)).parse().unwrap();
        assert!(matches!(
            check_request(&Method::GET, &long, Version::HTTP_10, &HeaderMap::new()),
            Err(ProxyError::UriTooLong)
        ));
        assert!(matches!(
            check_request(
                &Method::CONNECT,
                &Uri::from_static("a:443"),
                Version::HTTP_10,
                &HeaderMap::new()
            ),
            Err(ProxyError::MethodNotAllowed)
        ));
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut m = h(&[
            ("connection", "keep-alive, X-Secret, content-length"),
            ("connection", "Foo"),
            ("x-secret", "1"),
            ("foo", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("content-length", "3"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut m, false);
        let mut names: Vec<_> = m.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-length", "x-kept"]);
    }

    #[test]
    fn upgrade_is_kept_when_upgrading() {
        let mut m = h(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(Version::HTTP_11, &m));
        assert!(!wants_upgrade(Version::HTTP_10, &m));
        strip_hop_by_hop(&mut m, true);
        assert_eq!(m["upgrade"], "websocket");
        assert_eq!(m["connection"], "upgrade");
        assert!(!wants_upgrade(
            Version::HTTP_11,
            &h(&[("upgrade", "websocket")])
        ));
    }

    #[test]
    fn forwarding_headers_append_and_quote_ipv6() {
        let mut m = h(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")]);
        add_forwarded(
            &mut m,
            "10.0.0.9:5000".parse().unwrap(),
            "172.16.1.254:8000".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(m["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(
            m["forwarded"],
            "for=1.2.3.4, for=10.0.0.9;proto=http;by=172.16.1.254"
        );
        let mut m = HeaderMap::new();
        add_forwarded(
            &mut m,
            "[2001:db8::1]:5000".parse().unwrap(),
            "[::ffff:10.0.0.1]:80".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(m["x-forwarded-for"], "2001:db8::1");
        assert_eq!(
            m["forwarded"],
            "for=\"[2001:db8::1]\";proto=http;by=10.0.0.1"
        );
    }

    #[test]
    fn backend_head_is_origin_form_http11() {
        let (mut p, _) = hyper::Request::builder()
            .method("GET")
            .uri("http://example.com:8080/a?b=1")
            .version(Version::HTTP_10)
            .header("host", "wrong")
            .body(())
            .unwrap()
            .into_parts();
        let fwd = Forwarding::new(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        to_backend(&mut p, &fwd, false).unwrap();
        assert_eq!(p.uri, "/a?b=1");
        // Origin form is kept as it came (no copy); OPTIONS * too.
        for (method, target) in [("GET", "/x/y?z=1"), ("OPTIONS", "*")] {
            let (mut o, _) = hyper::Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .unwrap()
                .into_parts();
            to_backend(&mut o, &fwd, false).unwrap();
            assert_eq!(o.uri, target);
        }
        assert_eq!(p.version, Version::HTTP_11);
        assert_eq!(p.headers["host"], "example.com:8080");
    }
}
