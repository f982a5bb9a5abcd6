//! Snapshots of each chart (the SVG text is checked in under `snapshots/`), and that the
//! output is well-formed XML with the structure the consumers count on.

use crate::*;
use std::path::Path;

fn check(name: &str, svg: &str) {
    snapshot::check(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &format!("snapshots/{name}"),
        svg,
    );
    roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{name} is not XML: {e}"));
}

fn count(svg: &str, tag: &str, class: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name(tag))
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|w| w == class))
        })
        .count()
}

fn timeline() -> Timeline {
    let row = |label: &str, fail: bool| Row {
        label: label.into(),
        data: vec![("client".into(), label.into())],
        marks: vec![
            Mark::new(What::At(0.0), Lane::Full, "fault", "fault at 0 s"),
            Mark::new(
                What::Span {
                    from: -0.5,
                    to: 0.2,
                },
                Lane::Lower,
                "ok",
                "answers",
            ),
            if fail {
                Mark::new(
                    What::Span { from: 0.2, to: 1.4 },
                    Lane::Upper,
                    "failed",
                    "3 failed <requests> & more",
                )
            } else {
                Mark::new(What::At(2.5), Lane::Full, "stp", "STP converged")
            },
            Mark::new(
                What::Span {
                    from: 0.15,
                    to: 1.45,
                },
                Lane::Full,
                "outage",
                "outage 1300 ms",
            ),
        ],
    };
    Timeline {
        title: "verify: \"lab\" <x> & y".into(),
        axis: "seconds since the event".into(),
        from: -0.5,
        to: 9.0,
        groups: vec![
            Group {
                title: "CHECKPOINT 1 (STP)".into(),
                rows: vec![row("user1 link down", true), row("user2 link down", false)],
            },
            Group {
                title: "CHECKPOINT 2 (VRRP)".into(),
                rows: vec![row("user2 bridge down", true)],
            },
        ],
        legend: vec![
            Legend::new("fault", "fault injected", "#d00"),
            Legend::new("failed", "failed request", "#e33"),
            Legend::new("ok", "answered", "#3a3"),
            Legend::new("outage", "outage", "#f90"),
            Legend::new("stp", "STP converged", "#26c"),
        ],
    }
}

#[test]
fn timeline_snapshot_has_a_row_per_row_and_escapes_text() {
    let svg = timeline().render();
    check("timeline.svg", &svg);
    assert_eq!(count(&svg, "g", "row"), 3);
    assert_eq!(count(&svg, "g", "group"), 2);
    assert!(svg.contains("&lt;requests&gt; &amp; more"));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
    assert_eq!(title.text(), Some("verify: \"lab\" <x> & y"));
    assert_eq!(
        svg,
        timeline().render(),
        "the same input gives the same bytes"
    );
}

#[test]
fn cdf_snapshot_has_one_line_per_series() {
    let cdf = |c: &str, k: f64| Series {
        label: c.into(),
        class: c.into(),
        points: [(50.0, 0.7), (90.0, 1.1), (99.0, 2.5), (99.9, 9.0)]
            .iter()
            .map(|&(p, ms)| (ms * k, p))
            .collect(),
    };
    let l = Lines {
        title: "latency CDF".into(),
        x_name: "latency (ms, log scale)".into(),
        y_name: "percentile".into(),
        x_log: true,
        series: vec![cdf("ours", 1.0), cdf("theirs", 1.3)],
        legend: vec![
            Legend::new("ours", "lbctl", "#26c"),
            Legend::new("theirs", "HAProxy", "#d60"),
        ],
    };
    let svg = l.render();
    check("cdf.svg", &svg);
    assert_eq!(count(&svg, "polyline", "line"), 2);
}

#[test]
fn bars_snapshot_draws_known_values_and_the_reference() {
    let bar = |label: &str, value: Option<f64>| Bar {
        label: label.into(),
        value,
        class: "ours".into(),
        note: value.map_or("never recovered".into(), |v| format!("{v} ns")),
    };
    let b = Bars {
        title: "ns per packet".into(),
        axis: "ns".into(),
        groups: vec![
            BarGroup {
                title: "single run".into(),
                bars: vec![bar("decap", Some(48.5)), bar("encap", Some(120.0))],
                reference: Some((30.0, "no-op floor 30 ns".into())),
            },
            BarGroup {
                title: "failover".into(),
                bars: vec![bar("lost", None)],
                reference: None,
            },
        ],
        legend: vec![Legend::new("ours", "lbctl", "#26c")],
    };
    let svg = b.render();
    check("bars.svg", &svg);
    assert_eq!(count(&svg, "g", "bar"), 3);
    assert_eq!(count(&svg, "line", "ref"), 1);
    assert!(svg.contains("never recovered"));
}
