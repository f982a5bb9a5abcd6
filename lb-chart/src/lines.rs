//! A line chart: series of (x, y) points, e.g. latency CDFs (x log-scaled).

use crate::frame::{self, class, document, x_axis, y_axis, Legend};
use crate::scale::{label, px, Scale};
use svg::node::element::{Polyline, Title};

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// The legend class that colours it.
    pub class: String,
    /// Drawn in this order.
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lines {
    pub title: String,
    pub x_name: String,
    pub y_name: String,
    pub x_log: bool,
    pub series: Vec<Series>,
    pub legend: Vec<Legend>,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const PLOT: (f64, f64, f64, f64) = (80.0, 740.0, 64.0, 380.0);

impl Lines {
    /// The SVG text; each series is a `<polyline class="line CLASS">`.
    pub fn render(&self) -> String {
        let (left, right, top, bottom) = PLOT;
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            if !self.x_log || x > 0.0 {
                x0 = x0.min(x);
            }
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        let xs = if self.x_log {
            Scale::log(floor_125(x0), x1 * 1.2, left, right)
        } else {
            Scale::linear(x0.min(0.0), x1, left, right)
        };
        let ys = Scale::linear(0.0, if y1 > 0.0 { y1 } else { 1.0 }, bottom, top);
        let mut doc = document(WIDTH, HEIGHT, &self.title, &self.legend)
            .add(x_axis(&xs, bottom, top, &self.x_name, &label))
            .add(y_axis(&ys, left, right, &self.y_name));
        for s in &self.series {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{},{}", px(xs.at(x)), px(ys.at(y))))
                .collect();
            doc = doc.add(
                Polyline::new()
                    .set("class", format!("line {}", class(&s.class)))
                    .set("points", points.join(" "))
                    .add(Title::new(s.label.as_str())),
            );
        }
        frame::finish(doc)
    }
}

/// The largest of 1, 2, 5 × 10^k at or below `v` (> 0): where a log axis starts.
fn floor_125(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s <= v * (1.0 + 1e-9))
        .unwrap_or(mag)
}
