//! What a running lab leaves on disk so any later lbctl process (status, down, faults)
//! knows it: the config it was built from, the PIDs of the daemons it started (with their
//! start times, so a recycled PID is never killed), their logs, and the BPF pin directory.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const RUN_ROOT: &str = "/run/lbctl";
pub const BPF_ROOT: &str = "/sys/fs/bpf/lbctl";

pub fn run_dir(lab: &str) -> PathBuf {
    Path::new(RUN_ROOT).join(lab)
}

pub fn pin_dir(lab: &str) -> PathBuf {
    Path::new(BPF_ROOT).join(lab)
}

pub fn node_pin_dir(lab: &str, node: &str) -> PathBuf {
    pin_dir(lab).join(node)
}

pub fn log_path(lab: &str, node: &str, daemon: &str) -> PathBuf {
    run_dir(lab)
        .join("logs")
        .join(format!("{node}.{daemon}.log"))
}

fn pid_dir(lab: &str) -> PathBuf {
    run_dir(lab).join("pids")
}

/// Where the daemons' supervisors record their PIDs and state (`daemons::supervise`).
pub fn supervisor_dir(lab: &str) -> PathBuf {
    run_dir(lab).join("supervisors")
}

/// Saves the config text the lab was built from (with the effective lab name).
pub fn save_config(lab: &str, text: &str) -> Result<()> {
    let d = run_dir(lab);
    std::fs::create_dir_all(d.join("logs")).with_context(|| format!("creating {}", d.display()))?;
    std::fs::create_dir_all(pid_dir(lab))?;
    std::fs::write(d.join("config.toml"), text).context("saving the lab's config")?;
    std::fs::write(d.join("lab"), lab).context("saving the lab's name")?;
    Ok(())
}

/// The config text a running lab was built from.
pub fn load_config_text(lab: &str) -> Option<String> {
    std::fs::read_to_string(run_dir(lab).join("config.toml")).ok()
}

/// Labs that have a state directory.
pub fn labs() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(RUN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("lab").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Process start time (field 22 of /proc/PID/stat, clock ticks since boot).
pub fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[derive(Debug, Clone)]
pub struct DaemonRecord {
    pub node: String,
    pub daemon: String,
    pub pid: u32,
    pub start_time: u64,
    pub file: PathBuf,
}

pub fn record_pid(lab: &str, node: &str, daemon: &str, pid: u32) -> Result<()> {
    record_in(&pid_dir(lab), node, daemon, pid)
}

/// Records the PID of a daemon's supervisor.
pub fn record_supervisor(lab: &str, node: &str, daemon: &str, pid: u32) -> Result<()> {
    record_in(&supervisor_dir(lab), node, daemon, pid)
}

fn record_in(dir: &Path, node: &str, daemon: &str, pid: u32) -> Result<()> {
    let st = start_time(pid).unwrap_or(0);
    std::fs::create_dir_all(dir)?;
    let f = dir.join(format!("{node}.{daemon}.pid"));
    // Written whole then renamed: a reader never sees half a record.
    let tmp = f.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid} {st}\n"))
        .and_then(|()| std::fs::rename(&tmp, &f))
        .with_context(|| format!("writing {}", f.display()))
}

/// The daemons' records (their current PIDs).
pub fn recorded(lab: &str) -> Vec<DaemonRecord> {
    recorded_in(&pid_dir(lab))
}

/// The supervisors' records (one per supervised daemon).
pub fn supervisors(lab: &str) -> Vec<DaemonRecord> {
    recorded_in(&supervisor_dir(lab))
}

fn recorded_in(dir: &Path) -> Vec<DaemonRecord> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_suffix(".pid") else {
            continue;
        };
        let Some((node, daemon)) = stem.split_once('.') else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let mut it = text.split_whitespace();
        let (Some(pid), Some(st)) = (it.next(), it.next()) else {
            continue;
        };
        let (Ok(pid), Ok(st)) = (pid.parse(), st.parse()) else {
            continue;
        };
        v.push(DaemonRecord {
            node: node.into(),
            daemon: daemon.into(),
            pid,
            start_time: st,
            file: e.path(),
        });
    }
    v.sort_by(|a, b| (&a.node, &a.daemon).cmp(&(&b.node, &b.daemon)));
    v
}

/// Whether the recorded process is still the one we started (same PID and start time)
/// and has not exited (a zombie waiting for its parent to reap it counts as gone).
pub fn is_alive(r: &DaemonRecord) -> bool {
    start_time(r.pid) == Some(r.start_time) && !is_zombie(r.pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .map(|i| s[i + 1..].trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Ends a recorded daemon: SIGTERM, up to 2 s of grace, then SIGKILL. Only ever the PID
/// we recorded, and only while its start time still matches.
pub fn stop(r: &DaemonRecord) -> Result<()> {
    stop_within(r, Duration::from_secs(2))
}

/// [`stop`] with `grace` between SIGTERM and SIGKILL (a supervisor needs its daemon's
/// grace and a little more).
pub fn stop_within(r: &DaemonRecord, grace: Duration) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if is_alive(r) {
        let pid = Pid::from_raw(r.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while is_alive(r) && Instant::now() < deadline {
            reap(r.pid);
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_alive(r) {
            let _ = kill(pid, Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(50));
            reap(r.pid);
        }
    }
    let _ = std::fs::remove_file(&r.file);
    Ok(())
}

/// Collects a zombie if the daemon happens to be our own child (tests start daemons
/// from the same process).
fn reap(pid: u32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = waitpid(
        nix::unistd::Pid::from_raw(pid as i32),
        Some(WaitPidFlag::WNOHANG),
    );
}

pub fn remove_run_dir(lab: &str) -> Result<()> {
    let d = run_dir(lab);
    if d.exists() {
        std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(())
}

/// Removes the lab's BPF pins (the observer's pin-directory removal: checks it is on
/// bpffs, and unlinking the link pins detaches the programs).
pub fn remove_pins(lab: &str) -> Result<()> {
    crate::datapath::observe::remove_pins(&pin_dir(lab))
}
