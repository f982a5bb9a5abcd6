//! `lbctl down`: removes every trace of a lab: the daemons it started (by recorded PID),
//! its namespaces (and with them every veth, bridge and tunnel), its BPF pins and its
//! state directory. Idempotent, and works after lbctl or a daemon crashed, because it
//! finds the lab by its namespace prefix and its on-disk records, not by asking anyone.

use super::netns;
use super::state;
use anyhow::Result;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    pub daemons: usize,
    pub namespaces: usize,
    /// PIDs of processes lbctl did not start that still hold a namespace of the lab
    /// (they keep it alive until they exit; we never kill them).
    pub foreign: Vec<(u32, String)>,
}

pub fn down(lab: &str, progress: bool) -> Result<DownReport> {
    let mut rep = DownReport::default();
    // Supervisors first (each stops its daemon and restarts nothing more), then any
    // daemon still alive by its recorded PID (a supervisor that was killed).
    let grace = super::daemons::supervise::STOP_GRACE + Duration::from_secs(1);
    for r in state::supervisors(lab) {
        state::stop_within(&r, grace)?;
    }
    for r in state::recorded(lab) {
        state::stop(&r)?;
        rep.daemons += 1;
    }
    let prefix = crate::config::netns_prefix(lab);
    let names = netns::list_with_prefix(&prefix);
    // Processes we did not start but that sit in one of our namespaces.
    let inodes: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| {
            std::fs::metadata(netns::path(n))
                .ok()
                .map(|m| (m.ino(), n.clone()))
        })
        .collect();
    if !inodes.is_empty() {
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
                if let Some((_, n)) = inodes.iter().find(|(i, _)| *i == m.ino()) {
                    rep.foreign.push((pid, n.clone()));
                }
            }
        }
    }
    for n in &names {
        netns::delete(n)?;
        rep.namespaces += 1;
    }
    state::remove_pins(lab)?;
    state::remove_run_dir(lab)?;
    // Namespace teardown finishes asynchronously in the kernel; give it a moment so a
    // following `up` of the same lab does not race the old interfaces.
    let deadline = Instant::now() + Duration::from_millis(500);
    while names.iter().any(|n| netns::exists(n)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if progress {
        eprintln!(
            "lab {lab}: stopped {} daemon(s), removed {} namespace(s) and the BPF pins",
            rep.daemons, rep.namespaces
        );
        for (pid, n) in &rep.foreign {
            eprintln!("  note: process {pid} (not started by lbctl) still holds {n}; it goes away when that process exits");
        }
    }
    Ok(rep)
}
