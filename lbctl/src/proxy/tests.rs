//! End-to-end tests on loopback: real hyper and raw TCP fake backends, hyper and raw TCP
//! clients. Each test is bounded in time.

use super::server::{bind_listener, serve};
use super::{FrontendStats, ProxyConfig};
use crate::balance::backend::BackendState;
use crate::config::{Balance, Limits, Route, Timeouts};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(15);

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took too long");
}

pub(super) fn config() -> ProxyConfig {
    ProxyConfig {
        listen: vec![],
        source: Some("127.0.0.1".parse().unwrap()),
        timeouts: Timeouts {
            connect_ms: Some(500),
            first_byte_ms: None,
            http_request_ms: 2000,
            server_ms: 2000,
            keep_alive_ms: 2000,
            client_ms: 2000,
            ..Timeouts::default()
        },
        limits: Limits::default(),
        balance: Balance::Roundrobin,
        cookie: None,
        routes: vec![],
        rise: 2,
        fall: 3,
        error_limit: 2,
        threads: 1,
    }
}

struct Proxy {
    addr: SocketAddr,
    stats: Arc<FrontendStats>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(cfg: ProxyConfig, backends: Vec<Arc<BackendState>>) -> Proxy {
    let l = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(FrontendStats::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(vec![l], cfg, backends, stats.clone(), async move {
        let _ = rx.await;
    }));
    Proxy {
        addr,
        stats,
        _stop: tx,
    }
}

fn be(name: &str, addr: SocketAddr) -> Arc<BackendState> {
    be_in(name, addr, 1, "default")
}

fn be_in(name: &str, addr: SocketAddr, weight: u32, pool: &str) -> Arc<BackendState> {
    Arc::new(BackendState::new(name, addr, weight, pool))
}

fn full(s: impl Into<Bytes>) -> http_body_util::combinators::BoxBody<Bytes, hyper::Error> {
    Full::new(s.into()).map_err(|n| match n {}).boxed()
}

/// A hyper backend: `/sleep/MS` answers after MS ms, `/echo` streams the request body
/// back, anything else answers its name then the request headers, one per line. Every
/// request target is recorded.
async fn web(name: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        seen.lock().unwrap().push(path.clone());
                        let resp = if let Some(ms) = path.strip_prefix("/sleep/") {
                            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                            Response::new(full(name))
                        } else if path == "/echo" {
                            Response::new(req.into_body().boxed())
                        } else {
                            let mut text = format!("{name}\n");
                            for (k, v) in req.headers() {
                                text.push_str(&format!("{k}: {}\n", v.to_str().unwrap()));
                            }
                            Response::builder()
                                .header("x-backend", name)
                                .header("connection", "x-internal")
                                .header("x-internal", "secret")
                                .body(full(text))
                                .unwrap()
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A raw TCP backend: `f` handles each connection.
async fn raw_backend<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let f = Arc::new(f);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(f(s));
        }
    });
    addr
}

/// Reads a request head (up to the blank line).
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An address nobody listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One request on a new connection through hyper's client.
async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Got {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn req(path: &str) -> hyper::http::request::Builder {
    Request::builder().uri(path).header("host", "svc")
}

async fn get(addr: SocketAddr, path: &str) -> Got {
    send(addr, req(path).body(Full::default()).unwrap()).await
}

fn first_line(body: &str) -> &str {
    body.lines().next().unwrap_or("")
}

/// Writes raw bytes on a new connection (ignoring write errors: the proxy may close
/// early) and returns everything read until the proxy closes.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn names(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    for _ in 0..n {
        let g = get(addr, "/").await;
        assert_eq!(g.status, 200, "{}", g.body);
        v.push(first_line(&g.body).to_string());
    }
    v
}

#[tokio::test]
async fn round_robin_cycles_s1_s2_s3() {
    bounded(async {
        let (a1, _) = web("s1").await;
        let (a2, _) = web("s2").await;
        let (a3, _) = web("s3").await;
        let bs = vec![be("s1", a1), be("s2", a2), be("s3", a3)];
        let p = start(config(), bs.clone()).await;
        assert_eq!(
            names(p.addr, 7).await,
            ["s1", "s2", "s3", "s1", "s2", "s3", "s1"]
        );
        assert_eq!(bs[0].counters.requests.load(Ordering::Relaxed), 3);
        assert_eq!(bs[1].counters.responses[1].load(Ordering::Relaxed), 2);
        assert!(bs[0].counters.bytes_out.load(Ordering::Relaxed) > 0);
        assert!(
            bs[0]
                .counters
                .response_time_us_total
                .load(Ordering::Relaxed)
                > 0
        );
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 0);
        let s = p.stats.snapshot();
        assert_eq!((s.requests, s.responses[1]), (7, 7));
        assert_eq!(s.conns_total, 7);
    })
    .await
}

#[tokio::test]
async fn weights_3_1_are_smooth() {
    bounded(async {
        let (a, _) = web("A").await;
        let (b, _) = web("B").await;
        let p = start(
            config(),
            vec![be_in("A", a, 3, "default"), be_in("B", b, 1, "default")],
        )
        .await;
        assert_eq!(
            names(p.addr, 8).await,
            ["A", "A", "B", "A", "A", "A", "B", "A"]
        );
    })
    .await
}

