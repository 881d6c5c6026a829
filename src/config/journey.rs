//! Journey maps: ordered funnel stages with their customer-journey phase and the touchpoint
//! types that mark reaching them, plus the touchpoints outside the funnel. `[journey]` is one
//! map (the contract's by default, GA4 names and Segment aliases) and holds the session
//! timeout; `[[journeys]]`, when given, replaces its map with several named ones (see
//! [`Config::journeys`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A journey map (`[journey]`, or one entry of `[[journeys]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JourneyConfig {
    /// The journey's name: the `journey` metric label. `[a-z0-9_-]{1,64}`, unique.
    pub name: String,
    /// How stages are reached: `any` (the furthest stage any event maps to, whatever their
    /// order) or `ordered` (a stage counts only when reached after the one before it).
    pub mode: JourneyMode,
    /// A session closes after this long without an event, by event time: one for every site
    /// and journey, so only `[journey]` sets it. Env: `TOUCHSTREAM_JOURNEY_SESSION_TIMEOUT`.
    #[serde(with = "super::duration")]
    pub session_timeout: Duration,
    /// The stage whose reaching opens a cart (abandoned if the session closes without an order);
    /// `""` for a journey without carts.
    pub cart_stage: String,
    /// The stage whose touchpoints are orders (counted once per `order_id`, with revenue); `""`
    /// for a journey without orders.
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

/// How a journey's stages are reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JourneyMode {
    /// The furthest stage any of the session's events maps to, whatever their order; reaching
    /// a stage counts every stage before it.
    #[default]
    Any,
    /// A stage counts only when reached after the stage before it (by event time, and within
    /// the stage's `within` of it when set), in the order the events arrive.
    Ordered,
}

/// One funnel stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Stage name: the `stage` metric label. `[a-z0-9_]{1,64}`.
    pub name: String,
    /// Customer-journey phase: the `phase` label of this stage's touchpoints.
    pub phase: String,
    /// Touchpoint types that mark reaching this stage.
    pub touchpoints: Vec<String>,
    /// Ordered journeys: the stage counts only when reached within this long of the stage
    /// before it (the conversion window). Not on the first stage.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::duration::option"
    )]
    pub within: Option<Duration>,
    /// The typical (median) time from the stage before to this one. The step alerts of
    /// `touchstream rules` compare the sessions reaching this stage now with those that reached
    /// the one before this long earlier. Not on the first stage; [`DEFAULT_STEP_DELAY`] unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::duration::option"
    )]
    pub step_delay: Option<Duration>,
}

/// A step's typical delay when its stage sets no `step_delay`.
pub const DEFAULT_STEP_DELAY: Duration = Duration::from_secs(120);
/// The longest `step_delay`: the step alerts look back at most two hours.
pub const MAX_STEP_DELAY: Duration = Duration::from_secs(3600);

/// Bounds that keep label sets small and let the engine store a stage index in a byte.
pub const MAX_STAGES: usize = 32;
/// Journeys configured in all.
pub const MAX_JOURNEYS: usize = 16;
/// Touchpoint names over all journeys (the `touchpoint` label, `other` besides; a session keeps
/// its last one in a byte).
pub const MAX_TOUCHPOINTS: usize = 254;
/// Friction kinds over all journeys (the `kind` label; the engine stores one in a byte).
pub const MAX_FRICTION_KINDS: usize = 64;
/// Journeys one site runs: each adds its series (README, "Series budget") and its progress to
/// every session of the site.
pub const MAX_SITE_JOURNEYS: usize = 8;

/// Touchpoint label of every type the journey maps do not name (no touchpoint may be named so).
pub const OTHER: &str = "other";
/// Friction kind label of a drop-off that met no friction (no friction kind may be named so).
pub const NO_FRICTION: &str = "none";

/// The name of `[journey]`'s map, and of the journey a checkpoint written before journeys had
/// names carries its figures into.
pub const DEFAULT_NAME: &str = "default";

impl JourneyConfig {
    /// The cart stage's index, if the journey has carts.
    pub fn cart_stage(&self) -> Option<usize> {
        self.stage(&self.cart_stage)
    }

    /// The purchase stage's index, if the journey has orders.
    pub fn purchase_stage(&self) -> Option<usize> {
        self.stage(&self.purchase_stage)
    }

    /// Every touchpoint the map names (not its aliases), in label order: the stages', then the
    /// post-purchase, friction, cart and other ones (some more than once).
    pub fn touchpoints(&self) -> impl Iterator<Item = &String> {
        (self.stages.iter().flat_map(|s| &s.touchpoints))
            .chain(&self.post_purchase)
            .chain(&self.friction)
            .chain(&self.cart_add)
            .chain(&self.cart_remove)
            .chain(&self.other_touchpoints)
    }

    fn stage(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn stage(name: &str, phase: &str, touchpoints: &[&str]) -> StageConfig {
    StageConfig {
        name: name.into(),
        phase: phase.into(),
        touchpoints: strings(touchpoints),
        within: None,
        step_delay: None,
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
            name: DEFAULT_NAME.into(),
            mode: JourneyMode::Any,
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
                StageConfig {
                    // Most visits view a product in the minute they land.
                    step_delay: Some(Duration::ZERO),
                    ..stage(
                        "product_view",
                        "interest",
                        &["view_item", "view_item_list", "select_item", "search"],
                    )
                },
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
