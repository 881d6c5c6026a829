//! The REES46 sample (../shared/data) as touchstream events, read where it is, with the load
//! generator's reader.

use super::reference::RefEvent;

pub const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/rees46-2019-oct-sample.csv"
);

/// Every row of the sample as an event, in file order.
pub fn events() -> Vec<RefEvent> {
    touchstream_load::rees46::read(std::path::Path::new(SAMPLE)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// An event as wire JSON (with `site` when given, for JSON Lines logs).
pub fn to_json(e: &RefEvent, site: Option<&str>) -> serde_json::Value {
    let mut v = touchstream_load::run::wire_event(e);
    if let Some(s) = site {
        v["site"] = s.into();
    }
    v
}