#[tokio::test]
async fn leastconn_avoids_the_busy_backend() {
    bounded(async {
        let (a1, _) = web("s1").await;
        let (a2, _) = web("s2").await;
        let mut cfg = config();
        cfg.balance = Balance::Leastconn;
        let bs = vec![be("s1", a1), be("s2", a2)];
        let p = start(cfg, bs.clone()).await;
        let addr = p.addr;
        let slow = tokio::spawn(async move { get(addr, "/sleep/700").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 1);
        assert_eq!(names(p.addr, 3).await, ["s2", "s2", "s2"]);
        assert_eq!(slow.await.unwrap().body, "s1");
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 0);
    })
    .await
}

#[tokio::test]
async fn cookie_insertion_and_stickiness() {
    bounded(async {
        let (a1, _) = web("s1").await;
        let (a2, _) = web("s2").await;
        let mut cfg = config();
        cfg.cookie = Some("SRV".into());
        let bs = vec![be("s1", a1), be("s2", a2)];
        let p = start(cfg, bs.clone()).await;
        let g = get(p.addr, "/").await;
        assert_eq!(first_line(&g.body), "s1");
        assert_eq!(g.headers["set-cookie"], "SRV=s1; Path=/; HttpOnly");
        for _ in 0..3 {
            let g = send(
                p.addr,
                req("/")
                    .header("cookie", "a=b; SRV=s2")
                    .body(Full::default())
                    .unwrap(),
            )
            .await;
            assert_eq!(first_line(&g.body), "s2");
            assert!(g.headers.get("set-cookie").is_none());
        }
        // Unknown backend: normal pick, new cookie.
        let g = send(
            p.addr,
            req("/")
                .header("cookie", "SRV=zz")
                .body(Full::default())
                .unwrap(),
        )
        .await;
        let name = first_line(&g.body).to_string();
        assert_eq!(
            g.headers["set-cookie"],
            format!("SRV={name}; Path=/; HttpOnly").as_str()
        );
        // Down backend: moved, new cookie.
        for _ in 0..3 {
            bs[1].record(false, "x", Duration::ZERO, true, 2, 3);
        }
        let g = send(
            p.addr,
            req("/")
                .header("cookie", "SRV=s2")
                .body(Full::default())
                .unwrap(),
        )
        .await;
        assert_eq!(first_line(&g.body), "s1");
        assert_eq!(g.headers["set-cookie"], "SRV=s1; Path=/; HttpOnly");
    })
    .await
}

#[tokio::test]
async fn routes_by_prefix_and_extension() {
    bounded(async {
        let (w, _) = web("web").await;
        let (st, _) = web("static").await;
        let mut cfg = config();
        cfg.routes = vec![Route {
            path_prefix: Some("/static/".into()),
            extensions: vec!["css".into(), "png".into()],
            pool: "static".into(),
        }];
        let p = start(cfg, vec![be("web", w), be_in("static", st, 1, "static")]).await;
        for (path, want) in [
            ("/static/a", "static"),
            ("/site/main.css", "static"),
            ("/logo.PNG", "static"),
            ("/index.html", "web"),
            ("/", "web"),
        ] {
            assert_eq!(first_line(&get(p.addr, path).await.body), want, "{path}");
        }
    })
    .await
}

#[tokio::test]
async fn forwarding_headers_added_and_hop_by_hop_stripped() {
    bounded(async {
        let (a, _) = web("s1").await;
        let p = start(config(), vec![be("s1", a)]).await;
        let g = send(
            p.addr,
            req("/")
                .header("x-forwarded-for", "203.0.113.7")
                .header("connection", "keep-alive, x-hop")
                .header("x-hop", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("te", "trailers")
                .header("upgrade", "h2c")
                .header("x-end-to-end", "kept")
                .body(Full::default())
                .unwrap(),
        )
        .await;
        let seen: Vec<&str> = g.body.lines().skip(1).collect();
        assert!(
            seen.contains(&"x-forwarded-for: 203.0.113.7, 127.0.0.1"),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"forwarded: for=127.0.0.1;proto=http;by=127.0.0.1"),
            "{seen:?}"
        );
        assert!(seen.contains(&"x-end-to-end: kept"));
        assert!(seen.contains(&"host: svc"));
        for h in [
            "x-hop",
            "keep-alive",
            "proxy-connection",
            "te",
            "upgrade",
            "connection",
        ] {
            assert!(
                !seen.iter().any(|l| l.starts_with(&format!("{h}:"))),
                "{h} forwarded: {seen:?}"
            );
        }
        // Response side: the backend's Connection-listed header is dropped.
        assert_eq!(g.headers["x-backend"], "s1");
        assert!(g.headers.get("x-internal").is_none());
    })
    .await
}

