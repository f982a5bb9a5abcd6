//! Pictures of a verify report: the outage timeline (SVG, one row per event and client,
//! grouped by checkpoint, on one time axis of seconds since the event) and a
//! self-contained HTML page with the timeline and the report's tables. Pure: a report in,
//! text out; drawn generically from the events, so a new kind of event needs no change.

use super::report::{mark, Checkpoint, Event, Report};
use lb_chart::{escape, Group, Lane, Legend, Mark, Row, Timeline, What};
use std::fmt::Write;

fn legend() -> Vec<Legend> {
    vec![
        Legend::new("fault", "fault injected", "#c00"),
        Legend::new("repair", "fault repaired", "#080"),
        Legend::new("ok", "answered", "#5b5"),
        Legend::new("failed", "failed request", "#e44"),
        Legend::new("outage", "outage", "#f80"),
        Legend::new("stp", "STP converged", "#26c"),
        Legend::new("takeover", "VRRP takeover", "#93c"),
    ]
}

fn ms(v: i64) -> f64 {
    v as f64 / 1000.0
}

/// The marks of one event's row: the event itself at 0, each answered run and failed
/// request, the outage window, STP convergence and the VRRP takeover.
fn marks(e: &Event) -> Vec<Mark> {
    let t = &e.trace;
    let (class, what) = if e.action == "up" {
        ("repair", "repaired")
    } else {
        ("fault", "injected")
    };
    let mut v = vec![];
    if let Some([a, b]) = t.outage {
        let title = format!("outage {} ms", e.outage.outage_ms);
        v.push(Mark::new(
            What::Span {
                from: ms(a),
                to: ms(b),
            },
            Lane::Full,
            "outage",
            title,
        ));
    }
    for &[a, b] in &t.answered {
        let title = format!("answered {:.2} s to {:.2} s", ms(a), ms(b));
        v.push(Mark::new(
            What::Span {
                from: ms(a),
                to: ms(b),
            },
            Lane::Lower,
            "ok",
            title,
        ));
    }
    for &[a, b] in &t.failed {
        let title = format!(
            "request failed: sent {:.2} s, gave up {:.2} s",
            ms(a),
            ms(b)
        );
        v.push(Mark::new(
            What::Span {
                from: ms(a),
                to: ms(b),
            },
            Lane::Upper,
            "failed",
            title,
        ));
    }
    v.push(Mark::new(
        What::At(0.0),
        Lane::Full,
        class,
        format!("{} {}", e.fault, what),
    ));
    if let Some(s) = e.stp_converged_ms {
        let title = format!("STP converged after {s} ms");
        v.push(Mark::new(
            What::At(s as f64 / 1000.0),
            Lane::Full,
            "stp",
            title,
        ));
    }
    if let Some(s) = e.vrrp_takeover_ms {
        let title = format!("backup MASTER after {s} ms");
        v.push(Mark::new(
            What::At(s as f64 / 1000.0),
            Lane::Full,
            "takeover",
            title,
        ));
    }
    v
}

/// The row of one event: labelled, and carrying its identity as `data-*` attributes.
fn row(c: &Checkpoint, e: &Event) -> Row {
    Row {
        label: format!("{} {} · {}", e.fault, e.action, e.client),
        data: vec![
            ("checkpoint".into(), c.number.to_string()),
            ("fault".into(), e.fault.clone()),
            ("action".into(), e.action.clone()),
            ("client".into(), e.client.clone()),
            ("outage-ms".into(), e.outage.outage_ms.to_string()),
            ("failed".into(), e.outage.failed.to_string()),
        ],
        marks: marks(e),
    }
}

