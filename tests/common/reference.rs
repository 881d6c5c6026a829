//! The independent model of the contract's funnel figures lives in the load generator
//! (`touchstream_load::truth`), which checks live deployments against it; the tests use the same
//! model, and read figures from the replay report here.

use std::collections::BTreeMap;
pub use touchstream_load::truth::{
    Arrival, Event as RefEvent, Figures, Money, STAGES, figures as reference,
    figures_in_arrival_order, micros,
};

/// Asserts two figure sets are equal, money to a millionth.
pub fn assert_figures_eq(actual: &Figures, expected: &Figures) {
    let differences = actual.differences(expected);
    assert!(
        differences.is_empty(),
        "figures differ:\n  {}",
        differences.join("\n  ")
    );
}

/// Reads the figures of `site` from `touchstream replay --json` output.
pub fn from_report_json(report: &serde_json::Value, site: &str) -> Figures {
    let s = &report["sites"][site];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let money = |v: &serde_json::Value| -> Money {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), micros(v.as_f64().unwrap())))
            .filter(|(_, v)| *v != 0)
            .collect::<BTreeMap<_, _>>()
    };
    let mut f = Figures::default();
    for (i, stage) in STAGES.iter().enumerate() {
        f.reached[i] = count(&s["reached"][stage]);
        if i < 4 {
            f.dropoffs[i] = count(&s["dropoffs"][stage]);
        }
    }
    f.carts_abandoned = count(&s["carts_abandoned"]);
    f.carts_abandoned_value = money(&s["carts_abandoned_value"]);
    f.orders = count(&s["orders"]);
    f.revenue = money(&s["revenue"]);
    f.duplicates = count(&s["duplicates"]);
    f.late = count(&s["late_events"]);
    f
}