#[tokio::test]
async fn bodies_are_streamed_both_ways() {
    bounded(async {
        let (a, _) = web("s1").await;
        let bs = vec![be("s1", a)];
        let p = start(config(), bs.clone()).await;
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        // Chunked request (no Content-Length): a stream body.
        let (mut tx, body) =
            futures::channel::mpsc::channel::<Result<hyper::body::Frame<Bytes>, Infallible>>(4);
        let s = TcpStream::connect(p.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .unwrap();
        tokio::spawn(conn);
        let r = Request::post("/echo")
            .header("host", "svc")
            .body(http_body_util::StreamBody::new(body))
            .unwrap();
        let data = payload.clone();
        tokio::spawn(async move {
            use futures::SinkExt;
            for c in data.chunks(64 * 1024) {
                tx.send(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
                    .await
                    .unwrap();
            }
        });
        let resp = sender.send_request(r).await.unwrap();
        assert_eq!(resp.status(), 200);
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), payload.len());
        assert!(got[..] == payload[..]);
        assert_eq!(bs[0].counters.bytes_in.load(Ordering::Relaxed), 1_000_000);
        assert_eq!(bs[0].counters.bytes_out.load(Ordering::Relaxed), 1_000_000);
    })
    .await
}

#[tokio::test]
async fn refused_backend_is_redispatched_and_marked_down() {
    bounded(async {
        let dead = dead_addr().await;
        let (a2, _) = web("s2").await;
        let (a3, _) = web("s3").await;
        let mut cfg = config();
        cfg.fall = 2;
        let bs = vec![be("s1", dead), be("s2", a2), be("s3", a3)];
        let p = start(cfg, bs.clone()).await;
        let got = names(p.addr, 8).await;
        assert!(got.iter().all(|n| n == "s2" || n == "s3"), "{got:?}");
        assert!(!bs[0].is_up(), "s1 should be down after 2 passive failures");
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 2);
        assert_eq!(bs[0].counters.redispatches.load(Ordering::Relaxed), 2);
        let st = bs[0].check_state();
        assert!(st.last.unwrap().passive);
        assert_eq!(p.stats.snapshot().responses[1], 8);
    })
    .await
}

#[tokio::test]
async fn all_backends_down_is_503_at_once() {
    bounded(async {
        let bs = vec![be("s1", dead_addr().await), be("s2", dead_addr().await)];
        let p = start(config(), bs.clone()).await;
        let t = Instant::now();
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 503);
        assert_eq!(g.headers["connection"], "close");
        assert!(g.body.contains("503"));
        // Now both are marked down (fall 3 needs more failures): force it.
        for b in &bs {
            for _ in 0..3 {
                b.record(false, "x", Duration::ZERO, false, 2, 3);
            }
        }
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 503);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(p.stats.snapshot().no_backend, 2);
    })
    .await
}

#[tokio::test]
async fn backend_closing_before_answering_is_502() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
        })
        .await;
        let bs = vec![be("s1", a)];
        let p = start(config(), bs.clone()).await;
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 502);
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 1);
        assert_eq!(p.stats.snapshot().bad_gateway, 1);
    })
    .await
}

#[tokio::test]
async fn empty_response_is_redispatched_only_when_the_request_can_be_replayed() {
    bounded(async {
        // s1 accepts, reads the request and closes without a byte of answer (a server
        // stopping between accept and response).
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
        })
        .await;
        let (a2, _) = web("s2").await;
        let bs = vec![be("s1", a), be("s2", a2)];
        let p = start(config(), bs.clone()).await;
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 200, "{}", g.body);
        assert_eq!(first_line(&g.body), "s2");
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 1);
        assert_eq!(bs[0].counters.redispatches.load(Ordering::Relaxed), 1);
        // A POST with a body cannot be sent twice: the client gets the 502 (s1 is picked
        // until it has failed `fall` times, then skipped).
        let mut codes = Vec::new();
        for _ in 0..4 {
            let post = req("/")
                .method("POST")
                .body(Full::new(Bytes::from_static(b"x=1")))
                .unwrap();
            codes.push(send(p.addr, post).await.status.as_u16());
        }
        assert!(codes.contains(&502), "{codes:?}");
        assert_eq!(bs[1].counters.redispatches.load(Ordering::Relaxed), 0);
    })
    .await
}

#[tokio::test]
async fn reset_before_answering_is_redispatched() {
    bounded(async {
        // s1 reads the request and resets the connection (SO_LINGER 0), as a killed
        // server's kernel does for a socket with unread data.
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            // Deprecated because a non-zero linger blocks on drop; zero resets at once.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
        })
        .await;
        let (a2, _) = web("s2").await;
        let bs = vec![be("s1", a), be("s2", a2)];
        let p = start(config(), bs.clone()).await;
        let g = get(p.addr, "/").await;
        assert_eq!((g.status.as_u16(), first_line(&g.body)), (200, "s2"));
        assert_eq!(bs[0].counters.redispatches.load(Ordering::Relaxed), 1);
    })
    .await
}

#[tokio::test]
async fn two_threads_share_one_exact_round_robin() {
    bounded(async {
        let (a1, _) = web("s1").await;
        let (a2, _) = web("s2").await;
        let (a3, _) = web("s3").await;
        let port = dead_addr().await.port();
        let mut cfg = config();
        cfg.threads = 2;
        cfg.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = tokio::spawn(super::run(
            cfg,
            vec![be("s1", a1), be("s2", a2), be("s3", a3)],
            async move {
                let _ = rx.await;
            },
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Every request on a new connection: SO_REUSEPORT spreads them over both threads'
        // sockets, and the shared balancer still cycles exactly.
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let got = names(addr, 12).await;
        let start = got.iter().position(|n| n == "s1").unwrap();
        for (i, n) in got.iter().enumerate() {
            assert_eq!(n, ["s1", "s2", "s3"][(i + 3 - start) % 3], "{got:?}");
        }
        tx.send(()).unwrap();
        h.await.unwrap().unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    })
    .await
}

#[tokio::test]
async fn backend_answering_garbage_is_502() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        })
        .await;
        let p = start(config(), vec![be("s1", a)]).await;
        assert_eq!(get(p.addr, "/").await.status, 502);
    })
    .await
}

