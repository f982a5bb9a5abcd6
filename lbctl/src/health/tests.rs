//! Health checks against throw-away servers on 127.0.0.1 (no root needed).

use super::*;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn http_check(timeout_ms: u64) -> Check {
    Check {
        timeout_ms,
        ..Check::default()
    }
}

fn tcp_check() -> Check {
    Check {
        kind: CheckKind::Tcp,
        timeout_ms: 500,
        ..Check::default()
    }
}

/// What a test server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Reads the request head, writes these bytes, closes.
    Answer(&'static [u8]),
    /// Accepts and never answers (holds the connection).
    Silent,
    /// Reads the request head, then resets the connection (SO_LINGER 0).
    Reset,
    /// Closes at once without reading or writing.
    Close,
}

/// Reads up to the end of a request head (or EOF).
async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

/// Serves `b` on `listener`; every request head and peer is sent to the returned channel.
fn serve_on(
    listener: TcpListener,
    b: Behaviour,
) -> (
    JoinHandle<()>,
    mpsc::UnboundedReceiver<(SocketAddr, String)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let held = Arc::new(Mutex::new(Vec::new()));
        loop {
            let Ok((mut s, peer)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let held = held.clone();
            tokio::spawn(async move {
                match b {
                    Behaviour::Answer(resp) => {
                        let req = read_request(&mut s).await;
                        let _ = tx.send((peer, String::from_utf8_lossy(&req).into_owned()));
                        let _ = s.write_all(resp).await;
                        let _ = s.shutdown().await;
                    }
                    Behaviour::Silent => held.lock().unwrap().push(s),
                    Behaviour::Reset => {
                        let _ = read_request(&mut s).await;
                        // SO_LINGER 0: close sends a RST instead of a FIN.
                        let _ = nix::sys::socket::setsockopt(
                            &s,
                            nix::sys::socket::sockopt::Linger,
                            &libc::linger {
                                l_onoff: 1,
                                l_linger: 0,
                            },
                        );
                        drop(s);
                    }
                    Behaviour::Close => drop(s),
                }
            });
        }
    });
    (task, rx)
}

async fn server(b: Behaviour) -> (SocketAddr, mpsc::UnboundedReceiver<(SocketAddr, String)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (_task, rx) = serve_on(l, b);
    (addr, rx)
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

const OK_200: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
const ERR_500: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn http_200_is_ok_and_the_request_is_well_formed() {
    let (addr, mut rx) = server(Behaviour::Answer(OK_200)).await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Ok("status 200".into())
    );
    let (_, req) = rx.recv().await.unwrap();
    assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req:?}");
    assert!(req.contains(&format!("\r\nHost: {addr}\r\n")), "{req:?}");
    assert!(req.contains("\r\nUser-Agent: lbctl-health\r\n"), "{req:?}");
    assert!(req.contains("\r\nConnection: close\r\n"), "{req:?}");
    assert!(req.ends_with("\r\n\r\n"), "{req:?}");
}

#[tokio::test]
async fn method_and_path_come_from_the_config() {
    let (addr, mut rx) = server(Behaviour::Answer(OK_200)).await;
    let c = Check {
        method: "HEAD".into(),
        path: "/status?full=1".into(),
        ..http_check(1000)
    };
    assert!(check_once(addr, &c, None).await.is_ok());
    let (_, req) = rx.recv().await.unwrap();
    assert!(
        req.starts_with("HEAD /status?full=1 HTTP/1.1\r\n"),
        "{req:?}"
    );
}

#[tokio::test]
async fn http_500_fails_with_its_status() {
    let (addr, _rx) = server(Behaviour::Answer(ERR_500)).await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Err("status 500".into())
    );
}

#[tokio::test]
async fn expect_status_range_is_applied() {
    let (addr, _rx) = server(Behaviour::Answer(
        b"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n",
    ))
    .await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Ok("status 301".into()),
        "301 is within the default 200-399"
    );
    let strict = Check {
        expect_status: "200".into(),
        ..http_check(1000)
    };
    assert_eq!(
        check_once(addr, &strict, None).await,
        Err("status 301".into())
    );
}

