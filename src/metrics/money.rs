//! Money metrics kept exactly: sums of currency amounts in integer micro-units, exposed as
//! floating-point currency units. A float gauge that adds and later subtracts the same cart
//! values drifts (0.1 + 0.2 - 0.1 - 0.2 != 0); these return to exactly zero.
//!
//! No input makes a money figure wrap, shrink or go negative. One event is worth at most 1e12
//! units (the collector's limit), so a handful of them would overflow a plain `i64` of
//! micro-units; instead a [`MoneyCounter`] saturates at `u64::MAX` micro-units
//! (18,446,744,073,709.551615 units) and stays there, and a [`MoneyGauge`] keeps its amount in
//! two halves, exact at any amount that open sessions can hold.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Micro-units per currency unit.
const MICROS: f64 = 1_000_000.0;

/// Converts an amount in currency units to micro-units: a negative or NaN amount is zero, and
/// one beyond `i64` saturates.
pub fn to_micros(amount: f64) -> i64 {
    // `as` saturates at the ends of `i64` and turns NaN into 0.
    (amount * MICROS).round().max(0.0) as i64
}

/// Converts micro-units back to currency units.
pub fn from_micros(micros: i128) -> f64 {
    micros as f64 / MICROS
}

/// A money sum that only goes up, and stops at `u64::MAX` micro-units rather than wrap.
#[derive(Debug, Clone, Default)]
pub struct MoneyCounter(Arc<AtomicU64>);

impl MoneyCounter {
    /// Adds `micros` (negative amounts are ignored: counters never go down), saturating.
    pub fn add(&self, micros: i64) {
        if micros > 0 {
            let add = micros.unsigned_abs();
            // Never `None`, so the update always succeeds.
            let _ = (self.0).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(add))
            });
        }
    }

    /// Current sum in micro-units.
    pub fn micros(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for MoneyCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for MoneyCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let units = from_micros(self.micros().into());
        encoder.encode_counter::<NoLabelSet, _, u64>(&units, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Bits of an amount's magnitude kept in [`MoneyGauge`]'s low half.
const LOW_BITS: u32 = 32;

/// A money amount that goes up and down (the sum of the open carts' values), kept exactly.
///
/// Each change is split by magnitude into its multiples of 2^32 micro-units and the rest, each
/// added (or, for a negative change, subtracted) in its own atomic. Each half is then a sum of
/// non-negative parts of the amounts held: below 2^31 times 2^32 while fewer than 2^31 amounts
/// are held (far more open sessions than memory allows), so neither half overflows, the same
/// amounts added and taken out again leave exactly zero, and the total is never negative.
#[derive(Debug, Clone, Default)]
pub struct MoneyGauge(Arc<Halves>);

#[derive(Debug, Default)]
struct Halves {
    high: AtomicI64,
    low: AtomicI64,
}

impl MoneyGauge {
    /// Adds `micros`, which may be negative.
    pub fn add(&self, micros: i64) {
        let magnitude = micros.unsigned_abs();
        let sign = if micros < 0 { -1 } else { 1 };
        // Both parts fit in an `i64`: at most 2^31 and below 2^32.
        let high = (magnitude >> LOW_BITS) as i64;
        let low = (magnitude & ((1 << LOW_BITS) - 1)) as i64;
        if high != 0 {
            self.0.high.fetch_add(sign * high, Ordering::Relaxed);
        }
        if low != 0 {
            self.0.low.fetch_add(sign * low, Ordering::Relaxed);
        }
    }

    /// Current amount in micro-units, never below zero.
    pub fn micros(&self) -> i128 {
        let high = i128::from(self.0.high.load(Ordering::Relaxed));
        let low = i128::from(self.0.low.load(Ordering::Relaxed));
        ((high << LOW_BITS) + low).max(0)
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

    /// The largest value an event may carry (1e12 units) and the largest a session's cart can
    /// hold (`i64::MAX` micro-units).
    const LARGEST_EVENT: i64 = 1_000_000_000_000_000_000;

    #[test]
    fn a_counter_saturates_instead_of_wrapping_and_never_decreases() {
        let c = MoneyCounter::default();
        let sum = || i128::from(c.micros());
        let mut last = 0;
        for _ in 0..10 {
            c.add(LARGEST_EVENT);
            assert!(sum() > last, "{} after {last}", sum());
            last = sum();
        }
        assert_eq!(sum(), 10 * i128::from(LARGEST_EVENT));
        for micros in [i64::MAX, i64::MAX, LARGEST_EVENT, -LARGEST_EVENT, i64::MIN] {
            c.add(micros);
            assert!(sum() >= last, "{} after {last}", sum());
            last = sum();
        }
        assert_eq!(sum(), i128::from(u64::MAX));
    }

    #[test]
    fn a_gauge_is_exact_past_the_range_of_one_i64() {
        let g = MoneyGauge::default();
        let held = [
            LARGEST_EVENT,
            i64::MAX,
            i64::MAX,
            1,
            4_294_967_296,
            4_294_967_295,
        ];
        for (n, micros) in held.iter().enumerate() {
            g.add(*micros);
            let sum: i128 = held[..=n].iter().copied().map(i128::from).sum();
            assert_eq!(g.micros(), sum);
        }
        assert!(from_micros(g.micros()) > 1.9e13);
        for micros in held.iter().rev() {
            g.add(-micros);
            assert!(g.micros() >= 0);
        }
        assert_eq!(g.micros(), 0);
    }

    #[test]
    fn amounts_convert_without_going_negative() {
        assert_eq!(to_micros(1e12), LARGEST_EVENT);
        assert_eq!(to_micros(129.99), 129_990_000);
        assert_eq!(to_micros(-5.0), 0);
        assert_eq!(to_micros(f64::NAN), 0);
        assert_eq!(to_micros(1e300), i64::MAX);
        assert_eq!(from_micros(u64::MAX.into()), 18_446_744_073_709.55);
    }
}
