//! The agent's recent past for the dashboard's charts: one sample a second over the last
//! five minutes, in a ring allocated once, plus the events that explain it (VRRP
//! transitions, backends going up or down, STP changes) as markers.
//!
//! Sans-IO: the recorder ([`super::recorder`]) hands in cumulative readings of the
//! counters; this module keeps the differences between consecutive readings (requests and
//! errors per backend per second, p50/p99 of the responses in that second), the gauges
//! (open client connections, this balancer's VRRP state and who it believes holds the
//! VIP), and turns new VRRP events and backend transitions into markers. Its memory is
//! bounded whatever runs through it: [`TimeSeries::heap_bytes`] is served with the data.

use super::stp_watch::Burst;
use crate::balance::latency::{self, BUCKETS};
use serde::Serialize;
use std::collections::VecDeque;

/// Seconds kept: five minutes at one sample a second.
pub const CAPACITY: usize = 300;
/// Markers kept (the oldest go first).
pub const MARKERS_KEPT: usize = 120;
/// A marker's text is cut to this many characters.
pub const MARKER_TEXT_MAX: usize = 120;
/// Distinct VIP holders named; further names are shown as "other".
const HOLDERS_KEPT: usize = 14;
const HOLDER_NONE: u8 = u8::MAX;
const HOLDER_OTHER: u8 = u8::MAX - 1;
/// A p50/p99 slot of a second that had no response.
const NO_LATENCY: u32 = u32::MAX;
const VRRP_STATES: [&str; 4] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/// Cumulative figures read at one moment (counters since the agent started).
#[derive(Debug, Clone)]
pub struct Reading {
    /// Unix seconds.
    pub at: f64,
    pub backends: Vec<BackendReading>,
    /// Response-time bucket counts, summed over the backends.
    pub latency: Box<[u64; BUCKETS]>,
    /// 5xx responses sent to clients (ours, like 503 with no backend up, and the backends').
    pub client_errors: u64,
    /// Open client connections (a gauge).
    pub conns: u64,
    /// This balancer's VRRP state, when it runs an instance.
    pub vrrp_state: Option<String>,
    /// Who this balancer believes holds the VIP (itself when MASTER), by name.
    pub holder: Option<String>,
    /// The VRRP transitions it knows of, oldest first: (Unix seconds, text).
    pub vrrp_events: Vec<(f64, String)>,
}

/// One backend in a [`Reading`].
#[derive(Debug, Clone, Default)]
pub struct BackendReading {
    pub name: String,
    pub requests: u64,
    /// Failed connections, resets and timeouts, plus 5xx answers.
    pub errors: u64,
    pub up: bool,
    pub transitions: u64,
    /// Unix seconds of the last up/down transition.
    pub last_change: f64,
    pub reason: Option<String>,
}

/// One second, all but the per-backend figures.
#[derive(Debug, Clone, Copy, Default)]
struct Second {
    t: u64,
    requests: u32,
    client_errors: u32,
    p50_us: u32,
    p99_us: u32,
    conns: u32,
    /// Index into `holders`, or HOLDER_NONE / HOLDER_OTHER.
    holder: u8,
    /// 1 + index into VRRP_STATES, 0 without VRRP.
    state: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkerKind {
    Vrrp,
    Backend,
    Stp,
}

/// An event drawn as a vertical line on every chart.
#[derive(Debug, Clone, Serialize)]
pub struct Marker {
    pub at: f64,
    pub kind: MarkerKind,
    pub what: String,
    /// STP: the TCN and TC BPDUs the lab's observers counted in this change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc_bpdus: Option<u64>,
    #[serde(skip)]
    source: Source,
}

/// Where an STP marker came from, so the counters and the picture mark one change once.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Source {
    /// Not STP, or the picture's change with no burst near it.
    #[default]
    Event,
    /// The observers' counters alone: the burst starting at this time.
    Counters(f64),
    /// The picture's change, carrying the count of the burst starting at this time.
    Named(f64),
}

/// How long after a counted burst began the picture may show the change that caused it:
/// the picture is drawn every 2 s and `lbctl graph` takes a second or more on a busy
/// machine.
pub const STP_SAME_CHANGE_S: f64 = 6.0;
/// How long before a burst's start the picture may show its change: the counters are read
/// 20 ms into each second, so they see a TCN up to a second after the port changed, and
/// the picture cannot show a change before it happened.
pub const STP_PICTURE_BEFORE_S: f64 = 1.5;

