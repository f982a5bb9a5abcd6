//! A timeline: rows of marks (spans and instants) on one time axis, rows grouped under
//! headings. `lbctl verify` draws one row per event and client.

use crate::frame::{self, class, document, line, text, x_axis, Legend};
use crate::scale::{label, px, Scale};
use svg::node::element::{Group as G, Rectangle, Title};

/// Where a mark sits: a span of time or an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Span { from: f64, to: f64 },
    At(f64),
}

/// The part of its row's height a span covers (instants always cross the whole row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The whole row, drawn translucent (a window: marks under it stay visible).
    Full,
    Upper,
    Lower,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub what: What,
    pub lane: Lane,
    /// The legend class that colours it.
    pub class: String,
    /// Shown on hover.
    pub title: String,
}

impl Mark {
    pub fn new(what: What, lane: Lane, class: &str, title: impl Into<String>) -> Mark {
        Mark {
            what,
            lane,
            class: class.into(),
            title: title.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    /// `data-*` attributes of the row's group (name without the `data-` prefix).
    pub data: Vec<(String, String)>,
    pub marks: Vec<Mark>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub title: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub title: String,
    /// The axis' name ("seconds since the event").
    pub axis: String,
    pub from: f64,
    pub to: f64,
    pub groups: Vec<Group>,
    pub legend: Vec<Legend>,
}

const WIDTH: f64 = 1040.0;
const LEFT: f64 = 310.0;
const RIGHT: f64 = 1020.0;
const TOP: f64 = 58.0;
const HEAD: f64 = 22.0;
const ROW: f64 = 18.0;

impl Timeline {
    /// The SVG text. Each row is a `<g class="row">`, each group a `<g class="group">`.
    pub fn render(&self) -> String {
        let rows: usize = self.groups.iter().map(|g| g.rows.len()).sum();
        let bottom = TOP + HEAD * self.groups.len() as f64 + ROW * rows as f64 + 4.0;
        let height = bottom + 44.0;
        let s = Scale::linear(self.from, self.to, LEFT, RIGHT);
        let mut doc = document(WIDTH, height, &self.title, &self.legend);
        doc = doc.add(x_axis(&s, bottom, TOP, &self.axis, &label));
        let mut y = TOP;
        for g in &self.groups {
            let mut grp = G::new().set("class", "group");
            grp = grp.add(text(12.0, y + 15.0, &g.title, "group"));
            y += HEAD;
            for r in &g.rows {
                grp = grp.add(row(&s, y, r));
                y += ROW;
            }
            doc = doc.add(grp);
        }
        frame::finish(doc)
    }
}

fn row(s: &Scale, y: f64, r: &Row) -> G {
    let mut g = G::new().set("class", "row");
    for (k, v) in &r.data {
        g = g.set(format!("data-{}", class(k)), v.as_str());
    }
    g = g.add(text(24.0, y + 13.0, &r.label, "note"));
    g = g.add(line(LEFT, y + ROW, RIGHT, y + ROW, "grid"));
    for m in &r.marks {
        g = g.add(mark(s, y, m));
    }
    g
}

fn mark(s: &Scale, y: f64, m: &Mark) -> G {
    let c = class(&m.class);
    let el = match m.what {
        What::At(t) => {
            let x = s.at(t);
            G::new().add(line(x, y + 1.0, x, y + ROW - 1.0, &format!("{c} at")))
        }
        What::Span { from, to } => {
            let (x0, x1) = (s.at(from), s.at(to.max(from)));
            let (top, h, extra) = match m.lane {
                Lane::Full => (y + 1.0, ROW - 2.0, " full"),
                Lane::Upper => (y + 2.0, 7.0, ""),
                Lane::Lower => (y + 9.0, 7.0, ""),
            };
            G::new().add(
                Rectangle::new()
                    .set("class", format!("{c}{extra}"))
                    .set("x", x0)
                    .set("y", px(top))
                    .set("width", px((x1 - x0).max(1.0)))
                    .set("height", px(h)),
            )
        }
    };
    el.add(Title::new(m.title.as_str()))
}
