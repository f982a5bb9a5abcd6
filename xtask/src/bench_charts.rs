//! The benchmarks' pictures (pure: figures in, SVG text out, drawn by lb-chart), and where
//! they land: `target/bench/`. Each bench writes its picture next to the numbers it prints.

use anyhow::{Context, Result};
use lb_chart::{Bar, BarGroup, Bars, Legend, Lines, Series};
use std::path::{Path, PathBuf};

/// lbctl's colour and the reference tool's, the same in every picture.
fn legend(theirs: &str) -> Vec<Legend> {
    vec![
        Legend::new("ours", "lbctl", "#2563c9"),
        Legend::new("theirs", theirs, "#d9822b"),
    ]
}

/// Writes `svg` as `target/bench/NAME` and says where.
pub fn write(root: &Path, name: &str, svg: &str) -> Result<PathBuf> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    println!("picture: {}", path.display());
    Ok(path)
}

/// One failover case's outcome as drawn: the outage, or why there is none.
pub struct FailoverBar {
    pub outage_ms: Option<u64>,
    pub note: String,
}

/// Failover cases side by side: one group per (fault, advert interval), lbctl's bar over
/// keepalived's.
pub fn failover(cases: &[(String, FailoverBar, FailoverBar)], title: &str) -> String {
    let bar = |who: &str, class: &str, b: &FailoverBar| Bar {
        label: who.into(),
        value: b.outage_ms.map(|v| v as f64),
        class: class.into(),
        note: b.note.clone(),
    };
    let groups = cases
        .iter()
        .map(|(case, ours, theirs)| BarGroup {
            title: case.clone(),
            bars: vec![
                bar("lbctl", "ours", ours),
                bar("keepalived", "theirs", theirs),
            ],
            reference: None,
        })
        .collect();
    Bars {
        title: title.into(),
        axis: "user-visible outage (ms): last answer before the fault to first after it".into(),
        groups,
        legend: legend("keepalived"),
    }
    .render()
}

/// Latency CDFs, lbctl's and HAProxy's: (percentile, ms) points each.
pub fn latency_cdf(ours: &[(f64, f64)], theirs: &[(f64, f64)], title: &str) -> String {
    let series = |label: &str, class: &str, pts: &[(f64, f64)]| Series {
        label: label.into(),
        class: class.into(),
        points: pts.iter().map(|&(p, ms)| (ms, p)).collect(),
    };
    Lines {
        title: title.into(),
        x_name: "response time (ms, log scale)".into(),
        y_name: "percent of requests at or below".into(),
        x_log: true,
        series: vec![
            series("lbctl", "ours", ours),
            series("HAProxy", "theirs", theirs),
        ],
        legend: legend("HAProxy"),
    }
    .render()
}

/// ns per packet of each BPF program run, grouped with the no-op floor each compares to:
/// (group title, [(label, ns)], (floor label, floor ns)).
pub type PerPacketGroup = (String, Vec<(String, f64)>, (String, f64));

pub fn per_packet(groups: &[PerPacketGroup], title: &str) -> String {
    let groups = groups
        .iter()
        .map(|(t, bars, (floor, ns))| BarGroup {
            title: t.clone(),
            bars: bars
                .iter()
                .map(|(l, v)| Bar {
                    label: l.clone(),
                    value: v.is_finite().then_some(*v),
                    class: "ours".into(),
                    note: if v.is_finite() {
                        format!("{v:.1} ns ({:+.1} over the floor)", v - ns)
                    } else {
                        "not measured".into()
                    },
                })
                .collect(),
            reference: ns
                .is_finite()
                .then(|| (*ns, format!("{floor}: {ns:.1} ns"))),
        })
        .collect();
    Bars {
        title: title.into(),
        axis: "ns per packet (BPF_PROG_TEST_RUN)".into(),
        groups,
        legend: vec![Legend::new("ours", "lbctl's BPF VTEP", "#2563c9")],
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, svg: &str) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        lb_chart::snapshot::check(root, &format!("src/snapshots/{name}"), svg);
    }

    #[test]
    fn failover_snapshot() {
        let b = |ms: Option<u64>| FailoverBar {
            outage_ms: ms,
            note: ms.map_or("never recovered (40/40 failed)".into(), |v| {
                format!("{v} ms")
            }),
        };
        let cases = vec![
            (
                "link cut, advert 1000 ms".to_string(),
                b(Some(3400)),
                b(Some(3600)),
            ),
            (
                "graceful stop, advert 100 ms".to_string(),
                b(Some(120)),
                b(None),
            ),
        ];
        check("failover.svg", &failover(&cases, "failover"));
    }

    #[test]
    fn latency_cdf_snapshot() {
        let ours = [(0.0, 0.2), (50.0, 0.7), (99.0, 2.4), (100.0, 9.5)];
        let theirs = [(0.0, 0.1), (50.0, 0.5), (99.0, 1.9), (100.0, 12.0)];
        check("proxy-cdf.svg", &latency_cdf(&ours, &theirs, "proxy"));
    }

    #[test]
    fn per_packet_snapshot() {
        let g = vec![(
            "single run".to_string(),
            vec![
                ("lb_vxdec".to_string(), 48.0),
                ("lb_vxenc".into(), f64::NAN),
            ],
            ("no-op XDP floor".to_string(), 21.5),
        )];
        let svg = per_packet(&g, "datapath");
        check("datapath.svg", &svg);
        assert!(svg.contains("not measured") && svg.contains("+26.5 over the floor"));
    }
}