/// Whether the picture's change drawn at `picture_at` and the burst counted from
/// `burst_start` are one topology change. Linux bridges send TC BPDUs when a port reaches
/// forwarding (or a forwarding one blocks), not when a link goes down, so a port going
/// disabled seconds before the burst is a different change.
pub fn same_stp_change(picture_at: f64, burst_start: f64) -> bool {
    let d = picture_at - burst_start;
    (-STP_PICTURE_BEFORE_S..=STP_SAME_CHANGE_S).contains(&d)
}

/// The ring and the markers.
#[derive(Debug)]
pub struct TimeSeries {
    names: Vec<String>,
    /// `CAPACITY` seconds, written at `next`, `len` of them valid.
    seconds: Vec<Second>,
    /// `CAPACITY` x backends (requests, errors), second-major, same ring positions.
    per_backend: Vec<[u32; 2]>,
    next: usize,
    len: usize,
    holders: Vec<String>,
    markers: VecDeque<Marker>,
    prev: Option<Reading>,
    last_vrrp_event: f64,
    /// Each backend's transitions already turned into markers.
    transitions_seen: Vec<(String, u64)>,
}

impl Default for TimeSeries {
    fn default() -> Self {
        TimeSeries::new()
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl TimeSeries {
    pub fn new() -> TimeSeries {
        TimeSeries {
            names: Vec::new(),
            seconds: vec![Second::default(); CAPACITY],
            per_backend: Vec::new(),
            next: 0,
            len: 0,
            holders: Vec::with_capacity(HOLDERS_KEPT),
            markers: VecDeque::with_capacity(MARKERS_KEPT),
            prev: None,
            last_vrrp_event: f64::NEG_INFINITY,
            transitions_seen: Vec::new(),
        }
    }

    /// Seconds stored (at most [`CAPACITY`]).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes a reading: the first one only sets the baseline; each later one in a new
    /// second stores that second (rates over the time since the previous reading), and
    /// its new events become markers. A reading in the same second as the last is ignored.
    pub fn push(&mut self, r: Reading) {
        self.markers_from(&r);
        let Some(prev) = self.prev.take() else {
            self.prev = Some(r);
            return;
        };
        let (t, t0) = (r.at.floor() as u64, prev.at.floor() as u64);
        if t <= t0 {
            self.prev = Some(prev);
            return;
        }
        let names: Vec<&str> = r.backends.iter().map(|b| b.name.as_str()).collect();
        if names != self.names.iter().map(String::as_str).collect::<Vec<_>>() {
            // Another set of backends: the old columns mean nothing any more.
            self.names = names.iter().map(|n| n.to_string()).collect();
            self.per_backend = vec![[0, 0]; CAPACITY * self.names.len()];
            self.len = 0;
            self.transitions_seen
                .retain(|(n, _)| names.contains(&n.as_str()));
        }
        let dt = t - t0;
        let rate = |now: u64, before: u64| clamp_u32(now.saturating_sub(before).div_ceil(dt));
        let mut delta = [0u64; BUCKETS];
        for (d, (a, b)) in delta
            .iter_mut()
            .zip(r.latency.iter().zip(prev.latency.iter()))
        {
            *d = a.saturating_sub(*b);
        }
        let q = |p| latency::quantile(&delta, p).map_or(NO_LATENCY, clamp_u32);
        let mut requests = 0;
        let width = self.names.len();
        for (i, b) in r.backends.iter().enumerate() {
            let before = prev.backends.iter().find(|p| p.name == b.name);
            let req = rate(b.requests, before.map_or(b.requests, |p| p.requests));
            let err = rate(b.errors, before.map_or(b.errors, |p| p.errors));
            self.per_backend[self.next * width + i] = [req, err];
            requests += u64::from(req);
        }
        let holder = self.holder_index(r.holder.as_deref());
        self.seconds[self.next] = Second {
            t,
            requests: clamp_u32(requests),
            client_errors: rate(r.client_errors, prev.client_errors),
            p50_us: q(0.5),
            p99_us: q(0.99),
            conns: clamp_u32(r.conns),
            holder,
            state: r.vrrp_state.as_deref().map_or(0, |s| {
                VRRP_STATES
                    .iter()
                    .position(|x| *x == s)
                    .map_or(0, |i| i as u8 + 1)
            }),
        };
        self.next = (self.next + 1) % CAPACITY;
        self.len = (self.len + 1).min(CAPACITY);
        self.prev = Some(r);
    }

    fn holder_index(&mut self, name: Option<&str>) -> u8 {
        let Some(name) = name else { return HOLDER_NONE };
        if let Some(i) = self.holders.iter().position(|h| h == name) {
            return i as u8;
        }
        if self.holders.len() < HOLDERS_KEPT {
            self.holders.push(name.to_string());
            return (self.holders.len() - 1) as u8;
        }
        HOLDER_OTHER
    }

    /// New VRRP events and backend transitions since the previous reading, as markers.
    fn markers_from(&mut self, r: &Reading) {
        let last = self.last_vrrp_event;
        for (at, what) in r.vrrp_events.iter().filter(|(at, _)| *at > last) {
            self.add_marker(*at, MarkerKind::Vrrp, what);
            self.last_vrrp_event = self.last_vrrp_event.max(*at);
        }
        for b in &r.backends {
            let i = match self.transitions_seen.iter().position(|(n, _)| *n == b.name) {
                Some(i) => i,
                None => {
                    self.transitions_seen.push((b.name.clone(), 0));
                    self.transitions_seen.len() - 1
                }
            };
            let seen = &mut self.transitions_seen[i].1;
            if b.transitions > std::mem::replace(seen, b.transitions) {
                let what = format!(
                    "{} {}{}",
                    b.name,
                    if b.up { "UP" } else { "DOWN" },
                    b.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
                self.add_marker(b.last_change, MarkerKind::Backend, &what);
            }
        }
    }

    /// Adds a marker (the text cut to [`MARKER_TEXT_MAX`] characters), dropping the
    /// oldest past [`MARKERS_KEPT`]; markers are kept in time order.
    pub fn add_marker(&mut self, at: f64, kind: MarkerKind, what: &str) {
        self.insert_marker(Marker {
            at,
            kind,
            what: what.to_string(),
            tc_bpdus: None,
            source: Source::Event,
        });
    }

    fn insert_marker(&mut self, mut m: Marker) {
        if self.markers.len() >= MARKERS_KEPT {
            self.markers.pop_front();
        }
        if m.what.chars().count() > MARKER_TEXT_MAX {
            m.what = m.what.chars().take(MARKER_TEXT_MAX).collect();
        }
        let pos = self.markers.partition_point(|x| x.at <= m.at);
        self.markers.insert(pos, m);
    }

    /// A topology change the observers' counters saw (called each second its burst grows).
    /// The rule that keeps one marker per change: the marker already standing for this
    /// burst gets the new count; else the picture's STP change nearest the burst's start
    /// that is the same change ([`same_stp_change`]) and carries no count yet takes it (it names the
    /// ports); else the counters add their own marker at the burst's start.
    pub fn stp_burst(&mut self, b: &Burst) {
        let s = if b.bpdus == 1 { "" } else { "s" };
        let text = format!("STP topology change: {} TC BPDU{s}", b.bpdus);
        let mine =
            |m: &Marker| matches!(m.source, Source::Counters(s) | Source::Named(s) if s == b.start);
        if let Some(m) = self.markers.iter_mut().find(|m| mine(m)) {
            m.tc_bpdus = Some(b.bpdus);
            if matches!(m.source, Source::Counters(_)) {
                m.what = text;
            }
            return;
        }
        let near = self
            .markers
            .iter_mut()
            .filter(|m| m.kind == MarkerKind::Stp && m.source == Source::Event)
            .filter(|m| same_stp_change(m.at, b.start))
            .min_by(|x, y| (x.at - b.start).abs().total_cmp(&(y.at - b.start).abs()));
        if let Some(m) = near {
            m.tc_bpdus = Some(b.bpdus);
            m.source = Source::Named(b.start);
            return;
        }
        self.insert_marker(Marker {
            at: b.start,
            kind: MarkerKind::Stp,
            what: text,
            tc_bpdus: Some(b.bpdus),
            source: Source::Counters(b.start),
        });
    }

    /// The STP changes the dashboard's picture found at `at` (port states, roots). When
    /// the counters alone marked the same change ([`same_stp_change`]), the picture's
    /// first change takes that marker over (its time, read each second, dates the change
    /// better; its count stays) and the others join it at that time; else each is a marker
    /// at `at`.
    pub fn stp_picture(&mut self, at: f64, changes: &[String]) {
        let Some((first, rest)) = changes.split_first() else {
            return;
        };
        let counted = self
            .markers
            .iter_mut()
            .filter(|m| matches!(m.source, Source::Counters(_)))
            .filter(|m| same_stp_change(at, m.at))
            .min_by(|x, y| (x.at - at).abs().total_cmp(&(y.at - at).abs()));
        let (at, rest) = match counted {
            Some(m) => {
                if let Source::Counters(s) = m.source {
                    m.source = Source::Named(s);
                }
                m.what = first.chars().take(MARKER_TEXT_MAX).collect();
                (m.at, rest)
            }
            None => (at, changes),
        };
        for what in rest {
            self.add_marker(at, MarkerKind::Stp, what);
        }
    }

    /// Ring positions of the stored seconds, oldest first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let start = (self.next + CAPACITY - self.len) % CAPACITY;
        (0..self.len).map(move |i| (start + i) % CAPACITY)
    }

    /// Bytes on the heap: the ring (allocated in full), the markers (their texts are at
    /// most [`MARKER_TEXT_MAX`] characters), the names and the previous reading.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let strings = |v: &[String]| {
            v.iter()
                .map(|s| size_of::<String>() + s.capacity())
                .sum::<usize>()
        };
        let prev = self.prev.as_ref().map_or(0, |p| {
            size_of::<Reading>()
                + size_of::<[u64; BUCKETS]>()
                + p.backends.capacity() * size_of::<BackendReading>()
                + p.backends
                    .iter()
                    .map(|b| b.name.capacity() + b.reason.as_ref().map_or(0, String::capacity))
                    .sum::<usize>()
                + p.vrrp_events.capacity() * size_of::<(f64, String)>()
                + p.vrrp_events.iter().map(|e| e.1.capacity()).sum::<usize>()
        });
        self.seconds.capacity() * size_of::<Second>()
            + self.per_backend.capacity() * size_of::<[u32; 2]>()
            + strings(&self.names)
            + strings(&self.holders)
            + self.transitions_seen.capacity() * size_of::<(String, u64)>()
            + self
                .transitions_seen
                .iter()
                .map(|t| t.0.capacity())
                .sum::<usize>()
            + self.markers.capacity() * size_of::<Marker>()
            + self
                .markers
                .iter()
                .map(|m| m.what.capacity())
                .sum::<usize>()
            + prev
    }

