//! `touchstream rules`: `rules.yml` (a template kept beside this file) with the journey's stages
//! put in: a step-conversion rule for each pair of consecutive stages, and the checkout and cart
//! rules on the stage before the purchase stage, the purchase stage and the cart stage.

use crate::config::Config;
use std::fmt::Write as _;

const TEMPLATE: &str = include_str!("rules.yml");

/// The rules file for `config`'s journey map. A map whose purchase stage has no stage before
/// it gets every rule but the checkout ones (with a comment saying why).
pub fn rules(config: &Config) -> Result<String, String> {
    let journey = &config.journey;
    let names: Vec<&str> = journey.stages.iter().map(|s| s.name.as_str()).collect();
    let index = |name: &str| names.iter().position(|n| *n == name);
    let (Some(purchase), Some(_)) = (index(&journey.purchase_stage), index(&journey.cart_stage))
    else {
        return Err(format!(
            "journey.purchase_stage `{}` and journey.cart_stage `{}` must name stages of the \
             journey: check the configuration with `touchstream check-config FILE`",
            journey.purchase_stage, journey.cart_stage
        ));
    };
    let mut steps = String::new();
    for pair in names.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let reached = |stage: &str| {
            format!(
                "sum by (site) (rate(touchstream_funnel_sessions_total{{stage=\"{stage}\"}}[1h]))"
            )
        };
        // Infallible: writing to a String.
        let _ = write!(
            steps,
            "      - record: site_step:touchstream_step_conversion:ratio_rate1h\n        \
             expr: |\n          {}\n            / {}\n        labels:\n          \
             step: {from}_to_{to}\n",
            reached(to),
            reached(from),
        );
    }
    let checkout = purchase.checked_sub(1).map(|i| names[i]);
    let mut out = String::new();
    let mut skipping = false;
    for line in TEMPLATE.lines() {
        match line {
            "#[checkout" => {
                skipping = checkout.is_none();
                if skipping {
                    out.push_str(
                        "      # No checkout rules: the purchase stage is the journey's first.\n",
                    );
                }
            }
            "#]checkout" => skipping = false,
            _ if skipping || line.starts_with("#~") => {}
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    debug_assert!(
        !skipping,
        "a `#[checkout` without its `#]checkout` in rules.yml"
    );
    Ok(out
        .replace("${STEPS}", steps.trim_end_matches('\n'))
        .replace("${CHECKOUT}", checkout.unwrap_or(""))
        .replace("${PURCHASE}", names[purchase])
        .replace("${CART}", &journey.cart_stage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StageConfig;

    #[test]
    fn a_journey_of_its_own_gets_its_steps_and_checkout() {
        let mut c = Config::default();
        let stage = |name: &str| StageConfig {
            name: name.into(),
            phase: "p".into(),
            touchpoints: vec![name.into()],
        };
        c.journey.stages = vec![stage("landing"), stage("quote"), stage("signed")];
        c.journey.cart_stage = "quote".into();
        c.journey.purchase_stage = "signed".into();
        let text = rules(&c).unwrap();
        assert!(text.contains("step: landing_to_quote"), "{text}");
        assert!(text.contains("step: quote_to_signed"));
        assert!(!text.contains("add_to_cart") && !text.contains("${"));
        assert!(
            text.contains(r#"increase(touchstream_funnel_sessions_total{stage="quote"}[15m])"#)
        );
        // A purchase stage first: every rule but the checkout ones.
        c.journey.purchase_stage = "landing".into();
        let text = rules(&c).unwrap();
        assert!(text.contains("No checkout rules") && text.contains("alert: CartAbandonmentSpike"));
        assert!(!text.contains("CheckoutDropoffSpike") && !text.contains("checkout_conversion"));
        assert!(!text.contains("#~") && !text.contains("#[") && text.ends_with("\n"));
        c.journey.cart_stage = "nowhere".into();
        assert!(rules(&c).unwrap_err().contains("check-config"));
    }
}
