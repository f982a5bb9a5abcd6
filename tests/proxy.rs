//! Balancer tests in the lab: `lbctl agent` in bal1/bal2 proxying to real `lbctl serve`
//! processes in the server namespaces, clients in the user namespaces. Root required;
//! every lab is torn down by its guard.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sends raw bytes, returns what came back until close or timeout.
fn raw(addr: SocketAddr, req: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
}

/// Which server answered a page ("serv1"...), if any.
fn server_of(page: &str) -> Option<String> {
    let i = page.find("Esto es el servidor ")? + "Esto es el servidor ".len();
    Some(page[i..].split('<').next()?.trim().to_string())
}

fn bal1() -> SocketAddr {
    "172.16.1.250:8000".parse().unwrap()
}

fn agent_stats(lab: &str, node: &str) -> serde_json::Value {
    let r = in_node(lab, node, || {
        raw(
            "127.0.0.1:8404".parse().unwrap(),
            b"GET /stats HTTP/1.0\r\n\r\n",
            Duration::from_secs(2),
        )
    });
    let body = r.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("stats of {node}: {e}: {r}"))
}

fn backend_up(stats: &serde_json::Value, name: &str) -> bool {
    stats["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name}"))["up"]
        .as_bool()
        .unwrap()
}

/// The `LB_HEALTH` entry of backend `addr` that `node`'s agent pinned, as bpftool prints it
/// (field names from the BTF).
fn health_map_entry(lab: &str, node: &str, addr: [u8; 4]) -> serde_json::Value {
    let pin = format!("/sys/fs/bpf/lbctl/{lab}/{node}/LB_HEALTH");
    let o = std::process::Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned", &pin])
        .output()
        .expect("running bpftool");
    assert!(o.status.success(), "bpftool map dump {pin}: {o:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bpftool JSON");
    let want: Vec<u64> = addr.iter().map(|&b| u64::from(b)).collect();
    // With -j, bpftool gives raw bytes plus a "formatted" (BTF) view of each entry.
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| &e["formatted"])
        .find(|e| {
            e["key"]["addr"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect::<Vec<_>>() == want)
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no {addr:?} in {pin}: {v:#}"))["value"]
        .clone()
}

/// serv2 as bal1 sees it: (agent's /stats, pinned LB_HEALTH map, `lbctl status` which reads
/// the map).
fn serv2_up_everywhere(l: &str) -> (bool, bool, bool) {
    let st = lbctl_ok(&["status", "--lab", l, "--json"]);
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let b = st["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["node"] == "bal1")
        .expect("bal1 in status");
    assert_eq!(b["source"], "bpf", "status reads the pinned maps: {b:#}");
    (
        backend_up(&agent_stats(l, "bal1"), "serv2"),
        health_map_entry(l, "bal1", [10, 0, 0, 2])["up"] == 1,
        backend_up(b, "serv2"),
    )
}

/// How the test stops and restarts one server's web server.
#[derive(Clone, Copy, PartialEq)]
enum Web {
    Builtin,
    Apache,
}

/// configs/default.toml with `web = "apache"` on every server, in a temp dir.
fn apache_config() -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo_file("configs/default.toml")).unwrap();
    let edited = text.replace(
        "role = \"server\"\n",
        "role = \"server\"\nweb = \"apache\"\n",
    );
    let dir = std::env::temp_dir().join(format!("lbctl-apache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("apache.toml");
    std::fs::write(&p, edited).unwrap();
    p
}

/// Round robin through bal1 and bal2 with the balancers' internal addresses in the pages;
/// a backend killed under a steady client loop costs no client request, leaves rotation
/// within fall x inter and returns within rise x inter.
fn round_robin_and_backend_failure(web: Web) {
    require_root();
    let cfg = match web {
        Web::Builtin => None,
        Web::Apache => Some(apache_config()),
    };
    let lab = Lab::up(cfg.as_ref().map(|p| p.to_str().unwrap()));
    let l = lab.name.clone();
    let pages: Vec<String> = in_node(&l, "user1", || (0..6).map(|_| get(bal1(), "/")).collect());
    let order: Vec<String> = pages
        .iter()
        .map(|p| server_of(p).unwrap_or_else(|| panic!("no page: {p}")))
        .collect();
    // Consecutive requests cycle the three servers exactly, in config order.
    let start = order
        .iter()
        .position(|s| s == "serv1")
        .expect("serv1 answered");
    let cycle = ["serv1", "serv2", "serv3"];
    for (i, s) in order.iter().enumerate() {
        assert_eq!(s, cycle[(i + 3 - start) % 3], "order {order:?}");
    }
    for p in &pages {
        assert!(p.contains("direccion: 10.0.0.250"), "{p}");
        assert!(p.starts_with("HTTP/1.1 200"), "{p}");
    }
    let p = in_node(&l, "user2", || {
        get("172.16.1.251:8000".parse().unwrap(), "/")
    });
    assert!(p.contains("direccion: 10.0.0.251"), "{p}");

    // Kill serv2's web server (a daemon lbctl recorded) under a 50 ms client loop.
    let st = lab.status();
    let daemon = if web == Web::Apache {
        "apache"
    } else {
        "serve"
    };
    let pid = st["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["node"] == "serv2" && d["daemon"] == daemon)
        .unwrap_or_else(|| panic!("no {daemon} daemon for serv2: {st:#}"))["pid"]
        .as_u64()
        .unwrap();
    let l2 = l.clone();
    let client = std::thread::spawn(move || {
        in_node(&l2, "user1", || {
            let mut fails = Vec::new();
            let mut n = 0;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(9) {
                let p = get(bal1(), "/");
                n += 1;
                if !p.starts_with("HTTP/1.1 200") {
                    fails.push(p);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (n, fails)
        })
    });
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    // SIGTERM: the built-in server closes its listener and exits, Apache ends its process
    // group (SIGKILL on the parent would leave its children serving). A stop asked with
    // SIGTERM is clean to the lab's supervisor, which does not restart the server (SIGKILL
    // would bring it back within 100 ms).
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    // Out of rotation within fall x inter (3 x 2 s), plus one check period of slack.
    // The agent, its pinned health map and `lbctl status` (which reads the map) must all
    // agree; the map is written within 100 ms of the agent's change.
    let mut down_after = None;
    while killed.elapsed() < Duration::from_secs(9) {
        if serv2_up_everywhere(&l) == (false, false, false) {
            down_after = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let down_after = down_after.expect("serv2 never marked down (agent, map and status)");
    let e = health_map_entry(&l, "bal1", [10, 0, 0, 2]);
    assert_eq!(e["last"], 2, "last observation failed: {e:#}");
    assert!(e["transitions"].as_u64().unwrap() >= 1, "{e:#}");
    eprintln!(
        "serv2 marked down {:.1} s after it died",
        down_after.as_secs_f32()
    );
    assert!(down_after <= Duration::from_secs(8), "{down_after:?}");
    let (n, fails) = client.join().unwrap();
    assert!(n > 50, "client loop made only {n} requests");
    assert!(
        fails.is_empty(),
        "{} of {n} client requests failed: {:?}",
        fails.len(),
        fails.first()
    );

    // Restart it: back in rotation within rise x inter (2 x 2 s) plus slack.
    let mut cmd = std::process::Command::new(lbctl_bin());
    cmd.args(["exec", "--lab", &l, "serv2", "--"]);
    match web {
        Web::Builtin => {
            cmd.args([
                lbctl_bin().to_str().unwrap(),
                "serve",
                "--name",
                "serv2",
                "--listen",
                "0.0.0.0:80",
            ]);
        }
        Web::Apache => {
            let conf = format!("/run/lbctl/{l}/apache/serv2/apache2.conf");
            cmd.args(["apache2", "-f", &conf, "-DFOREGROUND"]);
        }
    }
    // Its own process group: Apache's SIGTERM takes its whole group down.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let restarted = Instant::now();
    let mut up_after = None;
    while restarted.elapsed() < Duration::from_secs(8) {
        if serv2_up_everywhere(&l) == (true, true, true) {
            up_after = Some(restarted.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let up_after = up_after.expect("serv2 never came back");
    eprintln!(
        "serv2 back up {:.1} s after restart",
        up_after.as_secs_f32()
    );
    assert!(up_after <= Duration::from_secs(6), "{up_after:?}");
}

#[test]
fn round_robin_and_backend_failure_builtin() {
    round_robin_and_backend_failure(Web::Builtin);
}

#[test]
fn round_robin_and_backend_failure_apache() {
    round_robin_and_backend_failure(Web::Apache);
}

/// Bad requests from a user through bal1: each gets its error code, and a fresh good
/// request right after still works.
#[test]
fn bad_requests_through_the_lab() {
    require_root();
    let lab = Lab::up(None);
    let l = lab.name.clone();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let cases: Vec<(&str, String, &str)> = vec![
        ("TE + CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n".into(), "HTTP/1.1 "),
        ("two Content-Lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".into(), "HTTP/1.1 400"),
        ("TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc".into(), "HTTP/1.1 400"),
        ("20 kB header", big, "HTTP/1.1 431"),
        ("150 headers", many, "HTTP/1.1 431"),
        ("HTTP/0.9", "GET /\r\n".into(), "HTTP/1.1 400"),
    ];
    for (what, req, expect) in cases {
        let (resp, good) = in_node(&l, "user1", move || {
            let r = raw(bal1(), req.as_bytes(), Duration::from_secs(3));
            (r, get(bal1(), "/"))
        });
        assert!(
            resp.starts_with(expect),
            "{what}: expected {expect}, got {resp:?}"
        );
        if what == "TE + CL" {
            assert!(
                !resp.contains("404"),
                "smuggled request reached a backend: {resp}"
            );
        }
        assert!(
            good.starts_with("HTTP/1.1 200"),
            "good request after {what}: {good}"
        );
    }
    // Slowloris: a request head that never completes gets 408 after http_request_ms (5 s).
    let (resp, took, good) = in_node(&l, "user1", || {
        let t = Instant::now();
        let r = raw(
            bal1(),
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ",
            Duration::from_secs(10),
        );
        (r, t.elapsed(), get(bal1(), "/"))
    });
    assert!(resp.starts_with("HTTP/1.1 408"), "slowloris: {resp:?}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert!(good.starts_with("HTTP/1.1 200"));
    // An idle keep-alive connection is closed after keep_alive_ms (10 s) without a response.
    let (resp, took) = in_node(&l, "user1", || {
        let t = Instant::now();
        let r = raw(bal1(), b"", Duration::from_secs(15));
        (r, t.elapsed())
    });
    assert!(resp.is_empty(), "idle connection got {resp:?}");
    assert!(
        took < Duration::from_secs(14),
        "idle connection not closed: {took:?}"
    );
}

/// Weights, cookie stickiness and path routing, proven through bal1.
#[test]
fn weights_cookies_and_routes() {
    require_root();
    let text = std::fs::read_to_string(repo_file("configs/default.toml")).unwrap();
    let edited = text
        .replace("balance = \"roundrobin\"\n", "balance = \"roundrobin\"\ncookie = \"SRV\"\n")
        .replace("[[service.backend]]\nnode = \"serv1\"\n", "[[service.backend]]\nnode = \"serv1\"\nweight = 2\n")
        .replace("[[service.backend]]\nnode = \"serv3\"\n", "[[service.backend]]\nnode = \"serv3\"\npool = \"static\"\n\n[[service.route]]\npath_prefix = \"/static/\"\npool = \"static\"\n\n[[service.route]]\nextensions = [\"png\", \"css\"]\npool = \"static\"\n");
    assert!(
        edited.contains("weight = 2")
            && edited.contains("pool = \"static\"")
            && edited.contains("cookie")
    );
    let dir = std::env::temp_dir().join(format!("lbctl-wcr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wcr.toml");
    std::fs::write(&f, edited).unwrap();
    let lab = Lab::up(Some(f.to_str().unwrap()));
    let l = lab.name.clone();
    let served = |r: &str| -> String {
        r.lines()
            .find_map(|h| {
                h.to_ascii_lowercase()
                    .strip_prefix("x-served-by: ")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    // Weights 2:1 over serv1/serv2, spread smoothly: never serv2 twice in a row.
    let seq: Vec<String> = in_node(&l, "user1", || {
        (0..9).map(|_| get(bal1(), "/")).collect::<Vec<String>>()
    })
    .iter()
    .map(|r| served(r))
    .collect();
    let ones = seq.iter().filter(|s| *s == "serv1").count();
    let twos = seq.iter().filter(|s| *s == "serv2").count();
    assert_eq!(ones + twos, 9, "{seq:?}");
    assert_eq!((ones, twos), (6, 3), "{seq:?}");
    assert!(
        !seq.windows(2).any(|w| w[0] == "serv2" && w[1] == "serv2"),
        "{seq:?}"
    );
    // Path routing: /static/ and .png/.css go to the static pool (serv3) only.
    let routed: Vec<String> = in_node(&l, "user1", || {
        ["/static/a.js", "/img/logo.png", "/site.css", "/static/b"]
            .iter()
            .map(|p| get(bal1(), p))
            .collect::<Vec<String>>()
    })
    .iter()
    .map(|r| served(r))
    .collect();
    assert!(routed.iter().all(|s| s == "serv3"), "{routed:?}");
    // Cookie insertion: the first answer sets SRV=<server>; sending it back sticks to it.
    let first = in_node(&l, "user1", || get(bal1(), "/"));
    let cookie = first
        .lines()
        .find_map(|h| {
            h.to_ascii_lowercase()
                .starts_with("set-cookie: srv=")
                .then(|| h.to_string())
        })
        .unwrap_or_else(|| panic!("no Set-Cookie: {first}"));
    let who = served(&first);
    let val = cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let sticky: Vec<String> = in_node(&l, "user1", move || {
        (0..5)
            .map(|_| {
                raw(
                    bal1(),
                    format!(
                        "GET / HTTP/1.1\r\nHost: a\r\nCookie: {val}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                    Duration::from_secs(3),
                )
            })
            .collect::<Vec<String>>()
    })
    .iter()
    .map(|r| served(r))
    .collect();
    assert!(
        sticky.iter().all(|s| *s == who),
        "cookie for {who}: {sticky:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the VXLAN the internal LAN is two halves: bal1's checks see serv3 down, bal2's
/// see serv1 and serv2 down, and each balancer serves only its half.
#[test]
fn health_checks_without_the_tunnel() {
    require_root();
    let text = std::fs::read_to_string(repo_file("configs/default.toml")).unwrap();
    let start = text.find("[vxlan]").unwrap();
    let end = text.find("# The balanced service").unwrap();
    let cut = format!("{}{}", &text[..start], &text[end..]);
    let dir = std::env::temp_dir().join(format!("lbctl-novx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("novxlan.toml");
    std::fs::write(&f, cut).unwrap();
    let lab = Lab::up(Some(f.to_str().unwrap()));
    let l = lab.name.clone();
    // fall x inter = 6 s after start; wait for both views to settle.
    let t = Instant::now();
    loop {
        let s1 = agent_stats(&l, "bal1");
        let s2 = agent_stats(&l, "bal2");
        let ok = backend_up(&s1, "serv1")
            && backend_up(&s1, "serv2")
            && !backend_up(&s1, "serv3")
            && !backend_up(&s2, "serv1")
            && !backend_up(&s2, "serv2")
            && backend_up(&s2, "serv3");
        if ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "views did not settle: {s1:#} {s2:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let servers: Vec<String> = in_node(&l, "user1", || {
        (0..4)
            .map(|_| server_of(&get(bal1(), "/")).unwrap_or_default())
            .collect()
    });
    assert!(
        servers.iter().all(|s| s == "serv1" || s == "serv2"),
        "{servers:?}"
    );
    assert!(servers.contains(&"serv1".to_string()) && servers.contains(&"serv2".to_string()));
    let s: Vec<String> = in_node(&l, "user2", || {
        (0..3)
            .map(|_| server_of(&get("172.16.1.251:8000".parse().unwrap(), "/")).unwrap_or_default())
            .collect()
    });
    assert!(s.iter().all(|x| x == "serv3"), "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// On loopback, no lab: the proxy and the admin port started in this process, under load
// from idle and slow clients (issue 12's "a fresh client still gets its page").

mod loopback {
    use lbctl::agent::admin;
    use lbctl::balance::backend::BackendState;
    use lbctl::proxy::{self, ProxyConfig};
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A port nobody listens on right now (bound once, then let go).
    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    /// Descriptors this process has open.
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// Raises RLIMIT_NOFILE as the agent does; false (with the skip line) if the hard limit
    /// is below `need`.
    fn enough_fds(need: u64) -> bool {
        let l = lbctl::fd_limit::raise().expect("reading RLIMIT_NOFILE");
        if l.now < need {
            lbctl::test_prereq::skip(&format!("open-file hard limit {} < {need}", l.now));
            return false;
        }
        true
    }

    /// A web server answering every request with the built-in server's page.
    async fn backend() -> SocketAddr {
        use hyper::service::service_fn;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, peer)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| async move {
                        let page = lbctl::webserver::page("serv1", peer.ip());
                        let body = http_body_util::Full::new(bytes::Bytes::from(page));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(body))
                    });
                    let io = hyper_util::rt::TokioIo::new(s);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        addr
    }

    /// The proxy with the default timeouts and limits on `listen`, one thread; stops when
    /// the returned sender is dropped.
    fn start_proxy(listen: SocketAddr, web: SocketAddr) -> tokio::sync::oneshot::Sender<()> {
        start_proxy_with(listen, web, Default::default())
    }

    fn start_proxy_with(
        listen: SocketAddr,
        web: SocketAddr,
        timeouts: lbctl::config::Timeouts,
    ) -> tokio::sync::oneshot::Sender<()> {
        let cfg = ProxyConfig {
            listen: vec![listen],
            source: Some("127.0.0.1".parse().unwrap()),
            timeouts,
            limits: Default::default(),
            balance: Default::default(),
            cookie: None,
            routes: vec![],
            rise: 2,
            fall: 3,
            error_limit: 2,
            threads: 1,
        };
        let b = Arc::new(BackendState::new("serv1", web, 1, "default"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            proxy::run(cfg, vec![b], stop).await.expect("proxy");
        });
        tx
    }

    /// One GET with everything (connect, request, whole response) inside `deadline`:
    /// whether the page came, and how long it took.
    async fn fresh_get(addr: SocketAddr, deadline: Duration) -> (bool, Duration) {
        let t = Instant::now();
        let got = tokio::time::timeout(deadline, async {
            let mut s = TcpStream::connect(addr).await.ok()?;
            let req = b"GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n";
            s.write_all(req).await.ok()?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await.ok()?;
            Some(String::from_utf8_lossy(&out).into_owned())
        })
        .await;
        let ok = matches!(got, Ok(Some(p)) if p.starts_with("HTTP/1.1 200")
            && p.contains("Esto es el servidor serv1"));
        (ok, t.elapsed())
    }

    /// A slowloris client: a request head, one byte every `every`, until the proxy answers
    /// or closes. Returns what it read (the proxy's 408, if it sent one).
    async fn slow_client(addr: SocketAddr, every: Duration) -> String {
        let head = b"GET / HTTP/1.1\r\nHost: svc\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return "connect failed".into();
        };
        let mut out = Vec::new();
        for b in head {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(every, s.read(&mut buf)).await {
                // Nothing within `every`: the next byte.
                Err(_) => continue,
                Ok(Ok(n)) if n > 0 => {
                    out.extend_from_slice(&buf[..n]);
                    let _ = tokio::time::timeout(every, s.read_to_end(&mut out)).await;
                    break;
                }
                Ok(_) => break,
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Connections to the admin port that never send a byte.
    async fn idle_admin(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(TcpStream::connect(addr).await.expect("admin connect"));
        }
        v
    }

    /// Issue 12's target: 1,000 idle admin connections and 2,000 slowloris clients (a
    /// byte every 10 s) at once, and a fresh client still gets its page: 0 of 10 fresh
    /// requests fail with a 100 ms deadline. Then every slow client is cut (408 after
    /// http_request_ms) and the admin port never held more than its cap of descriptors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fresh_client_served_beside_1000_idle_admin_and_2000_slow_clients() {
        if !enough_fds(8000) {
            return;
        }
        let (listen, admin_addr) = (free_port(), free_port());
        let web = backend().await;
        let _stop = start_proxy(listen, web);
        let task = admin::serve(admin_addr, "bal1".into(), vec![], None, None).await;
        let admin_task = task.expect("admin port");
        // The proxy listens once a fresh request gets through.
        for _ in 0..100 {
            if fresh_get(listen, Duration::from_secs(1)).await.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = open_fds();
        let idle = idle_admin(admin_addr, 1000).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // 1,000 on our side, at most the cap on the admin port's (plus other tests' noise).
        let admin_fds = open_fds() - before;
        assert!(
            admin_fds <= 1000 + admin::MAX_CONNS + 100,
            "{admin_fds} descriptors"
        );
        let slow: Vec<_> = (0..2000)
            .map(|_| tokio::spawn(slow_client(listen, Duration::from_secs(10))))
            .collect();
        let held = |n| async move {
            for _ in 0..250 {
                if proxy::frontend_stats().snapshot().conns_current >= n {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        };
        assert!(held(2000).await, "{:?}", proxy::frontend_stats().snapshot());
        let mut failed = 0;
        let mut took = Vec::new();
        for _ in 0..10 {
            let (ok, t) = fresh_get(listen, Duration::from_millis(100)).await;
            failed += usize::from(!ok);
            took.push(t.as_secs_f64() * 1000.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let still = proxy::frontend_stats().snapshot().conns_current;
        took.sort_by(f64::total_cmp);
        println!(
            "fresh requests beside 1000 idle admin + {still} open proxy connections: \
             {failed} of 10 failed (100 ms deadline); latency ms min {:.2} median {:.2} max {:.2}; \
             descriptors the admin port took for 1000 idle connections: {}",
            took[0],
            took[5],
            took[9],
            admin_fds.saturating_sub(1000)
        );
        assert_eq!(failed, 0, "fresh requests that failed; latencies {took:?}");
        assert!(still >= 2000, "the slow clients were still held: {still}");
        // Every slowloris is cut with a 408 after http_request_ms (5 s), well before its
        // next byte would even have been due twice.
        let mut cut = 0;
        for s in slow {
            let out = tokio::time::timeout(Duration::from_secs(20), s).await;
            cut += usize::from(matches!(out, Ok(Ok(o)) if o.starts_with("HTTP/1.1 408")));
        }
        assert_eq!(cut, 2000, "slow clients cut with 408");
        drop(idle);
        admin_task.abort();
    }

    /// A backend answering every request with a 64 MiB body.
    async fn big_backend() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let len = 64usize << 20;
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                    let _ = s.write_all(head.as_bytes()).await;
                    let chunk = vec![b'x'; 1 << 16];
                    for _ in 0..len / chunk.len() {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Reads until the proxy closes, for at most `limit`: what came, or None if the
    /// connection was still open then.
    async fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
        let mut out = Vec::new();
        match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
            Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
            Err(_) => None,
        }
    }

    /// The client-side timeouts through the public proxy: a kept-alive connection idle for
    /// keep_alive_ms, a request head trickled past http_request_ms (408), and a client that
    /// stops taking its response for client_ms are each closed; none is left open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn client_side_timeouts_close_idle_slow_and_stalled_clients() {
        let ms = Duration::from_millis;
        let timeouts = lbctl::config::Timeouts {
            http_request_ms: 300,
            keep_alive_ms: 300,
            client_ms: 300,
            ..Default::default()
        };
        let listen = free_port();
        let _stop = start_proxy_with(listen, big_backend().await, timeouts);
        let mut up = false;
        for _ in 0..100 {
            if TcpStream::connect(listen).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(ms(20)).await;
        }
        assert!(up, "proxy listening");
        // Keep-alive: a first request answered (HEAD: no body), then idle: closed.
        let mut ka = TcpStream::connect(listen).await.unwrap();
        ka.write_all(b"HEAD / HTTP/1.1\r\nHost: svc\r\n\r\n")
            .await
            .unwrap();
        let got = until_closed(&mut ka, ms(3000)).await;
        assert!(
            got.as_deref()
                .is_some_and(|g| g.starts_with("HTTP/1.1 200")),
            "{got:?}"
        );
        // Slowloris: a byte every 200 ms never completes a head within 300 ms.
        let mut slow = TcpStream::connect(listen).await.unwrap();
        let mut got = None;
        for b in b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            if let Some(g) = until_closed(&mut slow, ms(200)).await {
                got = Some(g);
                break;
            }
        }
        let got = got.unwrap_or_default();
        assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
        // Mid-request: the client reads a little of a 64 MiB answer, then nothing for
        // 3 s; then it drains what is left: the proxy closed long before the end.
        let mut stall = TcpStream::connect(listen).await.unwrap();
        stall
            .write_all(b"GET /big HTTP/1.1\r\nHost: svc\r\n\r\n")
            .await
            .unwrap();
        let mut some = vec![0u8; 4096];
        stall.read_exact(&mut some).await.unwrap();
        tokio::time::sleep(ms(3000)).await;
        let mut sink = vec![0u8; 1 << 20];
        let mut total = some.len();
        let closed = tokio::time::timeout(ms(10_000), async {
            loop {
                match stall.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "still open after {total} bytes");
        assert!(total < 60 << 20, "most of the answer came: {total} bytes");
    }

    /// The admin port serves at most MAX_CONNS connections: one more waits in the listen
    /// queue until the idle ones are closed by the header-read timeout, then is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_port_caps_connections_and_closes_idle_ones() {
        let addr = free_port();
        let task = admin::serve(addr, "bal1".into(), vec![], None, None).await;
        let task = task.expect("admin port");
        let mut idle = idle_admin(addr, admin::MAX_CONNS).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = TcpStream::connect(addr).await.unwrap();
        extra
            .write_all(b"GET /stats HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        // Over the cap: not served while the others hold every slot.
        let early = tokio::time::timeout(Duration::from_secs(1), extra.read_to_end(&mut out));
        assert!(early.await.is_err(), "answered over the cap: {out:?}");
        // The idle ones are closed (header-read timeout), then the extra one is served.
        let limit = admin::HEADER_TIMEOUT + Duration::from_secs(5);
        let mut closed = 0;
        for s in &mut idle {
            let mut b = [0u8; 16];
            let r = tokio::time::timeout(limit, s.read(&mut b)).await;
            closed += usize::from(matches!(r, Ok(Ok(0)) | Ok(Err(_))));
        }
        assert_eq!(closed, admin::MAX_CONNS, "idle admin connections closed");
        tokio::time::timeout(limit, extra.read_to_end(&mut out))
            .await
            .expect("answered once a slot was free")
            .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains("\"node\": \"bal1\""), "{out}");
        task.abort();
    }
}
