//! The agent's dashboard on its admin port: `/` is one self-contained HTML page (no
//! external assets) polling `/dashboard.json` and `/graph.svg`.
//!
//! What the agent shows is what it can know: its own backends and VRRP instance (state
//! changes with their times, and on a takeover the silence since the old master's last
//! advert), the other balancers' `/stats` fetched over the LAN, and the lab's picture
//! (`lbctl graph`, run as a child process so it reads the same live state as the CLI),
//! whose STP port states and roots are compared between refreshes to list STP changes.
//! Nothing is refreshed while nobody looks at the dashboard.
//!
//! It also holds the agent's time series (`/api/timeseries`, see [`super::timeseries`]),
//! which the recorder feeds every second from the agent's start (STP topology changes
//! included, from the lab's BPF observers), and to which the STP changes seen between
//! pictures add the ports' names.

use super::admin::{self, Stats};
use super::timeseries::{MarkerKind, Reading, TimeSeries};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PAGE: &str = include_str!("dashboard.html");

/// How often the picture and the peers are refreshed while the page is open.
const REFRESH: Duration = Duration::from_secs(2);
/// The refresher sleeps once nobody asked for the dashboard for this long.
const IDLE_AFTER: Duration = Duration::from_secs(30);
const CHANGES_KEPT: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub at: f64,
    pub what: String,
}

/// What the last `lbctl graph` said (the parts the page shows besides the SVG).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GraphInfo {
    pub at: f64,
    pub live: bool,
    pub masters: Vec<String>,
    pub isolated_masters: Vec<String>,
    pub blocked: Vec<String>,
    pub roots: BTreeMap<String, Vec<String>>,
    pub error: Option<String>,
}

