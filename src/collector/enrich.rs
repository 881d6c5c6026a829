//! Enrichment: event time, acquisition channel, device class and known bots. Every output is a
//! closed enum or a number; nothing here passes client text through to a label.

use super::wire::Utm;
use crate::event::{Channel, Device};

/// Snowplow's derived timestamp: the client's event time shifted by the client's clock error
/// (`sent_at` against our `received_at`), never after `received_at`.
pub fn event_time(received_at: i64, sent_at: Option<i64>, ts: i64) -> i64 {
    let derived = match sent_at {
        Some(sent) => received_at.saturating_sub(sent.saturating_sub(ts)),
        None => ts,
    };
    derived.clamp(0, received_at)
}

const SEARCH_ENGINES: &[&str] = &[
    "google.",
    "bing.",
    "yahoo.",
    "duckduckgo.",
    "baidu.",
    "yandex.",
    "ecosia.",
    "seznam.",
    "naver.",
    "ask.com",
    "qwant.",
];
const SOCIAL: &[&str] = &[
    "facebook.",
    "fb.",
    "instagram.",
    "t.co",
    "twitter.",
    "x.com",
    "linkedin.",
    "lnkd.in",
    "pinterest.",
    "reddit.",
    "tiktok.",
    "youtube.",
    "youtu.be",
    "snapchat.",
    "whatsapp.",
    "telegram.",
    "vk.com",
    "threads.net",
];
const EMAIL_HOSTS: &[&str] = &["mail.google.", "outlook.", "mail.yahoo.", "webmail."];

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit('@')
        .next()?
        .split(':')
        .next()?
        .trim_start_matches("www.");
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn host_matches(host: &str, list: &[&str]) -> bool {
    list.iter().any(|p| {
        host.starts_with(p) || host.contains(&format!(".{p}")) || host == p.trim_end_matches('.')
    })
}

fn source_matches(source: &str, list: &[&str]) -> bool {
    list.iter()
        .any(|p| source.contains(p.trim_end_matches('.')))
}

/// The channel of a landing event, GA4's default channel grouping reduced to the contract's
/// closed set.
pub fn channel(utm: &Utm<'_>, referrer: Option<&str>, url: Option<&str>) -> Channel {
    let medium = utm.medium.as_deref().unwrap_or("").to_ascii_lowercase();
    let source = utm.source.as_deref().unwrap_or("").to_ascii_lowercase();
    let paid_click = url.is_some_and(|u| {
        ["gclid=", "msclkid=", "gbraid=", "wbraid="]
            .iter()
            .any(|p| u.contains(p))
    });
    if !medium.is_empty() || !source.is_empty() {
        let search = source_matches(&source, SEARCH_ENGINES);
        let social = source_matches(&source, SOCIAL);
        return match medium.as_str() {
            "email" | "e-mail" | "e_mail" | "newsletter" => Channel::Email,
            "affiliate" | "affiliates" | "partner" => Channel::Affiliate,
            "display" | "banner" | "cpm" | "expandable" | "interstitial" => Channel::Display,
            "organic" if search => Channel::OrganicSearch,
            "social" | "social-network" | "social-media" | "sm" | "social_media" => Channel::Social,
            "referral" => Channel::Referral,
            m if m == "cpc" || m == "ppc" || m.starts_with("paid") || m.contains("cp") => {
                if social {
                    Channel::Social
                } else if search {
                    Channel::PaidSearch
                } else {
                    Channel::Other
                }
            }
            _ if source.contains("email") || source.contains("newsletter") => Channel::Email,
            _ if medium.is_empty() && search => Channel::OrganicSearch,
            _ if medium.is_empty() && social => Channel::Social,
            _ => Channel::Other,
        };
    }
    if paid_click {
        return Channel::PaidSearch;
    }
    let Some(ref_host) = referrer.and_then(host_of) else {
        return Channel::Direct;
    };
    if url.and_then(host_of).is_some_and(|own| own == ref_host) {
        return Channel::Direct;
    }
    if host_matches(&ref_host, EMAIL_HOSTS) {
        Channel::Email
    } else if host_matches(&ref_host, SEARCH_ENGINES) {
        Channel::OrganicSearch
    } else if host_matches(&ref_host, SOCIAL) {
        Channel::Social
    } else {
        Channel::Referral
    }
}

