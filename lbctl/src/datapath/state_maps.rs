//! The agent's state in pinned BPF maps: backend health (`LB_HEALTH`) and the VRRP instance
//! (`LB_VRRP`), under the balancer's pin directory (`/sys/fs/bpf/lbctl/<lab>/<node>/`).
//!
//! Why maps and not only the admin port: the maps outlive a hung or restarting agent, any
//! process can read them without a network path into the balancer's namespace (`lbctl
//! status` just opens the pins), `bpftool map dump pinned …/LB_HEALTH` prints them with field
//! names (the types come from the BPF object's BTF), and a data path program can look a
//! backend's health up in the kernel.
//!
//! The agent owns the writes: [`StateMaps::open`] creates the maps from the embedded BPF
//! object (or reopens the pins an earlier agent left), clears them, and [`StateMaps::sync`]
//! rewrites every entry whose content changed, which the agent calls on a short tick: a
//! health transition reaches the map within one tick.
use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::{atomic::Ordering, Arc},
};

use anyhow::{anyhow, bail, Context as _, Result};
use aya::{
    maps::{HashMap, Map, MapData},
    EbpfLoader,
};
use lb_common::{
    HealthKey, HealthVal, VrrpState, CHECK_FAIL, CHECK_NONE, CHECK_OK, HEALTH_MAP, REASON_LEN,
    VRRP_BACKUP, VRRP_FAULT, VRRP_INIT, VRRP_MAP, VRRP_MASTER,
};

use crate::balance::backend::BackendState;
use crate::vrrp::codec::Version;
use crate::vrrp::VrrpSnapshot;

/// Open handles on the two pinned maps, and what was last written (to write only changes).
pub struct StateMaps {
    dir: PathBuf,
    health: HashMap<MapData, HealthKey, HealthVal>,
    vrrp: HashMap<MapData, u32, VrrpState>,
    written: Vec<Option<HealthVal>>,
    vrrp_written: Option<(u32, VrrpState)>,
}

