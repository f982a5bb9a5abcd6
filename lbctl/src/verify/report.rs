//! The verify report: checkpoints made of steps (pass, fail or skip, each with its
//! evidence) and the failure events with what each client saw. The JSON form is a stable
//! schema (`schema: 2`, documented in the README; 2 added each event's trace and VRRP
//! takeover); the text form is for people, and [`super::draw`] makes pictures of it.

use super::outage::{Outage, Trace};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

pub const SCHEMA: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run (the checkpoint already failed earlier, or the step's evidence could not
    /// be gathered). A checkpoint is proven only by steps that ran: a skip fails it too,
    /// so a checkpoint can never pass on evidence that was never checked.
    Skip,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub status: Status,
    pub evidence: Vec<String>,
}

/// One failure event (a fault injected or repaired) as one client saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// "link swout1 - swout2", "bridge vswout1", "tunnel cut + link bal1 - vswout1"…
    pub fault: String,
    /// "down" (the fault injected) or "up" (repaired).
    pub action: String,
    pub client: String,
    #[serde(flatten)]
    pub outage: Outage,
    /// The client had a path to the service during the event (user1 has none while its
    /// only switch is down): only then is "not recovered" a failure.
    pub has_path: bool,
    /// Time from the injection until the kernel's tree was the expected one, when STP
    /// was involved.
    pub stp_converged_ms: Option<u64>,
    /// Time from the injection until the backup balancer reported MASTER, when the event
    /// made VRRP fail over.
    #[serde(default)]
    pub vrrp_takeover_ms: Option<u64>,
    /// The requests around the event, for drawing it (absent from schema-1 reports).
    #[serde(default)]
    pub trace: Trace,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub number: u8,
    pub name: String,
    pub passed: bool,
    pub duration_ms: u64,
    pub steps: Vec<Step>,
    pub events: Vec<Event>,
    /// Print each step and event on stderr as it is recorded (progress of a live run).
    #[serde(skip, default)]
    pub live: bool,
}

impl Checkpoint {
    pub fn new(number: u8, name: &str) -> Checkpoint {
        Checkpoint {
            number,
            name: name.to_string(),
            passed: true,
            duration_ms: 0,
            steps: vec![],
            events: vec![],
            live: false,
        }
    }

    /// Records a step; returns whether it passed. A step that did not run (`Skip`) fails
    /// the checkpoint as a failed one does.
    pub fn step(&mut self, name: &str, status: Status, evidence: Vec<String>) -> bool {
        if status != Status::Pass {
            self.passed = false;
        }
        if self.live {
            eprintln!("  [{}] {name}", mark(status));
            if status == Status::Fail {
                for e in &evidence {
                    eprintln!("         {e}");
                }
            }
        }
        self.steps.push(Step {
            name: name.to_string(),
            status,
            evidence,
        });
        status == Status::Pass
    }

    /// Records an event (and shows it on a live run).
    pub fn event(&mut self, e: Event) {
        if self.live {
            eprintln!("{}", event_row(&e));
        }
        self.events.push(e);
    }

    /// A step that passes when `ok`.
    pub fn check(&mut self, name: &str, ok: bool, evidence: Vec<String>) -> bool {
        self.step(name, if ok { Status::Pass } else { Status::Fail }, evidence)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    pub lab: String,
    /// "kernel" or "ebpf" (the config's vxlan.mode), "none" without a tunnel.
    pub data_path: String,
    pub passed: bool,
    /// Ctrl-C (or SIGTERM) stopped the run; the injected failures were undone.
    pub interrupted: bool,
    pub duration_ms: u64,
    pub checkpoints: Vec<Checkpoint>,
    /// Undo actions that had to run outside their step (after an error, a panic or an
    /// interrupt), with their outcome.
    pub undone: Vec<String>,
}

impl Report {
    pub fn finish(&mut self) {
        self.passed = !self.interrupted
            && !self.checkpoints.is_empty()
            && self.checkpoints.iter().all(|c| c.passed)
            && self.undone.iter().all(|u| !u.contains("FAILED"));
    }
}

/// A saved JSON report (`lbctl verify --json`), for drawing it again. Schemas up to
/// [`SCHEMA`] load; a schema-1 report has no traces (its rows show only the figures).
pub fn load(text: &str) -> anyhow::Result<Report> {
    #[derive(Deserialize)]
    struct Head {
        schema: u32,
    }
    let head: Head =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not a verify report: {e}"))?;
    if head.schema > SCHEMA {
        anyhow::bail!(
            "report schema {} is newer than this lbctl reads ({SCHEMA}): draw it with a newer lbctl",
            head.schema
        );
    }
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("not a verify report: {e}"))
}

/// A status as the text and the page show it.
pub fn mark(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Skip => "SKIP",
    }
}

