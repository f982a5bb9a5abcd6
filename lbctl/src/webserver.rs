//! `lbctl serve`: the scenario's backend page. `GET /` answers a page that names the
//! server and the client address it saw (like the lab text's index.php), so a user sees
//! which server answered and through which balancer. `GET /health` is the check path.
//! `GET /bytes/N` answers N bytes (at most [`MAX_BYTES`]): the bodies of a given size that
//! `cargo xtask bench proxy` measures both proxies with.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{debug, info, info_span, Instrument};

pub const HEALTH_PATH: &str = "/health";
/// The largest body `GET /bytes/N` answers.
pub const MAX_BYTES: usize = 1 << 20;

/// N bytes of `x` for `/bytes/N` (a slice of one shared buffer: no copy per request), or
/// why not.
fn sized_body(n: &str) -> Result<Bytes, String> {
    static BUF: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let n: usize = n
        .parse()
        .map_err(|_| format!("/bytes/N: N must be a byte count, not {n:?}\n"))?;
    if n > MAX_BYTES {
        return Err(format!("/bytes/N: N is at most {MAX_BYTES}, not {n}\n"));
    }
    Ok(BUF
        .get_or_init(|| Bytes::from(vec![b'x'; MAX_BYTES]))
        .slice(..n))
}

/// The page body for `GET /`.
pub fn page(server: &str, client: std::net::IpAddr) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{server}</title></head>\n\
         <body>\n<h1>Esto es el servidor {server}</h1>\n\
         <p>El cliente que ha pedido esta pagina tiene direccion: {client}</p>\n\
         <p>This is server {server}; the client that asked for this page has address {client}.</p>\n\
         </body></html>\n"
    )
}

fn respond(name: &str, peer: SocketAddr, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let (status, body, ctype) = match (req.method(), path) {
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/bytes/") => {
            match sized_body(&p["/bytes/".len()..]) {
                Ok(b) => return finish(name, req, StatusCode::OK, b, "text/plain"),
                Err(e) => (StatusCode::BAD_REQUEST, e, "text/plain"),
            }
        }
        (&Method::GET | &Method::HEAD, "/" | "/index.php" | "/index.html") => (
            StatusCode::OK,
            page(name, peer.ip()),
            "text/html; charset=utf-8",
        ),
        (&Method::GET | &Method::HEAD, HEALTH_PATH) => {
            (StatusCode::OK, "ok\n".to_string(), "text/plain")
        }
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "not found\n".to_string(),
            "text/plain",
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_string(),
            "text/plain",
        ),
    };
    finish(name, req, status, Bytes::from(body), ctype)
}

/// The response with `body` (none to a HEAD), its type and our name.
fn finish(
    name: &str,
    req: &Request<Incoming>,
    status: StatusCode,
    body: Bytes,
    ctype: &'static str,
) -> Response<Full<Bytes>> {
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(name) {
        resp.headers_mut().insert("x-served-by", v);
    }
    resp
}

/// Serves until the listener fails or the process is told to stop (SIGTERM / Ctrl-C).
pub async fn run(name: String, listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    info!(server = %name, %listen, "serving");
    let name = Arc::new(name);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let (stream, peer) = match acc {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning or dying.
                        debug!("accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let name = name.clone();
                tokio::spawn(
                    async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let r = respond(&name, peer, &req);
                            async move { Ok::<_, std::convert::Infallible>(r) }
                        });
                        if let Err(e) = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            debug!("connection: {e}");
                        }
                    }
                    .instrument(info_span!("conn", %peer)),
                );
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); return Ok(()); }
            _ = tokio::signal::ctrl_c() => { info!("interrupted: stopping"); return Ok(()); }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_server_and_client() {
        let p = page("serv1", "10.0.0.250".parse().unwrap());
        assert!(p.contains("Esto es el servidor serv1"));
        assert!(p.contains("tiene direccion: 10.0.0.250"));
    }

    #[tokio::test]
    async fn serves_page_and_health_on_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let task = tokio::spawn(run("servX".into(), addr));
        let mut body = String::new();
        for _ in 0..100 {
            if let Ok(b) = http_get(addr, "/").await {
                body = b;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(body.contains("200 OK"), "{body}");
        assert!(body.contains("Esto es el servidor servX"));
        assert!(body.contains("direccion: 127.0.0.1"));
        let h = http_get(addr, HEALTH_PATH).await.unwrap();
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        let b = http_get(addr, "/bytes/65536").await.unwrap();
        assert!(b.starts_with("HTTP/1.1 200"), "{b}");
        assert!(b.contains("content-length: 65536\r\n"), "{b}");
        assert!(b.ends_with(&"x".repeat(65536)));
        let big = http_get(addr, "/bytes/2000000").await.unwrap();
        assert!(
            big.starts_with("HTTP/1.1 400") && big.contains("at most"),
            "{big}"
        );
        let nan = http_get(addr, "/bytes/ten").await.unwrap();
        assert!(
            nan.starts_with("HTTP/1.1 400") && nan.contains("byte count"),
            "{nan}"
        );
        let nf = http_get(addr, "/nope").await.unwrap();
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        task.abort();
    }

    async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }
}
