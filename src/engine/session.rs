//! One open session's state, kept small: at a million open sessions every byte here costs a
//! megabyte. Strings are never stored; ids are keyed 64-bit hashes (see `Engine`).

use crate::event::{Channel, Device};
use crate::journey::Journey;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use thin_vec::ThinVec;

/// Ids kept in a sorted vector up to this many, then in a hash set.
const SMALL_IDS: usize = 64;

/// A hasher for values that are already uniformly distributed 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

pub type Prehashed = BuildHasherDefault<PrehashedHasher>;

/// Set of hashed ids, compact while small.
#[derive(Debug)]
pub enum IdSet {
    Small(ThinVec<u64>),
    // Boxed on purpose: it keeps `IdSet` at 16 bytes for the many small sessions.
    #[allow(clippy::box_collection)]
    Large(Box<HashSet<u64, Prehashed>>),
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet::Small(ThinVec::new())
    }
}

impl IdSet {
    /// Ids held.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            IdSet::Small(v) => v.len(),
            IdSet::Large(set) => set.len(),
        }
    }

    /// What the set costs beyond the ids a small one holds: the room of its hash table (each
    /// about 10 bytes: an 8-byte id and a control byte, at most 7/8 full), 0 while small.
    #[inline]
    pub fn cost(&self) -> usize {
        match self {
            IdSet::Small(_) => 0,
            IdSet::Large(set) => set.capacity(),
        }
    }

    /// Every id held.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (small, large) = match self {
            IdSet::Small(v) => (Some(v.iter()), None),
            IdSet::Large(set) => (None, Some(set.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
            .copied()
    }

    /// Whether `id` is present.
    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        match self {
            IdSet::Small(v) => v.binary_search(&id).is_ok(),
            IdSet::Large(set) => set.contains(&id),
        }
    }

    /// Adds `id`; false when it was already present.
    pub fn insert(&mut self, id: u64) -> bool {
        match self {
            IdSet::Small(v) => match v.binary_search(&id) {
                Ok(_) => false,
                Err(pos) if v.len() < SMALL_IDS => {
                    v.insert(pos, id);
                    true
                }
                Err(_) => {
                    let mut set: HashSet<u64, Prehashed> = v.iter().copied().collect();
                    set.insert(id);
                    *self = IdSet::Large(Box::new(set));
                    true
                }
            },
            IdSet::Large(set) => set.insert(id),
        }
    }
}

/// Progress in one journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Stages reached (the furthest is `reached - 1`); 0: none yet.
    pub reached: u8,
    /// When the furthest stage was reached, by event time (kept for ordered journeys, whose
    /// next step is timed from it).
    pub at_ms: i64,
}

/// A line of what a session holds beyond the common case, each 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Net cart value in a currency (its index), in micro-units: adds less removes; may go
    /// negative, read through [`Session::cart_value`] which never goes below zero.
    Cart { currency: u16, micros: i64 },
    /// Progress in the journey of the site's slot `slot`: every slot but the main one (whose
    /// count is [`Session::reached`]), and the main one's step time when it is ordered.
    Journey { slot: u8, reached: u8, at_ms: i64 },
}

/// An open session.
#[derive(Debug)]
pub struct Session {
    /// Earliest and latest event time seen, ms.
    pub first_ms: i64,
    pub last_ms: i64,
    /// Hashes of the event ids applied (for dedup) and of the order ids counted (hashed in
    /// another domain, so the two never meet): one set, looked up in constant time, and no
    /// larger than `events` plus the orders among them.
    pub ids: IdSet,
    /// Events applied (duplicates left out): capped by `engine.max_session_events`.
    pub events: u32,
    /// The client that opened it (`Event::origin` cut to 32 bits, 0 only when exempt), whose
    /// share of the stored ids it draws on. 32 bits keep the session in 56 bytes.
    pub origin: u32,
    /// What few sessions hold, in one allocation made only when needed: the cart's lines and
    /// the progress in the site's further journeys (see [`Line`]).
    pub lines: ThinVec<Line>,
    pub site: u16,
    /// Number of stages of the site's main journey reached (the furthest stage is
    /// `reached - 1`); 0 before the first event is applied, or while an ordered main journey
    /// is not entered.
    pub reached: u8,
    /// Channel and device of the session's first event received.
    pub channel: Channel,
    pub device: Device,
    /// [`ORDERED`], [`REMEMBERED`] and [`CART`], one bit each (two bools would not fit 56 bytes).
    flags: u8,
    /// The touchpoint label of the last event received (what a drop-off is diagnosed by).
    pub last_touchpoint: u8,
    /// The friction kind of the last friction event received, plus one; 0: none.
    pub last_friction: u8,
}

/// An order was counted.
const ORDERED: u8 = 1;
/// A cart stage of one of the site's journeys was reached.
const CART: u8 = 4;
/// A closed session of the same key was remembered when it opened: only then are its events'
/// ids looked up among the closed sessions' too.
const REMEMBERED: u8 = 2;

impl Session {
    pub fn new(site: u16, time_ms: i64, channel: Channel, device: Device, origin: u64) -> Self {
        let origin = if origin == 0 {
            0
        } else {
            (origin as u32).max(1)
        };
        Self {
            first_ms: time_ms,
            last_ms: time_ms,
            ids: IdSet::Small(ThinVec::new()),
            events: 0,
            origin,
            lines: ThinVec::new(),
            site,
            reached: 0,
            channel,
            device,
            flags: 0,
            last_touchpoint: 0,
            last_friction: 0,
        }
    }