#[tokio::test]
async fn slow_backend_is_504() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let mut cfg = config();
        cfg.timeouts.server_ms = 300;
        let bs = vec![be("s1", a)];
        let p = start(cfg, bs.clone()).await;
        let t = Instant::now();
        assert_eq!(get(p.addr, "/").await.status, 504);
        assert!(t.elapsed() < Duration::from_millis(1500));
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 1);
        assert_eq!(bs[0].check_state().last.unwrap().reason, "timeout");
        assert_eq!(p.stats.snapshot().gateway_timeout, 1);
    })
    .await
}

#[tokio::test]
async fn backend_dying_mid_body_aborts_the_client() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            let head = read_head(&mut s).await;
            let resp: &[u8] = if head.contains("/chunked") {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello"
            };
            let _ = s.write_all(resp).await;
        })
        .await;
        let p = start(config(), vec![be("s1", a)]).await;
        for path in ["/length", "/chunked"] {
            let s = TcpStream::connect(p.addr).await.unwrap();
            let (mut tx, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(s))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let resp = tx
                .send_request(req(path).body(Full::<Bytes>::default()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let err = resp
                .into_body()
                .collect()
                .await
                .expect_err("body must not look complete");
            // hyper's client sees the connection end before the announced length or the
            // last chunk: an incomplete body, never a complete one.
            let msg = format!("{err:?}");
            assert!(
                err.is_incomplete_message()
                    || msg.contains("IncompleteBody")
                    || msg.contains("UnexpectedEof"),
                "{path}: {msg}"
            );
            // Raw view: the chunked response never gets its last chunk.
            let out = raw(
                p.addr,
                format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
            )
            .await;
            assert!(out.contains("hello"), "{out}");
            assert!(!out.ends_with("0\r\n\r\n"), "{out}");
        }
        assert_eq!(p.stats.snapshot().aborted_mid_body, 4);
    })
    .await
}

#[tokio::test]
async fn retry_on_reused_connection_closed_by_backend() {
    bounded(async {
        // Each backend connection answers its first request (keep-alive), then reads the
        // next one and closes without answering: the keep-alive race.
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            read_head(&mut s).await;
        })
        .await;
        let bs = vec![be("s1", a)];
        let p = start(config(), bs.clone()).await;
        assert_eq!(get(p.addr, "/").await.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 200);
        assert_eq!(g.body, "ok");
        assert_eq!(bs[0].counters.retries.load(Ordering::Relaxed), 1);
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 0);
        // A request with a body is not replayed.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let g = send(
            p.addr,
            Request::post("/")
                .header("host", "x")
                .body(Full::from("data"))
                .unwrap(),
        )
        .await;
        assert_eq!(g.status, 502);
    })
    .await
}

#[tokio::test]
async fn smuggling_and_malformed_requests_are_refused() {
    bounded(async {
        let (a, seen) = web("s1").await;
        let p = start(config(), vec![be("s1", a)]).await;
        let ok = |p: SocketAddr| async move {
            let g = get(p, "/good").await;
            assert_eq!(g.status, 200);
        };
        let mut h = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..150 {
            h.push_str(&format!("X-H{i}: v\r\n"));
        }
        h.push_str("\r\n");
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(9000));
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            (
                "two content-lengths",
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                "te identity",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nabcd".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                "te gzip, chunked",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                "te chunked then identity",
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            (
                "te in http/1.0",
                b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
                "HTTP/1.1 400",
            ),
            ("no host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), "HTTP/1.1 400"),
            ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), "HTTP/1.1 400"),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n".to_vec(), "HTTP/1.1 400"),
            ("20 kB header", big.into_bytes(), "HTTP/1.1 431"),
            ("150 headers", h.into_bytes(), "HTTP/1.1 431"),
            ("long uri", long_uri.into_bytes(), "HTTP/1.1 414"),
        ];
        for (what, bytes, want) in cases {
            let out = raw(p.addr, &bytes).await;
            assert!(out.starts_with(want), "{what}: {out:?}");
            assert!(out.to_ascii_lowercase().contains("connection: close"), "{what}: {out:?}");
            ok(p.addr).await;
        }
        // HTTP/0.9: refused (400) and never forwarded.
        let out = raw(p.addr, b"GET /nine\r\n").await;
        assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
        ok(p.addr).await;
        // TE + CL: hyper drops the Content-Length, reads the chunked body, closes after
        // the response; the bytes after the chunked body are never a request.
        let out = raw(
            p.addr,
            b"POST /te-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
        assert!(out.to_ascii_lowercase().contains("connection: close"), "{out:?}");
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out:?}");
        ok(p.addr).await;
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.iter().any(|s| s == "/smuggled" || s == "/nine" || s == "/"), "{seen:?}");
        assert!(seen.contains(&"/te-cl".to_string()));
        let s = p.stats.snapshot();
        assert_eq!(s.too_large, 3);
        assert!(s.bad_request >= 8, "{s:?}");
    })
    .await
}

