//! Feeds the dashboard's time series: once a second, just after each second starts, reads
//! the agent's counters (the same snapshot `/stats` serves, plus the backends' latency
//! histograms) and hands the reading to [`super::timeseries::TimeSeries`], with the lab's
//! STP topology changes the BPF observers counted ([`super::stp_watch`]). It runs from
//! the agent's start, whether or not anyone looks, so a page opened after a failure still
//! shows it.

use super::admin::{self, Stats};
use super::dashboard::Dashboard;
use super::stp_watch::StpWatch;
use super::timeseries::{BackendReading, Reading};
use crate::balance::backend::BackendState;
use crate::balance::latency::BUCKETS;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Starts the once-a-second reader.
pub fn spawn(
    dash: Arc<Dashboard>,
    node: String,
    backends: Vec<Arc<BackendState>>,
    vrrp: Option<crate::vrrp::VrrpHandle>,
    mut stp: Option<StpWatch>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(until_next_second()).await;
            let stats = admin::snapshot(&node, &backends, vrrp.as_ref());
            let mut latency = Box::new([0; BUCKETS]);
            for b in &backends {
                b.counters.latency.add_to(&mut latency);
            }
            let holder = dash.vip_holder(&stats);
            let at = now();
            dash.record(reading(&stats, latency, holder, at));
            if let Some(b) = stp.as_mut().and_then(|w| w.tick(at)) {
                dash.stp_burst(&b);
            }
        }
    })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// From now to 20 ms into the next second (so each reading lands in its own second).
fn until_next_second() -> Duration {
    let frac = now().fract();
    Duration::from_secs_f64((1.0 - frac + 0.02).clamp(0.02, 1.02))
}

/// What the time series needs from a stats snapshot: errors are a backend's failed
/// connections, resets and timeouts plus its 5xx answers; client errors are the 5xx the
/// clients got (the backends' and ours, such as 503 when no backend is up).
pub fn reading(
    stats: &Stats,
    latency: Box<[u64; BUCKETS]>,
    holder: Option<String>,
    at: f64,
) -> Reading {
    let vrrp = stats.vrrp.as_ref();
    Reading {
        at,
        backends: stats
            .backends
            .iter()
            .map(|b| BackendReading {
                name: b.name.clone(),
                requests: b.requests,
                errors: b.failures + b.responses[4],
                up: b.up,
                transitions: b.transitions,
                last_change: b.last_change,
                reason: b.change_reason.clone(),
            })
            .collect(),
        latency,
        client_errors: stats.frontend.as_ref().map_or(0, |f| f.responses[4]),
        conns: stats.frontend.as_ref().map_or(0, |f| f.conns_current),
        vrrp_state: vrrp.map(|v| v.state.clone()),
        holder,
        vrrp_events: vrrp
            .map(|v| {
                v.events
                    .iter()
                    .map(|e| (e.at, vrrp_marker(&stats.node, e)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A VRRP transition as a marker's text: who, from, to, why, and on a takeover how long
/// the VIP went without a master.
pub fn vrrp_marker(node: &str, e: &crate::vrrp::VrrpEvent) -> String {
    let silence = e
        .silence_ms
        .map(|ms| format!(", {:.2} s without a master", ms as f64 / 1000.0))
        .unwrap_or_default();
    format!("{node} {} -> {} ({}{silence})", e.from, e.to, e.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// The recorder running for real against an admin listener on loopback:
    /// `/api/timeseries` serves the seconds it recorded, with the requests, latency and
    /// up/down change counted on the backend.
    #[tokio::test]
    async fn api_timeseries_serves_what_the_recorder_saw() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let admin_addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let b = Arc::new(BackendState::new(
            "serv1",
            "127.0.0.1:9".parse().unwrap(),
            1,
            "default",
        ));
        let dash = Dashboard::new("t".into(), "bal1".into(), vec![], vec![], None);
        let rec = spawn(dash.clone(), "bal1".into(), vec![b.clone()], None, None);
        let admin = admin::serve(admin_addr, "bal1".into(), vec![b.clone()], None, Some(dash))
            .await
            .unwrap();
        let get = move || {
            let r =
                crate::http_get::get(admin_addr, "x", "/api/timeseries", Duration::from_secs(2))
                    .expect("GET /api/timeseries");
            assert_eq!(r.status, hyper::StatusCode::OK);
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("JSON")
        };
        let t = std::time::Instant::now();
        let doc = loop {
            b.counters.requests.fetch_add(5, Ordering::Relaxed);
            b.counters.latency.record(Duration::from_millis(3));
            b.record(false, "connection refused", Duration::ZERO, true, 1, 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let doc = tokio::task::spawn_blocking(get).await.unwrap();
            let busy = doc["backends"][0]["requests"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n.as_u64() > Some(0)));
            if busy || t.elapsed() > Duration::from_secs(10) {
                break doc;
            }
        };
        rec.abort();
        admin.abort();
        assert_eq!(doc["node"], "bal1");
        assert_eq!(doc["capacity"], 300);
        assert_eq!(doc["backends"][0]["name"], "serv1");
        let n = doc["t"].as_array().expect("t").len();
        assert!(n >= 1, "{doc}");
        for k in [
            "requests",
            "client_errors",
            "p50_ms",
            "p99_ms",
            "conns",
            "holder",
        ] {
            assert_eq!(doc[k].as_array().map(Vec::len), Some(n), "{k}: {doc}");
        }
        let p50 = doc["p50_ms"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|v| v.as_f64());
        assert!(p50.is_some_and(|ms| (ms - 3.0).abs() < 0.2), "{doc}");
        let down = &doc["markers"][0];
        assert_eq!(down["kind"], "backend", "{doc}");
        assert_eq!(down["what"], "serv1 DOWN (connection refused)");
        assert!(doc["bytes"].as_u64().unwrap() > 0);
    }
}
