//! The REES46 clickstream (`../shared/data/rees46-2019-oct-sample.csv`) as touchstream events:
//! `view` is `view_item`, `cart` is `add_to_cart`, `remove_from_cart` and `purchase` keep their
//! names; every price is in USD.

use crate::truth::Event;
use anyhow::{Context, bail};

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2019-10-01 00:00:00 UTC` as ms since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let days = days_from_civil(n(0, 4)?, n(5, 7)?, n(8, 10)?);
    Some(((days * 24 + n(11, 13)?) * 60 + n(14, 16)?) * 60_000 + n(17, 19)? * 1000)
}

/// FNV-1a of the whole row: identical rows get the same event id, as a retried event would.
fn row_id(row: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in row.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Every row of a REES46 CSV (with its header line) as an event, in file order.
pub fn parse(text: &str) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    for (n, row) in text.lines().enumerate().skip(1) {
        let row = row.trim_end_matches('\r');
        if row.is_empty() {
            continue;
        }
        let f: Vec<&str> = row.split(',').collect();
        if f.len() != 9 {
            bail!("line {}: expected 9 fields, found {}", n + 1, f.len());
        }
        let kind = match f[1] {
            "view" => "view_item",
            "cart" => "add_to_cart",
            "remove_from_cart" => "remove_from_cart",
            "purchase" => "purchase",
            other => bail!("line {}: unknown event_type {other:?}", n + 1),
        };
        events.push(Event {
            session: f[8].to_string(),
            id: row_id(row),
            kind: kind.to_string(),
            ts: parse_time(f[0]).with_context(|| format!("line {}: bad time {:?}", n + 1, f[0]))?,
            value: Some(
                f[6].parse()
                    .with_context(|| format!("line {}: bad price {:?}", n + 1, f[6]))?,
            ),
            currency: Some("USD".to_string()),
            order_id: None,
        });
    }
    Ok(events)
}

/// The events of the CSV file at `path`.
pub fn read(path: &std::path::Path) -> anyhow::Result<Vec<Event>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_parsing_matches_the_calendar() {
        assert_eq!(parse_time("1970-01-01 00:00:01 UTC"), Some(1000));
        assert_eq!(
            parse_time("2019-10-01 00:00:00 UTC"),
            Some(1_569_888_000_000)
        );
        assert_eq!(parse_time("2019-10"), None);
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n";
        let e = parse(&format!(
            "{header}2019-10-01 00:00:00 UTC,click,1,2,,b,1.00,3,s\n"
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "line 2: unknown event_type \"click\"");
        let ok = parse(&format!(
            "{header}2019-10-01 00:00:00 UTC,cart,1,2,,b,1.50,3,s\n"
        ))
        .unwrap();
        assert_eq!(
            (ok[0].kind.as_str(), ok[0].value),
            ("add_to_cart", Some(1.5))
        );
    }
}