#[tokio::test]
async fn slowloris_gets_408_then_a_good_request_works() {
    bounded(async {
        let (a, _) = web("s1").await;
        let mut cfg = config();
        cfg.timeouts.http_request_ms = 300;
        let p = start(cfg, vec![be("s1", a)]).await;
        let t = Instant::now();
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(b"X-Slow: 1\r\n").await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{out:?}"
        );
        assert!(out.contains("Connection: close"));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        assert_eq!(get(p.addr, "/").await.status, 200);
        assert_eq!(p.stats.snapshot().header_timeout, 1);
    })
    .await
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_silently() {
    bounded(async {
        let (a, _) = web("s1").await;
        let mut cfg = config();
        cfg.timeouts.keep_alive_ms = 300;
        cfg.timeouts.http_request_ms = 5000;
        let p = start(cfg, vec![be("s1", a)]).await;
        let s = TcpStream::connect(p.addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(s))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        for _ in 0..2 {
            let r = tx
                .send_request(req("/").body(Full::default()).unwrap())
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.into_body().collect().await.unwrap();
            // Idle, but less than keep_alive: still open.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let t = Instant::now();
        conn.await.unwrap().unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(p.stats.snapshot().header_timeout, 0);
        assert_eq!(get(p.addr, "/").await.status, 200);
    })
    .await
}

#[tokio::test]
async fn max_conns_makes_extra_connections_wait() {
    bounded(async {
        let (a, _) = web("s1").await;
        let mut cfg = config();
        cfg.limits.max_conns = 1;
        let p = start(cfg, vec![be("s1", a)]).await;
        let s = TcpStream::connect(p.addr).await.unwrap();
        let (mut tx, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(s))
                .await
                .unwrap();
        let conn = tokio::spawn(conn);
        let r = tx
            .send_request(req("/").body(Full::default()).unwrap())
            .await
            .unwrap();
        r.into_body().collect().await.unwrap();
        assert_eq!(p.stats.snapshot().conns_current, 1);
        let addr = p.addr;
        let second = tokio::spawn(async move { get(addr, "/").await.status });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "second connection served beyond max_conns"
        );
        drop(tx);
        let _ = conn.await;
        assert_eq!(second.await.unwrap(), 200);
    })
    .await
}

#[tokio::test]
async fn upgrade_is_passed_through() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            let head = read_head(&mut s).await.to_ascii_lowercase();
            assert!(head.contains("upgrade: websocket"), "{head}");
            assert!(head.contains("connection: upgrade"), "{head}");
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => s.write_all(&buf[..n]).await.unwrap(),
                }
            }
        })
        .await;
        let bs = vec![be("s1", a)];
        let p = start(config(), bs.clone()).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.to_ascii_lowercase().contains("upgrade: websocket"), "{head}");
        for msg in [&b"ping"[..], b"hello tunnel"] {
            s.write_all(msg).await.unwrap();
            let mut buf = vec![0u8; msg.len()];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, msg);
        }
        drop(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(bs[0].counters.responses[0].load(Ordering::Relaxed), 1);
        assert_eq!(bs[0].active.load(Ordering::Relaxed), 0);
        assert_eq!(bs[0].counters.bytes_in.load(Ordering::Relaxed), 16);
    })
    .await
}

#[tokio::test]
async fn listener_binds_a_nonlocal_address() {
    // IP_FREEBIND: an address not configured on any interface (TEST-NET-3).
    let l = bind_listener("203.0.113.254:0".parse().unwrap()).unwrap();
    assert_eq!(l.local_addr().unwrap().ip().to_string(), "203.0.113.254");
}

#[tokio::test]
async fn run_binds_and_stops_on_shutdown() {
    bounded(async {
        let (a, _) = web("s1").await;
        let port = dead_addr().await.port();
        let mut cfg = config();
        cfg.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = tokio::spawn(super::run(cfg, vec![be("s1", a)], async move {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            get(SocketAddr::from(([127, 0, 0, 1], port)), "/")
                .await
                .status,
            200
        );
        tx.send(()).unwrap();
        h.await.unwrap().unwrap();
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    })
    .await
}

/// A raw backend that reads the whole Content-Length body before answering its size.
async fn body_counting_backend() -> SocketAddr {
    raw_backend(|mut s| async move {
        let head = read_head(&mut s).await.to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; len];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        let text = len.to_string();
        let _ = s
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                )
                .as_bytes(),
            )
            .await;
    })
    .await
}

#[tokio::test]
async fn stalled_client_body_is_408_and_not_the_backends_fault() {
    bounded(async {
        let a = body_counting_backend().await;
        let mut cfg = config();
        cfg.timeouts.client_ms = 300;
        cfg.timeouts.server_ms = 5000;
        let bs = vec![be("s1", a)];
        let p = start(cfg, bs.clone()).await;
        let t = Instant::now();
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 0);
        assert_eq!(bs[0].check_state().consecutive_fail, 0);
    })
    .await
}

#[tokio::test]
async fn slow_but_steady_upload_is_not_a_timeout() {
    bounded(async {
        let a = body_counting_backend().await;
        let mut cfg = config();
        cfg.timeouts.client_ms = 300;
        cfg.timeouts.server_ms = 300;
        let p = start(cfg, vec![be("s1", a)]).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(b"0123456789").await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
        assert!(out.ends_with("\r\n\r\n50"), "{out:?}");
    })
    .await
}

