"""Shop traffic minute by minute for the step alerts' tests and benchmark, from a stated model.

Visits per channel and device cell arrive each minute as Poisson counts. Sessions walk the
default journey (visit, product_view, add_to_cart, checkout, purchase) with the load tests'
shopper mix of step conversions; each step takes a delay drawn from the step's distribution, and
a stage is counted at the minute the session reaches it (README: a stage counts when first
reached). The model works on counts (binomial splits of each minute's entrants over the
conversion and the delays), so 30 days of a busy shop take seconds.

With `rhythm`, the visit rate follows the day (a smooth curve from 20 % of the peak at 04:00 to
the peak at 16:00), the week (weekends 1.2 times weekdays) and day-to-day noise (lognormal,
sigma 0.1 on the volume), and each step's conversion wanders from day to day (normal noise of
sigma 0.05 on the logit scale). Without it, traffic is flat at the peak rate.

An incident blocks a step for some cells from its start minute: sessions that would take it then
stop, and may meet friction instead (`payment_failed` at checkout).

Seeded: the same arguments give the same series.
"""

import math
import random

STAGES = ['visit', 'product_view', 'add_to_cart', 'checkout', 'purchase']
# Step conversions of the load tests' shopper mix (loadtests/src/shopper.rs).
CONVERSION = [0.95, 0.05, 0.85, 0.93]
# Checkouts per visit at that mix: visits = checkouts / CHECKOUT_SHARE.
CHECKOUT_SHARE = CONVERSION[0] * CONVERSION[1] * CONVERSION[2]
CHANNELS = {'direct': 0.6, 'paid_search': 0.4}
DEVICES = {'desktop': 0.55, 'mobile': 0.45}
# Purchases that meet a failed payment first, in normal traffic.
PAYMENT_FAILED = 0.02
DAY = 1440
PURCHASE, PRODUCT_VIEW = 4, 1


def delays(step):
    """The delay in minutes from stage `step` to the next, as (minutes, probability): product_view
    at once for half the visits, else after a minute; later steps one minute plus an exponential
    of mean 2 (a median of about 2.4 minutes, near the rules' default step_delay of 2m), cut at
    16 minutes."""
    if step == 0:
        return [(0, 0.5), (1, 0.5)]
    q = math.exp(-0.5)
    out = [(1 + j, (1 - q) * q ** j) for j in range(15)]
    out.append((16, q ** 15))
    return out


DELAYS = [delays(s) for s in range(len(CONVERSION))]


def poisson(rng, mean):
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def binomial(rng, n, p):
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n < 40:
        return sum(rng.random() < p for _ in range(n))
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return min(n, max(0, round(rng.gauss(mean, sd))))


def daily(minute):
    """The visit rate's share of its peak at this minute of the day."""
    hour = (minute % DAY) / 60
    return 0.2 + 0.8 * (1 - math.cos(2 * math.pi * (hour - 4) / 24)) / 2


def weekly(minute):
    """Saturdays and Sundays (days 5 and 6 from the start, a Monday) bring 1.2 times the visits."""
    return 1.2 if (minute // DAY) % 7 in (5, 6) else 1.0


class Incident:
    """From minute `start`, step `step` (index of the stage it leads to) fails for the cells
    `where` accepts, for a `share` of the sessions taking it; `friction`: those failing meet a
    failed payment."""

    def __init__(self, start, step, where=lambda channel, device: True, share=1.0, friction=False):
        self.start, self.step, self.where, self.share, self.friction = start, step, where, share, friction


def traffic(checkouts_per_minute, minutes, seed, incidents=(), start=0, rhythm=False, payment_failed=PAYMENT_FAILED):
    """Per-minute counts from minute `start` of the model's clock (0: a Monday, midnight):
    {(stage, channel, device): [count per minute]} and [payment_failed friction at checkout per
    minute]. `checkouts_per_minute`: at the peak; `payment_failed`: the share of purchases that
    meet a failed payment first in normal traffic."""
    rng = random.Random(seed)
    visits = checkouts_per_minute / CHECKOUT_SHARE
    days = (start + minutes) // DAY + 1
    volume = [math.exp(rng.gauss(0, 0.1)) if rhythm else 1.0 for _ in range(days)]

    def logit(p):
        return math.log(p / (1 - p))
    conversion = [[1 / (1 + math.exp(-(logit(p) + (rng.gauss(0, 0.05) if rhythm else 0)))) for p in CONVERSION]
                  for _ in range(days)]
    horizon = minutes + 20
    reached = {(s, c, d): [0] * horizon for s in STAGES for c in CHANNELS for d in DEVICES}
    friction = [0] * horizon
    for t in range(minutes):
        clock = start + t
        rate = visits * (daily(clock) * weekly(clock) * volume[clock // DAY] if rhythm else 1.0)
        for channel, cs in CHANNELS.items():
            for device, ds in DEVICES.items():
                reached[('visit', channel, device)][t] += poisson(rng, rate * cs * ds)
        for step in range(len(CONVERSION)):
            for channel in CHANNELS:
                for device in DEVICES:
                    here = reached[(STAGES[step], channel, device)]
                    going = binomial(rng, here[t], conversion[clock // DAY][step])
                    mass = 1.0
                    for delay, p in DELAYS[step]:
                        n = binomial(rng, going, p / mass) if mass > p else going
                        going -= n
                        mass -= p
                        at = t + delay
                        for i in incidents:
                            if i.step == step + 1 and start + at >= i.start and i.where(channel, device):
                                failed = binomial(rng, n, i.share)
                                n -= failed
                                if i.friction:
                                    friction[at] += failed
                        if step + 1 == PURCHASE:
                            friction[at] += binomial(rng, n, payment_failed)
                        reached[(STAGES[step + 1], channel, device)][at] += n
                        if going == 0:
                            break
    return ({k: v[:minutes] for k, v in reached.items()}, friction[:minutes])
