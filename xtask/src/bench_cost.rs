//! What one request costs a proxy, counted rather than timed: its CPU time, its context
//! switches and the TCP segments the machine sent, each divided by the requests wrk
//! completed. Unlike req/s these hardly move with the load other jobs put on a shared
//! machine (the CPU time a little, the counts not at all), so they show whether a
//! difference in throughput is the proxy's own work or the machine's.

use anyhow::{Context, Result};

/// Counters read before and after a wrk run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Time the proxy's threads ran, ns (`/proc/PID/task/*/schedstat`, first field).
    cpu_ns: u64,
    /// Voluntary + involuntary context switches of the proxy's threads.
    switches: u64,
    /// `Tcp: OutSegs` of `/proc/net/snmp`: every segment sent on this network namespace
    /// (the benchmark's traffic is all on its loopback; the health checks add a few).
    segments: u64,
}

/// Per request, over one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub cpu_us: f64,
    pub switches: f64,
    pub segments: f64,
}

impl Sample {
    /// The counters of process `pid` (all its threads) and of the namespace's TCP.
    pub fn take(pid: u32) -> Result<Sample> {
        let mut s = Sample {
            segments: tcp_out_segs(&read("/proc/net/snmp")?)?,
            ..Sample::default()
        };
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
            .with_context(|| format!("listing the threads of process {pid}"))?;
        for t in tasks {
            let dir = t?.path();
            // A thread can end between the listing and the read: it has no more to count.
            let (Ok(sched), Ok(status)) = (
                std::fs::read_to_string(dir.join("schedstat")),
                std::fs::read_to_string(dir.join("status")),
            ) else {
                continue;
            };
            s.cpu_ns += first_number(&sched)
                .with_context(|| format!("{}: schedstat {sched:?}", dir.display()))?;
            s.switches += switches(&status);
        }
        Ok(s)
    }

    /// What happened between `self` and `later`, per request of `requests`.
    pub fn per_request(&self, later: &Sample, requests: u64) -> Cost {
        let n = requests.max(1) as f64;
        Cost {
            cpu_us: later.cpu_ns.saturating_sub(self.cpu_ns) as f64 / 1000.0 / n,
            switches: later.switches.saturating_sub(self.switches) as f64 / n,
            segments: later.segments.saturating_sub(self.segments) as f64 / n,
        }
    }
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

fn first_number(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

/// The sum of `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches`.
fn switches(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// `OutSegs` from `/proc/net/snmp`'s two `Tcp:` lines (names, then values).
fn tcp_out_segs(snmp: &str) -> Result<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        anyhow::bail!("/proc/net/snmp has no Tcp lines");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutSegs")
        .and_then(|(_, v)| v.parse().ok())
        .context("/proc/net/snmp: no Tcp OutSegs value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_segments_are_read_by_name() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm InSegs OutSegs RetransSegs\nTcp: 1 500 311715061 27\n";
        assert_eq!(tcp_out_segs(snmp).unwrap(), 311715061);
        assert!(tcp_out_segs("Ip: a\nIp: 1\n").is_err());
        assert!(tcp_out_segs("Tcp: InSegs\nTcp: 5\n").is_err());
    }

    #[test]
    fn both_kinds_of_context_switch_count() {
        let status =
            "Name:\tproxy-0\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches(status), 127);
    }

    #[test]
    fn costs_are_per_request() {
        let a = Sample {
            cpu_ns: 1_000_000,
            switches: 10,
            segments: 100,
        };
        let b = Sample {
            cpu_ns: 3_000_000,
            switches: 30,
            segments: 500,
        };
        let c = a.per_request(&b, 100);
        assert_eq!(
            c,
            Cost {
                cpu_us: 20.0,
                switches: 0.2,
                segments: 4.0
            }
        );
    }

    #[test]
    fn this_process_is_counted() {
        let s = Sample::take(std::process::id()).unwrap();
        assert!(s.cpu_ns > 0, "{s:?}");
        assert!(s.switches > 0 || s.cpu_ns > 0);
    }
}
