//! Mapping data values to pixels, and the tick values of an axis.

/// A linear (or base-10 logarithmic) map from the domain `d0..d1` to pixels `r0..r1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
    pub log: bool,
}

/// A pixel coordinate rounded to 0.1 px: shorter output, and the same bytes on every
/// machine for the same input.
pub fn px(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

impl Scale {
    pub fn linear(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        Scale {
            d0,
            d1,
            r0,
            r1,
            log: false,
        }
    }

    /// A log scale; a domain that is not positive is lifted to a small positive one.
    pub fn log(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d0 = d0.max(1e-9);
        Scale {
            d0,
            d1: d1.max(d0 * 10.0),
            r0,
            r1,
            log: true,
        }
    }

    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.max(self.d0).log10()
        } else {
            v
        }
    }

    /// The pixel of `v`, clamped to the range (a mark outside the axis lies at its edge).
    pub fn at(&self, v: f64) -> f64 {
        let (a, b) = (self.t(self.d0), self.t(self.d1));
        let f = if b == a {
            0.0
        } else {
            (self.t(v) - a) / (b - a)
        };
        px(self.r0 + f.clamp(0.0, 1.0) * (self.r1 - self.r0))
    }

    /// Round tick values inside the domain: about `n` of them at 1, 2 or 5 times a power
    /// of ten apart (linear), or 1, 2 and 5 times each power of ten (log).
    pub fn ticks(&self, n: usize) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.d0.log10().floor() as i32,
                self.d1.log10().ceil() as i32,
            );
            let all = (a..=b).flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)));
            return all
                .filter(|t| *t >= self.d0 * (1.0 - 1e-9) && *t <= self.d1 * (1.0 + 1e-9))
                .collect();
        }
        let span = self.d1 - self.d0;
        if span <= 0.0 || !span.is_finite() {
            return vec![self.d0];
        }
        let step = nice_step(span / n.max(1) as f64);
        let first = (self.d0 / step).ceil() as i64;
        let last = (self.d1 / step).floor() as i64;
        (first..=last).map(|i| i as f64 * step).collect()
    }
}

/// The one of 1, 2, 5 × 10^k nearest `raw` (on a log scale), so about as many ticks as
/// asked for.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f >= 7.07 {
        10.0
    } else if f >= 3.16 {
        5.0
    } else if f >= 1.41 {
        2.0
    } else {
        1.0
    };
    m * mag
}

/// A tick's text: no trailing ".0", at most 3 decimals.
pub fn label(v: f64) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round() {
        let s = Scale::linear(-1.0, 9.3, 0.0, 100.0);
        assert_eq!(s.ticks(5), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(
            Scale::linear(0.0, 0.35, 0.0, 1.0).ticks(4),
            vec![0.0, 0.1, 0.2, 0.30000000000000004]
        );
        assert_eq!(s.at(-1.0), 0.0);
        assert_eq!(s.at(9.3), 100.0);
        assert_eq!(s.at(50.0), 100.0, "clamped");
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        let s = Scale::log(0.3, 20.0, 0.0, 100.0);
        assert_eq!(s.ticks(5), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(s.at(0.3), 0.0);
        assert_eq!(s.at(20.0), 100.0);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(label(2.0), "2");
        assert_eq!(label(0.30000000000000004), "0.3");
        assert_eq!(label(-0.0), "0");
        assert_eq!(label(1500.0), "1500");
    }
}