impl StateMaps {
    /// Opens the maps pinned in `dir`, creating and pinning them when absent, and removes
    /// every entry (an earlier agent may have tracked other backends).
    pub fn open(dir: &Path) -> Result<StateMaps> {
        crate::datapath::observe::check_on_bpffs(dir)?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let hp = dir.join(HEALTH_MAP);
        let vp = dir.join(VRRP_MAP);
        if !hp.exists() || !vp.exists() {
            create_and_pin(&hp, &vp)?;
        }
        let mut health: HashMap<MapData, HealthKey, HealthVal> = open_pinned(&hp)?;
        let mut vrrp: HashMap<MapData, u32, VrrpState> = open_pinned(&vp)?;
        let stale: Vec<HealthKey> = health.keys().filter_map(|k| k.ok()).collect();
        for k in stale {
            let _ = health.remove(&k);
        }
        let stale: Vec<u32> = vrrp.keys().filter_map(|k| k.ok()).collect();
        for k in stale {
            let _ = vrrp.remove(&k);
        }
        Ok(StateMaps {
            dir: dir.to_path_buf(),
            health,
            vrrp,
            written: Vec::new(),
            vrrp_written: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes every backend whose entry changed (state, check results, counters) and the
    /// VRRP instance if it changed. Backends that are not IPv4 have no key and are skipped.
    pub fn sync(
        &mut self,
        backends: &[Arc<BackendState>],
        vrrp: Option<&VrrpSnapshot>,
    ) -> Result<()> {
        self.written.resize(backends.len(), None);
        for (i, b) in backends.iter().enumerate() {
            let Some(key) = health_key(b.addr) else {
                continue;
            };
            let val = health_val(i, b);
            if self.written[i] != Some(val) {
                self.health
                    .insert(key, val, 0)
                    .with_context(|| format!("writing {HEALTH_MAP} entry of {}", b.name))?;
                self.written[i] = Some(val);
            }
        }
        if let Some(v) = vrrp {
            let key = u32::from(v.vrid);
            let val = vrrp_val(v);
            if self.vrrp_written != Some((key, val)) {
                self.vrrp
                    .insert(key, val, 0)
                    .with_context(|| format!("writing {VRRP_MAP} entry of VRID {key}"))?;
                self.vrrp_written = Some((key, val));
            }
        }
        Ok(())
    }
}

/// Loads the embedded object only to have the kernel create its maps with their BTF, then
/// pins the two state maps. No program is loaded.
fn create_and_pin(hp: &Path, vp: &Path) -> Result<()> {
    let ebpf = EbpfLoader::new()
        .load(crate::datapath::observe::object())
        .context("creating the state maps from the BPF object (needs root and BTF)")?;
    for (name, path) in [(HEALTH_MAP, hp), (VRRP_MAP, vp)] {
        if path.exists() {
            continue;
        }
        ebpf.map(name)
            .ok_or_else(|| anyhow!("BPF object has no map {name}"))?
            .pin(path)
            .with_context(|| format!("pinning map {name} at {}", path.display()))?;
    }
    Ok(())
}

fn open_pinned<K: aya::Pod, V: aya::Pod>(path: &Path) -> Result<HashMap<MapData, K, V>> {
    let data = MapData::from_pin(path)
        .with_context(|| format!("opening pinned map {}", path.display()))?;
    HashMap::try_from(Map::HashMap(data))
        .with_context(|| format!("{} is not a hash map of the expected types", path.display()))
}

fn health_key(addr: SocketAddr) -> Option<HealthKey> {
    match addr.ip() {
        IpAddr::V4(a) => Some(HealthKey::new(a.octets(), addr.port())),
        IpAddr::V6(_) => None,
    }
}

fn ms(epoch_secs: f64) -> u64 {
    (epoch_secs * 1000.0).max(0.0) as u64
}

/// The map entry of backend number `index`.
pub fn health_val(index: usize, b: &BackendState) -> HealthVal {
    let ck = b.check_state();
    let c = &b.counters;
    let mut v = HealthVal {
        up: b.is_up() as u8,
        weight: b.weight,
        consecutive_ok: ck.consecutive_ok,
        consecutive_fail: ck.consecutive_fail,
        index: index as u32,
        transitions: ck.transitions,
        last_change_ms: ms(ck.last_change),
        requests: c.requests.load(Ordering::Relaxed),
        failures: c.failures.load(Ordering::Relaxed),
        responses: std::array::from_fn(|i| c.responses[i].load(Ordering::Relaxed)),
        ..HealthVal::default()
    };
    if let Some(l) = &ck.last {
        v.last = if l.ok { CHECK_OK } else { CHECK_FAIL };
        v.passive = l.passive as u8;
        v.check_ms = l.duration_ms.min(u64::from(u32::MAX)) as u32;
        v.last_check_ms = ms(l.at);
        v.reason = reason_bytes(&l.reason);
    }
    v
}

/// The reason as NUL-padded bytes, cut at a character boundary to fit.
fn reason_bytes(r: &str) -> [u8; REASON_LEN] {
    let mut out = [0u8; REASON_LEN];
    let mut n = r.len().min(REASON_LEN);
    while !r.is_char_boundary(n) {
        n -= 1;
    }
    out[..n].copy_from_slice(&r.as_bytes()[..n]);
    out
}

fn reason_str(b: &[u8; REASON_LEN]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(REASON_LEN);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

fn state_code(s: &str) -> u8 {
    match s {
        "MASTER" => VRRP_MASTER,
        "BACKUP" => VRRP_BACKUP,
        "FAULT" => VRRP_FAULT,
        _ => VRRP_INIT,
    }
}

fn state_name(c: u8) -> &'static str {
    match c {
        VRRP_MASTER => "MASTER",
        VRRP_BACKUP => "BACKUP",
        VRRP_FAULT => "FAULT",
        _ => "INIT",
    }
}

pub fn vrrp_val(v: &VrrpSnapshot) -> VrrpState {
    VrrpState {
        state: state_code(&v.state),
        priority: v.priority,
        effective_priority: v.effective_priority,
        version: v.version.number(),
        master: v.master.map(|m| m.octets()).unwrap_or([0; 4]),
        transitions: v.transitions,
        adverts_sent: v.adverts_sent,
        adverts_received: v.adverts_received,
        drops: v.drops.values().sum(),
        last_change_ms: ms(v.last_change),
    }
}

/// One backend read back from a pinned `LB_HEALTH`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEntry {
    pub addr: SocketAddr,
    pub index: u32,
    pub up: bool,
    pub weight: u32,
    /// None before the first check.
    pub last_ok: Option<bool>,
    pub passive: bool,
    pub reason: String,
    pub check_ms: u32,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub transitions: u64,
    /// Seconds since the Unix epoch.
    pub last_change: f64,
    pub last_check: f64,
    pub requests: u64,
    pub failures: u64,
    pub responses: [u64; 5],
}

/// Reads every backend of the `LB_HEALTH` pinned in `dir`, in the agent's config order.
pub fn read_health(dir: &Path) -> Result<Vec<HealthEntry>> {
    let path = dir.join(HEALTH_MAP);
    let map: HashMap<MapData, HealthKey, HealthVal> = open_pinned(&path)?;
    let mut out = Vec::new();
    for kv in map.iter() {
        let (k, v) = kv.with_context(|| format!("reading {}", path.display()))?;
        out.push(HealthEntry {
            addr: SocketAddr::from((k.addr, k.port)),
            index: v.index,
            up: v.up != 0,
            weight: v.weight,
            last_ok: match v.last {
                CHECK_NONE => None,
                x => Some(x == CHECK_OK),
            },
            passive: v.passive != 0,
            reason: reason_str(&v.reason),
            check_ms: v.check_ms,
            consecutive_ok: v.consecutive_ok,
            consecutive_fail: v.consecutive_fail,
            transitions: v.transitions,
            last_change: v.last_change_ms as f64 / 1000.0,
            last_check: v.last_check_ms as f64 / 1000.0,
            requests: v.requests,
            failures: v.failures,
            responses: v.responses,
        });
    }
    out.sort_by_key(|e| e.index);
    Ok(out)
}

/// Reads the VRRP instances of the `LB_VRRP` pinned in `dir`, as snapshots (without the
/// per-reason breakdowns, which only the agent's /stats has: `drops` holds one `total`).
pub fn read_vrrp(dir: &Path, instance: &str) -> Result<Vec<VrrpSnapshot>> {
    let path = dir.join(VRRP_MAP);
    let map: HashMap<MapData, u32, VrrpState> = open_pinned(&path)?;
    let mut out = Vec::new();
    for kv in map.iter() {
        let (vrid, v) = kv.with_context(|| format!("reading {}", path.display()))?;
        if vrid > 255 {
            bail!("{}: VRID {vrid} out of range", path.display());
        }
        out.push(VrrpSnapshot {
            instance: instance.to_string(),
            state: state_name(v.state).to_string(),
            priority: v.priority,
            effective_priority: v.effective_priority,
            master: (v.master != [0; 4]).then(|| v.master.into()),
            vrid: vrid as u8,
            version: Version::try_from(v.version)
                .with_context(|| format!("{}: VRID {vrid}", path.display()))?,
            adverts_sent: v.adverts_sent,
            adverts_received: v.adverts_received,
            transitions: v.transitions,
            last_change: v.last_change_ms as f64 / 1000.0,
            drops: [("total".to_string(), v.drops)].into_iter().collect(),
            checksum_forms: Default::default(),
            // The transition history is the agent's (/stats, dashboard), not the map's.
            events: Vec::new(),
        });
    }
    out.sort_by_key(|v| v.vrid);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reasons_fit_and_round_trip() {
        assert_eq!(reason_str(&reason_bytes("200 OK")), "200 OK");
        let long = "é".repeat(40); // 80 bytes, 2 per char: cut at 32
        let r = reason_str(&reason_bytes(&long));
        assert_eq!(r, "é".repeat(16));
    }

    #[test]
    fn health_val_follows_the_backend() {
        let b = BackendState::new("s1", "10.0.0.1:80".parse().unwrap(), 3, "default");
        let v0 = health_val(2, &b);
        assert_eq!((v0.up, v0.last, v0.weight, v0.index), (1, CHECK_NONE, 3, 2));
        for _ in 0..3 {
            b.record(
                false,
                "connection refused",
                Duration::from_millis(7),
                false,
                2,
                3,
            );
        }
        let v = health_val(2, &b);
        assert_eq!(
            (v.up, v.last, v.consecutive_fail, v.check_ms),
            (0, CHECK_FAIL, 3, 7)
        );
        assert_eq!(reason_str(&v.reason), "connection refused");
        assert_eq!(v.transitions, 1);
        assert!(v.last_change_ms >= v0.last_change_ms && v.last_check_ms > 0);
    }

    #[test]
    fn vrrp_states_round_trip() {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            assert_eq!(state_name(state_code(s)), s);
        }
    }

    /// As root: the maps are created from the object, pinned, written and read back, and a
    /// second open of the same pins (an agent restart) starts from empty maps.
    #[test]
    fn pinned_maps_round_trip() {
        if !crate::test_prereq::need_root() {
            return;
        }
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/lbctl-test-state-{}",
            std::process::id()
        ));
        struct Rm(PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }
        let _rm = Rm(dir.clone());
        let b = Arc::new(BackendState::new(
            "s1",
            "10.0.0.1:80".parse().unwrap(),
            1,
            "default",
        ));
        let mut m = StateMaps::open(&dir).unwrap();
        m.sync(std::slice::from_ref(&b), None).unwrap();
        let e = read_health(&dir).unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].up && e[0].last_ok.is_none());
        for _ in 0..3 {
            b.record(false, "timeout", Duration::ZERO, false, 2, 3);
        }
        m.sync(std::slice::from_ref(&b), None).unwrap();
        let e = read_health(&dir).unwrap();
        assert!(!e[0].up);
        assert_eq!(e[0].last_ok, Some(false));
        assert_eq!(e[0].reason, "timeout");
        assert_eq!(e[0].addr, "10.0.0.1:80".parse().unwrap());
        drop(m);
        let _m2 = StateMaps::open(&dir).unwrap();
        assert!(read_health(&dir).unwrap().is_empty());
    }
}
