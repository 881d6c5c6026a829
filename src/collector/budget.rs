//! The body bytes all requests hold at once, and each client's share of them.
//!
//! Every byte of request buffer is taken from the budget before it is allocated and given back
//! when the request ends, so the collector never holds more than `limits.max_inflight_body_bytes`
//! of bodies: beyond it, 503 with `Retry-After`. Once more than half of it is held, one client
//! address (trusted proxies exempt) may hold at most a sixteenth of it, so a client that opens
//! many connections and trickles bodies into them cannot spend the budget for every other shop.

use super::ApiError;
use super::client::Client;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The shared budget.
#[derive(Debug, Clone)]
pub struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    total: usize,
    /// Most one client may hold once more than half of `total` is held.
    share: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    /// Bytes held per client key; keys at zero are removed, so the map holds only clients
    /// with a request in flight.
    clients: HashMap<IpAddr, usize>,
}

/// What one request holds, given back on drop.
#[derive(Debug)]
pub struct Held {
    budget: Budget,
    /// The client's key, unless it is exempt from the share.
    client: Option<IpAddr>,
    bytes: usize,
}

impl Budget {
    pub fn new(total: usize) -> Self {
        Budget(Arc::new(Inner {
            total,
            share: (total / 16).max(1),
            state: Mutex::default(),
        }))
    }

    /// An empty hold for a request of `client` (none: unknown or exempt from the share).
    pub fn hold(&self, client: Option<Client>) -> Held {
        Held {
            budget: self.clone(),
            client: client.filter(|c| !c.exempt).map(|c| c.key),
            bytes: 0,
        }
    }

    /// Bytes held by all requests.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.0.state.lock().expect("never poisoned").used
    }
}

impl Held {
    /// Takes `bytes` more, or 503 when the budget (or, under pressure, the client's share) is
    /// spent.
    pub fn take(&mut self, bytes: usize) -> Result<(), ApiError> {
        let inner = &self.budget.0;
        let mut state = inner.state.lock().expect("never poisoned");
        let used = state.used.saturating_add(bytes);
        if used > inner.total {
            return Err(ApiError::Unavailable);
        }
        if let Some(key) = self.client {
            let mine = state.clients.get(&key).copied().unwrap_or(0) + bytes;
            if used > inner.total / 2 && mine > inner.share {
                return Err(ApiError::Unavailable);
            }
            state.clients.insert(key, mine);
        }
        state.used = used;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut state = self.budget.0.state.lock().expect("never poisoned");
        state.used -= self.bytes;
        if let Some(key) = self.client
            && let Some(mine) = state.clients.get_mut(&key)
        {
            *mine -= self.bytes;
            if *mine == 0 {
                state.clients.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8, exempt: bool) -> Option<Client> {
        Some(Client {
            key: IpAddr::from([203, 0, 113, last]),
            exempt,
        })
    }

    #[test]
    fn a_client_holds_at_most_its_share_once_half_the_budget_is_held() {
        let budget = Budget::new(1600);
        // One client alone may take up to half of it, then only its share (100).
        let mut greedy = budget.hold(client(1, false));
        assert!(greedy.take(800).is_ok());
        assert!(matches!(greedy.take(1), Err(ApiError::Unavailable)));
        // Another client still gets in, within its share.
        let mut other = budget.hold(client(2, false));
        assert!(other.take(100).is_ok());
        assert!(other.take(1).is_err());
        // A trusted proxy speaks for many clients: only the whole budget bounds it.
        let mut proxy = budget.hold(client(3, true));
        assert!(proxy.take(700).is_ok());
        assert!(proxy.take(1).is_err(), "the whole budget is spent");
        drop((greedy, other, proxy));
        assert_eq!(budget.used(), 0);
        assert!(budget.0.state.lock().unwrap().clients.is_empty());
    }
}
