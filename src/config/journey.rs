//! The journey map: ordered funnel stages with their customer-journey phase and the touchpoint
//! types that mark reaching them, plus the touchpoints outside the funnel. The default is the
//! contract's map (GA4 names, Segment aliases).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The configured journey map.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JourneyConfig {
    /// A session closes after this long without an event, by event time.
    /// Env: `TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT`.
    #[serde(with = "super::duration")]
    pub session_timeout: Duration,
    /// The stage whose reaching opens a cart (abandoned if the session closes without an order).
    pub cart_stage: String,
    /// The stage whose touchpoints are orders (counted once per `order_id`, with revenue).
    pub purchase_stage: String,
    /// Touchpoints whose value adds to the cart.
    pub cart_add: Vec<String>,
    /// Touchpoints whose value is taken off the cart.
    pub cart_remove: Vec<String>,
    /// Touchpoints counted under the `post_purchase` phase.
    pub post_purchase: Vec<String>,
    /// Friction touchpoints, counted as pain points at the stage where the session stands.
    pub friction: Vec<String>,
    /// Further touchpoint types kept as `touchpoint` label values (others count as `other`).
    pub other_touchpoints: Vec<String>,
    /// Alternative names (such as Segment's `Product Added`) for configured touchpoints.
    pub aliases: BTreeMap<String, String>,
    /// Funnel stages, in order. Reaching a stage counts as reaching every stage before it.
    pub stages: Vec<StageConfig>,
}

/// One funnel stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage name: the `stage` metric label. `[a-z0-9_]{1,64}`.
    pub name: String,
    /// Customer-journey phase: the `phase` label of this stage's touchpoints.
    pub phase: String,
    /// Touchpoint types that mark reaching this stage.
    pub touchpoints: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn stage(name: &str, phase: &str, touchpoints: &[&str]) -> StageConfig {
    StageConfig {
        name: name.into(),
        phase: phase.into(),
        touchpoints: strings(touchpoints),
    }
}

impl Default for JourneyConfig {
    fn default() -> Self {
        let aliases = [
            ("Product Viewed", "view_item"),
            ("Product List Viewed", "view_item_list"),
            ("Products Searched", "search"),
            ("Product Added", "add_to_cart"),
            ("Cart Viewed", "view_cart"),
            ("Checkout Started", "begin_checkout"),
            ("Payment Info Entered", "add_payment_info"),
            ("Order Completed", "purchase"),
            ("Product Removed", "remove_from_cart"),
        ];
        Self {
            session_timeout: Duration::from_secs(30 * 60),
            cart_stage: "add_to_cart".into(),
            purchase_stage: "purchase".into(),
            cart_add: strings(&["add_to_cart"]),
            cart_remove: strings(&["remove_from_cart"]),
            post_purchase: strings(&["refund", "return_request", "review", "support_contact"]),
            friction: strings(&[
                "error",
                "payment_failed",
                "form_error",
                "rage_click",
                "out_of_stock",
            ]),
            other_touchpoints: Vec::new(),
            aliases: aliases
                .iter()
                .map(|(a, t)| (a.to_string(), t.to_string()))
                .collect(),
            stages: vec![
                stage("visit", "awareness", &["page_view", "session_start"]),
                stage(
                    "product_view",
                    "interest",
                    &["view_item", "view_item_list", "select_item", "search"],
                ),
                stage(
                    "add_to_cart",
                    "consideration",
                    &["add_to_cart", "view_cart"],
                ),
                stage(
                    "checkout",
                    "decision",
                    &["begin_checkout", "add_shipping_info", "add_payment_info"],
                ),
                stage("purchase", "decision", &["purchase"]),
            ],
        }
    }
}
