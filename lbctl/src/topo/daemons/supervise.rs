//! The supervisor `up` puts in front of every daemon it starts (`lbctl up --supervise
//! NODE.DAEMON --lab LAB -- EXE ARGS…`, the same binary re-executed): it starts the daemon,
//! restarts it when it fails (non-zero exit or a signal) after a back-off
//! ([`super::backoff`]), and owns its output: the daemon's stdout and stderr are a pipe
//! whose other end the supervisor copies into the size-capped, rotated log
//! ([`crate::logs::rotate`]).
//!
//! On disk (read by `status` and `down`): the supervisor's own PID under
//! `supervisors/NODE.DAEMON.pid`, the daemon's current PID under `pids/` (rewritten at each
//! restart), and `supervisors/NODE.DAEMON.json` ([`SupervisorState`]: restarts, last exit).
//!
//! When an agent dies without resigning (SIGKILL, a crash) it leaves the VIP on its
//! interface, and this node would answer ARP for it with nobody listening: the supervisor
//! removes the VIP at once, before the back-off, so the other balancer's takeover is the
//! only holder. An agent stopped (SIGSTOP) for a second loses its VIP the same way, without
//! a restart (`watch_stopped`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn, Instrument};

use super::backoff::{self, Backoff};
use crate::topo::state;

/// How long a daemon has to stop after SIGTERM before the supervisor kills it (the agent
/// resigns VRRP and drains its connections for up to 2 s).
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// What a supervisor tells `status` about its daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SupervisorState {
    /// Restarts after a failure since `up`.
    pub restarts: u32,
    /// How the daemon last ended ("killed by SIGKILL", "exit status 1"), if it did.
    pub last_exit: Option<String>,
    /// Unix seconds of the last restart.
    pub last_restart: Option<f64>,
}

fn state_file(lab: &str, node: &str, daemon: &str) -> PathBuf {
    state::supervisor_dir(lab).join(format!("{node}.{daemon}.json"))
}

/// The state a daemon's supervisor last wrote (None: not supervised, or not yet).
pub fn read_state(lab: &str, node: &str, daemon: &str) -> Option<SupervisorState> {
    let text = std::fs::read_to_string(state_file(lab, node, daemon)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(path: &Path, st: &SupervisorState) {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string(st).unwrap_or_default();
    if std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .is_err()
    {
        warn!("cannot write {}", path.display());
    }
}

/// "killed by SIGKILL", "exit status 3".
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => match nix::sys::signal::Signal::try_from(s) {
            Ok(sig) => format!("killed by {sig}"),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => status.to_string(),
    }
}

/// One supervised daemon.
pub struct Supervised {
    pub lab: String,
    pub node: String,
    pub daemon: String,
    /// The daemon's program and arguments.
    pub argv: Vec<String>,
}

/// Runs the supervisor until SIGTERM/SIGINT (then stops the daemon) or until the daemon
/// exits cleanly. Its stdin is the read end of the log pipe, its stdout/stderr the write
/// end (set up by [`super::spawn_daemon`]), so its own messages land in the same log.
pub async fn run(s: Supervised) -> Result<()> {
    anyhow::ensure!(
        !s.argv.is_empty(),
        "--supervise needs the daemon's command after --"
    );
    let log = state::log_path(&s.lab, &s.node, &s.daemon);
    let mut rot = crate::logs::rotate::Rotating::open(
        &log,
        crate::logs::rotate::MAX_BYTES,
        crate::logs::rotate::FILES,
    )
    .with_context(|| format!("opening {}", log.display()))?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            let _ = rot.copy_from(std::io::stdin().lock());
            let _ = done_tx.send(());
        })
        .context("starting the log thread")?;
    let span = tracing::info_span!("supervisor", node = %s.node, daemon = %s.daemon);
    let res = supervise(&s).instrument(span).await;
    if let Err(e) = &res {
        warn!("supervisor: {e:#}");
    }
    // The daemon is gone: closing our own write ends of the pipe lets the log thread copy
    // what is still in it (the daemon's last lines, ours) and see the end of it.
    let _ = nix::unistd::close(1);
    let _ = nix::unistd::close(2);
    let _ = done_rx.recv_timeout(Duration::from_millis(500));
    res
}