#[derive(Default)]
struct Inner {
    svg: Option<String>,
    graph: GraphInfo,
    ports: Option<BTreeMap<String, String>>,
    changes: VecDeque<Change>,
    peers: Vec<PeerStats>,
    /// Per peer, the time of its newest VRRP event already added to the time series.
    peer_events_seen: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerStats {
    pub node: String,
    pub admin: SocketAddr,
    /// The last stats it answered with (None if it never did).
    pub stats: Option<Stats>,
    /// Whether it answered the last fetch (else `stats` is the last known).
    pub answering: bool,
    /// When it last answered (Unix seconds).
    pub answered_at: Option<f64>,
}

pub struct Dashboard {
    lab: String,
    node: String,
    exe: PathBuf,
    peers: Vec<(String, SocketAddr)>,
    names: Vec<(Ipv4Addr, String)>,
    config_file: Option<PathBuf>,
    wanted: Mutex<Option<Instant>>,
    inner: Mutex<Inner>,
    series: Mutex<TimeSeries>,
}

/// The document behind the page.
#[derive(Debug, Serialize)]
pub struct DashboardJson<'a> {
    pub lab: &'a str,
    pub node: &'a str,
    pub now: f64,
    /// The VRRP master as this balancer knows it (itself, or the sender of the adverts
    /// it hears), by name.
    pub vrrp_master: Option<String>,
    pub names: BTreeMap<String, String>,
    pub stats: Stats,
    pub peers: Vec<PeerStats>,
    pub graph: GraphInfo,
    pub stp_changes: Vec<Change>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Dashboard {
    pub fn new(
        lab: String,
        node: String,
        peers: Vec<(String, SocketAddr)>,
        names: Vec<(Ipv4Addr, String)>,
        config_file: Option<PathBuf>,
    ) -> Arc<Dashboard> {
        Arc::new(Dashboard {
            lab,
            node,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lbctl")),
            peers,
            names,
            config_file,
            wanted: Mutex::new(None),
            inner: Mutex::new(Inner::default()),
            series: Mutex::new(TimeSeries::new()),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Someone looks at the dashboard: keep refreshing.
    pub fn touch(&self) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn is_wanted(&self) -> bool {
        self.wanted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < IDLE_AFTER)
    }

    pub fn svg(&self) -> Option<String> {
        self.touch();
        self.inner().svg.clone()
    }

    pub fn name_of(&self, a: Ipv4Addr) -> String {
        self.names
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| a.to_string())
    }

    /// The VRRP master as this balancer knows it: itself, or the sender of the adverts it
    /// hears, by name.
    pub fn vip_holder(&self, stats: &Stats) -> Option<String> {
        stats.vrrp.as_ref().and_then(|v| {
            if v.state == "MASTER" {
                Some(self.node.clone())
            } else {
                v.master.map(|m| self.name_of(m))
            }
        })
    }

    fn series(&self) -> std::sync::MutexGuard<'_, TimeSeries> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the recorder's reading of this second to the time series.
    pub fn record(&self, r: Reading) {
        self.series().push(r);
    }

    /// A topology change the lab's BPF observers counted (see [`super::stp_watch`]).
    pub fn stp_burst(&self, b: &super::stp_watch::Burst) {
        self.series().stp_burst(b);
    }

    /// `/api/timeseries`.
    pub fn timeseries_json(&self) -> String {
        self.touch();
        let s = self.series();
        serde_json::to_string(&s.to_json(&self.node, unix_now())).unwrap_or_default()
    }

    pub fn json(&self, stats: Stats) -> String {
        self.touch();
        let vrrp_master = self.vip_holder(&stats);
        let inner = self.inner();
        let doc = DashboardJson {
            lab: &self.lab,
            node: &self.node,
            now: unix_now(),
            vrrp_master,
            names: self
                .names
                .iter()
                .map(|(a, n)| (a.to_string(), n.clone()))
                .collect(),
            stats,
            peers: inner.peers.clone(),
            graph: inner.graph.clone(),
            stp_changes: inner.changes.iter().cloned().collect(),
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// Refreshes the picture and the peers every REFRESH while the page is open.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if me.is_wanted() {
                    me.refresh_graph().await;
                    me.refresh_peers().await;
                    tokio::time::sleep(REFRESH).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        })
    }

    async fn refresh_peers(&self) {
        let mut out = Vec::new();
        for (node, admin) in &self.peers {
            let a = *admin;
            let stats = tokio::task::spawn_blocking(move || admin::fetch_stats(a))
                .await
                .ok()
                .flatten();
            // A peer that stops answering keeps its last known stats, marked as such: its
            // VRRP history up to the cut still explains the failover.
            let prev = self.inner().peers.iter().find(|p| &p.node == node).cloned();
            out.push(match stats {
                Some(st) => PeerStats {
                    node: node.clone(),
                    admin: a,
                    stats: Some(st),
                    answering: true,
                    answered_at: Some(unix_now()),
                },
                None => PeerStats {
                    node: node.clone(),
                    admin: a,
                    stats: prev.as_ref().and_then(|p| p.stats.clone()),
                    answering: false,
                    answered_at: prev.and_then(|p| p.answered_at),
                },
            });
        }
        self.peer_markers(&out);
        self.inner().peers = out;
    }

    /// The peers' VRRP transitions not seen before become markers on the time series (so
    /// bal2's page also marks bal1 taking or giving up the VIP, while a page is open).
    fn peer_markers(&self, peers: &[PeerStats]) {
        let mut inner = self.inner();
        let mut series = self.series();
        for p in peers.iter().filter(|p| p.answering) {
            let Some(v) = p.stats.as_ref().and_then(|s| s.vrrp.as_ref()) else {
                continue;
            };
            let seen = inner
                .peer_events_seen
                .entry(p.node.clone())
                .or_insert(f64::NEG_INFINITY);
            for e in v.events.iter().filter(|e| e.at > *seen) {
                series.add_marker(
                    e.at,
                    MarkerKind::Vrrp,
                    &super::recorder::vrrp_marker(&p.node, e),
                );
            }
            *seen = v.events.iter().map(|e| e.at).fold(*seen, f64::max);
        }
    }

    /// `lbctl graph --format json` of this lab (10 s at most), parsed.
    async fn run_graph(&self) -> Result<serde_json::Value, String> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(["graph", "--lab", &self.lab, "--format", "json"]);
        if let Some(c) = &self.config_file {
            cmd.arg("-c").arg(c);
        }
        let run = cmd
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(Duration::from_secs(10), run).await {
            Err(_) => Err("lbctl graph took over 10 s".to_string()),
            Ok(Err(e)) => Err(format!("running lbctl graph: {e}")),
            Ok(Ok(o)) if !o.status.success() => Err(format!(
                "lbctl graph: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Ok(Ok(o)) => serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .map_err(|e| format!("lbctl graph's JSON: {e}")),
        }
    }

    /// Runs `lbctl graph` for the lab and takes its picture, roles and STP changes in.
    async fn refresh_graph(&self) {
        let res = self.run_graph().await;
        let now = unix_now();
        let mut inner = self.inner();
        let v = match res {
            Ok(v) => v,
            Err(e) => {
                inner.graph.error = Some(e);
                return;
            }
        };
        let (info, ports) = graph_info(&v["model"], now);
        // STP changes since the last picture: port states and roots.
        let changes = match &inner.ports {
            Some(prev) => stp_changes(prev, &ports, &inner.graph.roots, &info.roots),
            None => vec![],
        };
        self.series().stp_picture(now, &changes);
        for what in changes {
            if inner.changes.len() >= CHANGES_KEPT {
                inner.changes.pop_front();
            }
            inner.changes.push_back(Change { at: now, what });
        }
        inner.ports = Some(ports);
        inner.graph = info;
        inner.svg = v["svg"].as_str().map(str::to_string);
    }
}

/// The roles and roots of a graph model (`lbctl graph`'s JSON `model`), and its ports'
/// states by "bridge/port".
fn graph_info(m: &serde_json::Value, now: f64) -> (GraphInfo, BTreeMap<String, String>) {
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let roots: BTreeMap<String, Vec<String>> = m["roots"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
        .unwrap_or_default();
    let ports: BTreeMap<String, String> = m["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some((
                        format!("{}/{}", p[0].as_str()?, p[1].as_str()?),
                        p[2].as_str()?.to_lowercase(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let info = GraphInfo {
        at: now,
        live: m["live"].as_bool().unwrap_or(false),
        masters: strings(&m["masters"]),
        isolated_masters: strings(&m["isolated_masters"]),
        blocked: strings(&m["blocked"]),
        roots,
        error: None,
    };
    (info, ports)
}

/// What changed between two pictures: port states ("port B/P: old -> new", appeared,
/// gone) and each LAN's root bridge.
pub fn stp_changes(
    prev: &BTreeMap<String, String>,
    ports: &BTreeMap<String, String>,
    prev_roots: &BTreeMap<String, Vec<String>>,
    roots: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut changes = Vec::new();
    for (port, state) in ports {
        match prev.get(port) {
            Some(old) if old != state => changes.push(format!("port {port}: {old} -> {state}")),
            None => changes.push(format!("port {port}: appeared ({state})")),
            _ => {}
        }
    }
    for port in prev.keys().filter(|p| !ports.contains_key(*p)) {
        changes.push(format!("port {port}: gone"));
    }
    for (lan, r) in roots {
        if let Some(old) = prev_roots.get(lan) {
            if old != r {
                changes.push(format!(
                    "LAN {lan}: root bridge {} -> {}",
                    if old.is_empty() {
                        "-".into()
                    } else {
                        old.join("/")
                    },
                    if r.is_empty() {
                        "-".into()
                    } else {
                        r.join("/")
                    }
                ));
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// A peer's VRRP transitions become markers once, however often it is fetched; a peer
    /// that does not answer adds nothing.
    #[test]
    fn peer_vrrp_events_become_markers_once() {
        let peer = |answering: bool, events: serde_json::Value| PeerStats {
            node: "bal1".into(),
            admin: "10.0.0.1:8404".parse().unwrap(),
            stats: Some(
                serde_json::from_value(serde_json::json!({
                    "node": "bal1", "backends": [],
                    "vrrp": {
                        "instance": "VI_1", "state": "MASTER", "priority": 150,
                        "effective_priority": 150, "master": null, "vrid": 12, "version": 2,
                        "adverts_sent": 1, "adverts_received": 0, "transitions": 2,
                        "drops": {}, "checksum_forms": {}, "events": events,
                    },
                }))
                .unwrap(),
            ),
            answering,
            answered_at: None,
        };
        let ev = |at: f64, from: &str, to: &str| {
            serde_json::json!({"at": at, "from": from, "to": to, "reason": "r",
                "previous_master": null, "silence_ms": null})
        };
        let d = Dashboard::new("t".into(), "bal2".into(), vec![], vec![], None);
        let t = unix_now() - 60.0;
        let one = serde_json::json!([ev(t, "INIT", "BACKUP")]);
        let two = serde_json::json!([ev(t, "INIT", "BACKUP"), ev(t + 3.0, "BACKUP", "MASTER")]);
        d.peer_markers(&[peer(true, one.clone())]);
        d.peer_markers(&[peer(true, one)]);
        d.peer_markers(&[peer(
            false,
            serde_json::json!([ev(t + 5.0, "MASTER", "FAULT")]),
        )]);
        d.peer_markers(&[peer(true, two)]);
        let j: serde_json::Value = serde_json::from_str(&d.timeseries_json()).unwrap();
        let what: Vec<&str> = j["markers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["what"].as_str().unwrap())
            .collect();
        assert_eq!(
            what,
            ["bal1 INIT -> BACKUP (r)", "bal1 BACKUP -> MASTER (r)"]
        );
    }

    #[test]
    fn stp_changes_name_ports_and_roots() {
        let prev = map(&[
            ("vswout1/to-swout1", "blocking"),
            ("swout1/x", "forwarding"),
        ]);
        let now = map(&[
            ("vswout1/to-swout1", "disabled"),
            ("swout1/y", "forwarding"),
        ]);
        let r = |x: &str| BTreeMap::from([("ext".to_string(), vec![x.to_string()])]);
        let c = stp_changes(&prev, &now, &r("swout2"), &r("swout1"));
        assert_eq!(
            c,
            vec![
                "port swout1/y: appeared (forwarding)",
                "port vswout1/to-swout1: blocking -> disabled",
                "port swout1/x: gone",
                "LAN ext: root bridge swout2 -> swout1",
            ]
        );
        assert!(stp_changes(&now, &now, &r("swout1"), &r("swout1")).is_empty());
    }
}
