//! What one balancer reports to `status` and `graph`: its backends with their counters and
//! health, its VRRP instance, its proxy's client-side counters. Status keeps its own type,
//! converted at the edge from the agent's wire type ([`crate::agent::admin::Stats`]) or built
//! from the agent's pinned maps, so the `/stats` wire format can evolve apart from what
//! status and graph reason about; a backend's row is the wire's own ([`BackendReport`]). Serialised with the same field names and values as the
//! wire type, so `lbctl status --json` keeps its shape.

use crate::agent::admin::{BackendStats, Stats};
use crate::proxy::FrontendSnapshot;
use crate::vrrp::{VrrpEvent, VrrpSnapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// Where a report was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The agent's admin port (`/stats`).
    Agent,
    /// The maps the agent pinned (readable without entering the balancer's namespace).
    Bpf,
}

impl Source {
    /// The wire's `source` string: "bpf" is the maps; anything else came from an agent.
    fn from_wire(s: &str) -> Source {
        if s == "bpf" {
            Source::Bpf
        } else {
            Source::Agent
        }
    }
}

/// A VRRP instance's state, with keepalived's names (as the wire and `--json` spell them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VrrpState {
    Init,
    Backup,
    Master,
    Fault,
}

impl VrrpState {
    pub fn as_str(self) -> &'static str {
        match self {
            VrrpState::Init => "INIT",
            VrrpState::Backup => "BACKUP",
            VrrpState::Master => "MASTER",
            VrrpState::Fault => "FAULT",
        }
    }

    /// A state name from the wire. A name this version does not know (a newer agent) reads
    /// as INIT, as the pinned map's unknown codes do: neither master nor backup.
    pub fn from_wire(s: &str) -> VrrpState {
        match s {
            "MASTER" => VrrpState::Master,
            "BACKUP" => VrrpState::Backup,
            "FAULT" => VrrpState::Fault,
            _ => VrrpState::Init,
        }
    }
}

impl fmt::Display for VrrpState {
    /// Honours width and alignment, so tables can pad it like a string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A balancer's VRRP instance.
#[derive(Debug, Clone, Serialize)]
pub struct VrrpReport {
    pub instance: String,
    pub state: VrrpState,
    pub priority: u8,
    pub effective_priority: u8,
    pub master: Option<Ipv4Addr>,
    pub vrid: u8,
    pub version: crate::vrrp::codec::Version,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    /// Seconds since the Unix epoch of the last state change.
    pub last_change: f64,
    /// Per drop reason.
    pub drops: BTreeMap<String, u64>,
    /// Checksum form of accepted adverts.
    pub checksum_forms: BTreeMap<String, u64>,
    /// The last state changes, oldest first.
    pub events: Vec<VrrpEvent>,
}

impl From<VrrpSnapshot> for VrrpReport {
    fn from(v: VrrpSnapshot) -> VrrpReport {
        VrrpReport {
            instance: v.instance,
            state: VrrpState::from_wire(&v.state),
            priority: v.priority,
            effective_priority: v.effective_priority,
            master: v.master,
            vrid: v.vrid,
            version: v.version,
            adverts_sent: v.adverts_sent,
            adverts_received: v.adverts_received,
            transitions: v.transitions,
            last_change: v.last_change,
            drops: v.drops,
            checksum_forms: v.checksum_forms,
            events: v.events,
        }
    }
}

/// One backend as a balancer sees it: the agent's `/stats` row as it is. Unlike the VRRP
/// state and the source, no field of it wants a type of its own in status, so status reads
/// the wire's row rather than a field-by-field copy; give it one when the wire row changes.
pub type BackendReport = BackendStats;

/// What one balancer reports.
#[derive(Debug, Clone, Serialize)]
pub struct BalancerReport {
    pub node: String,
    /// Where these figures were read; None: the agent did not answer.
    pub source: Option<Source>,
    /// Client-side counters of the proxy (only the admin port has them).
    pub frontend: Option<FrontendSnapshot>,
    /// The VRRP instance, when this agent runs one.
    pub vrrp: Option<VrrpReport>,
    pub backends: Vec<BackendReport>,
}

impl BalancerReport {
    /// A balancer whose agent did not answer.
    pub fn silent(node: &str) -> BalancerReport {
        BalancerReport {
            node: node.to_string(),
            source: None,
            frontend: None,
            vrrp: None,
            backends: vec![],
        }
    }
}

impl From<Stats> for BalancerReport {
    fn from(s: Stats) -> BalancerReport {
        BalancerReport {
            node: s.node,
            source: s.source.as_deref().map(Source::from_wire),
            frontend: s.frontend,
            vrrp: s.vrrp.map(VrrpReport::from),
            backends: s.backends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire's state names and sources read back as the same strings.
    #[test]
    fn names_survive_the_conversion() {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            let v = VrrpState::from_wire(s);
            assert_eq!(v.as_str(), s);
            assert_eq!(serde_json::to_value(v).unwrap(), s);
            assert_eq!(format!("{v:<8}|"), format!("{s:<8}|"));
        }
        assert_eq!(VrrpState::from_wire("SOMETHING_NEW"), VrrpState::Init);
        for s in ["agent", "bpf"] {
            assert_eq!(serde_json::to_value(Source::from_wire(s)).unwrap(), s);
        }
    }

    /// `status --json` shows a report exactly as the agent's `/stats` sent it.
    #[test]
    fn a_converted_report_serialises_like_the_wire() {
        let wire: Stats = serde_json::from_value(serde_json::json!({
            "node": "bal1",
            "source": "agent",
            "frontend": FrontendSnapshot::default(),
            "vrrp": {
                "instance": "vrid12", "state": "BACKUP", "priority": 100,
                "effective_priority": 90, "master": "172.16.1.2", "vrid": 12, "version": 2,
                "adverts_sent": 3, "adverts_received": 40, "transitions": 2,
                "last_change": 1.5, "drops": {"auth": 1}, "checksum_forms": {"v2": 40},
                "events": [{"at": 1.5, "from": "INIT", "to": "BACKUP", "reason": "startup",
                            "previous_master": null, "silence_ms": null}]
            },
            "backends": [{
                "name": "serv1", "address": "10.0.0.1:80", "pool": "default", "weight": 2,
                "up": true, "active": 1, "requests": 9, "responses": [0, 8, 0, 0, 1],
                "failures": 1, "retries": 0, "redispatches": 0, "bytes_in": 10,
                "bytes_out": 20, "avg_response_ms": 1.25, "check_ok": true,
                "check_reason": "200", "check_duration_ms": 3, "check_passive": false,
                "last_change": 2.5, "transitions": 1, "change_reason": "check ok"
            }]
        }))
        .unwrap();
        let expected = serde_json::to_value(&wire).unwrap();
        let report = BalancerReport::from(wire);
        assert_eq!(serde_json::to_value(&report).unwrap(), expected);
        let silent = serde_json::to_value(BalancerReport::silent("bal2")).unwrap();
        assert_eq!(
            silent,
            serde_json::json!({"node": "bal2", "source": null, "frontend": null,
                               "vrrp": null, "backends": []})
        );
    }
}