#[tokio::test]
async fn backend_stalling_mid_body_is_aborted_after_server_timeout() {
    bounded(async {
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
                .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        })
        .await;
        let mut cfg = config();
        cfg.timeouts.server_ms = 300;
        let p = start(cfg, vec![be("s1", a)]).await;
        let t = Instant::now();
        let out = raw(p.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("hello"),
            "{out:?}"
        );
        assert!(
            t.elapsed() < Duration::from_millis(2000),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(p.stats.snapshot().aborted_mid_body, 1);
    })
    .await
}

/// A raw backend that counts its connections and answers each request on a connection
/// with `answer(head)`, keeping the connection open (keep-alive) until the client closes.
async fn counting_backend(
    answer: fn(&str) -> Vec<u8>,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = conns.clone();
    let a = raw_backend(move |mut s| {
        c.fetch_add(1, Ordering::SeqCst);
        async move {
            loop {
                let head = read_head(&mut s).await;
                if head.is_empty() {
                    return;
                }
                if s.write_all(&answer(&head)).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (a, conns)
}

#[tokio::test]
async fn backend_framings_close_delimited_and_informational() {
    bounded(async {
        // HTTP/1.0 without Content-Length: the body runs until the backend closes.
        let a = raw_backend(|mut s| async move {
            read_head(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.0 200 OK\r\nX-B: 1\r\n\r\nuntil close")
                .await;
        })
        .await;
        let p = start(config(), vec![be("s1", a)]).await;
        let g = get(p.addr, "/").await;
        assert_eq!((g.status.as_u16(), g.body.as_str()), (200, "until close"));
        assert_eq!(g.headers["x-b"], "1");
        assert_eq!(p.stats.snapshot().aborted_mid_body, 0);
        // 100 Continue, then the real answer: the client sees only the final response.
        let (a, _) = counting_backend(|_| {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
                .to_vec()
        })
        .await;
        let p = start(config(), vec![be("s1", a)]).await;
        let g = get(p.addr, "/").await;
        assert_eq!((g.status.as_u16(), g.body.as_str()), (201, "ok"));
        // HEAD: a Content-Length but no body follows; the connection stays usable.
        let (a, conns) =
            counting_backend(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()).await;
        let p = start(config(), vec![be("s1", a)]).await;
        for _ in 0..3 {
            let g = send(
                p.addr,
                req("/").method("HEAD").body(Full::default()).unwrap(),
            )
            .await;
            assert_eq!((g.status.as_u16(), g.body.as_str()), (200, ""));
            assert_eq!(g.headers["content-length"], "5");
        }
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "one kept-alive backend connection"
        );
    })
    .await
}

/// Sends `n` GETs through a proxy to a backend answering `answer`, checks each answer's
/// status and body, and returns how many connections the backend saw.
async fn backend_conns_for(answer: fn(&str) -> Vec<u8>, n: usize, body: &str) -> usize {
    let (a, conns) = counting_backend(answer).await;
    let p = start(config(), vec![be("s1", a)]).await;
    for _ in 0..n {
        let g = get(p.addr, "/").await;
        assert_eq!((g.status.as_u16(), g.body.as_str()), (200, body));
        assert!(!g.headers.contains_key("connection"), "hop-by-hop stripped");
    }
    conns.load(Ordering::SeqCst)
}

#[tokio::test]
async fn backend_connections_are_reused_unless_the_backend_closes_them() {
    bounded(async {
        let chunked = |_: &str| {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec()
        };
        assert_eq!(backend_conns_for(chunked, 5, "abc").await, 1);
        // `Connection: close` from the backend: a new connection each time.
        let close = |_: &str| {
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".to_vec()
        };
        assert_eq!(backend_conns_for(close, 3, "ok").await, 3);
        // Bytes after the announced body: the backend is out of step, never reused.
        let junk = |_: &str| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK".to_vec();
        assert_eq!(backend_conns_for(junk, 3, "ok").await, 3);
    })
    .await
}

#[tokio::test]
async fn early_answer_before_the_whole_upload_reaches_the_client() {
    bounded(async {
        // The backend refuses the upload after its head (413) without reading the body.
        let (a, conns) = counting_backend(|_| {
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig".to_vec()
        })
        .await;
        let bs = vec![be("s1", a)];
        let p = start(config(), bs.clone()).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123")
            .await
            .unwrap();
        let mut out = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
            .await
            .expect("answer before the body is complete")
            .unwrap();
        let out = String::from_utf8_lossy(&out[..n]);
        assert!(out.starts_with("HTTP/1.1 413"), "{out:?}");
        assert!(out.ends_with("big"), "{out:?}");
        // Not a backend failure, and its connection is not reused (our upload was cut).
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 0);
        let g = get(p.addr, "/").await;
        assert_eq!(g.status, 413);
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    })
    .await
}

/// A backend that answers every request with a `len`-byte body, as fast as it is taken.
async fn big_backend(len: usize) -> SocketAddr {
    raw_backend(move |mut s| async move {
        read_head(&mut s).await;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            if s.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
    })
    .await
}

/// Polls `f` every 20 ms for up to 5 s; whether it became true.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test]
async fn client_that_stops_reading_is_closed_after_client_ms() {
    bounded(async {
        let a = big_backend(64 << 20).await;
        let mut cfg = config();
        cfg.timeouts.client_ms = 300;
        let bs = vec![be("s1", a)];
        let p = start(cfg, bs.clone()).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // Read the head and a little, then take nothing more: the proxy's writes block.
        let mut buf = vec![0u8; 4096];
        s.read_exact(&mut buf).await.unwrap();
        let st = p.stats.clone();
        assert!(
            eventually(|| st.snapshot().client_timeout == 1).await,
            "{:?}",
            st.snapshot()
        );
        // Its slot, its thread load and the backend's active count are all given back.
        assert!(eventually(|| st.snapshot().conns_current == 0).await);
        assert!(eventually(|| bs[0].active.load(Ordering::Relaxed) == 0).await);
        // Not the backend's fault.
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 0);
    })
    .await
}

#[tokio::test]
async fn slow_reader_that_keeps_reading_is_not_cut() {
    bounded(async {
        let a = big_backend(4 << 20).await;
        let mut cfg = config();
        cfg.timeouts.client_ms = 300;
        let p = start(cfg, vec![be("s1", a)]).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // 4 MiB at 256 KiB every 100 ms: well over client_ms in all, never idle that long.
        let mut total = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert!(total > 4 << 20, "{total} {:?}", p.stats.snapshot());
        assert_eq!(p.stats.snapshot().client_timeout, 0);
    })
    .await
}

/// An Upgrade backend that echoes what it gets.
async fn echo_upgrade_backend() -> SocketAddr {
    raw_backend(|mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await;
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn tunnel_idle_for_tunnel_ms_is_closed_but_a_busy_one_is_not() {
    bounded(async {
        let a = echo_upgrade_backend().await;
        let mut cfg = config();
        cfg.timeouts.tunnel_ms = 400;
        let bs = vec![be("s1", a)];
        let p = start(cfg, bs.clone()).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        )
        .await
        .unwrap();
        assert!(read_head(&mut s).await.starts_with("HTTP/1.1 101"));
        // A message every 150 ms for 1.2 s (3 × tunnel_ms): the tunnel stays open.
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"ping");
        }
        assert_eq!(p.stats.snapshot().tunnel_timeout, 0);
        // Then silence: closed after tunnel_ms, slot and backend count given back.
        let mut rest = Vec::new();
        let t = Instant::now();
        let _ = s.read_to_end(&mut rest).await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(p.stats.snapshot().tunnel_timeout, 1);
        let st = p.stats.clone();
        assert!(eventually(|| st.snapshot().conns_current == 0).await);
        assert!(eventually(|| bs[0].active.load(Ordering::Relaxed) == 0).await);
    })
    .await
}

#[tokio::test]
async fn body_trickled_slower_than_client_ms_is_408() {
    bounded(async {
        let a = body_counting_backend().await;
        let mut cfg = config();
        cfg.timeouts.client_ms = 300;
        let p = start(cfg, vec![be("s1", a)]).await;
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            .await
            .unwrap();
        // A byte every 400 ms (the slowloris, sped up): cut at the first gap.
        let mut out = Vec::new();
        for _ in 0..10 {
            if s.write_all(b"x").await.is_err() {
                break;
            }
            let r = tokio::time::timeout(Duration::from_millis(400), s.read_to_end(&mut out));
            if r.await.is_ok() {
                break;
            }
        }
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
        let st = p.stats.clone();
        assert!(eventually(|| st.snapshot().conns_current == 0).await);
    })
    .await
}

/// A loopback backend that never answers a connect: a listener whose accept queue
/// (backlog 0) is full, so the kernel drops further SYNs — a black hole without any
/// packet leaving the machine. Keep the returned value alive.
async fn black_hole() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = sock.listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => return (addr, l, held),
        }
    }
    panic!("the accept queue of {addr} never filled");
}

