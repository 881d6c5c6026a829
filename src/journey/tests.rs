use super::*;
use crate::config::{JourneyConfig, StageConfig};

fn stage(name: &str, phase: &str, touchpoints: &[&str]) -> StageConfig {
    StageConfig {
        name: name.into(),
        phase: phase.into(),
        touchpoints: touchpoints.iter().map(|t| t.to_string()).collect(),
        within: None,
        step_delay: None,
    }
}

#[test]
fn default_map_classifies_contract_types() {
    let all = Journeys::new(&Config::default());
    let j = &all.sites[0];
    assert_eq!(j.slots(), 1);
    assert_eq!(j.classify("page_view").marks[0].stage, Some(0));
    assert_eq!(j.classify("Product Added").marks[0].stage, Some(2));
    assert_eq!(j.classify("Product Added").cart, CartEffect::Add);
    assert_eq!(j.classify("view_cart").cart, CartEffect::None);
    assert_eq!(j.classify("Product Removed").cart, CartEffect::Remove);
    assert!(j.classify("Order Completed").order);
    assert_eq!(j.classify("review").phase, Some(all.post_purchase_phase()));
    assert_eq!(j.classify("rage_click").marks[0].friction, Some(3));
    assert_eq!(j.classify("rage_click").phase, None);
    let other = j.classify("made_up");
    assert_eq!(all.touchpoints[other.label], OTHER);
    assert_eq!(
        all.phases,
        [
            "awareness",
            "interest",
            "consideration",
            "decision",
            POST_PURCHASE
        ]
    );
    let main = all.of(0, 0);
    assert_eq!(main.name, "default");
    assert_eq!((main.cart_stage, main.purchase_stage), (Some(2), Some(4)));
}

/// Two journeys on one site: a touchpoint means something in each; labels are shared.
#[test]
fn a_site_of_two_journeys_looks_each_touchpoint_up_once() {
    let mut c = Config::default();
    let shop = JourneyConfig {
        name: "shop".into(),
        ..JourneyConfig::default()
    };
    let quote = JourneyConfig {
        name: "quote".into(),
        mode: crate::config::JourneyMode::Ordered,
        stages: vec![
            stage("landing", "awareness", &["page_view"]),
            stage("asked", "consideration", &["quote_request"]),
            stage("signed", "decision", &["quote_signed"]),
        ],
        cart_stage: String::new(),
        purchase_stage: "signed".into(),
        friction: vec!["form_error".into()],
        ..JourneyConfig::default()
    };
    c.journeys = vec![shop, quote];
    c.validate().unwrap();
    let all = Journeys::new(&c);
    let site = &all.sites[0];
    assert_eq!(site.journeys, [0, 1]);
    let pv = site.classify("page_view");
    assert_eq!((pv.marks[0].stage, pv.marks[1].stage), (Some(0), Some(0)));
    let signed = site.classify("quote_signed");
    assert!(
        signed.order,
        "a purchase stage of the second journey is an order"
    );
    assert_eq!(
        (signed.marks[0].stage, signed.marks[1].stage),
        (None, Some(2))
    );
    assert_eq!(all.phases[signed.phase.unwrap()], "decision");
    let form = site.classify("form_error");
    assert_eq!(form.marks[0].friction, form.marks[1].friction);
    assert!(form.marks[1].friction.is_some());
    let pay = site.classify("payment_failed");
    assert!(pay.marks[0].friction.is_some() && pay.marks[1].friction.is_none());
    assert!(all.journeys[1].ordered && all.journeys[1].cart_stage.is_none());
    // One label set: the second journey's touchpoints follow the first's, `other` last.
    assert_eq!(all.touchpoints.last().unwrap(), OTHER);
    assert_eq!(
        all.touchpoints.iter().filter(|t| *t == "page_view").count(),
        1
    );
}
