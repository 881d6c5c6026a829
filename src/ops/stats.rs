//! The statistics behind the step alerts' thresholds (RUNBOOK.md, "How the step alerts decide"):
//! each threshold comes from a budget of false pages per 30 days shared by the series tested.

/// Rule evaluations of one series in 30 days, at one a minute.
const EVALUATIONS: f64 = 30.0 * 24.0 * 60.0;
/// The shortfall score's windows in minutes: each is tested at every evaluation.
pub const SCORE_WINDOWS: [u32; 4] = [4, 10, 30, 120];
/// The windows in which a step is looked for with no completion at all.
pub const STOPPED_WINDOWS: [u32; 4] = [2, 4, 10, 30];

/// The standard normal density.
fn density(z: f64) -> f64 {
    (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Expected upcrossings of `c` per series in 30 days by a moving-window score sampled once a
/// minute (about `density(c)·sqrt(1/(π·w))` an evaluation for a window of `w` evaluations),
/// doubled as a safety margin: the simulation behind it (research notes in RUNBOOK.md) found
/// the real rate within a factor of two of this, and far under it for short windows.
fn false_onsets(c: f64) -> f64 {
    let windows: f64 = (SCORE_WINDOWS.iter())
        .map(|&w| (1.0 / (std::f64::consts::PI * f64::from(w))).sqrt())
        .sum();
    2.0 * EVALUATIONS * windows * density(c)
}

/// The score threshold that keeps `series` tested series under `budget` false pages in 30
/// days, rounded up to 0.05.
pub fn shortfall_threshold(series: usize, budget: f64) -> f64 {
    let per_series = budget / series.max(1) as f64;
    let (mut low, mut high) = (1.0, 12.0);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if false_onsets(mid) > per_series {
            low = mid;
        } else {
            high = mid;
        }
    }
    (high * 20.0).ceil() / 20.0
}

/// The least expected count of completions in a window of `window` minutes that may page when
/// none came. Under normal traffic a window without a completion happens with probability
/// `e^-E`, and a completion stream of rate `r` a minute begins such a gap at most `r` times a
/// minute; the window holds `E` expected at `r = E/window`, so `series · EVALUATIONS ·
/// E/window · e^-E` bounds its false pages in 30 days. This is the least whole `E` (at least 10)
/// that keeps it under the window's share of `budget` (the windows share it equally).
pub fn stopped_minimum(series: usize, budget: f64, window: u32) -> u32 {
    let share = budget / STOPPED_WINDOWS.len() as f64;
    (10..100)
        .find(|&e| {
            let e = f64::from(e);
            series.max(1) as f64 * EVALUATIONS * e / f64::from(window) * (-e).exp() <= share
        })
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures worked out by hand: 4 series site-wide at 0.05 false pages a month give
    /// 5.36, 48 segment series at 0.1 give 5.68; a dead step needs 19 expected completions in 2
    /// minutes, 16 in 30, site-wide.
    #[test]
    fn thresholds_match_the_worked_figures() {
        assert_eq!(shortfall_threshold(4, 0.05), 5.4);
        assert_eq!(shortfall_threshold(48, 0.1), 5.7);
        assert!(shortfall_threshold(8, 0.05) > shortfall_threshold(4, 0.05));
        let c = shortfall_threshold(4, 0.05);
        assert!(4.0 * false_onsets(c) <= 0.05 && 4.0 * false_onsets(c - 0.05) > 0.05);
        let minimum = |series, budget| STOPPED_WINDOWS.map(|w| stopped_minimum(series, budget, w));
        assert_eq!(minimum(4, 0.05), [19, 18, 17, 16]);
        assert_eq!(minimum(48, 0.1), [21, 20, 19, 18]);
        assert_eq!(stopped_minimum(0, 0.05, 2), stopped_minimum(1, 0.05, 2));
    }
}
