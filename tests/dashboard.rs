//! The agent's dashboard in headless Chromium (Debian's chromium, driven over the DevTools
//! protocol): loaded from bal2's admin port by a browser inside user2's namespace, it
//! renders without console errors, names bal1 as the VRRP master and draws it so; after
//! `lbctl bridge down vswout1` the same page, without a reload, shows bal2 as master, the
//! failover with its measured outage, the STP change, and bal2 losing serv1 (the tunnel's
//! underlay is down). Screenshots of both moments are
//! saved under target/test-artifacts/.
//!
//! The same page's time series (`/api/timeseries`, drawn as inline SVG): the four charts
//! and the VIP band render, move second by second while a client loop sends requests
//! through bal2, and after the failover carry its VRRP marker, the STP and backend
//! markers and bal2 as holder, also in a page opened after the failure. With no page open
//! at all (bal1's), bringing vswout1 back still leaves an STP marker counted by the BPF
//! observers.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The browser process we started; ended by its PID (SIGTERM, then SIGKILL) on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts headless Chromium in the calling thread's network namespace; returns it with
/// its DevTools browser endpoint.
fn start_browser() -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--window-size=1500,1100",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium (apt-get install chromium; scripts/bootstrap.sh does)");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining Chromium's stderr so it never blocks on a full pipe.
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(i) = line.find("ws://") {
                    let _ = tx.send(line[i..].trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let browser = Browser {
        child,
        _profile: profile,
    };
    let ws = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromium printed its DevTools endpoint");
    (browser, ws)
}

/// A minimal DevTools protocol client over one page session.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
    session: Option<String>,
    /// Console errors, uncaught exceptions and error log entries seen so far.
    errors: Vec<String>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let hostport = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&hostport).expect("DevTools port");
        let (ws, _) = tungstenite::client(url, stream).expect("DevTools websocket");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Cdp {
            ws,
            next: 1,
            session: None,
            errors: Vec::new(),
        }
    }

    fn event(&mut self, m: &Value) {
        let p = &m["params"];
        match m["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => self.errors.push(format!(
                "exception: {}",
                p["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .or(p["exceptionDetails"]["text"].as_str())
                    .unwrap_or("?")
            )),
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                self.errors.push(format!("console.error: {}", p["args"]))
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => self.errors.push(format!(
                "log: {} {}",
                p["entry"]["text"].as_str().unwrap_or("?"),
                p["entry"]["url"].as_str().unwrap_or("")
            )),
            _ => {}
        }
    }

    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str(t.as_str()).ok(),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("sending a DevTools command");
        let t = Instant::now();
        loop {
            assert!(t.elapsed() < Duration::from_secs(20), "{method}: no answer");
            let Some(m) = self.read() else { continue };
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {}", m["error"]);
                return m["result"].clone();
            }
            self.event(&m);
        }
    }

    /// Evaluates a JS expression in the page; its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` every 250 ms until it equals `want`; panics with the last value.
    fn wait_for(&mut self, expr: &str, want: &Value, limit: Duration) {
        let t = Instant::now();
        loop {
            let v = self.eval(expr);
            if &v == want {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "{expr} is {v}, not {want}, after {limit:?}; page: {}",
                self.eval("document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn screenshot(&mut self, file: &str) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let d = repo_file("target/test-artifacts");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(file), png).unwrap();
        eprintln!("screenshot: {}", d.join(file).display());
    }
}

const MASTER: &str = "document.getElementById('master').dataset.master";
/// The requests chart: the newest second drawn, and its first line.
const TS_LAST: &str = "document.getElementById('ts-req').dataset.last";
const TS_LINE: &str = "document.querySelector('#ts-req path.series').getAttribute('d')";
/// bal2's takeover drawn as a VRRP marker on the VIP band.
const FAILOVER_MARKER: &str = "Array.from(document.querySelectorAll('#ts-vip line.marker.vrrp')).some(l => /bal2 BACKUP -> MASTER/.test(l.dataset.what))";

/// Stops the client loop when dropped, also when an assertion fails first.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Requests to bal2's own address (the page's agent) every 20 ms until `stop`; how many
/// were answered. Started from a thread in user2's namespace, so it runs there too.
fn client_loop(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let addr = "172.16.1.251:8000".parse().unwrap();
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            if lbctl::http_get::get(addr, "172.16.1.251:8000", "/", Duration::from_secs(2)).is_ok()
            {
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        answered
    })
}

/// Waits until the JS expression `expr` differs from what it was (the charts moved).
fn wait_change(cdp: &mut Cdp, expr: &str, limit: Duration) {
    let before = cdp.eval(expr);
    let changed = format!("JSON.stringify({expr}) !== {:?}", before.to_string());
    cdp.wait_for(&changed, &json!(true), limit);
}

/// The time-series charts render and move while the client loop runs; bal2 sees bal1
/// holding the VIP.
fn charts_move(cdp: &mut Cdp) {
    for (chart, lines) in [("ts-req", 3), ("ts-err", 4), ("ts-lat", 2), ("ts-conns", 1)] {
        cdp.wait_for(
            &format!("document.querySelectorAll('#{chart} path.series').length"),
            &json!(lines),
            Duration::from_secs(10),
        );
    }
    // Requests and their latency are drawn (the busiest second had some).
    cdp.wait_for(
        "Number(document.getElementById('ts-req').dataset.max) > 0 && document.querySelector('#ts-lat path[data-name=p50]').getAttribute('d').length > 0",
        &json!(true),
        Duration::from_secs(10),
    );
    wait_change(cdp, TS_LAST, Duration::from_secs(5));
    wait_change(cdp, TS_LINE, Duration::from_secs(5));
    cdp.wait_for(
        "document.querySelectorAll('#ts-vip rect.holder[data-holder=bal1]').length > 0",
        &json!(true),
        Duration::from_secs(5),
    );
}

/// After the failover: bal2's takeover, the STP change and bal2 losing serv1 are markers,
/// bal2 holds the VIP on the band, and the charts keep moving with bal1 cut off.
fn charts_show_the_failover(cdp: &mut Cdp) {
    cdp.wait_for(FAILOVER_MARKER, &json!(true), Duration::from_secs(10));
    cdp.wait_for(
        "document.querySelectorAll('#ts-vip rect.holder[data-holder=bal2]').length > 0",
        &json!(true),
        Duration::from_secs(5),
    );
    cdp.wait_for(
        "Array.from(document.querySelectorAll('#ts-vip line.marker.stp')).some(l => /vswout1/.test(l.dataset.what)) && Array.from(document.querySelectorAll('#ts-vip line.marker.backend')).some(l => /serv1 DOWN/.test(l.dataset.what))",
        &json!(true),
        Duration::from_secs(10),
    );
    wait_change(cdp, TS_LAST, Duration::from_secs(5));
}
const DRAWN_MASTER: &str =
    "Array.from(document.querySelectorAll('#graph svg g.master')).map(g => g.id).join(',')";

#[test]
fn dashboard_in_headless_chromium_follows_a_failover() {
    require_root();
    let lab = Lab::up(None);
    let name = lab.name.clone();
    // The browser runs in user2's namespace (it reaches bal2 before and after vswout1
    // fails), so its traffic stays inside this test's lab.
    let errors = in_node(&lab.name, "user2", move || {
        let (_browser, ws) = start_browser();
        let mut cdp = Cdp::connect(&ws);
        let target = cdp.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = cdp.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        cdp.call("Runtime.enable", json!({}));
        cdp.call("Log.enable", json!({}));
        cdp.call("Page.enable", json!({}));
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1500, "height": 1100, "deviceScaleFactor": 1, "mobile": false }),
        );
        cdp.call(
            "Page.navigate",
            json!({ "url": "http://172.16.1.251:8404/" }),
        );

        // bal2's page names bal1 as the master and draws bal1 holding the VIP.
        cdp.wait_for(MASTER, &json!("bal1"), Duration::from_secs(20));
        cdp.wait_for(DRAWN_MASTER, &json!("node-bal1"), Duration::from_secs(20));
        assert_eq!(
            cdp.eval("document.getElementById('node').textContent"),
            json!("bal2")
        );
        assert_eq!(
            cdp.eval("document.getElementById('own-state').textContent"),
            json!("BACKUP")
        );
        // Backends of both balancers (bal2's own and bal1's, fetched over the LAN).
        cdp.wait_for(
            "document.querySelectorAll('#backends tbody tr').length",
            &json!(6),
            Duration::from_secs(10),
        );
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let clients = client_loop(stop.0.clone());
        charts_move(&mut cdp);
        cdp.screenshot("dashboard-bal1-master.png");

        // Checkpoint 2 without reloading the page.
        let o = lbctl(&["bridge", "down", "vswout1", "--lab", &name]);
        assert!(o.status.success(), "{}", text(&o));
        cdp.wait_for(MASTER, &json!("bal2"), Duration::from_secs(20));
        cdp.wait_for(DRAWN_MASTER, &json!("node-bal2"), Duration::from_secs(20));
        cdp.wait_for(
            "document.getElementById('own-state').textContent",
            &json!("MASTER"),
            Duration::from_secs(5),
        );
        // The takeover is listed with its measured outage, and vswout1's ports as an STP
        // change.
        cdp.wait_for(
            "/bal2 took the VIP from bal1: [0-9.]+ s without a master/.test(document.getElementById('failovers').innerText)",
            &json!(true),
            Duration::from_secs(5),
        );
        cdp.wait_for(
            "/port vswout1\\/to-swout2: forwarding -> disabled/.test(document.getElementById('stp').innerText)",
            &json!(true),
            Duration::from_secs(10),
        );
        // bal2's health checks lose serv1 and serv2 with the tunnel's underlay (fall x
        // inter = 6 s): the backends table and the health changes follow.
        cdp.wait_for(
            "/bal2 sees serv1 DOWN/.test(document.getElementById('health').innerText)",
            &json!(true),
            Duration::from_secs(20),
        );
        charts_show_the_failover(&mut cdp);
        cdp.screenshot("dashboard-bal2-master.png");
        // A page opened after the failure still shows it: the agent kept the history.
        cdp.call(
            "Page.navigate",
            json!({ "url": "http://172.16.1.251:8404/" }),
        );
        cdp.wait_for(FAILOVER_MARKER, &json!(true), Duration::from_secs(10));
        drop(stop);
        assert!(clients.join().unwrap() > 0, "the client loop got answers");
        let series = lbctl::http_get::get(
            "172.16.1.251:8404".parse().unwrap(),
            "172.16.1.251:8404",
            "/api/timeseries",
            Duration::from_secs(2),
        )
        .expect("GET /api/timeseries");
        let series: Value = serde_json::from_slice(&series.body).unwrap();
        eprintln!(
            "bal2's time series: {} seconds, {} markers, {} bytes",
            series["t"].as_array().map_or(0, Vec::len),
            series["markers"].as_array().map_or(0, Vec::len),
            series["bytes"]
        );
        // Let late errors (a failed poll, say) arrive before judging.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            if let Some(m) = cdp.read() {
                cdp.event(&m);
            }
        }
        cdp.errors.clone()
    });
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // Bringing vswout1 back is a topology change (its ports rejoin the tree, TCN and TC
    // BPDUs follow). bal1's dashboard was never opened, so its refresher never ran: the
    // marker can only come from the BPF observers' counters, read by bal1's recorder.
    let t_up = unix_now();
    let o = lbctl(&["bridge", "up", "vswout1", "--lab", &lab.name]);
    assert!(o.status.success(), "{}", text(&o));
    let returned = Instant::now();
    let marker = in_node(&lab.name, "bal1", move || counted_stp_marker(t_up));
    eprintln!(
        "bal1's STP marker with no page open, {:.1} s after `bridge up` began, found {:.1} s \
         after it returned: {marker}",
        marker["at"].as_f64().unwrap_or(0.0) - t_up,
        returned.elapsed().as_secs_f64()
    );
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Polls this node's agent (bal1's admin address) for an STP marker at or after `since`
/// that carries the observers' count of topology-change BPDUs; panics after 20 s.
fn counted_stp_marker(since: f64) -> Value {
    let t = Instant::now();
    loop {
        let r = lbctl::http_get::get(
            "10.0.0.250:8404".parse().unwrap(),
            "10.0.0.250:8404",
            "/api/timeseries",
            Duration::from_secs(2),
        )
        .expect("GET bal1's /api/timeseries");
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        let found = doc["markers"].as_array().and_then(|ms| {
            ms.iter()
                .find(|m| {
                    m["kind"] == "stp"
                        && m["at"].as_f64() >= Some(since)
                        && m["tc_bpdus"].as_u64() > Some(0)
                })
                .cloned()
        });
        if let Some(m) = found {
            return m;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no counted STP marker on bal1 since {since}: {}",
            doc["markers"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