/// One event as a table row.
pub fn event_row(e: &Event) -> String {
    format!(
        "  {:<34} {:<4} {:<6} {:>8} {:>6} {:>6}  {}{}",
        e.fault,
        e.action,
        e.client,
        e.outage.outage_ms,
        e.outage.failed,
        e.outage.requests,
        if e.outage.recovered {
            "recovered"
        } else if !e.has_path {
            "no path (expected)"
        } else {
            "NOT RECOVERED"
        },
        e.stp_converged_ms
            .map(|ms| format!(", STP {:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default()
    )
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "lbctl verify: lab {} (data path {})", r.lab, r.data_path);
    for c in &r.checkpoints {
        let _ = writeln!(
            o,
            "\nCHECKPOINT {} ({}): {} in {:.1} s",
            c.number,
            c.name,
            if c.passed { "PASS" } else { "FAIL" },
            c.duration_ms as f64 / 1000.0
        );
        for s in &c.steps {
            let _ = writeln!(o, "  [{}] {}", mark(s.status), s.name);
            for e in &s.evidence {
                let _ = writeln!(o, "         {e}");
            }
        }
        if !c.events.is_empty() {
            let _ = writeln!(
                o,
                "  {:<34} {:<4} {:<6} {:>8} {:>6} {:>6}  ",
                "EVENT", "", "CLIENT", "OUTAGE", "FAILED", "REQS"
            );
            for e in &c.events {
                let _ = writeln!(o, "{}", event_row(e));
            }
        }
    }
    if !r.undone.is_empty() {
        let _ = writeln!(o, "\nUNDONE after an error or interrupt:");
        for u in &r.undone {
            let _ = writeln!(o, "  {u}");
        }
    }
    let failed: Vec<String> = r
        .checkpoints
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.number.to_string())
        .collect();
    let _ = writeln!(
        o,
        "\n{} in {:.1} s{}",
        if r.passed { "PASS" } else { "FAIL" },
        r.duration_ms as f64 / 1000.0,
        if r.interrupted {
            " (interrupted)".to_string()
        } else if !failed.is_empty() {
            format!(" (checkpoint {} failed)", failed.join(", "))
        } else {
            String::new()
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut c1 = Checkpoint::new(1, "STP");
        c1.check("tree at rest", true, vec!["root swout2".into()]);
        c1.events.push(Event {
            fault: "link swout1 - swout2".into(),
            action: "down".into(),
            client: "user2".into(),
            outage: Outage {
                requests: 100,
                failed: 3,
                outage_ms: 412,
                recovered: true,
                window: None,
            },
            has_path: true,
            stp_converged_ms: Some(8600),
            vrrp_takeover_ms: None,
            trace: Trace::default(),
        });
        let mut c4 = Checkpoint::new(4, "VXLAN");
        c4.step("BPF counters", Status::Skip, vec!["not available".into()]);
        c4.check(
            "reachability",
            false,
            vec!["bal1 -> 10.0.0.3: no answer".into()],
        );
        let mut r = Report {
            schema: SCHEMA,
            lab: "lab".into(),
            data_path: "kernel".into(),
            passed: false,
            interrupted: false,
            duration_ms: 1234,
            checkpoints: vec![c1, c4],
            undone: vec![],
        };
        r.finish();
        r
    }

    #[test]
    fn failing_or_skipped_step_fails_checkpoint_and_report() {
        let r = sample();
        assert!(r.checkpoints[0].passed);
        assert!(!r.checkpoints[1].passed);
        assert!(!r.passed);
        // A step that could not run (e.g. counters never read) is no evidence: the
        // checkpoint fails, even when every other step passed.
        let mut c = Checkpoint::new(4, "x");
        c.check("endpoints", true, vec![]);
        assert!(!c.step("s", Status::Skip, vec![]));
        assert!(!c.passed);
        let mut ok = sample();
        ok.checkpoints.truncate(1);
        ok.finish();
        assert!(ok.passed);
        ok.interrupted = true;
        ok.finish();
        assert!(!ok.passed);
        ok.interrupted = false;
        ok.undone.push("bridge vswout1 up: FAILED (x)".into());
        ok.finish();
        assert!(!ok.passed);
        let mut empty = sample();
        empty.checkpoints.clear();
        empty.finish();
        assert!(!empty.passed, "nothing verified is not a pass");
    }

    #[test]
    fn text_names_steps_evidence_and_events() {
        let t = render(&sample());
        assert!(t.contains("CHECKPOINT 1 (STP): PASS"), "{t}");
        assert!(t.contains("[PASS] tree at rest"), "{t}");
        assert!(t.contains("         root swout2"), "{t}");
        assert!(t.contains("[SKIP] BPF counters"), "{t}");
        assert!(t.contains("[FAIL] reachability"), "{t}");
        let row = t
            .lines()
            .find(|l| l.contains("link swout1 - swout2"))
            .unwrap();
        assert!(
            row.contains("down") && row.contains("user2") && row.contains(" 412 "),
            "{row}"
        );
        assert!(row.contains("recovered, STP 8.6 s"), "{row}");
        assert!(t.ends_with("FAIL in 1.2 s (checkpoint 4 failed)\n"), "{t}");
    }

    #[test]
    fn json_schema_is_stable() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["schema"], 2);
        assert_eq!(v["passed"], false);
        let c = &v["checkpoints"][0];
        assert_eq!(c["number"], 1);
        assert_eq!(c["steps"][0]["status"], "pass");
        let e = &c["events"][0];
        // Outage fields are flattened into the event.
        for k in [
            "fault",
            "action",
            "client",
            "requests",
            "failed",
            "outage_ms",
            "recovered",
            "has_path",
            "stp_converged_ms",
            "vrrp_takeover_ms",
            "trace",
        ] {
            assert!(e.get(k).is_some(), "event lacks {k}: {e}");
        }
        assert_eq!(e["outage_ms"], 412);
        assert_eq!(v["checkpoints"][1]["steps"][0]["status"], "skip");
    }

    #[test]
    fn a_saved_report_loads_back_and_a_newer_schema_is_refused() {
        let text = serde_json::to_string(&sample()).unwrap();
        let back = load(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        // A schema-1 report (no trace, no takeover) still loads, to be drawn without samples.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["schema"] = 1.into();
        let e = v["checkpoints"][0]["events"][0].as_object_mut().unwrap();
        e.remove("trace");
        e.remove("vrrp_takeover_ms");
        assert!(load(&v.to_string()).unwrap().checkpoints[0].events[0]
            .trace
            .failed
            .is_empty());
        v["schema"] = 3.into();
        let err = load(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("schema 3"), "{err}");
        let err = load("{\"schema\": 2}").unwrap_err().to_string();
        assert!(err.contains("lab"), "{err}");
    }
}