    /// This session, noting whether a closed session of its key was remembered as it opened.
    pub fn remembering(mut self, remembered: bool) -> Self {
        if remembered {
            self.flags |= REMEMBERED;
        }
        self
    }

    /// Whether a closed session of its key was remembered when it opened.
    #[inline]
    pub fn remembered(&self) -> bool {
        self.flags & REMEMBERED != 0
    }

    /// Whether an order was counted.
    #[inline]
    pub fn ordered(&self) -> bool {
        self.flags & ORDERED != 0
    }

    /// Notes that the session bought.
    #[inline]
    pub fn set_ordered(&mut self) {
        self.flags |= ORDERED;
    }

    /// Index of the furthest stage reached in the main journey.
    pub fn furthest(&self) -> usize {
        usize::from(self.reached.max(1)) - 1
    }

    /// Stages reached in the journey of slot `slot` (the main one's without a look at the
    /// lines: the common case, on every event).
    #[inline]
    pub fn reached(&self, slot: usize) -> u8 {
        if slot == 0 {
            self.reached
        } else {
            self.line(slot).map_or(0, |p| p.reached)
        }
    }

    /// Progress in the journey of slot `slot`; `timed`: the journey is ordered, so the step
    /// time is kept (else it reads as the session's start).
    #[inline]
    pub fn progress(&self, slot: usize, timed: bool) -> Progress {
        let line = if slot == 0 && !timed {
            None
        } else {
            self.line(slot)
        };
        match (slot, line) {
            (0, line) => Progress {
                reached: self.reached,
                at_ms: line.map_or(self.first_ms, |p| p.at_ms),
            },
            (_, Some(p)) => p,
            (_, None) => Progress {
                reached: 0,
                at_ms: self.first_ms,
            },
        }
    }

    /// The line of slot `slot`'s progress, if there is one.
    #[inline]
    fn line(&self, slot: usize) -> Option<Progress> {
        self.lines.iter().find_map(|l| match *l {
            Line::Journey {
                slot: s,
                reached,
                at_ms,
            } if usize::from(s) == slot => Some(Progress { reached, at_ms }),
            _ => None,
        })
    }

    /// Sets the progress in the journey of slot `slot`; `timed`: keep its step time (an
    /// ordered journey's).
    #[inline]
    pub fn set_progress(&mut self, slot: usize, p: Progress, timed: bool) {
        if slot == 0 {
            self.reached = p.reached;
            if !timed {
                return;
            }
        }
        let line = Line::Journey {
            slot: slot as u8,
            reached: p.reached,
            at_ms: p.at_ms,
        };
        let held = self
            .lines
            .iter_mut()
            .find(|l| matches!(l, Line::Journey { slot: s, .. } if usize::from(*s) == slot));
        match held {
            Some(l) => *l = line,
            None => self.push_line(line),
        }
    }

    /// Whether the session holds a cart that would be abandoned if it closed now: it reached
    /// the cart stage of one of its site's journeys and has no order.
    #[inline]
    pub fn cart_open(&self) -> bool {
        self.flags & (CART | ORDERED) == CART
    }

    /// Whether it has reached a cart stage of one of its site's journeys.
    #[inline]
    pub fn has_cart(&self) -> bool {
        self.flags & CART != 0
    }

    /// Notes that it reached a cart stage (progress never goes back, so neither does this).
    #[inline]
    pub fn set_cart(&mut self) {
        self.flags |= CART;
    }

    /// Notes a cart if its progress (restored) passed the cart stage of one of `slots`, its
    /// site's journeys.
    pub fn note_cart(&mut self, slots: &[Journey]) {
        let passed = |(slot, j): (usize, &Journey)| j.opens_cart(self.reached(slot));
        if slots.iter().enumerate().any(passed) {
            self.set_cart();
        }
    }

    /// Adds `micros` (negative to remove) to the cart's value in `currency`, saturating at the
    /// ends of `i64` rather than wrapping.
    pub fn add_to_cart(&mut self, currency: u16, micros: i64) {
        let held = self.lines.iter_mut().find_map(|l| match l {
            Line::Cart {
                currency: c,
                micros,
            } if *c == currency => Some(micros),
            _ => None,
        });
        match held {
            Some(v) => *v = v.saturating_add(micros),
            None => self.push_line(Line::Cart { currency, micros }),
        }
    }

    /// Adds a line, the allocation grown by exactly one: lines are few and added rarely (a new
    /// currency, a journey's first step), and a session of a site of two journeys then holds
    /// 32 bytes of lines rather than a growth policy's 80.
    fn push_line(&mut self, line: Line) {
        self.lines.reserve_exact(1);
        self.lines.push(line);
    }

    /// The cart's lines: `(currency, net micro-units)`, as held.
    #[inline]
    pub fn cart_lines(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.lines.iter().filter_map(|l| match *l {
            Line::Cart { currency, micros } => Some((currency, micros)),
            Line::Journey { .. } => None,
        })
    }

    /// The cart's value per currency, never below zero.
    pub fn cart_value(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.cart_lines().map(|(c, v)| (usize::from(c), v.max(0)))
    }

    /// The cart's one line, when it is in a single currency (the usual cart).
    #[inline]
    pub fn single_cart(&self) -> Option<(u16, i64)> {
        let mut lines = self.cart_lines();
        let first = lines.next()?;
        lines.next().is_none().then_some(first)
    }

    /// Records an order id's hash; false when it was already counted.
    pub fn insert_order(&mut self, id: u64) -> bool {
        self.ids.insert(id)
    }
}

#[cfg(test)]
mod tests;
