//! What every chart shares: the document with its inline style, the title, the legend
//! and the axes.

use crate::scale::{label, px, Scale};
use svg::node::element::{Group, Line, Rectangle, Style, Text, Title};
use svg::Document;

/// One kind of mark: its CSS class (on the marks), its name in the legend, its colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Legend {
    pub class: String,
    pub label: String,
    pub color: String,
}

impl Legend {
    pub fn new(class: &str, label: &str, color: &str) -> Legend {
        Legend {
            class: class.into(),
            label: label.into(),
            color: color.into(),
        }
    }
}

const BASE_CSS: &str = "text{font-family:sans-serif;font-size:12px;fill:#222}\
.title{font-size:15px;font-weight:bold}.note{font-size:11px;fill:#555}\
.axis{stroke:#888;stroke-width:1}.grid{stroke:#e4e4e4;stroke-width:1}\
text.group{font-weight:bold}rect.full{fill-opacity:.28;stroke:none}polyline.line{fill:none;stroke-width:2}.at{stroke-width:2}.ref{stroke:#444;stroke-width:1.5;stroke-dasharray:5 3}";

/// Only `[a-z0-9-]` in a class name: the class is written into the style sheet.
pub(crate) fn class(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The document: white background, style sheet (base rules, one rule per legend entry),
/// title and the legend under it.
pub(crate) fn document(width: f64, height: f64, title: &str, legend: &[Legend]) -> Document {
    let mut css = BASE_CSS.to_string();
    for l in legend {
        let color: String = l
            .color
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '#')
            .collect();
        css.push_str(&format!(
            ".{}{{fill:{color};stroke:{color}}}",
            class(&l.class)
        ));
    }
    let mut doc = Document::new()
        .set("xmlns", "http://www.w3.org/2000/svg")
        .set("width", px(width))
        .set("height", px(height))
        .set("viewBox", (0, 0, px(width), px(height)))
        .add(Title::new(title))
        .add(Style::new(css))
        .add(
            Rectangle::new()
                .set("width", "100%")
                .set("height", "100%")
                .set("fill", "#fff"),
        )
        .add(text(12.0, 22.0, title, "title"));
    let mut x = 12.0;
    for l in legend {
        doc = doc.add(
            Rectangle::new()
                .set("class", class(&l.class))
                .set("x", px(x))
                .set("y", 32)
                .set("width", 12)
                .set("height", 10),
        );
        doc = doc.add(text(x + 16.0, 41.0, &l.label, "note"));
        x += 28.0 + 6.5 * l.label.chars().count() as f64;
    }
    doc
}

/// A text at (x, y) with a class (empty: none).
pub(crate) fn text(x: f64, y: f64, s: &str, class: &str) -> Text {
    let t = Text::new(s).set("x", px(x)).set("y", px(y));
    if class.is_empty() {
        t
    } else {
        t.set("class", class)
    }
}

pub(crate) fn line(x1: f64, y1: f64, x2: f64, y2: f64, class: &str) -> Line {
    Line::new()
        .set("x1", px(x1))
        .set("y1", px(y1))
        .set("x2", px(x2))
        .set("y2", px(y2))
        .set("class", class)
}

/// A horizontal axis at pixel row `y`: grid lines up to `top`, tick labels, axis name.
pub(crate) fn x_axis(
    s: &Scale,
    y: f64,
    top: f64,
    name: &str,
    fmt: &dyn Fn(f64) -> String,
) -> Group {
    let mut g = Group::new().set("class", "x-axis");
    g = g.add(line(s.r0, y, s.r1, y, "axis"));
    for t in s.ticks(8) {
        let x = s.at(t);
        g = g.add(line(x, top, x, y, "grid"));
        g = g.add(text(x, y + 15.0, &fmt(t), "note").set("text-anchor", "middle"));
    }
    g.add(text((s.r0 + s.r1) / 2.0, y + 32.0, name, "").set("text-anchor", "middle"))
}

/// A vertical axis at pixel column `x`: grid lines across to `right`, labels, name.
pub(crate) fn y_axis(s: &Scale, x: f64, right: f64, name: &str) -> Group {
    let mut g = Group::new().set("class", "y-axis");
    g = g.add(line(x, s.r0, x, s.r1, "axis"));
    for t in s.ticks(5) {
        let y = s.at(t);
        g = g.add(line(x, y, right, y, "grid"));
        g = g.add(text(x - 6.0, y + 4.0, &label(t), "note").set("text-anchor", "end"));
    }
    let (cx, cy) = (x - 42.0, (s.r0 + s.r1) / 2.0);
    g.add(
        text(cx, cy, name, "")
            .set("text-anchor", "middle")
            .set("transform", format!("rotate(-90 {} {})", px(cx), px(cy))),
    )
}

/// The document as text, with a final newline.
pub(crate) fn finish(doc: Document) -> String {
    format!("{doc}\n")
}
