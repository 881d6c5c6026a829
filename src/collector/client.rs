//! Who the client is: its address as the operator's proxies report it, no more.
//!
//! The address comes from `limits.client_address_header` only when the connection's peer is
//! one of `limits.trusted_proxies`; a client that reaches the collector directly and sends its
//! own header is limited by its peer address, so it cannot mint fresh buckets. The header's
//! lines are read together, as one comma-separated list in order (a proxy may append a line of
//! its own instead of extending the last one), and the client is the address
//! `limits.trusted_proxy_hops` places from its right end: each trusted proxy appends the
//! address it received the request from, so everything further left was written by the client
//! and is ignored (as Envoy's `xff_num_trusted_hops`).
//!
//! `Forwarded` (RFC 7239) is read by its `for=` nodes. This counts from the right rather than
//! skipping trusted entries as nginx's `real_ip_recursive` does: set the hops to the number of
//! proxies every request passes.
//!
//! Limits are keyed by the address with IPv6 cut to its `/limits.client_ipv6_prefix` (a host
//! holds a whole /64, so one address each would be free buckets). A directly connected trusted
//! proxy whose request names no client (no header configured, or none on the request) is
//! exempt from the per-client connection share and new-session rate, since behind a load
//! balancer every shopper arrives from a few addresses; an address read from the header never
//! is.

use crate::config::LimitsConfig;
use axum::http::HeaderMap;
use ipnet::IpNet;
use siphasher::sip::SipHasher13;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

/// Headers a proxy adds; seen without a configured `client_address_header`, they mean every
/// shopper shares the proxy's limits.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// The readiness note and log line when forwarding headers arrive unused.
pub const UNCONFIGURED_PROXY: &str = "requests carry forwarding headers (X-Forwarded-For, \
    Forwarded or X-Real-IP) but limits.client_address_header is not set: every client behind \
    that proxy shares one rate limit";

/// A resolved client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address limits are keyed by (IPv6 cut to its prefix).
    pub key: IpAddr,
    /// A trusted proxy speaking for many clients: exempt from per-client shares.
    pub exempt: bool,
}

/// Resolves clients from requests, as configured.
#[derive(Debug)]
pub struct Resolver {
    header: String,
    hops: usize,
    trusted: Vec<IpNet>,
    v6_prefix: u8,
    hash_keys: (u64, u64),
    unconfigured_proxy: AtomicBool,
}

impl Resolver {
    pub fn new(l: &LimitsConfig) -> Self {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        Resolver {
            header: l.client_address_header.to_ascii_lowercase(),
            hops: l.trusted_proxy_hops.max(1),
            trusted: l.trusted_proxies.clone(),
            v6_prefix: l.client_ipv6_prefix.min(128),
            hash_keys: (random.hash_one(1u8), random.hash_one(2u8)),
            unconfigured_proxy: AtomicBool::new(false),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The key and exemption of a connection's peer, before any request is read.
    pub fn peer(&self, peer: IpAddr) -> Client {
        Client {
            key: self.key(peer),
            exempt: self.is_trusted(peer),
        }
    }

    /// The client of a request that arrived from `peer` (none in tests without a socket).
    /// Only a directly connected trusted proxy is exempt; an address read from the header
    /// never is, and a header the proxy filled but that names no address (a byte that is not
    /// text, `unknown`, an obfuscated `Forwarded` node) puts the request in one shared
    /// "unresolvable" bucket rather than the proxy's.
    pub fn resolve(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<Client> {
        let peer = peer?.ip();
        let trusted = self.is_trusted(peer);
        if !trusted {
            return Some(self.peer(peer));
        }
        if self.header.is_empty() {
            self.notice_forwarding(headers);
            return Some(self.peer(peer));
        }
        Some(match self.forwarded(headers) {
            None => self.peer(peer),
            Some(ip) => Client {
                key: ip.map_or(UNRESOLVABLE, |ip| self.key(ip)),
                exempt: false,
            },
        })
    }

    /// The entry `hops` places from the right of the header's lines read as one list (the
    /// leftmost when there are fewer): `None` without the header, `Some(None)` when that entry
    /// is no address.
    fn forwarded(&self, headers: &HeaderMap) -> Option<Option<IpAddr>> {
        let mut entries: Vec<&[u8]> = Vec::new();
        for line in headers.get_all(self.header.as_str()) {
            entries.extend(
                line.as_bytes()
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii),
            );
        }
        if entries.is_empty() {
            return None;
        }
        // An empty entry is no address: it lands in the unresolvable bucket, never the proxy's.
        let chosen = entries[entries.len().saturating_sub(self.hops)];
        let text = std::str::from_utf8(chosen).ok().filter(|t| !t.is_empty());
        Some(text.and_then(|t| {
            if self.header == "forwarded" {
                parse_address(forwarded_for(t)?)
            } else {
                parse_address(t)
            }
        }))
    }

    fn notice_forwarding(&self, headers: &HeaderMap) {
        if FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h))
            && !self.unconfigured_proxy.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("{UNCONFIGURED_PROXY}");
        }
    }

    /// Whether forwarding headers arrived without a configured header (for `/readyz`).
    pub fn saw_unconfigured_proxy(&self) -> bool {
        self.unconfigured_proxy.load(Ordering::Relaxed)
    }

    /// `ip` as limits key it: IPv4 as is, IPv6 cut to its prefix.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.v6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
            v4 => v4,
        }
    }

    /// The engine's handle on a client ([`crate::event::Event::origin`]): a keyed hash of its
    /// key, so the address itself never leaves the collector; 0 when exempt.
    pub fn origin(&self, client: Option<Client>) -> u64 {
        match client {
            Some(c) if !c.exempt => {
                let mut h = SipHasher13::new_with_keys(self.hash_keys.0, self.hash_keys.1);
                c.key.hash(&mut h);
                h.finish().max(1)
            }
            _ => 0,
        }
    }
}

