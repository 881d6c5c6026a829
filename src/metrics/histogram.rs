//! The engine's histograms: fixed buckets and atomic counts, whose figures can be read and put
//! back (prometheus-client's own histogram offers neither). An observation is a bucket search
//! over a dozen bounds, one atomic add and one compare-and-swap: no lock, no allocation.
//!
//! What it exposes is what prometheus-client's histogram exposed for the same observations,
//! byte for byte: an observation counts in the first bucket whose bound is at or above it (NaN
//! in `+Inf`), and the sum adds each value as an `f64`, in the order the observations land, so
//! it rounds exactly as the crate's did. The count is the buckets' total, read with them: a
//! scrape racing an observation may see the sum without it (or with it and not the bucket),
//! never a count that disagrees with the buckets.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds (`+Inf` implied after the last).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Finite upper bounds, ascending.
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative), one more than `bounds` for `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The `f64` bits of the sum of observations.
    sum: AtomicU64,
}

/// One histogram's figures: exact, whatever the format they travel in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramFigure {
    /// Each bucket's upper bound, written as Rust writes the `f64` (`+Inf` last), and the
    /// observations in it (not cumulative). The bounds are compared as written on restore.
    pub buckets: Vec<(String, u64)>,
    /// The sum's IEEE 754 bits: JSON has no NaN and its parsers may round the last bit.
    pub sum_bits: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`: finite and strictly ascending (checked; the bounds
    /// are the crate's own constants).
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(
            bounds.iter().all(|b| b.is_finite()) && bounds.windows(2).all(|w| w[0] < w[1]),
            "histogram bounds must be finite and ascending: {bounds:?}"
        );
        Self(Arc::new(Inner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0.0f64.to_bits()),
        }))
    }

    /// Records one observation.
    #[inline]
    pub fn observe(&self, v: f64) {
        let h = &*self.0;
        let bucket = h.bounds.iter().position(|b| v <= *b);
        h.counts[bucket.unwrap_or(h.bounds.len())].fetch_add(1, Ordering::Relaxed);
        self.add_sum(v);
    }

    #[inline]
    fn add_sum(&self, v: f64) {
        // Never `None`, so the update always succeeds.
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// The bucket bounds as a figure writes them, `+Inf` last.
    fn bound_names(&self) -> impl Iterator<Item = String> + '_ {
        (self.0.bounds.iter().map(|b| format!("{b:?}"))).chain(std::iter::once("+Inf".into()))
    }

    fn counts(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.counts.iter().map(|c| c.load(Ordering::Relaxed))
    }

    /// The sum of observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }

    /// Observations made.
    pub fn count(&self) -> u64 {
        self.counts().sum()
    }

    /// The current figures.
    pub fn figure(&self) -> HistogramFigure {
        HistogramFigure {
            buckets: self.bound_names().zip(self.counts()).collect(),
            sum_bits: self.0.sum.load(Ordering::Relaxed),
        }
    }

    /// Adds `f`'s counts and sum, if `f` has exactly these buckets; returns whether it had.
    pub fn add_figure(&self, f: &HistogramFigure) -> bool {
        let same = f.buckets.len() == self.0.counts.len()
            && (self.bound_names())
                .zip(&f.buckets)
                .all(|(b, (fb, _))| b == *fb);
        if same {
            for (count, (_, n)) in self.0.counts.iter().zip(&f.buckets) {
                count.fetch_add(*n, Ordering::Relaxed);
            }
            self.add_sum(f64::from_bits(f.sum_bits));
        }
        same
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = self.0.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(self.counts()).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram as CrateHistogram;
    use prometheus_client::registry::Registry;

    const BOUNDS: &[f64] = &[0.0005, 1.0, 5.0, 2500.0, 10000.0];

    fn exposition(metric: impl prometheus_client::registry::Metric) -> String {
        let mut registry = Registry::default();
        registry.register("h", "A histogram.", metric);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    /// Values on, between and beyond the bounds, negative, fractional, NaN and infinite.
    const VALUES: &[f64] = &[
        0.0,
        0.0005,
        0.00051,
        1.0,
        0.1,
        0.2,
        0.3,
        4.999,
        5.0,
        129.99,
        2500.0,
        1e4,
        1e4 + 1e-9,
        1e12,
        -3.0,
        7.7,
    ];

    #[test]
    fn it_exposes_what_the_crates_histogram_exposed() {
        let (ours, theirs) = (Histogram::new(BOUNDS), CrateHistogram::new(BOUNDS.to_vec()));
        assert_eq!(exposition(ours.clone()), exposition(theirs.clone()));
        for v in VALUES {
            ours.observe(*v);
            theirs.observe(*v);
        }
        assert_eq!(exposition(ours.clone()), exposition(theirs.clone()));
        for v in [f64::INFINITY, f64::NAN] {
            ours.observe(v);
            theirs.observe(v);
            assert_eq!(exposition(ours.clone()), exposition(theirs.clone()));
        }
    }

    #[test]
    fn figures_read_and_add_back_exactly() {
        let h = Histogram::new(BOUNDS);
        VALUES.iter().for_each(|v| h.observe(*v));
        let f = h.figure();
        assert_eq!(f.buckets[0], ("0.0005".to_string(), 3));
        assert_eq!(f.buckets[5], ("+Inf".to_string(), 2));
        assert_eq!(h.count(), VALUES.len() as u64);
        let json = serde_json::to_string(&f).unwrap();
        let back: HistogramFigure = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);

        let restored = Histogram::new(BOUNDS);
        assert!(restored.add_figure(&back));
        assert_eq!(exposition(restored.clone()), exposition(h.clone()));
        // Added, not set: a second restore doubles every figure.
        assert!(restored.add_figure(&back));
        assert_eq!(restored.count(), 2 * h.count());
        assert_eq!(restored.sum(), h.sum() + h.sum());
    }

    #[test]
    fn a_figure_of_other_buckets_is_refused_and_changes_nothing() {
        let h = Histogram::new(BOUNDS);
        h.observe(2.0);
        let mut f = h.figure();
        let other = Histogram::new(&[0.0005, 1.0, 5.0, 2500.0]);
        assert!(!other.add_figure(&f));
        f.buckets[2].0 = "6.0".into();
        let same_bounds = Histogram::new(BOUNDS);
        assert!(!same_bounds.add_figure(&f));
        assert_eq!((other.count(), same_bounds.count()), (0, 0));
        assert_eq!(same_bounds.sum().to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        let h = Histogram::new(BOUNDS);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| (0..10_000).for_each(|_| h.observe(1.0)));
            }
        });
        assert_eq!((h.count(), h.sum()), (20_000, 20_000.0));
    }
}
