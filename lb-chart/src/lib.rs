//! Pure SVG charts for lbctl: the outage timelines of `lbctl verify`, and the pictures of
//! the benchmarks (`cargo xtask bench`). A crate of its own because both lbctl and xtask
//! draw, and xtask (lbctl's build-dependency) must not depend on lbctl.
//!
//! Every chart is a plain data model in, SVG text out: no I/O, no scripts, no external
//! assets (the colours live in an inline `<style>`), and the same input always gives the
//! same bytes (coordinates rounded to 0.1 px, attributes in a fixed order), so the output
//! is snapshot-tested. [`svg`] composes the document and escapes every text and
//! attribute value.
#![forbid(unsafe_code)]

mod bars;
mod frame;
mod lines;
mod scale;
pub mod snapshot;
mod timeline;

pub use bars::{Bar, BarGroup, Bars};
pub use frame::Legend;
pub use lines::{Lines, Series};
pub use scale::Scale;
pub use timeline::{Group, Lane, Mark, Row, Timeline, What};

#[cfg(test)]
mod tests;

/// `s` safe as XML/HTML text or attribute value (for pages that embed the charts).
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
