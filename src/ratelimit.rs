//! Token buckets keyed by site, client address or the hash of one, in a bounded map: the
//! collector limits requests and site rates with them, the engine new sessions per client.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` a second; a request takes its cost
//! in tokens or is refused with the time until it could pass. The map holds at most `capacity`
//! buckets in shards: when a shard is full, the buckets idle long enough to have refilled go
//! first (forgetting them changes nothing), then the least recently used one. An attacker who
//! sprays addresses can therefore only push out other buckets, never grow the map.

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// When it was last filled, in microseconds of the caller's clock.
    at: i64,
}

/// A limiter's buckets as data: the hash keys, and per bucket its key's hash, its tokens and
/// when it was last filled (microseconds of the clock `check_at` was given).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimiterState {
    pub keys: (u64, u64),
    pub buckets: Vec<(u64, f64, i64)>,
}

/// Token buckets for many keys; `rate` 0 means no limit.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    per_shard: usize,
    keys: (u64, u64),
    shards: Vec<Mutex<HashMap<u64, Bucket>>>,
    /// The origin of [`Limiter::check`]'s monotonic clock.
    created: Instant,
}

impl Limiter {
    /// `rate` tokens a second, up to `burst`, for at most `capacity` keys.
    pub fn new(rate: f64, burst: f64, capacity: usize) -> Self {
        Limiter {
            rate,
            burst: burst.max(1.0),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            // Keys are hashed with a per-process secret so nobody can aim at one shard.
            keys: (rand_u64(), rand_u64()),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            created: Instant::now(),
        }
    }

    /// A limiter as [`Limiter::new`] holding `state`'s buckets and keys.
    pub fn restored(rate: f64, burst: f64, capacity: usize, state: &LimiterState) -> Self {
        let mut limiter = Self::new(rate, burst, capacity);
        limiter.keys = state.keys;
        for &(hash, tokens, at) in &state.buckets {
            let bucket = Bucket { tokens, at };
            limiter.shard(hash).insert(hash, bucket);
        }
        limiter
    }

    /// The buckets and keys as data.
    pub fn state(&self) -> LimiterState {
        let mut buckets: Vec<(u64, f64, i64)> = (self.shards.iter())
            .flat_map(|s| {
                let shard = s.lock().expect("a limiter shard is never poisoned");
                shard
                    .iter()
                    .map(|(k, b)| (*k, b.tokens, b.at))
                    .collect::<Vec<_>>()
            })
            .collect();
        buckets.sort_by_key(|b| b.0);
        LimiterState {
            keys: self.keys,
            buckets,
        }
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Bucket>> {
        self.shards[(hash % SHARDS as u64) as usize]
            .lock()
            .expect("a limiter shard is never poisoned")
    }

    pub fn is_enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes `cost` tokens from `key`'s bucket at `now`, or returns how long until it could.
    pub fn check(&self, key: impl Hash, cost: f64, now: Instant) -> Result<(), Duration> {
        let us = now.saturating_duration_since(self.created).as_micros();
        self.check_at(key, cost, i64::try_from(us).unwrap_or(i64::MAX))
    }

    /// [`Limiter::check`] on the caller's clock, `now_us` microseconds. A clock that goes back
    /// (events of a lagging partition) refills nothing twice.
    pub fn check_at(&self, key: impl Hash, cost: f64, now_us: i64) -> Result<(), Duration> {
        if !self.is_enabled() {
            return Ok(());
        }
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        key.hash(&mut h);
        let hash = h.finish();
        let mut shard = self.shard(hash);
        if !shard.contains_key(&hash) && shard.len() >= self.per_shard {
            self.evict(&mut shard, now_us);
        }
        let bucket = shard.entry(hash).or_insert(Bucket {
            tokens: self.burst,
            at: now_us,
        });
        if now_us > bucket.at {
            let elapsed = (now_us - bucket.at) as f64 / 1e6;
            bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
            bucket.at = now_us;
        }
        // A cost above the burst could never pass: it passes when the bucket is full.
        let cost = cost.min(self.burst);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - bucket.tokens) / self.rate))
        }
    }

    fn evict(&self, shard: &mut HashMap<u64, Bucket>, now_us: i64) {
        let refill_us = (self.burst / self.rate * 1e6) as i64;
        shard.retain(|_, b| now_us.saturating_sub(b.at) < refill_us);
        if shard.len() >= self.per_shard
            && let Some(oldest) = shard.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| *k)
        {
            shard.remove(&oldest);
        }
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("a limiter shard is never poisoned").len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = Limiter::new(10.0, 20.0, 100);
        let t = Instant::now();
        for _ in 0..20 {
            assert!(l.check("a", 1.0, t).is_ok());
        }
        let wait = l.check("a", 1.0, t).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Another key has its own bucket.
        assert!(l.check("b", 1.0, t).is_ok());
        // Half a second later, five tokens are back.
        let later = t + Duration::from_millis(500);
        for _ in 0..5 {
            assert!(l.check("a", 1.0, later).is_ok());
        }
        assert!(l.check("a", 1.0, later).is_err());
        // A cost above the burst passes once the bucket is full, and empties it.
        let full = later + Duration::from_secs(10);
        assert!(l.check("a", 500.0, full).is_ok());
        assert!(l.check("a", 1.0, full).is_err());
    }

    #[test]
    fn the_map_never_outgrows_its_capacity() {
        let l = Limiter::new(1.0, 5.0, 1_000);
        let t = Instant::now();
        for i in 0..100_000u32 {
            let _ = l.check(i, 1.0, t + Duration::from_micros(u64::from(i)));
        }
        assert!(l.len() <= 64 * 1_000usize.div_ceil(64), "{}", l.len());
        // A key kept busy stays limited while others come and go.
        let l = Limiter::new(1.0, 2.0, 640);
        let t = Instant::now();
        assert!(l.check("busy", 2.0, t).is_ok());
        for i in 0..10_000u32 {
            let _ = l.check(i, 1.0, t + Duration::from_micros(u64::from(i)));
            if i % 100 == 0 {
                let _ = l.check("busy", 0.0, t + Duration::from_micros(u64::from(i)));
            }
        }
        assert!(l.check("busy", 1.0, t + Duration::from_millis(10)).is_err());
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let l = Limiter::new(1.0, 2.0, 10);
        let t = Instant::now() + Duration::from_secs(100);
        assert!(l.check("a", 2.0, t).is_ok());
        // An earlier time, then the present again: no second refill of the same seconds.
        assert!(l.check("a", 1.0, t - Duration::from_secs(50)).is_err());
        assert!(l.check("a", 1.0, t).is_err());
    }

    #[test]
    fn rate_zero_is_off() {
        let l = Limiter::new(0.0, 0.0, 10);
        for _ in 0..1_000 {
            assert!(l.check("x", 100.0, Instant::now()).is_ok());
        }
        assert!(l.is_empty());
    }
}