#[tokio::test]
async fn black_holed_connect_is_redispatched_at_the_auto_timeout_and_marked_down() {
    bounded(async {
        let (hole, _l, _held) = black_hole().await;
        let (a2, _) = web("s2").await;
        let mut cfg = config();
        cfg.timeouts.connect_ms = None;
        cfg.error_limit = 2;
        let bs = vec![be("s1", hole), be("s2", a2)];
        // As the health checks would have measured it: a LAN-like connect time.
        bs[0].connect_sample(Duration::from_micros(200));
        let p = start(cfg, bs.clone()).await;
        // s1 is tried first each time until marked down; every request is served by s2.
        let got = names(p.addr, 4).await;
        assert_eq!(got, ["s2", "s2", "s2", "s2"]);
        assert!(!bs[0].is_up(), "s1 not marked down by observe layer4");
        assert_eq!(bs[0].counters.failures.load(Ordering::Relaxed), 2);
        assert_eq!(bs[0].counters.redispatches.load(Ordering::Relaxed), 2);
        let st = bs[0].check_state();
        // The automatic timeout of a LAN backend is the 50 ms floor.
        assert_eq!(st.last.unwrap().reason, "connect timeout (50 ms)");
        assert_eq!(st.change_reason.as_deref(), Some("connect timeout (50 ms)"));
        assert_eq!(p.stats.snapshot().responses[1], 4);
    })
    .await
}

