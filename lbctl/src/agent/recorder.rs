//! Feeds the dashboard's time series: once a second, just after each second starts, reads
//! the agent's counters (the same snapshot `/stats` serves, plus the backends' latency
//! histograms) and hands the reading to [`super::timeseries::TimeSeries`]. It runs from
//! the agent's start, whether or not anyone looks, so a page opened after a failure still
//! shows it.

use super::admin::{self, Stats};
use super::dashboard::Dashboard;
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
            dash.record(reading(&stats, latency, holder, now()));
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
                    .map(|e| {
                        let silence = e
                            .silence_ms
                            .map(|ms| format!(", {:.2} s without a master", ms as f64 / 1000.0))
                            .unwrap_or_default();
                        let what = format!(
                            "{} {} -> {} ({}{silence})",
                            stats.node, e.from, e.to, e.reason
                        );
                        (e.at, what)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
