//! Money metrics kept exactly: sums of currency amounts in integer micro-units, exposed as
//! floating-point currency units. A float gauge that adds and later subtracts the same cart
//! values drifts (0.1 + 0.2 - 0.1 - 0.2 != 0); these return to exactly zero.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Micro-units per currency unit.
const MICROS: f64 = 1_000_000.0;

/// Converts a finite, non-negative amount in currency units to micro-units (saturating).
pub fn to_micros(amount: f64) -> i64 {
    (amount * MICROS).round() as i64
}

/// Converts micro-units back to currency units.
pub fn from_micros(micros: i64) -> f64 {
    micros as f64 / MICROS
}

/// A monotonically increasing money sum.
#[derive(Debug, Clone, Default)]
pub struct MoneyCounter(Arc<AtomicI64>);

impl MoneyCounter {
    /// Adds `micros` (negative amounts are ignored: counters never go down).
    pub fn add(&self, micros: i64) {
        if micros > 0 {
            self.0.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// Current sum in micro-units.
    pub fn micros(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for MoneyCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for MoneyCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&from_micros(self.micros()), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A money amount that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct MoneyGauge(Arc<AtomicI64>);

impl MoneyGauge {
    /// Adds `micros`, which may be negative.
    pub fn add(&self, micros: i64) {
        if micros != 0 {
            self.0.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// Current amount in micro-units.
    pub fn micros(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for MoneyGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for MoneyGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&from_micros(self.micros()))
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_returns_to_exact_zero() {
        let g = MoneyGauge::default();
        for v in [0.1, 0.2, 129.99, 0.7] {
            g.add(to_micros(v));
        }
        for v in [0.7, 0.1, 129.99, 0.2] {
            g.add(-to_micros(v));
        }
        assert_eq!(g.micros(), 0);
    }
}