/// The restart loop: returns on SIGTERM/SIGINT (after stopping the daemon) or a clean exit.
async fn supervise(s: &Supervised) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let sfile = state_file(&s.lab, &s.node, &s.daemon);
    let mut st = SupervisorState::default();
    write_state(&sfile, &st);
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        let ended = match start(s) {
            Ok(mut child) => {
                let pid = child.id();
                tokio::select! {
                    r = child.wait() => r.context("waiting for the daemon")?,
                    _ = term.recv() => return stop(s, child).await,
                    _ = int.recv() => return stop(s, child).await,
                    () = watch_stopped(s, pid) => unreachable!("watch_stopped never ends"),
                }
            }
            Err(e) => {
                warn!("{e:#}");
                std::os::unix::process::ExitStatusExt::from_raw(127 << 8)
            }
        };
        let ran = started.elapsed();
        let how = describe(ended);
        if !backoff::restart_on(ended) {
            info!(
                ran_s = ran.as_secs_f32(),
                "daemon stopped ({how}): not restarted"
            );
            st.last_exit = Some(how);
            write_state(&sfile, &st);
            return Ok(());
        }
        warn!(ran_s = ran.as_secs_f32(), "daemon {how}");
        cleanup_after(s).await;
        let delay = backoff.after_failure(ran);
        st.last_exit = Some(how);
        write_state(&sfile, &st);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
        st.restarts += 1;
        st.last_restart = Some(unix_now());
        write_state(&sfile, &st);
        info!(
            restarts = st.restarts,
            delay_ms = delay.as_millis() as u64,
            "restarting the daemon"
        );
    }
}

/// Starts the daemon with the supervisor's stdout/stderr (the log pipe) and records its PID.
fn start(s: &Supervised) -> Result<tokio::process::Child> {
    let child = tokio::process::Command::new(&s.argv[0])
        .args(&s.argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", s.argv[0]))?;
    let pid = child.id().context("the daemon has no PID")?;
    state::record_pid(&s.lab, &s.node, &s.daemon, pid)?;
    info!(pid, "daemon started");
    Ok(child)
}

/// SIGTERM to the daemon, [`STOP_GRACE`] to end, then SIGKILL.
async fn stop(s: &Supervised, mut child: tokio::process::Child) -> Result<()> {
    info!("stopping the daemon");
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        warn!("the daemon ignored SIGTERM: killing it");
        let _ = child.kill().await;
    }
    cleanup_after(s).await;
    Ok(())
}

/// How long an agent may sit stopped (SIGSTOP) before its VIP is removed.
const STOPPED_FOR: Duration = Duration::from_secs(1);

/// A stopped agent (SIGSTOP, a debugger) is not dead and is not restarted, but it serves
/// nothing while its node's kernel still answers ARP for the VIP: once it has been stopped
/// for [`STOPPED_FOR`] the VIP is removed (the other balancer takes over when the adverts
/// stop; the resumed agent puts the VIP back with its next advert if it is still master).
/// Never returns.
async fn watch_stopped(s: &Supervised, pid: Option<u32>) {
    let Some(pid) = pid.filter(|_| s.daemon == "agent") else {
        return std::future::pending().await;
    };
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| proc_state(&t))
            .is_some_and(|c| c == 'T' || c == 't')
    };
    let tick = Duration::from_millis(100);
    loop {
        let mut since: Option<Instant> = None;
        while since.is_none_or(|t| t.elapsed() < STOPPED_FOR) {
            tokio::time::sleep(tick).await;
            since = if stopped() {
                since.or(Some(Instant::now()))
            } else {
                None
            };
        }
        warn!("the daemon is stopped (SIGSTOP?)");
        cleanup_after(s).await;
        while stopped() {
            tokio::time::sleep(tick).await;
        }
        info!("the daemon resumed");
    }
}

/// The state letter of a /proc/PID/stat line (R, S, T, Z…): the field after the command
/// name, which may itself hold spaces and parentheses.
fn proc_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// After an agent ends: removes the VIP it may have left (see the module doc).
async fn cleanup_after(s: &Supervised) {
    if s.daemon != "agent" {
        return;
    }
    match agent_vips(&s.lab, &s.node) {
        Ok(Some((iface, vips))) => match crate::vrrp::io::remove_stale_vips(&iface, &vips).await {
            Ok(v) if !v.is_empty() => {
                warn!(?v, iface, "removed the VIP the agent left behind")
            }
            Ok(_) => {}
            Err(e) => warn!("removing the agent's VIP: {e:#}"),
        },
        Ok(None) => {}
        Err(e) => warn!("finding the agent's VIP: {e:#}"),
    }
}

/// The interface and VIPs the node's agent runs VRRP for, from the lab's saved config.
fn agent_vips(lab: &str, node: &str) -> Result<Option<(String, Vec<std::net::Ipv4Addr>)>> {
    let text = state::load_config_text(lab).context("the lab's config is gone")?;
    let cfg = crate::config::Config::from_toml(&text, "the lab's config")?.with_lab_name(lab)?;
    let Some(v) = &cfg.vrrp else { return Ok(None) };
    let ic = v.instance_config(&cfg, node)?;
    Ok(Some((ic.interface, ic.vips)))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn reads_the_process_state() {
        assert_eq!(proc_state("4242 (lbctl) T 1 4242 4242 0"), Some('T'));
        assert_eq!(proc_state("7 (a) b) (c) S 1 7"), Some('S'));
        assert_eq!(proc_state("garbage"), None);
    }

    #[test]
    fn describes_exits() {
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by SIGKILL");
        assert_eq!(describe(ExitStatus::from_raw(1 << 8)), "exit status 1");
    }
}
