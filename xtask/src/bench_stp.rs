//! `cargo xtask bench stp`: what a user sees of a spanning-tree event, the kernel's 802.1D
//! against lbctl's RSTP (`lbctl up --stp rstp`), in one run on the same machine.
//!
//! One lab per mode (configs/default.toml, lab `bstpk` or `bstpr`). Three 10 ms ping loops
//! run through every event: user1 → user2, and both users → bal1's external address (not the
//! VIP: VRRP stays out of the picture). Each event pair (link swout1–swout2, link
//! vswout1–swout2, the root bridge swout2 down then up; a bridge set down keeps its links'
//! carrier, so neighbours only notice its silence) runs `--runs` times. For each flow the
//! outage is the longest gap between two replies around the event (10 ms when nothing was
//! lost); a flow whose end is on the failed bridge has no path and is left out. Printed per
//! event: median and worst over flows and runs, per mode, and kernel/rstp of the medians.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::bench::{build_release, lbctl_bin, run_ok};

/// The flows measured: (from, to, the bridge `to` or `from` hangs off, for no-path events).
const FLOWS: [(&str, &str, &str); 3] = [
    ("user1", "172.16.1.101", "swout2"),
    ("user1", "172.16.1.250", ""),
    ("user2", "172.16.1.250", "swout2"),
];

/// The faults, each undone right after: (label, lbctl args with `{}` for down/up).
const EVENTS: [(&str, &[&str]); 3] = [
    ("link swout1-swout2", &["link", "{}", "swout1", "swout2"]),
    ("link vswout1-swout2", &["link", "{}", "vswout1", "swout2"]),
    ("bridge swout2 (root)", &["bridge", "{}", "swout2"]),
];

pub struct StpOpts {
    pub runs: u32,
    pub lbctl: Option<PathBuf>,
    /// Skip the kernel's 802.1D (its events take ~20 s each): RSTP figures alone.
    pub rstp_only: bool,
}

/// Longest gap (ms) between consecutive replies from the last one before `event` on; a flow
/// with no reply before the event counts from the event itself (it had no path until then).
/// None: no reply after the event.
pub fn outage_ms(replies: &[f64], event: f64) -> Option<f64> {
    let before = replies
        .iter()
        .copied()
        .filter(|t| *t < event)
        .reduce(f64::max);
    let after: Vec<f64> = replies.iter().copied().filter(|t| *t >= event).collect();
    if after.is_empty() {
        return None;
    }
    let mut pts = vec![before.unwrap_or(event)];
    pts.extend(after);
    pts.windows(2)
        .map(|w| (w[1] - w[0]) * 1000.0)
        .reduce(f64::max)
}

/// The reply timestamps of `ping -D` output lines.
fn reply_time(line: &str) -> Option<f64> {
    if !line.contains("bytes from") {
        return None;
    }
    line.strip_prefix('[')?.split(']').next()?.parse().ok()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A ping loop in a lab node, its replies' times collected by a reader thread.
struct PingLoop {
    child: Child,
    replies: Arc<Mutex<Vec<f64>>>,
}

impl PingLoop {
    fn start(lbctl: &Path, lab: &str, from: &str, to: &str) -> Result<PingLoop> {
        let mut child = Command::new(lbctl)
            .args([
                "exec", "--lab", lab, from, "--", "ping", "-D", "-i", "0.01", to,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a ping loop")?;
        let out = child.stdout.take().context("ping's stdout")?;
        let replies = Arc::new(Mutex::new(Vec::new()));
        let r = replies.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if let Some(t) = reply_time(&line) {
                    r.lock().unwrap().push(t);
                }
            }
        });
        Ok(PingLoop { child, replies })
    }

    /// Time the flow has answered without a gap over 200 ms (0 without replies).
    fn streak(&self) -> f64 {
        let r = self.replies.lock().unwrap();
        let mut start = match r.last() {
            Some(t) => *t,
            None => return 0.0,
        };
        for w in r.windows(2).rev() {
            if w[1] - w[0] > 0.2 {
                break;
            }
            start = w[0];
        }
        now_s() - start
    }

    fn stop(mut self) -> Vec<f64> {
        // Our own child (the exec'd ping), by PID.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        let r = self.replies.lock().unwrap().clone();
        r
    }
}