    /// The document `/api/timeseries` serves: one array per series, aligned on `t`.
    pub fn to_json<'a>(&'a self, node: &'a str, now: f64) -> SeriesJson<'a> {
        let secs: Vec<&Second> = self.order().map(|i| &self.seconds[i]).collect();
        let ms = |us: u32| (us != NO_LATENCY).then(|| f64::from(us) / 1000.0);
        let width = self.names.len();
        let column = |b: usize, k: usize| -> Vec<u32> {
            self.order()
                .map(|i| self.per_backend[i * width + b][k])
                .collect()
        };
        let from = secs.last().map_or(now, |s| s.t as f64) - CAPACITY as f64;
        SeriesJson {
            node,
            now,
            capacity: CAPACITY,
            step_s: 1,
            bytes: self.heap_bytes(),
            t: secs.iter().map(|s| s.t).collect(),
            backends: (0..width)
                .map(|b| BackendSeries {
                    name: &self.names[b],
                    requests: column(b, 0),
                    errors: column(b, 1),
                })
                .collect(),
            requests: secs.iter().map(|s| s.requests).collect(),
            client_errors: secs.iter().map(|s| s.client_errors).collect(),
            p50_ms: secs.iter().map(|s| ms(s.p50_us)).collect(),
            p99_ms: secs.iter().map(|s| ms(s.p99_us)).collect(),
            conns: secs.iter().map(|s| s.conns).collect(),
            vrrp_state: secs
                .iter()
                .map(|s| s.state.checked_sub(1).map(|i| VRRP_STATES[i as usize]))
                .collect(),
            holder: secs.iter().map(|s| self.holder_name(s.holder)).collect(),
            markers: self.markers.iter().filter(|m| m.at >= from).collect(),
        }
    }

