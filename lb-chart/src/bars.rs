//! Horizontal bars in groups, each group with an optional reference line (a floor, a
//! target): ns per packet, outages per case.

use crate::frame::{self, class, document, line, text, x_axis, Legend};
use crate::scale::{label, px, Scale};
use svg::node::element::{Group as G, Rectangle, Title};

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    /// None: no figure exists (the note says why); nothing is drawn.
    pub value: Option<f64>,
    /// The legend class that colours it.
    pub class: String,
    /// Written after the bar ("412 ms", "never recovered").
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    pub title: String,
    pub bars: Vec<Bar>,
    /// A dashed vertical line across the group's bars, with its name.
    pub reference: Option<(f64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bars {
    pub title: String,
    pub axis: String,
    pub groups: Vec<BarGroup>,
    pub legend: Vec<Legend>,
}

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 260.0;
const RIGHT: f64 = 740.0;
const TOP: f64 = 58.0;
const HEAD: f64 = 24.0;
const ROW: f64 = 22.0;
/// Space under a group's bars (its reference line's name goes there).
const GAP: f64 = 20.0;

impl Bars {
    /// The SVG text; each bar is a `<g class="bar">`, each group a `<g class="group">`.
    pub fn render(&self) -> String {
        let n: usize = self.groups.iter().map(|g| g.bars.len()).sum();
        let bottom = TOP + (HEAD + GAP) * self.groups.len() as f64 + ROW * n as f64;
        let max = self
            .groups
            .iter()
            .flat_map(|g| {
                g.bars
                    .iter()
                    .filter_map(|b| b.value)
                    .chain(g.reference.iter().map(|r| r.0))
            })
            .fold(0.0f64, f64::max);
        let s = Scale::linear(0.0, if max > 0.0 { max * 1.05 } else { 1.0 }, LEFT, RIGHT);
        let mut doc = document(WIDTH, bottom + 44.0, &self.title, &self.legend);
        doc = doc.add(x_axis(&s, bottom, TOP, &self.axis, &label));
        let mut y = TOP;
        for g in &self.groups {
            let mut grp = G::new().set("class", "group");
            grp = grp.add(text(12.0, y + 16.0, &g.title, "group"));
            y += HEAD;
            let top = y;
            for b in &g.bars {
                grp = grp.add(bar(&s, y, b));
                y += ROW;
            }
            if let Some((v, name)) = &g.reference {
                let x = s.at(*v);
                grp = grp.add(line(x, top, x, y + 2.0, "ref"));
                grp = grp.add(text(x + 4.0, y + 13.0, name, "note"));
            }
            y += GAP;
            doc = doc.add(grp);
        }
        frame::finish(doc)
    }
}

fn bar(s: &Scale, y: f64, b: &Bar) -> G {
    let mut g = G::new()
        .set("class", "bar")
        .add(text(24.0, y + 14.0, &b.label, ""));
    let mut end = s.r0;
    if let Some(v) = b.value {
        end = s.at(v);
        g = g.add(
            Rectangle::new()
                .set("class", class(&b.class))
                .set("x", s.r0)
                .set("y", px(y + 3.0))
                .set("width", px((end - s.r0).max(1.0)))
                .set("height", px(ROW - 6.0))
                .add(Title::new(format!("{}: {}", b.label, b.note))),
        );
    }
    g.add(text(end + 6.0, y + 15.0, &b.note, "note"))
}
