//! `lbctl probe`: a bounded client loop that measures what a user sees during a failure:
//! one HTTP GET every period, each with a deadline, reporting failed requests and the
//! longest gap between two successes (the user-visible outage). Run it inside a node:
//! `lbctl exec user2 -- lbctl probe --url http://172.16.1.254:8000/ --duration-ms 15000`.
#![forbid(unsafe_code)]

use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize, Default)]
pub struct ProbeReport {
    pub requests: u64,
    pub failed: u64,
    /// Longest time between two successful answers, in ms (0 when nothing failed).
    pub outage_ms: u64,
    /// Time of the first failure since the probe started, in ms.
    pub first_failure_ms: Option<u64>,
    /// Time of the first success after the last failure, in ms.
    pub recovered_ms: Option<u64>,
    /// Which backend ("servidor …") answered, in order of first appearance.
    pub servers: Vec<String>,
    /// The last request was answered: false when the probe ended in an outage, or never
    /// got an answer at all (`outage_ms` then does not measure it: there was no answer to
    /// count from, or to).
    pub recovered: bool,
}

/// One GET with a total deadline (on this thread: it runs inside a node's namespace,
/// where there is no runtime); the page's server name on a 200.
fn get(addr: SocketAddr, host: &str, path: &str, deadline: Duration) -> Option<String> {
    let r = crate::http_get::get(addr, host, path, deadline).ok()?;
    if r.status != 200 {
        return None;
    }
    let text = r.text();
    let key = "Esto es el servidor ";
    Some(
        text.find(key)
            .and_then(|i| text[i + key.len()..].split('<').next())
            .unwrap_or("?")
            .trim()
            .to_string(),
    )
}

/// Parses "http://host:port/path".
pub fn parse_url(url: &str) -> anyhow::Result<(SocketAddr, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--url must start with http://"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = if hostport.contains(':') {
        hostport.parse()?
    } else {
        format!("{hostport}:80").parse()?
    };
    Ok((addr, hostport.to_string(), path.to_string()))
}

pub fn run(
    url: &str,
    period: Duration,
    timeout: Duration,
    duration: Duration,
) -> anyhow::Result<ProbeReport> {
    let (addr, host, path) = parse_url(url)?;
    let mut r = ProbeReport::default();
    let start = Instant::now();
    let mut last_ok: Option<Instant> = None;
    let mut failing = false;
    while start.elapsed() < duration {
        let t = Instant::now();
        r.requests += 1;
        match get(addr, &host, &path, timeout) {
            Some(server) => {
                if let Some(prev) = last_ok {
                    if failing {
                        r.outage_ms = r.outage_ms.max(prev.elapsed().as_millis() as u64);
                        r.recovered_ms = Some(start.elapsed().as_millis() as u64);
                    }
                }
                failing = false;
                last_ok = Some(Instant::now());
                if !r.servers.contains(&server) {
                    r.servers.push(server);
                }
            }
            None => {
                r.failed += 1;
                failing = true;
                r.first_failure_ms
                    .get_or_insert(start.elapsed().as_millis() as u64);
            }
        }
        if let Some(rest) = period.checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    r.recovered = r.requests > 0 && !failing;
    if failing {
        // Never recovered: the outage runs to the end of the probe.
        if let Some(prev) = last_ok {
            r.outage_ms = r.outage_ms.max(prev.elapsed().as_millis() as u64);
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn urls() {
        let (a, h, p) = parse_url("http://172.16.1.254:8000/x").unwrap();
        assert_eq!(
            (a.to_string(), h.as_str(), p.as_str()),
            ("172.16.1.254:8000".into(), "172.16.1.254:8000", "/x")
        );
        assert_eq!(
            parse_url("http://10.0.0.1").unwrap().0.to_string(),
            "10.0.0.1:80"
        );
        assert!(parse_url("https://x").is_err());
    }

    #[test]
    fn measures_an_outage_on_loopback() {
        // A server that answers, stops for ~600 ms, then answers again.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let serve = move |ms: u64| {
            std::thread::spawn(move || {
                let l = std::net::TcpListener::bind(addr).unwrap();
                l.set_nonblocking(true).unwrap();
                let t = Instant::now();
                while t.elapsed() < Duration::from_millis(ms) {
                    if let Ok((mut s, _)) = l.accept() {
                        s.set_nonblocking(false).unwrap();
                        let mut buf = [0u8; 512];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 29\r\n\r\nEsto es el servidor s1</h1>..");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let a = serve(500);
        let probe = std::thread::spawn(move || {
            run(
                &format!("http://{addr}/"),
                Duration::from_millis(50),
                Duration::from_millis(100),
                Duration::from_millis(2000),
            )
            .unwrap()
        });
        a.join().unwrap();
        std::thread::sleep(Duration::from_millis(600));
        let b = serve(1200);
        let r = probe.join().unwrap();
        b.join().unwrap();
        assert!(r.failed >= 5, "{r:?}");
        assert!(r.outage_ms >= 500 && r.outage_ms < 1200, "{r:?}");
        assert_eq!(r.servers, vec!["s1".to_string()]);
        assert!(r.recovered_ms.is_some());
        assert!(r.recovered, "{r:?}");
    }

    #[test]
    fn never_answered_is_not_recovered() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = run(
            &format!("http://{addr}/"),
            Duration::from_millis(20),
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(r.requests > 0 && r.failed == r.requests, "{r:?}");
        assert!(!r.recovered, "{r:?}");
    }
}
