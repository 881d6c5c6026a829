//! money (issue 13, item 4): purchases of the largest value an event may carry, one after
//! another in one session (distinct order ids). After each, `touchstream_revenue_total` must
//! have grown by exactly that value: never wrapped, shrunk or gone negative.

use super::{Bound, Check, Context};
use crate::probe::now_ms;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Purchases to send.
    #[arg(long, default_value_t = 30)]
    steps: u32,
    /// The value of each (the largest an event may carry: 1e12).
    #[arg(long, default_value_t = 1e12)]
    value: f64,
    /// Their currency (one of the site's).
    #[arg(long, default_value = "USD")]
    currency: String,
}

/// How the revenue after each step compares with what it must be.
#[derive(Debug, Default, PartialEq)]
pub struct Steps {
    pub exact: u32,
    pub decreases: u32,
    /// The first step whose revenue was not exact, with the revenue.
    pub first_wrong: Option<(u32, f64)>,
}

/// Checks revenues read after steps 1, 2, ... against `value` times the step.
pub fn check(revenues: &[f64], value: f64) -> Steps {
    let mut s = Steps::default();
    let mut last = 0.0;
    for (i, &r) in revenues.iter().enumerate() {
        let step = i as u32 + 1;
        if r == value * f64::from(step) {
            s.exact += 1;
        } else if s.first_wrong.is_none() {
            s.first_wrong = Some((step, r));
        }
        if r < last {
            s.decreases += 1;
        }
        last = r;
    }
    s
}

pub async fn run(ctx: &Context, a: Args) -> anyhow::Result<Vec<Bound>> {
    let site = ctx.site.as_str();
    let revenue = |s: &crate::scrape::Scrape| {
        s.sum(
            "touchstream_revenue_total",
            &[("site", site), ("currency", &a.currency)],
        )
    };
    let orders = |s: &crate::scrape::Scrape| s.sum("touchstream_orders_total", &[("site", site)]);
    let before = ctx.scrape().await?;
    let (revenue_before, orders_before) = (revenue(&before), orders(&before));
    let session = format!("{}-money", ctx.run_id);
    let mut revenues = Vec::new();
    for step in 1..=a.steps {
        let body = json!({"site": site, "events": [{"id": format!("m{step}"), "type": "purchase",
            "ts": now_ms(), "session": session,
            "props": {"value": a.value, "currency": a.currency, "order_id": format!("order-{step}")}}]});
        let (status, answer) = ctx.post(&ctx.http, &body).await;
        anyhow::ensure!(
            status == 200 && answer.contains("\"accepted\":1"),
            "purchase {step} was not taken: {status} {answer}"
        );
        // Wait for the engine to count it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let now = loop {
            let s = ctx.scrape().await?;
            if orders(&s) - orders_before >= f64::from(step) {
                break s;
            }
            anyhow::ensure!(Instant::now() < deadline, "order {step} was never counted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let r = revenue(&now) - revenue_before;
        let expected = a.value * f64::from(step);
        println!(
            "step {step:2}: revenue {r} (expected {expected}) {}",
            if r == expected { "exact" } else { "WRONG" }
        );
        revenues.push(r);
    }
    let s = check(&revenues, a.value);
    if let Some((step, r)) = s.first_wrong {
        println!("first wrong at step {step}: {r}");
    }
    Ok(vec![
        Bound::new(
            "money",
            f64::from(s.exact),
            Check::Exactly,
            f64::from(a.steps),
            "steps",
            format!("revenue exact after each purchase of {}", a.value),
        ),
        Bound::new(
            "money/monotonic",
            f64::from(s.decreases),
            Check::Exactly,
            0.0,
            "decreases",
            "times the revenue counter went down",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_counter_is_neither_exact_nor_monotonic() {
        let ok = check(&[1e12, 2e12, 3e12], 1e12);
        assert_eq!((ok.exact, ok.decreases, ok.first_wrong), (3, 0, None));
        // i64 micro-units wrap after 9.22e12: the tenth step reads negative.
        let mut revenues: Vec<f64> = (1..=9).map(|k| f64::from(k) * 1e12).collect();
        revenues.extend([-8.446744073709552e12, -7.446744073709552e12]);
        let wrapped = check(&revenues, 1e12);
        assert_eq!(wrapped.exact, 9);
        assert_eq!(wrapped.decreases, 1);
        assert_eq!(wrapped.first_wrong, Some((10, -8.446744073709552e12)));
    }
}