#[tokio::test]
async fn interim_1xx_heads_are_skipped() {
    let (addr, _rx) = server(Behaviour::Answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Busy\r\n\r\n",
    ))
    .await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Err("status 503".into())
    );
}

#[tokio::test]
async fn connection_refused() {
    let addr = closed_port().await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Err("connection refused".into())
    );
    assert_eq!(
        check_once(addr, &tcp_check(), None).await,
        Err("connection refused".into())
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (addr, _rx) = server(Behaviour::Silent).await;
    let t = std::time::Instant::now();
    assert_eq!(
        check_once(addr, &http_check(200), None).await,
        Err("timeout after 200 ms".into())
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[tokio::test]
async fn garbage_is_an_invalid_response_without_waiting_for_the_timeout() {
    for g in [
        &b"garbage\r\n\r\n"[..],
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", // closed before the head ends
        b"\x00\x01\x02\x03",
    ] {
        let leaked: &'static [u8] = Box::leak(g.to_vec().into_boxed_slice());
        let (addr, _rx) = server(Behaviour::Answer(leaked)).await;
        let t = std::time::Instant::now();
        assert_eq!(
            check_once(addr, &http_check(3000), None).await,
            Err("invalid HTTP response".into()),
            "{:?}",
            String::from_utf8_lossy(g)
        );
        assert!(t.elapsed() < Duration::from_millis(1000));
    }
}

#[tokio::test]
async fn garbage_that_keeps_the_connection_open_fails_at_once() {
    // No newline and no close: the prefix alone shows it is not HTTP.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let _ = read_request(&mut s).await;
        s.write_all(b"220 mail.example ESMTP").await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let t = std::time::Instant::now();
    assert_eq!(
        check_once(addr, &http_check(3000), None).await,
        Err("invalid HTTP response".into())
    );
    assert!(t.elapsed() < Duration::from_millis(1000));
}

#[tokio::test]
async fn reset_and_close_without_response() {
    let (addr, _rx) = server(Behaviour::Reset).await;
    assert_eq!(
        check_once(addr, &http_check(1000), None).await,
        Err("connection reset".into())
    );
    let (addr, _rx) = server(Behaviour::Close).await;
    let r = check_once(addr, &http_check(1000), None).await;
    assert!(
        r == Err("connection closed without response".into())
            || r == Err("connection reset".into()),
        "{r:?}"
    );
}

#[tokio::test]
async fn tcp_mode_only_connects() {
    // A silent server is healthy for a TCP check.
    let (addr, _rx) = server(Behaviour::Silent).await;
    assert_eq!(
        check_once(addr, &tcp_check(), None).await,
        Ok("connected".into())
    );
}

#[tokio::test]
async fn source_address_is_bound_before_connect() {
    let (addr, mut rx) = server(Behaviour::Answer(OK_200)).await;
    let src: IpAddr = "127.0.0.2".parse().unwrap();
    assert!(check_once(addr, &http_check(1000), Some(src)).await.is_ok());
    let (peer, _) = rx.recv().await.unwrap();
    assert_eq!(peer.ip(), src);
    // A source the machine does not have cannot be bound.
    let r = check_once(addr, &http_check(1000), Some("192.0.2.77".parse().unwrap())).await;
    assert_eq!(r, Err("cannot assign requested address".into()));
}

#[test]
fn parser_cases() {
    assert_eq!(parse_head(b""), Head::Partial);
    assert_eq!(parse_head(b"HTT"), Head::Partial);
    assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Head::Partial);
    assert_eq!(parse_head(b"HTTP/1.1 204\r\n\r\n"), Head::Final(204));
    assert_eq!(parse_head(b"HTTP/1.0 200 OK\n\n"), Head::Final(200));
    assert_eq!(
        parse_head(b"HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\nbody"),
        Head::Final(200)
    );
    assert_eq!(
        parse_head(b"HTTP/1.1 100 Continue\r\n\r\n"),
        Head::Interim(25)
    );
    assert_eq!(
        parse_head(b"HTTP/1.1 101 Switching\r\n\r\n"),
        Head::Final(101)
    );
    assert_eq!(parse_head(b"HTTP/1.1 099 x\r\n\r\n"), Head::Invalid);
    assert_eq!(parse_head(b"HTTP/1.1 600 x\r\n\r\n"), Head::Invalid);
    assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n: v\r\n\r\n"), Head::Invalid);
    assert_eq!(parse_head(b"http/1.1 200 OK\r\n\r\n"), Head::Invalid);
    assert_eq!(parse_head(&[b'H'; 3][..]), Head::Invalid);
}

#[tokio::test]
async fn bad_check_settings_are_reported() {
    let addr = closed_port().await;
    let c = Check {
        path: "no-slash".into(),
        ..http_check(100)
    };
    assert!(check_once(addr, &c, None)
        .await
        .unwrap_err()
        .starts_with("invalid check path"));
    let c = Check {
        method: "GE T".into(),
        ..http_check(100)
    };
    assert!(check_once(addr, &c, None)
        .await
        .unwrap_err()
        .starts_with("invalid check method"));
}

/// A listener bound with SO_REUSEADDR so the port can be taken again after a stop.
fn listen_on(addr: SocketAddr) -> TcpListener {
    let s = TcpSocket::new_v4().unwrap();
    s.set_reuseaddr(true).unwrap();
    s.bind(addr).unwrap();
    s.listen(128).unwrap()
}

/// Polls `f` every 5 ms until true or `limit`; returns the time it took.
async fn within(limit: Duration, f: impl Fn() -> bool) -> Option<Duration> {
    let t = std::time::Instant::now();
    while t.elapsed() <= limit {
        if f() {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test]
async fn spawn_takes_a_dead_backend_out_and_brings_it_back() {
    let check = Check {
        inter_ms: 100,
        fastinter_ms: 50,
        downinter_ms: 100,
        timeout_ms: 80,
        rise: 2,
        fall: 3,
        ..Check::default()
    };
    // Scheduling slack on top of fall/rise × inter (and the ±5 % jitter).
    let slack = Duration::from_millis(250);
    let inter = Duration::from_millis(check.inter_ms);

    let l = listen_on("127.0.0.1:0".parse().unwrap());
    let addr = l.local_addr().unwrap();
    let (srv, _rx) = serve_on(l, Behaviour::Answer(OK_200));
    let other = closed_port().await;

    let good = Arc::new(BackendState::new("good", addr, 1, "default"));
    let dead = Arc::new(BackendState::new("dead", other, 1, "default"));
    let tasks = spawn(&[good.clone(), dead.clone()], &check, None);
    assert_eq!(tasks.len(), 2);

    // The first check runs at once: a dead backend is out after fall checks.
    let t = within(inter * 2 + slack, || !dead.is_up()).await;
    assert!(t.is_some(), "never-up backend still in rotation");
    let st = dead.check_state();
    assert_eq!(st.last.as_ref().unwrap().reason, "connection refused");
    assert!(!st.last.unwrap().passive);

    // Healthy backend: checked, stays up.
    tokio::time::sleep(inter * 2).await;
    assert!(good.is_up());
    let st = good.check_state();
    assert_eq!(st.last.unwrap().reason, "status 200");
    assert!(st.consecutive_ok >= 2);
    assert_eq!(st.transitions, 0);

    // Stop it: out of rotation within fall × inter.
    srv.abort();
    let _ = srv.await;
    let t = within(inter * check.fall + slack, || !good.is_up()).await;
    assert!(t.is_some(), "backend not down within fall × inter");
    assert_eq!(good.check_state().transitions, 1);

    // Bring it back on the same port: in rotation within rise × inter.
    let (_srv, _rx) = serve_on(listen_on(addr), Behaviour::Answer(OK_200));
    let t = within(inter * check.rise + slack, || good.is_up()).await;
    assert!(t.is_some(), "backend not back within rise × inter");
    assert_eq!(good.check_state().transitions, 2);

    for t in tasks {
        t.abort();
    }
}

#[test]
fn intervals_follow_the_state() {
    let c = Check {
        inter_ms: 2000,
        fastinter_ms: 250,
        downinter_ms: 1000,
        ..Check::default()
    };
    let ms = |up, ok, fail| interval(&c, up, ok, fail).as_millis();
    assert_eq!(ms(true, 5, 0), 2000, "up and well");
    assert_eq!(ms(true, 0, 1), 250, "up, failing: going down");
    assert_eq!(ms(false, 0, 4), 1000, "down");
    assert_eq!(ms(false, 1, 0), 250, "down, succeeding: coming up");
    let tiny = Check {
        fastinter_ms: 0,
        ..c
    };
    assert_eq!(interval(&tiny, true, 0, 1), Duration::from_millis(10));
}

/// Live traffic marking a backend down wakes its checker at once (no waiting out a long
/// `inter`), and the checks then run at `fastinter` until it is back: a healthy backend
/// marked down by mistake returns within about rise × fastinter. The checks also measure
/// its connect time for the proxy.
#[tokio::test]
async fn a_mark_down_triggers_fast_checks() {
    let check = Check {
        inter_ms: 20_000,
        fastinter_ms: 50,
        downinter_ms: 20_000,
        timeout_ms: 500,
        ..Check::default()
    };
    let l = listen_on("127.0.0.1:0".parse().unwrap());
    let addr = l.local_addr().unwrap();
    let (_srv, _rx) = serve_on(l, Behaviour::Answer(OK_200));
    let b = Arc::new(BackendState::new("b", addr, 1, "default"));
    let tasks = spawn(std::slice::from_ref(&b), &check, None);
    assert!(
        within(Duration::from_secs(2), || b.check_state().consecutive_ok
            >= 1)
        .await
        .is_some(),
        "first check never ran"
    );
    assert!(
        b.estimate().smoothed().is_some(),
        "no connect time measured"
    );
    assert!(b.mark_down("silent", Duration::ZERO).is_some());
    assert!(!b.is_up());
    // inter and downinter are 20 s: only the wake-up and fastinter can bring it back.
    let back = within(Duration::from_secs(3), || b.is_up()).await;
    assert!(back.is_some(), "not back up: {:?}", b.check_state());
    assert_eq!(b.check_state().transitions, 2);
    for t in tasks {
        t.abort();
    }
}

#[test]
fn jitter_stays_within_five_percent_and_varies() {
    let b = BackendState::new("x", "127.0.0.1:1".parse().unwrap(), 1, "default");
    let mut j = Jitter::new(&b);
    let inter = Duration::from_millis(2000);
    let v: Vec<Duration> = (0..200).map(|_| j.apply(inter)).collect();
    assert!(v
        .iter()
        .all(|d| *d >= Duration::from_millis(1900) && *d <= Duration::from_millis(2100)));
    let distinct: std::collections::HashSet<_> = v.iter().collect();
    assert!(distinct.len() > 20);
}

/// Against a real Apache + PHP instance (the lab's backend config) when apache2 is
/// installed and we are root (Apache drops to www-data).
#[tokio::test]
async fn checks_a_real_apache() {
    let bin = std::path::Path::new(crate::topo::daemons::apache::APACHE_BIN);
    if !crate::test_prereq::need_root() {
        return;
    }
    if !bin.exists() {
        return crate::test_prereq::skip("apache2 not installed (apt-get install -y apache2)");
    }
    let tmp = tempfile::tempdir().unwrap();
    // Apache's children (www-data) must reach the docroot.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let addr = closed_port().await;
    let conf = crate::topo::daemons::apache::write_instance(tmp.path(), "t1", addr).unwrap();
    let mut child = tokio::process::Command::new(bin)
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        // Its own process group: prefork's shutdown signals its whole group.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tcp = tcp_check();
    let mut up = false;
    for _ in 0..100 {
        if check_once(addr, &tcp, None).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = check_once(addr, &http_check(2000), None).await;
    let missing = Check {
        path: "/nope".into(),
        ..http_check(2000)
    };
    let missing = check_once(addr, &missing, None).await;
    let page = Check {
        path: "/".into(),
        expect_status: "200".into(),
        ..http_check(2000)
    };
    let page = check_once(addr, &page, None).await;
    // SIGTERM: Apache stops its children, then exits.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let log = std::fs::read_to_string(tmp.path().join("error.log")).unwrap_or_default();
    assert!(up, "Apache did not start: {log}");
    assert_eq!(health, Ok("status 200".into()), "{log}");
    assert_eq!(missing, Err("status 404".into()));
    assert_eq!(page, Ok("status 200".into()));
}