#[tokio::test]
async fn one_deadline_covers_every_redispatch() {
    bounded(async {
        let holes = [black_hole().await, black_hole().await, black_hole().await];
        let mut cfg = config();
        cfg.timeouts.connect_ms = Some(300);
        cfg.timeouts.server_ms = 500;
        cfg.error_limit = 0;
        let bs: Vec<_> = ["s1", "s2", "s3"]
            .iter()
            .zip(&holes)
            .map(|(n, h)| be(n, h.0))
            .collect();
        let p = start(cfg, bs.clone()).await;
        let g = get(p.addr, "/").await;
        // 300 ms on s1, the 200 ms left on s2, and no time for s3: not 3 × 300 ms.
        assert_eq!(g.status, 504);
        let fails: Vec<u64> = bs
            .iter()
            .map(|b| b.counters.failures.load(Ordering::Relaxed))
            .collect();
        assert_eq!(fails, [1, 1, 0]);
        assert!(
            bs.iter().all(|b| b.is_up()),
            "error_limit 0 marks nothing down"
        );
    })
    .await
}

#[tokio::test]
async fn pooled_connections_of_a_marked_down_backend_are_not_reused() {
    bounded(async {
        let (addr, conns) = counting_backend_conns().await;
        let bs = vec![be("s1", addr)];
        let p2 = start(config(), bs.clone()).await;
        for _ in 0..3 {
            assert_eq!(get(p2.addr, "/").await.status, 200);
        }
        assert_eq!(
            conns.load(Ordering::Relaxed),
            1,
            "kept-alive connection reused"
        );
        // Marked down (and back up at once, as a recheck would): its pool is dropped.
        assert!(bs[0].mark_down("silent", Duration::ZERO).is_some());
        bs[0].record(true, "200", Duration::ZERO, false, 1, 3);
        assert!(bs[0].is_up());
        assert_eq!(get(p2.addr, "/").await.status, 200);
        assert_eq!(
            conns.load(Ordering::Relaxed),
            2,
            "a new connection after the mark-down"
        );
    })
    .await
}

/// A keep-alive backend answering "ok" to every request; counts its connections.
async fn counting_backend_conns() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n2 = n.clone();
    let addr = raw_backend(move |mut s| {
        n2.fetch_add(1, Ordering::Relaxed);
        async move {
            loop {
                if read_head(&mut s).await.is_empty() {
                    return;
                }
                let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if s.write_all(r).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    (addr, n)
}

/// Runs `f` on a current-thread runtime in a thread of its own, inside a network
/// namespace that thread creates (only a loopback, up): nftables rules the test adds
/// there touch nothing of the machine's. None when not root (the skip rule is applied).
fn in_private_netns<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = T>>> + Send + 'static,
) -> Option<T> {
    if !crate::test_prereq::need_root() {
        return None;
    }
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let up = std::process::Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("running ip");
        assert!(up.success(), "lo up in the test namespace");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .map_err(|e| std::panic::resume_unwind(e))
    .ok()
}

/// Runs `nft -f -` with `rules` (in the calling thread's namespace); Err when nft is not
/// installed, panics when it refuses the rules.
fn nft(rules: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut c = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    c.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(c.wait()?.success(), "nft refused:\n{rules}");
    Ok(())
}

/// A backend that goes silent with a kept-alive connection in the pool (every packet to
/// it dropped from then on, no reset): the GET written on that connection is never
/// acknowledged, a connect probe fails too, and the request goes to the other backend;
/// the next request's connect times out, and `error_limit` 2 marks it down. No request
/// fails.
#[test]
fn silent_pooled_backend_gets_the_request_retried_elsewhere() {
    let r = in_private_netns(|| {
        Box::pin(async {
            bounded(async {
                let (a1, _) = web("s1").await;
                let (a2, _) = web("s2").await;
                let mut cfg = config();
                cfg.timeouts.connect_ms = None;
                cfg.error_limit = 2;
                let bs = vec![be("s1", a1), be("s2", a2)];
                for b in &bs {
                    b.connect_sample(Duration::from_micros(200));
                }
                let p = start(cfg, bs.clone()).await;
                assert_eq!(names(p.addr, 2).await, ["s1", "s2"]);
                let drop_s1 = format!(
                    "table inet lbctl_test {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    tcp dport {} drop\n  }}\n}}\n",
                    a1.port()
                );
                if let Err(e) = nft(&drop_s1) {
                    return crate::test_prereq::skip(&format!("nft: {e}"));
                }
                // s1's turn, on its pooled connection: silence, then s2.
                assert_eq!(names(p.addr, 1).await, ["s2"]);
                let st = bs[0].check_state();
                assert_eq!(
                    st.last.unwrap().reason,
                    "request not acknowledged (backend silent)"
                );
                assert!(bs[0].is_up(), "one layer-4 error only so far");
                // s2, then s1 again: a new connect that times out, the second error.
                assert_eq!(names(p.addr, 2).await, ["s2", "s2"]);
                assert!(!bs[0].is_up(), "s1 not marked down");
                assert_eq!(bs[0].counters.redispatches.load(Ordering::Relaxed), 2);
                assert_eq!(p.stats.snapshot().responses[1], 5);
            })
            .await
        })
    });
    if r.is_none() {
        eprintln!("(not run)");
    }
}