/// Device class from a user agent; desktop when unknown.
pub fn device(user_agent: &str) -> Device {
    let ua = user_agent.to_ascii_lowercase();
    if ua.contains("ipad")
        || ua.contains("tablet")
        || (ua.contains("android") && !ua.contains("mobile"))
    {
        Device::Tablet
    } else if ua.contains("mobi")
        || ua.contains("iphone")
        || ua.contains("ipod")
        || ua.contains("android")
    {
        Device::Mobile
    } else {
        Device::Desktop
    }
}

/// Crawlers, monitors and headless browsers that announce themselves. HTTP libraries (curl,
/// python-requests) are not listed: shops send server-side events with them.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "crawl",
    "headlesschrome",
    "phantomjs",
    "facebookexternalhit",
    "lighthouse",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "prerender",
    "google-inspectiontool",
    "bingpreview",
    "embedly",
    "quora link preview",
    "pagespeed",
    "gtmetrix",
    "mediapartners-google",
];

/// Whether a user agent belongs to a known bot.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    BOT_MARKERS.iter().any(|m| ua.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm(source: &'static str, medium: &'static str) -> Utm<'static> {
        Utm {
            source: Some(source.into()),
            medium: Some(medium.into()),
            campaign: None,
        }
    }

    #[test]
    fn event_time_corrects_client_clock_and_never_lies_in_the_future() {
        // Client clock 1 h fast: sent_at and ts both ahead; event happened 2 s before sending.
        assert_eq!(event_time(1_000_000, Some(4_600_000), 4_598_000), 998_000);
        assert_eq!(event_time(1_000_000, None, 2_000_000), 1_000_000);
        assert_eq!(event_time(1_000_000, Some(10), 20), 1_000_000);
    }

    #[test]
    fn channels() {
        let none = Utm::default();
        assert_eq!(channel(&none, None, None), Channel::Direct);
        assert_eq!(
            channel(
                &none,
                Some("https://shop.example/a"),
                Some("https://shop.example/b")
            ),
            Channel::Direct
        );
        assert_eq!(
            channel(&none, Some("https://www.google.com/"), None),
            Channel::OrganicSearch
        );
        assert_eq!(
            channel(&none, Some("https://l.facebook.com/x"), None),
            Channel::Social
        );
        assert_eq!(
            channel(&none, Some("https://blog.example.org/post"), None),
            Channel::Referral
        );
        assert_eq!(
            channel(&none, None, Some("https://shop.example/?gclid=abc")),
            Channel::PaidSearch
        );
        assert_eq!(
            channel(&utm("newsletter", "email"), None, None),
            Channel::Email
        );
        assert_eq!(
            channel(&utm("google", "cpc"), None, None),
            Channel::PaidSearch
        );
        assert_eq!(
            channel(&utm("facebook", "paid_social"), None, None),
            Channel::Social
        );
        assert_eq!(
            channel(&utm("awin", "affiliate"), None, None),
            Channel::Affiliate
        );
        assert_eq!(
            channel(&utm("gdn", "display"), None, None),
            Channel::Display
        );
        assert_eq!(
            channel(&utm("whatever", "weird"), None, None),
            Channel::Other
        );
    }

    #[test]
    fn devices_and_bots() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148";
        let tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
        let pixel = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36";
        assert_eq!(device(iphone), Device::Mobile);
        assert_eq!(device(tab), Device::Tablet);
        assert_eq!(device(pixel), Device::Mobile);
        assert_eq!(
            device("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"),
            Device::Desktop
        );
        assert!(is_bot(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        ));
        assert!(is_bot("Mozilla/5.0 HeadlessChrome/120.0"));
        assert!(!is_bot(pixel));
        assert!(!is_bot("curl/8.5.0"));
    }
}