/// Where the axis ends: a second past the last thing worth seeing in any row (the last
/// failure, outage end, STP convergence or takeover), at least 3 s; the answered runs
/// that go on after it are cut at the edge.
fn axis_end(r: &Report) -> f64 {
    let events = r.checkpoints.iter().flat_map(|c| &c.events);
    let last = events
        .flat_map(|e| {
            let t = &e.trace;
            let failed = t.failed.iter().map(|f| f[1]);
            let outage = t.outage.iter().map(|o| o[1]);
            let marks = [e.stp_converged_ms, e.vrrp_takeover_ms]
                .into_iter()
                .flatten()
                .map(|v| v as i64);
            failed.chain(outage).chain(marks).collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0);
    (ms(last) + 1.0).ceil().max(3.0)
}

/// The timeline of every event of the report.
pub fn timeline(r: &Report) -> Timeline {
    let groups = r
        .checkpoints
        .iter()
        .filter(|c| !c.events.is_empty())
        .map(|c| Group {
            title: format!("CHECKPOINT {} ({})", c.number, c.name),
            rows: c.events.iter().map(|e| row(c, e)).collect(),
        })
        .collect();
    Timeline {
        title: format!(
            "lbctl verify: lab {}, data path {}: {} (each row: one event as one client saw it)",
            r.lab,
            r.data_path,
            if r.passed { "PASS" } else { "FAIL" }
        ),
        axis: "seconds since the event (fault injected or repaired)".into(),
        from: -1.0,
        to: axis_end(r),
        groups,
        legend: legend(),
    }
}

pub fn svg(r: &Report) -> String {
    timeline(r).render()
}

/// One checkpoint's tables: its steps with their evidence, then its events.
fn checkpoint_html(o: &mut String, c: &Checkpoint) {
    let _ = writeln!(
        o,
        "<h2>Checkpoint {} ({}): {} in {:.1} s</h2>\n<table><tr><th></th><th>step</th><th>evidence</th></tr>",
        c.number,
        escape(&c.name),
        if c.passed { "PASS" } else { "FAIL" },
        c.duration_ms as f64 / 1000.0
    );
    for s in &c.steps {
        let ev: Vec<String> = s.evidence.iter().map(|e| escape(e)).collect();
        let st = mark(s.status);
        let _ = writeln!(
            o,
            "<tr class=\"{}\"><td>{st}</td><td>{}</td><td>{}</td></tr>",
            st.to_lowercase(),
            escape(&s.name),
            ev.join("<br>")
        );
    }
    o.push_str("</table>\n");
    if c.events.is_empty() {
        return;
    }
    o.push_str("<table class=\"events\"><tr><th>event</th><th></th><th>client</th><th>outage ms</th><th>failed</th><th>requests</th><th>result</th><th>STP ms</th><th>takeover ms</th></tr>\n");
    for e in &c.events {
        let result = match (e.outage.recovered, e.has_path) {
            (true, _) => "recovered",
            (false, false) => "no path (expected)",
            (false, true) => "NOT RECOVERED",
        };
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.fault),
            escape(&e.action),
            escape(&e.client),
            e.outage.outage_ms,
            e.outage.failed,
            e.outage.requests,
            opt(e.stp_converged_ms),
            opt(e.vrrp_takeover_ms)
        );
    }
    o.push_str("</table>\n");
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px;\
font-size:13px;vertical-align:top;text-align:left}tr.fail td:first-child{color:#c00;font-weight:bold}\
tr.skip td:first-child{color:#a60}tr.pass td:first-child{color:#080}svg{max-width:100%;height:auto}";

/// A self-contained page: the timeline inline, then every checkpoint's tables.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let title = format!("lbctl verify: lab {}", r.lab);
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>",
        escape(&title)
    );
    let _ = writeln!(
        o,
        "<h1>{}</h1>\n<p>Data path {}: <b>{}</b> in {:.1} s{}. Hover a mark for its times.</p>",
        escape(&title),
        escape(&r.data_path),
        if r.passed { "PASS" } else { "FAIL" },
        r.duration_ms as f64 / 1000.0,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    o.push_str(&svg(r));
    for c in &r.checkpoints {
        checkpoint_html(&mut o, c);
    }
    if !r.undone.is_empty() {
        o.push_str("<h2>Undone after an error or interrupt</h2><ul>");
        for u in &r.undone {
            let _ = write!(o, "<li>{}</li>", escape(u));
        }
        o.push_str("</ul>\n");
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot;

    /// A real report: `lbctl verify --json` on the default scenario (see fixtures/README).
    fn fixture() -> Report {
        crate::verify::report::load(include_str!("fixtures/report.json")).unwrap()
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"))
    }

    fn rows<'a>(doc: &'a roxmltree::Document<'a>) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("row"))
            .collect()
    }

    #[test]
    fn the_timeline_has_one_row_per_event_in_report_order() {
        let r = fixture();
        let svg = svg(&r);
        let doc = parse(&svg);
        let rows = rows(&doc);
        let events: Vec<(&Checkpoint, &Event)> = r
            .checkpoints
            .iter()
            .flat_map(|c| c.events.iter().map(move |e| (c, e)))
            .collect();
        assert!(events.len() >= 8, "the fixture has the scenario's events");
        assert_eq!(rows.len(), events.len());
        for (row, (c, e)) in rows.iter().zip(&events) {
            assert_eq!(
                row.attribute("data-checkpoint"),
                Some(c.number.to_string().as_str())
            );
            assert_eq!(row.attribute("data-fault"), Some(e.fault.as_str()));
            assert_eq!(row.attribute("data-client"), Some(e.client.as_str()));
            let failed = row
                .descendants()
                .filter(|n| n.attribute("class") == Some("failed"))
                .count();
            // Every failed request drawn: those of the window and of the lead-in before it.
            assert_eq!(failed, e.trace.failed.len());
            assert!(failed as u64 >= e.outage.failed, "{e:?}");
        }
        let groups = doc
            .descendants()
            .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("group"))
            .count();
        assert_eq!(
            groups,
            r.checkpoints
                .iter()
                .filter(|c| !c.events.is_empty())
                .count()
        );
    }

    #[test]
    fn timeline_snapshot() {
        // Two events of each checkpoint that has some: a short, reviewable snapshot.
        let mut r = fixture();
        for c in &mut r.checkpoints {
            c.events.truncate(2);
        }
        snapshot::check("src/verify/snapshots/timeline.svg", &svg(&r));
    }

    #[test]
    fn the_page_holds_the_timeline_and_every_table() {
        let r = fixture();
        let page = html(&r);
        let (a, b) = (page.find("<svg").unwrap(), page.find("</svg>").unwrap());
        let doc = parse(&page[a..b + 6]);
        let n: usize = r.checkpoints.iter().map(|c| c.events.len()).sum();
        assert_eq!(rows(&doc).len(), n);
        assert_eq!(page.matches("<h2>Checkpoint ").count(), r.checkpoints.len());
        let steps: usize = r.checkpoints.iter().map(|c| c.steps.len()).sum();
        assert_eq!(page.matches("<tr class=\"").count(), steps);
        for outside in ["<script", "src=", "href=", "@import"] {
            assert!(
                !page.contains(outside),
                "no script, no external asset: {outside}"
            );
        }
    }
}
