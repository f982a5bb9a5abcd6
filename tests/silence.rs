//! Silent backends and stale views, measured from a user with a 50 ms client loop (one
//! lab for all of it, each fault undone before the next):
//! - a backend black-holed (`lbctl link blackhole serv2 vswin1`: its IPv4 traffic dropped
//!   on its bridge port, no reset): 0 failed requests with a 1 s deadline, at most 1 with
//!   300 ms — the master redispatches a connect that times out and retries an
//!   unacknowledged request elsewhere, and marks the backend down on live traffic;
//! - `lbctl bridge down vswout1` (checkpoint 2's fault): once bal2 is master, no failed
//!   request, although bal2's health checks still call serv1 and serv2 up (the tunnel's
//!   underlay is gone with vswout1, so it cannot reach them).
//!
//! Failure counts are asserted; times are printed, never asserted.

mod common;
use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request of a client loop: when it started (since the loop's start) and whether a
/// page came back within the deadline.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    ok: bool,
}

/// A 50 ms client loop against the VIP from `node`, each request with `deadline`.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    t0: Instant,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(lab: &str, node: &'static str, deadline: Duration) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let (s, v, lab) = (stop.clone(), samples.clone(), lab.to_string());
        let handle = std::thread::spawn(move || {
            in_node(&lab, node, move || {
                let addr: SocketAddr = "172.16.1.254:8000".parse().unwrap();
                while !s.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(90) {
                    let at = t0.elapsed();
                    let ok = lbctl::http_get::get(addr, "vip", "/", deadline)
                        .map(|r| r.status.as_u16() == 200)
                        .unwrap_or(false);
                    v.lock().unwrap().push(Sample { at, ok });
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        });
        ClientLoop {
            stop,
            samples,
            t0,
            handle: Some(handle),
        }
    }

    /// Stops the loop; (requests, failed) of the requests started at or after `from`
    /// (since the loop's start).
    fn finish(mut self, from: Duration) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        let v = self.samples.lock().unwrap();
        let after: Vec<&Sample> = v.iter().filter(|s| s.at >= from).collect();
        (after.len(), after.iter().filter(|s| !s.ok).count())
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether balancer `bal`'s agent reports backend `name` up.
fn backend_up(lab: &Lab, bal: &str, name: &str) -> bool {
    lab.status()["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["node"] == bal)
        .flat_map(|b| b["backends"].as_array().cloned().unwrap_or_default())
        .any(|b| b["name"] == name && b["up"] == true)
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// serv2 black-holed for 4 s under a loop with `deadline`; restored, and back up on
/// bal1 before returning. (requests, failed).
fn black_hole_serv2(lab: &Lab, deadline: Duration) -> (usize, usize) {
    let l = ClientLoop::start(&lab.name, "user2", deadline);
    std::thread::sleep(Duration::from_millis(500));
    lab.run(&["link", "blackhole", "serv2", "vswin1"]);
    std::thread::sleep(Duration::from_secs(4));
    let marked_down = !backend_up(lab, "bal1", "serv2");
    lab.run(&["link", "restore", "serv2", "vswin1"]);
    wait_until(Duration::from_secs(15), "serv2 back up on bal1", || {
        backend_up(lab, "bal1", "serv2")
    });
    std::thread::sleep(Duration::from_millis(500));
    let (n, failed) = l.finish(Duration::ZERO);
    eprintln!(
        "black hole, {} ms deadline: {n} requests, {failed} failed; serv2 marked down: {marked_down}",
        deadline.as_millis()
    );
    assert!(
        marked_down,
        "bal1 still had serv2 up after 4 s of black hole"
    );
    (n, failed)
}

#[test]
fn silent_backend_and_stale_view_after_failover_cost_no_request() {
    require_root();
    let lab = Lab::up(None);
    wait_until(Duration::from_secs(20), "every backend up on bal1", || {
        ["serv1", "serv2", "serv3"]
            .iter()
            .all(|s| backend_up(&lab, "bal1", s))
    });

    let (n, failed) = black_hole_serv2(&lab, Duration::from_millis(1000));
    assert!(n > 50, "only {n} requests");
    assert_eq!(failed, 0, "failed requests with a 1 s deadline");
    let (n, failed) = black_hole_serv2(&lab, Duration::from_millis(300));
    assert!(n > 50, "only {n} requests");
    assert!(
        failed <= 1,
        "{failed} failed requests with a 300 ms deadline"
    );

    // Checkpoint 2's fault: bal2 takes over, with serv1 and serv2 still up in its view.
    let l = ClientLoop::start(&lab.name, "user2", Duration::from_millis(300));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    lab.run(&["bridge", "down", "vswout1", "--no-wait"]);
    let took = lab.wait_master(
        "bal2",
        t,
        Duration::from_secs(10),
        "bal2 never became master",
    );
    let master_at = l.t0.elapsed();
    std::thread::sleep(Duration::from_secs(6));
    let (n, failed) = l.finish(master_at);
    eprintln!(
        "vswout1 down: bal2 master after {:.1} s; then {n} requests, {failed} failed (300 ms deadline)",
        took.as_secs_f32()
    );
    assert!(n > 50, "only {n} requests after the takeover");
    assert_eq!(failed, 0, "failed requests after bal2 became master");
    lab.run(&["bridge", "up", "vswout1"]);
    lab.wait_master(
        "bal1",
        Instant::now(),
        Duration::from_secs(15),
        "bal1 not master again",
    );

    // verify's black hole is undone when verify fails right after injecting it.
    let o = std::process::Command::new(lbctl_bin())
        .args(["verify", "--json", "--only", "3", "--lab", &lab.name])
        .env("LBCTL_VERIFY_TEST_FAULT", "error:black hole serv1 - vswin1")
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify --json is not JSON ({e}):\n{}", text(&o)));
    assert_eq!(o.status.code(), Some(1), "{r:#}");
    assert_eq!(
        r["undone"][0], "black hole serv1 - vswin1 removed: ok",
        "{r:#}"
    );
    let tables = lab.exec("vm1", &["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("lbctl_bh_"),
        "black hole left in vm1: {}",
        text(&tables)
    );
    // A node without a port on that bridge is refused by name.
    let o = lbctl(&["link", "blackhole", "serv3", "vswin1", "--lab", &lab.name]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("\"serv3\" has no port on bridge \"vswin1\""),
        "{}",
        text(&o)
    );
}