/// Waits until `status` says the tree equals theory (after a kernel-mode repair, 2 × forward
/// delay).
fn wait_theory(lbctl: &Path, lab: &str) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let out = run_ok(Command::new(lbctl).args(["status", "--json", "--lab", lab]))?;
        let st: serde_json::Value = serde_json::from_str(&out)?;
        if st["mismatches"].as_array().is_some_and(|m| m.is_empty()) {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(40) {
            bail!("lab {lab}: the tree differs from theory 40 s on");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One event on a settled lab: the loops, the fault 1.5 s in, the loops kept until every
/// flow with a path has answered for 2 s and at least `min` has passed. Returns each
/// measured flow's outage (None: never answered again).
fn one_event(
    lbctl: &Path,
    lab: &str,
    args: &[String],
    no_path: &str,
    min: Duration,
) -> Result<Vec<Option<f64>>> {
    wait_theory(lbctl, lab)?;
    let flows: Vec<_> = FLOWS
        .iter()
        .filter(|f| no_path.is_empty() || f.2 != no_path)
        .collect();
    let loops = flows
        .iter()
        .map(|(from, to, _)| PingLoop::start(lbctl, lab, from, to))
        .collect::<Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(1500));
    let event = now_s();
    let t0 = Instant::now();
    run_ok(
        Command::new(lbctl)
            .args(args)
            .args(["--lab", lab, "--no-wait"]),
    )?;
    while t0.elapsed() < min || loops.iter().any(|l| l.streak() < 2.0) {
        if t0.elapsed() > Duration::from_secs(40) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(loops
        .into_iter()
        .map(|l| outage_ms(&l.stop(), event))
        .collect())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The samples of one event in one mode: (outages of flows that recovered, flows that never did).
type Samples = (Vec<f64>, u32);

/// Runs every event `runs` times on a lab of `mode`; samples by event label.
fn measure_mode(
    lbctl: &Path,
    root: &Path,
    mode: &str,
    runs: u32,
) -> Result<Vec<(String, Samples)>> {
    let lab = if mode == "kernel" { "bstpk" } else { "bstpr" };
    let cfg = root.join("configs/default.toml");
    let _ = Command::new(lbctl).args(["down", "--lab", lab]).output();
    eprintln!("  {mode}: lab {lab} up");
    run_ok(
        Command::new(lbctl)
            .args(["up", "--lab", lab, "--stp", mode, "-c"])
            .arg(&cfg),
    )?;
    struct Down<'a>(&'a Path, &'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(self.0)
                .args(["down", "--lab", self.1])
                .output();
        }
    }
    let _down = Down(lbctl, lab);
    // The kernel's worst case: max_age 6 + 2 × forward_delay 4, plus margin.
    let min = if mode == "kernel" {
        Duration::from_secs(16)
    } else {
        Duration::from_secs(4)
    };
    let mut out: Vec<(String, Samples)> = Vec::new();
    for run in 1..=runs {
        for (label, tmpl) in EVENTS {
            for act in ["down", "up"] {
                let args: Vec<String> = tmpl.iter().map(|a| a.replace("{}", act)).collect();
                let no_path = if label.starts_with("bridge") && act == "down" {
                    "swout2"
                } else {
                    ""
                };
                let name = format!("{label} {act}");
                eprintln!("  {mode} run {run}/{runs}: {name}");
                let got = one_event(lbctl, lab, &args, no_path, min)?;
                let entry = match out.iter_mut().find(|(n, _)| *n == name) {
                    Some(e) => e,
                    None => {
                        out.push((name.clone(), (Vec::new(), 0)));
                        out.last_mut().unwrap()
                    }
                };
                for g in got {
                    match g {
                        Some(ms) => entry.1 .0.push(ms),
                        None => entry.1 .1 += 1,
                    }
                }
            }
        }
    }
    Ok(out)
}

fn cell(s: &Samples) -> String {
    if s.0.is_empty() && s.1 == 0 {
        return "-".to_string();
    }
    if s.0.is_empty() {
        return format!("never ({} flows)", s.1);
    }
    let worst = s.0.iter().copied().fold(0.0, f64::max);
    let never = if s.1 > 0 {
        format!(", {} never", s.1)
    } else {
        String::new()
    };
    format!("{:>7.0} / {:>7.0}{never}", median(&s.0), worst)
}

pub fn stp(root: &Path, o: &StpOpts) -> Result<()> {
    let lbctl = match &o.lbctl {
        Some(p) => p.clone(),
        None => {
            build_release(root)?;
            lbctl_bin(root)
        }
    };
    println!(
        "bench stp: 10 ms ping loops user1->user2, user1->bal1, user2->bal1 (172.16.1.250); \
         each event {} time(s); outage = longest gap between replies (ms), median / worst \
         over flows and runs; flows without a path left out",
        o.runs
    );
    let kernel = if o.rstp_only {
        Vec::new()
    } else {
        measure_mode(&lbctl, root, "kernel", o.runs)?
    };
    let rstp = measure_mode(&lbctl, root, "rstp", o.runs)?;
    println!(
        "\n| event | kernel 802.1D median / worst (ms) | lbctl RSTP median / worst (ms) | kernel/rstp (medians) |"
    );
    println!("|---|---|---|---|");
    let none: Samples = (Vec::new(), 0);
    for (name, r) in &rstp {
        let k = kernel
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&none, |(_, k)| k);
        let ratio = if k.0.is_empty() || r.0.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}×", median(&k.0) / median(&r.0).max(1.0))
        };
        println!("| {name} | {} | {} | {ratio} |", cell(k), cell(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_is_the_longest_gap_around_the_event() {
        let t: Vec<f64> = vec![9.0, 9.99, 10.0, 10.01, 10.5, 10.51];
        assert_eq!(outage_ms(&t, 10.0).map(|v| v.round()), Some(490.0));
        // No reply before the event (no path until then): counted from the event.
        assert_eq!(
            outage_ms(&[12.0, 12.01], 10.0).map(|v| v.round()),
            Some(2000.0)
        );
        // Never answered again.
        assert_eq!(outage_ms(&[9.5, 9.6], 10.0), None);
        // A gap long before the event is not the event's.
        assert_eq!(
            outage_ms(&[5.0, 9.99, 10.0], 10.0).map(|v| v.round()),
            Some(10.0)
        );
    }

    #[test]
    fn reply_lines_give_their_time() {
        let l = "[1796242399.028022] 64 bytes from 172.16.1.101: icmp_seq=1 ttl=64 time=0.1 ms";
        assert_eq!(reply_time(l), Some(1796242399.028022));
        assert_eq!(reply_time("[1.0] no answer yet for icmp_seq=3"), None);
    }
}
