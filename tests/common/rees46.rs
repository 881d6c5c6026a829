//! The REES46 sample (../shared/data) as touchstream events, read where it is.

use super::reference::RefEvent;

pub const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/rees46-2019-oct-sample.csv"
);

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
pub fn parse_time(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let days = days_from_civil(n(0, 4), n(5, 7), n(8, 10));
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000
}

/// FNV-1a of the whole row: identical rows get the same event id, as a retried event would.
fn row_id(row: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in row.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Every row of the sample as an event, in file order.
pub fn events() -> Vec<RefEvent> {
    let text =
        std::fs::read_to_string(SAMPLE).unwrap_or_else(|e| panic!("cannot read {SAMPLE}: {e}"));
    text.lines()
        .skip(1)
        .map(|row| row.trim_end_matches('\r'))
        .filter(|row| !row.is_empty())
        .map(|row| {
            let f: Vec<&str> = row.split(',').collect();
            assert_eq!(f.len(), 9, "unexpected row {row}");
            let kind = match f[1] {
                "view" => "view_item",
                "cart" => "add_to_cart",
                "remove_from_cart" => "remove_from_cart",
                "purchase" => "purchase",
                other => panic!("unknown event_type {other}"),
            };
            RefEvent {
                session: f[8].to_string(),
                id: row_id(row),
                kind: kind.to_string(),
                ts: parse_time(f[0]),
                value: Some(f[6].parse().unwrap()),
                currency: Some("USD".to_string()),
                order_id: None,
            }
        })
        .collect()
}

/// An event as wire JSON (with `site` when given, for JSON Lines logs).
pub fn to_json(e: &RefEvent, site: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": e.id, "type": e.kind, "ts": e.ts, "session": e.session,
        "props": { "value": e.value, "currency": e.currency },
    });
    if let Some(s) = site {
        v["site"] = s.into();
    }
    v
}
