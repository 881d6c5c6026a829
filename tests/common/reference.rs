//! An independent model of the contract's funnel figures (CONTRACT.md section 2), written from
//! the contract's text and sharing no code with the engine: each session's complete event list
//! in, the replay report's figures out.

use std::collections::BTreeMap;

/// Stage of a touchpoint type in the default journey map (GA4 names and Segment aliases).
pub fn stage_of(kind: &str) -> Option<usize> {
    Some(match kind {
        "page_view" | "session_start" => 0,
        "view_item"
        | "view_item_list"
        | "select_item"
        | "search"
        | "Product Viewed"
        | "Product List Viewed"
        | "Products Searched" => 1,
        "add_to_cart" | "view_cart" | "Product Added" | "Cart Viewed" => 2,
        "begin_checkout"
        | "add_shipping_info"
        | "add_payment_info"
        | "Checkout Started"
        | "Payment Info Entered" => 3,
        "purchase" | "Order Completed" => 4,
        _ => return None,
    })
}

pub const STAGES: [&str; 5] = [
    "visit",
    "product_view",
    "add_to_cart",
    "checkout",
    "purchase",
];

/// One event as the reference sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RefEvent {
    pub session: String,
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub value: Option<f64>,
    pub currency: Option<String>,
    pub order_id: Option<String>,
}

/// The figures of the replay report for one site.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub reached: [u64; 5],
    pub dropoffs: [u64; 4],
    pub carts_abandoned: u64,
    /// Only currencies with a non-zero amount.
    pub carts_abandoned_value: BTreeMap<String, f64>,
    pub orders: u64,
    pub revenue: BTreeMap<String, f64>,
    pub duplicates: u64,
}

fn currency(c: &Option<String>) -> String {
    match c.as_deref().map(str::to_ascii_uppercase) {
        None => "USD".into(),
        Some(c) if ["USD", "EUR", "PLN", "GBP"].contains(&c.as_str()) => c,
        Some(_) => "other".into(),
    }
}

/// The contract's figures for `events` (any order) with the given session timeout.
pub fn reference(events: &[RefEvent], timeout_ms: i64) -> Figures {
    let mut by_session: BTreeMap<&str, Vec<&RefEvent>> = BTreeMap::new();
    for e in events {
        by_session.entry(&e.session).or_default().push(e);
    }
    let mut f = Figures::default();
    for (_, mut list) in by_session {
        list.sort_by_key(|e| e.ts);
        let mut start = 0;
        for i in 1..=list.len() {
            if i == list.len() || list[i].ts - list[i - 1].ts >= timeout_ms {
                session(&list[start..i], &mut f);
                start = i;
            }
        }
    }
    f.carts_abandoned_value.retain(|_, v| *v > 0.0);
    f.revenue.retain(|_, v| *v > 0.0);
    f
}

fn session(all: &[&RefEvent], f: &mut Figures) {
    let mut seen = std::collections::HashSet::new();
    let mut events = Vec::new();
    for e in all {
        if seen.insert(e.id.as_str()) {
            events.push(*e);
        } else {
            f.duplicates += 1;
        }
    }
    let furthest = events
        .iter()
        .filter_map(|e| stage_of(&e.kind))
        .max()
        .unwrap_or(0);
    for r in &mut f.reached[..=furthest] {
        *r += 1;
    }
    if furthest < 4 {
        f.dropoffs[furthest] += 1;
    }
    let mut orders = std::collections::HashSet::new();
    let mut ordered = false;
    let mut cart: BTreeMap<String, f64> = BTreeMap::new();
    for e in &events {
        let amount = e.value.unwrap_or(0.0);
        match e.kind.as_str() {
            "add_to_cart" | "Product Added" => {
                *cart.entry(currency(&e.currency)).or_default() += amount
            }
            "remove_from_cart" | "Product Removed" => {
                *cart.entry(currency(&e.currency)).or_default() -= amount
            }
            "purchase" | "Order Completed" => {
                ordered = true;
                if e.order_id.as_ref().is_none_or(|o| orders.insert(o.clone())) {
                    f.orders += 1;
                    *f.revenue.entry(currency(&e.currency)).or_default() += amount;
                }
            }
            _ => {}
        }
    }
    if furthest >= 2 && !ordered {
        f.carts_abandoned += 1;
        for (c, v) in cart {
            *f.carts_abandoned_value.entry(c).or_default() += v.max(0.0);
        }
    }
}

/// Asserts two figure sets are equal, money to a millionth.
pub fn assert_figures_eq(actual: &Figures, expected: &Figures) {
    let money_eq = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, va), (kb, vb))| ka == kb && (va - vb).abs() < 1e-6)
    };
    let same = actual.reached == expected.reached
        && actual.dropoffs == expected.dropoffs
        && actual.carts_abandoned == expected.carts_abandoned
        && actual.orders == expected.orders
        && actual.duplicates == expected.duplicates
        && money_eq(
            &actual.carts_abandoned_value,
            &expected.carts_abandoned_value,
        )
        && money_eq(&actual.revenue, &expected.revenue);
    assert!(
        same,
        "figures differ\n  actual:   {actual:?}\n  expected: {expected:?}"
    );
}

/// Reads the figures of `site` from `touchstream replay --json` output.
pub fn from_report_json(report: &serde_json::Value, site: &str) -> Figures {
    let s = &report["sites"][site];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let money = |v: &serde_json::Value| -> BTreeMap<String, f64> {
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
            .filter(|(_, v)| *v > 0.0)
            .collect()
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
    f
}