/// The key of every request whose forwarded address cannot be read.
const UNRESOLVABLE: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// The `for=` node of one RFC 7239 `Forwarded` element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::1]:4711"`), unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.eq_ignore_ascii_case("for")
            .then(|| value.trim_matches('"'))
    })
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:80`.
fn parse_address(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn resolver(header: &str, hops: usize) -> Resolver {
        Resolver::new(&LimitsConfig {
            client_address_header: header.into(),
            trusted_proxy_hops: hops,
            ..LimitsConfig::default()
        })
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", HeaderValue::from_str(l).unwrap());
        }
        h
    }

    const PROXY: &str = "10.0.0.1:5000";
    const DIRECT: &str = "198.51.100.7:5000";

    fn key(r: &Resolver, lines: &[&str], peer: &str) -> IpAddr {
        r.resolve(&headers(lines), Some(peer.parse().unwrap()))
            .unwrap()
            .key
    }

    #[test]
    fn the_client_is_the_address_the_trusted_proxy_appended() {
        let r = resolver("X-Forwarded-For", 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(key(&r, &["6.6.6.6, 203.0.113.9"], PROXY), ip("203.0.113.9"));
        // The proxy appended a line of its own: the client's line is not read.
        assert_eq!(
            key(&r, &["6.6.6.6", "203.0.113.9"], PROXY),
            ip("203.0.113.9")
        );
        // Without the header, the proxy itself (exempt); with one naming no address, the one
        // shared unresolvable bucket, never the proxy's.
        assert_eq!(key(&r, &[], PROXY), ip("10.0.0.1"));
        assert_eq!(key(&r, &["unknown"], PROXY), UNRESOLVABLE);
        assert_eq!(key(&r, &[","], PROXY), UNRESOLVABLE);
        let mut odd = headers(&[]);
        odd.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\x80\xff, 203.0.113.9").unwrap(),
        );
        let c = r.resolve(&odd, Some(PROXY.parse().unwrap())).unwrap();
        assert_eq!((c.key, c.exempt), (ip("203.0.113.9"), false));
        let mut odd = headers(&[]);
        odd.append("x-forwarded-for", HeaderValue::from_bytes(b"\x80").unwrap());
        let c = r.resolve(&odd, Some(PROXY.parse().unwrap())).unwrap();
        assert_eq!((c.key, c.exempt), (UNRESOLVABLE, false));
        // An address from the header is never exempt, even a private one.
        let c = r.resolve(&headers(&["10.9.9.9"]), Some(PROXY.parse().unwrap()));
        assert!(!c.unwrap().exempt);
        // A client reaching the collector directly cannot choose its address.
        assert_eq!(key(&r, &["203.0.113.9"], DIRECT), ip("198.51.100.7"));
        // Two proxies (CDN, then load balancer): the client is second from the right.
        let r = resolver("x-forwarded-for", 2);
        assert_eq!(
            key(&r, &["6.6.6.6, 203.0.113.9", "192.0.2.44"], PROXY),
            ip("203.0.113.9")
        );
        assert_eq!(key(&r, &["203.0.113.9"], PROXY), ip("203.0.113.9"));
        assert_eq!(key(&r, &["[2001:db8::1]:443"], PROXY), ip("2001:db8::"));
    }

    #[test]
    fn forwarded_headers_are_read_by_their_for_nodes() {
        let r = resolver("Forwarded", 1);
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            HeaderValue::from_static("for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https"),
        );
        let c = r.resolve(&h, Some(PROXY.parse().unwrap())).unwrap();
        assert_eq!(c.key, r.key("2001:db8::1".parse().unwrap()));
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            HeaderValue::from_static("for=_hidden;proto=http"),
        );
        let c = r.resolve(&h, Some(PROXY.parse().unwrap())).unwrap();
        assert_eq!(c.key, UNRESOLVABLE);
    }

    #[test]
    fn ipv6_clients_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let r = resolver("", 1);
        let k = |s: &str| r.key(s.parse().unwrap());
        assert_eq!(k("2001:db8:1:2:aaaa::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_eq!(k("::ffff:203.0.113.9"), k("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_are_exempt_and_clients_are_hashed() {
        let r = resolver("", 1);
        let proxy = r.resolve(&HeaderMap::new(), Some(PROXY.parse().unwrap()));
        assert!(proxy.unwrap().exempt);
        assert_eq!(r.origin(proxy), 0);
        let direct = r.resolve(&HeaderMap::new(), Some(DIRECT.parse().unwrap()));
        assert!(!direct.unwrap().exempt);
        assert_ne!(r.origin(direct), 0);
        assert!(!r.saw_unconfigured_proxy());
        // A client of its own cannot plant the warning; a proxy's request raises it.
        r.resolve(&headers(&["203.0.113.9"]), Some(DIRECT.parse().unwrap()));
        assert!(!r.saw_unconfigured_proxy());
        r.resolve(&headers(&["203.0.113.9"]), Some(PROXY.parse().unwrap()));
        assert!(r.saw_unconfigured_proxy());
    }
}