    fn holder_name(&self, i: u8) -> Option<&str> {
        match i {
            HOLDER_NONE => None,
            HOLDER_OTHER => Some("other"),
            i => self.holders.get(i as usize).map(String::as_str),
        }
    }
}

/// `/api/timeseries`: every array has one entry per second of `t` (Unix seconds, oldest
/// first, at most `capacity`); rates are per second.
#[derive(Debug, Serialize)]
pub struct SeriesJson<'a> {
    pub node: &'a str,
    pub now: f64,
    pub capacity: usize,
    pub step_s: u32,
    /// Heap bytes of the agent's ring and markers.
    pub bytes: usize,
    pub t: Vec<u64>,
    pub backends: Vec<BackendSeries<'a>>,
    /// Requests per second over all backends.
    pub requests: Vec<u32>,
    /// 5xx per second sent to clients.
    pub client_errors: Vec<u32>,
    /// Response time quantiles (ms) of the second's responses; null without responses.
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Open client connections.
    pub conns: Vec<u32>,
    /// This balancer's VRRP state (null without VRRP).
    pub vrrp_state: Vec<Option<&'static str>>,
    /// Who this balancer believes holds the VIP (null: nobody it knows of).
    pub holder: Vec<Option<&'a str>>,
    /// Events in the window, oldest first.
    pub markers: Vec<&'a Marker>,
}

