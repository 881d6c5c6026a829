"""Shop traffic minute by minute for the step alerts' tests, from a stated model.

Each minute, visits per channel and device cell arrive as Poisson counts. Every session walks the
default journey (visit, product_view, add_to_cart, checkout, purchase) with the load tests'
shopper mix of step conversions, and each step takes a delay drawn from the step's
distribution; a stage is counted at the minute the session reaches it (README: reaching a stage
counts when first reached). An incident blocks a step for some cells from its start minute:
sessions that would take it then stop, and may meet friction instead (`payment_failed`).

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
# Checkouts that meet a failed payment before paying, in normal traffic.
PAYMENT_FAILED = 0.02


def delay(rng, step):
    """Minutes from stage `step` to the next: product_view at once for half the visits, else
    after a minute; later steps one minute plus an exponential of mean 2 (a median of about
    2.4 minutes, so the rules' step_delay of 2m is close)."""
    if step == 0:
        return 0 if rng.random() < 0.5 else 1
    return 1 + int(rng.expovariate(0.5))


def poisson(rng, mean):
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Incident:
    """From minute `start`, step `step` (index of the stage it leads to) fails for the cells
    `where` accepts, with probability `share`; `friction`: the kind a failed session meets at the
    stage before."""

    def __init__(self, start, step, where=lambda channel, device: True, share=1.0, friction=None):
        self.start, self.step, self.where, self.share, self.friction = start, step, where, share, friction

    def fails(self, rng, minute, step, channel, device):
        return (minute >= self.start and step == self.step and self.where(channel, device)
                and rng.random() < self.share)


def traffic(checkouts_per_minute, minutes, seed, incidents=()):
    """Per-minute counts: {(stage, channel, device): [count per minute]} and
    {'payment_failed': [count per minute]} of friction at checkout."""
    rng = random.Random(seed)
    visits = checkouts_per_minute / CHECKOUT_SHARE
    reached = {(s, c, d): [0] * minutes for s in STAGES for c in CHANNELS for d in DEVICES}
    friction = [0] * minutes
    for minute in range(minutes):
        for channel, cs in CHANNELS.items():
            for device, ds in DEVICES.items():
                for _ in range(poisson(rng, visits * cs * ds)):
                    at = minute
                    reached[('visit', channel, device)][at] += 1
                    for step in range(1, len(STAGES)):
                        if rng.random() >= CONVERSION[step - 1]:
                            break
                        at += delay(rng, step - 1)
                        if at >= minutes:
                            break
                        failed = next((i for i in incidents if i.fails(rng, at, step, channel, device)), None)
                        if step == 4 and (failed and failed.friction or rng.random() < PAYMENT_FAILED):
                            friction[at] += 1
                        if failed:
                            break
                        reached[(STAGES[step], channel, device)][at] += 1
    return reached, friction