#[derive(Debug, Serialize)]
pub struct BackendSeries<'a> {
    pub name: &'a str,
    pub requests: Vec<u32>,
    pub errors: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A reading at `at` where serv1 and serv2 have counted `req` requests each so far
    /// (serv2 `err` errors), with `lat_us` as every response time.
    fn reading(at: f64, req: u64, err: u64, lat_us: u64) -> Reading {
        let h = latency::Latency::default();
        for _ in 0..2 * req {
            h.record(Duration::from_micros(lat_us));
        }
        let mut l = Box::new([0; BUCKETS]);
        h.add_to(&mut l);
        let b = |name: &str, errors| BackendReading {
            name: name.into(),
            requests: req,
            errors,
            up: true,
            ..Default::default()
        };
        Reading {
            at,
            backends: vec![b("serv1", 0), b("serv2", err)],
            latency: l,
            client_errors: err,
            conns: 3,
            vrrp_state: Some("MASTER".into()),
            holder: Some("bal1".into()),
            vrrp_events: vec![],
        }
    }

    fn json(ts: &TimeSeries) -> serde_json::Value {
        serde_json::to_value(ts.to_json("bal1", 0.0)).unwrap()
    }

    #[test]
    fn rates_and_quantiles_are_per_second_differences() {
        let mut ts = TimeSeries::new();
        ts.push(reading(1000.2, 10, 0, 500));
        assert!(ts.is_empty(), "the first reading is the baseline");
        ts.push(reading(1001.1, 30, 4, 500));
        ts.push(reading(1001.7, 99, 99, 500)); // same second: ignored
        ts.push(reading(1003.0, 70, 8, 500)); // two seconds later: halved
        let j = json(&ts);
        assert_eq!(j["t"], serde_json::json!([1001, 1003]));
        assert_eq!(j["backends"][0]["name"], "serv1");
        assert_eq!(j["backends"][0]["requests"], serde_json::json!([20, 20]));
        assert_eq!(j["backends"][1]["errors"], serde_json::json!([4, 2]));
        assert_eq!(j["requests"], serde_json::json!([40, 40]));
        assert_eq!(j["client_errors"], serde_json::json!([4, 2]));
        assert_eq!(j["conns"], serde_json::json!([3, 3]));
        assert_eq!(j["vrrp_state"][1], "MASTER");
        assert_eq!(j["holder"][0], "bal1");
        let p50 = j["p50_ms"][0].as_f64().unwrap();
        assert!((p50 - 0.5).abs() <= 0.5 / 16.0, "{p50}");
        // A second without a response has no quantile.
        ts.push(reading(1004.0, 70, 8, 500));
        assert_eq!(json(&ts)["p99_ms"][2], serde_json::Value::Null);
    }

    #[test]
    fn the_ring_keeps_the_last_capacity_seconds_in_bounded_memory() {
        let mut ts = TimeSeries::new();
        let mut bytes = Vec::new();
        for s in 0..(3 * CAPACITY as u64) {
            let mut r = reading(s as f64, s, 0, 1000);
            r.vrrp_events = vec![(s as f64, "x".repeat(500))];
            r.holder = Some(format!("bal{}", s % 40));
            ts.push(r);
            ts.add_marker(
                s as f64 + 0.5,
                MarkerKind::Stp,
                "port vswout1/to-swout2: forwarding -> disabled",
            );
            if s >= CAPACITY as u64 {
                bytes.push(ts.heap_bytes());
            }
        }
        assert_eq!(ts.len(), CAPACITY);
        let j = json(&ts);
        let t = j["t"].as_array().unwrap();
        assert_eq!(t.len(), CAPACITY);
        assert_eq!(t[0], 3 * CAPACITY as u64 - CAPACITY as u64);
        assert_eq!(t[CAPACITY - 1], 3 * CAPACITY as u64 - 1);
        assert_eq!(j["backends"][1]["requests"][CAPACITY - 1], 1);
        // Holders past the table are "other"; markers are capped and cut.
        assert!(j["holder"].as_array().unwrap().iter().any(|h| h == "other"));
        assert!(j["markers"].as_array().unwrap().len() <= MARKERS_KEPT);
        assert!(ts
            .markers
            .iter()
            .all(|m| m.what.chars().count() <= MARKER_TEXT_MAX));
        // Memory: the same after the ring filled as after three times as many samples.
        let (lo, hi) = (bytes.iter().min().unwrap(), bytes.iter().max().unwrap());
        assert_eq!(lo, hi, "bytes vary once the ring is full");
        assert!(*hi < 64 * 1024, "{hi} bytes");
        assert_eq!(std::mem::size_of::<Second>(), 32, "the README's figure");
        eprintln!("time series: {hi} bytes with 2 backends and full markers");
    }

    #[test]
    fn vrrp_events_and_backend_changes_become_markers_once() {
        let mut ts = TimeSeries::new();
        let mut r = reading(10.0, 1, 0, 100);
        r.vrrp_events = vec![(9.5, "BACKUP -> MASTER".into())];
        ts.push(r.clone());
        ts.push(r.clone());
        let mut r2 = reading(12.0, 2, 0, 100);
        r2.vrrp_events = vec![
            (9.5, "BACKUP -> MASTER".into()),
            (11.5, "MASTER -> BACKUP".into()),
        ];
        r2.backends[0].up = false;
        r2.backends[0].transitions = 1;
        r2.backends[0].last_change = 11.8;
        r2.backends[0].reason = Some("connection refused".into());
        ts.push(r2.clone());
        ts.push(r2.clone());
        ts.add_marker(11.6, MarkerKind::Stp, "port a/b: forwarding -> disabled");
        let j = json(&ts);
        let m: Vec<(String, String)> = j["markers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["kind"].as_str().unwrap().into(),
                    m["what"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want = [
            ("vrrp", "BACKUP -> MASTER"),
            ("vrrp", "MASTER -> BACKUP"),
            ("stp", "port a/b: forwarding -> disabled"),
            ("backend", "serv1 DOWN (connection refused)"),
        ];
        assert_eq!(m, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    /// The STP markers as (at, what, tc_bpdus).
    fn stp(ts: &TimeSeries) -> Vec<(f64, String, Option<u64>)> {
        ts.markers
            .iter()
            .filter(|m| m.kind == MarkerKind::Stp)
            .map(|m| (m.at, m.what.clone(), m.tc_bpdus))
            .collect()
    }

    fn burst(start: f64, last: f64, bpdus: u64) -> Burst {
        Burst { start, last, bpdus }
    }

    /// No page open: the counters alone mark the change, once per burst, with its count.
    #[test]
    fn a_counted_burst_is_one_marker_whose_count_grows() {
        let mut ts = TimeSeries::new();
        ts.stp_burst(&burst(100.0, 100.0, 3));
        ts.stp_burst(&burst(100.0, 102.0, 7));
        ts.stp_burst(&burst(100.0, 109.0, 12));
        ts.stp_burst(&burst(130.0, 130.0, 2));
        assert_eq!(
            stp(&ts),
            [
                (100.0, "STP topology change: 12 TC BPDUs".into(), Some(12)),
                (130.0, "STP topology change: 2 TC BPDUs".into(), Some(2)),
            ]
        );
        let j = json(&ts);
        assert_eq!(j["markers"][0]["tc_bpdus"], 12, "{j}");
        ts.add_marker(140.0, MarkerKind::Vrrp, "x");
        assert!(json(&ts)["markers"][2].get("tc_bpdus").is_none());
    }

    /// Counters first, then the picture (the usual order: they are read every second):
    /// the picture's first change takes the counted marker over, at the counters' time,
    /// and keeps the count; its other changes join it; later pictures' changes and
    /// pictures outside the window are markers of their own.
    #[test]
    fn the_picture_names_the_counted_change_without_marking_it_twice() {
        let mut ts = TimeSeries::new();
        ts.stp_burst(&burst(100.0, 100.0, 2));
        let changes = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ts.stp_picture(
            102.5,
            &changes(&[
                "port vswout1/to-swout2: forwarding -> disabled",
                "port vswout1/to-swout1: blocking -> listening",
            ]),
        );
        ts.stp_burst(&burst(100.0, 104.0, 9));
        ts.stp_picture(
            104.5,
            &changes(&["port vswout1/to-swout1: listening -> learning"]),
        );
        ts.stp_picture(150.0, &changes(&["LAN ext: root bridge swout2 -> swout1"]));
        ts.stp_picture(151.0, &[]);
        assert_eq!(
            stp(&ts),
            [
                (
                    100.0,
                    "port vswout1/to-swout2: forwarding -> disabled".into(),
                    Some(9)
                ),
                (
                    100.0,
                    "port vswout1/to-swout1: blocking -> listening".into(),
                    None
                ),
                (
                    104.5,
                    "port vswout1/to-swout1: listening -> learning".into(),
                    None
                ),
                (150.0, "LAN ext: root bridge swout2 -> swout1".into(), None),
            ]
        );
    }

    /// Picture first (the picture can see a change up to a second before the counters'
    /// reading does): the nearest such change carries the count; one drawn earlier than
    /// that (a link going down, which sends no TC BPDU) does not, and a burst with no
    /// picture change near it marks itself.
    #[test]
    fn a_burst_after_the_picture_annotates_its_nearest_change() {
        let mut ts = TimeSeries::new();
        ts.stp_picture(97.0, &["port a/1: forwarding -> disabled".into()]);
        ts.stp_picture(99.0, &["port b/1: blocking -> listening".into()]);
        ts.stp_burst(&burst(100.0, 100.0, 4));
        ts.stp_burst(&burst(100.0, 101.0, 6));
        ts.stp_burst(&burst(120.0, 120.0, 1));
        assert_eq!(
            stp(&ts),
            [
                (97.0, "port a/1: forwarding -> disabled".into(), None),
                (99.0, "port b/1: blocking -> listening".into(), Some(6)),
                (120.0, "STP topology change: 1 TC BPDU".into(), Some(1)),
            ]
        );
        // The window's edges: STP_SAME_CHANGE_S after the start is the same change, a
        // little more is not.
        ts.stp_picture(
            120.0 + STP_SAME_CHANGE_S + 0.1,
            &["port d/1: learning -> forwarding".into()],
        );
        ts.stp_picture(120.0 + STP_SAME_CHANGE_S, &["port c/1: gone".into()]);
        assert_eq!(stp(&ts)[2], (120.0, "port c/1: gone".into(), Some(1)));
        assert_eq!(stp(&ts)[3].2, None);
        assert!(same_stp_change(98.5, 100.0) && !same_stp_change(98.4, 100.0));
    }

    #[test]
    fn a_new_set_of_backends_restarts_the_columns() {
        let mut ts = TimeSeries::new();
        ts.push(reading(1.0, 1, 0, 100));
        ts.push(reading(2.0, 2, 0, 100));
        let mut r = reading(3.0, 3, 0, 100);
        r.backends.pop();
        ts.push(r);
        let j = json(&ts);
        assert_eq!(j["t"], serde_json::json!([3]));
        assert_eq!(j["backends"].as_array().unwrap().len(), 1);
    }
}
