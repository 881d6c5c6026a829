#!/usr/bin/env python3
"""The step alerts' detection benchmark: traffic from scenarios.py's model, run through the
production rules by promtool (Debian's prometheus package), the real rule engine.

    python3 loadtests/alerts/benchmark.py incidents [--seeds 5] [--volumes low,medium,high]
    python3 loadtests/alerts/benchmark.py normal [--days 30] [--volumes low,medium,high]

`incidents`: for each volume and incident, `--seeds` shops with a day and two hours of history
(the baseline is then the same hour of the day before) meet the incident at 14:00; prints the
minutes from its start to the first page and to the page of the right scope, median and 90th
percentile over the shops. `normal`: one shop per volume, a week of warm-up (so the baseline is
the same hour of the week) and `--days` measured; prints the false pages, counted as
Alertmanager would notify them (grouped per site, a new notification when none fired in the 5
minutes before). `--rules FILE` tests another rules file (default: deploy/prometheus/rules.yml).
Figures go to loadtests/RESULTS.md, "Step alerts". Not run in CI (the 30-day runs take about a
quarter of an hour of CPU per volume); CI runs deploy/prometheus/tests, made from the same model.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenarios  # noqa: E402
from scenarios import DAY, PRODUCT_VIEW, PURCHASE, Incident  # noqa: E402
from series import shop  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
# Checkouts a minute at the daily peak.
VOLUMES = {'low': 2, 'medium': 10, 'high': 50}
PAGES = 'max by (site, alertname, scope, channel, device, kind) (ALERTS{alertstate="firing",severity="page"})'
# The incidents of issue 15, item 5: (name, incident at `start`, labels of the page that names it).
KINDS = [
    ('a: checkout broken for everyone', lambda s: Incident(s, PURCHASE), {'scope': 'site'}),
    ('b: checkout broken on mobile', lambda s: Incident(s, PURCHASE, where=lambda c, d: d == 'mobile'),
     {'device': 'mobile'}),
    ('c: half the payments fail, payment_failed tracked', lambda s: Incident(s, PURCHASE, share=0.5, friction=True),
     {}),
    ('c: half the payments fail, silently', lambda s: Incident(s, PURCHASE, share=0.5), {'scope': 'site'}),
    ('d: paid_search lands on a broken page',
     lambda s: Incident(s, PRODUCT_VIEW, where=lambda c, d: c == 'paid_search'), {'channel': 'paid_search'}),
]


def minutes(text):
    m = re.fullmatch(r'(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:0s)?', text)
    d, h, mi = (int(x) if x else 0 for x in m.groups())
    return d * DAY + h * 60 + mi


def pages(rules, groups, times):
    """Runs promtool over each group of input series, asking for no page at each of `times`
    (minutes); returns {minute: [labels of each firing page]}. (promtool refuses a query over
    10,000 samples, and the score reads some 40 series per step, level and window of each shop:
    a group holds at most 6 shops.)"""
    with tempfile.TemporaryDirectory() as tmp:
        test = os.path.join(tmp, 'benchmark.test.yml')
        with open(test, 'w') as f:
            json.dump({'rule_files': [os.path.abspath(rules)], 'evaluation_interval': '1m', 'tests': [{
                'interval': '1m', 'input_series': inputs,
                'promql_expr_test': [{'expr': PAGES, 'eval_time': f'{t}m', 'exp_samples': []} for t in times],
            } for inputs in groups]}, f)
        run = subprocess.run(['promtool', 'test', 'rules', test], capture_output=True, text=True)
    out = run.stdout + run.stderr
    if run.returncode != 0 and 'got:' not in out or 'err:' in out:
        sys.exit(f'promtool failed:\n{out[-3000:]}')
    found = {}
    for block in out.split('    expr: ')[1:]:
        at = re.search(r'time: (\w+),', block)
        got = block.split('got:', 1)[1]
        found.setdefault(minutes(at.group(1)), []).extend(
            dict(re.findall(r'(\w+)="([^"]*)"', s)) for s in re.findall(r'\{[^}]*\}', got))
    return found


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(values):
    done = [v for v in values if v is not None]
    if not done:
        return 'none in 45'
    text = f'{statistics.median(done):g} / {percentile(done, 0.9):g}'
    missed = len(values) - len(done)
    return text + (f' ({missed} of {len(values)} not in 45)' if missed else '')


def incidents(args):
    start = 12 * 60  # Monday 12:00; the incidents start on Tuesday at 14:00
    onset = DAY + 14 * 60
    span = onset - start + 46
    print(f'minutes from the start to the first page / to the page naming the incident: median / p90 over {args.seeds} shops')
    print('| incident | ' + ' | '.join(f'{v} ({VOLUMES[v]}/min)' for v in args.volumes) + ' |')
    print('|---|' + '---|' * len(args.volumes))
    rows = {name: [] for name, _, _ in KINDS}
    early = 0
    for volume in args.volumes:
        groups, sites = [], []
        for k, (name, incident, _) in enumerate(KINDS):
            for seed in range(args.seeds):
                site = f'k{k}s{seed}'
                sites.append((site, k))
                if len(sites) % 6 == 1:
                    groups.append([])
                groups[-1] += shop(site, *scenarios.traffic(VOLUMES[volume], span, 1000 * k + seed,
                                                            [incident(onset)], start=start, rhythm=True))
        times = list(range(120, onset - start)) + list(range(onset - start, span))
        found = pages(args.rules, groups, times)
        for k, (name, _, labels) in enumerate(KINDS):
            first, right = [], []
            for site, kk in sites:
                if kk != k:
                    continue
                before = [t for t, ps in found.items() if t < onset - start and any(p['site'] == site for p in ps)]
                early += bool(before)
                after = sorted(t for t, ps in found.items() if t >= onset - start and any(p['site'] == site for p in ps))
                named = sorted(t for t, ps in found.items() if t >= onset - start and any(
                    p['site'] == site and all(p.get(a) == b for a, b in labels.items())
                    and (labels or p['alertname'] == 'FrictionRateUp') for p in ps))
                first.append(after[0] - (onset - start) if after else None)
                right.append(named[0] - (onset - start) if named else None)
            rows[name].append(f'{summary(first)}; {summary(right)}')
    for name, cells in rows.items():
        print(f'| {name} | ' + ' | '.join(cells) + ' |')
    print(f'shops paged before their incident: {early}')


def normal(args):
    warm = 7 * DAY
    span = warm + args.days * DAY
    print(f'false pages in {args.days} days of normal traffic after a week of warm-up (notifications: a page after 5 minutes without one)')
    for volume in args.volumes:
        inputs = shop('shop', *scenarios.traffic(VOLUMES[volume], span + 1, args.seed, rhythm=True))
        found = pages(args.rules, [inputs], list(range(warm, span + 1)))
        episodes, last = [], None
        for t in sorted(found):
            if last is None or t - last > 5:
                episodes.append((t, sorted({p['alertname'] + (f" {p.get('scope', '')}{p.get('channel', '')}{p.get('device', '')}") for p in found[t]})))
            last = t
        print(f'{volume} ({VOLUMES[volume]} checkouts a minute at the peak): {len(episodes)} false pages, '
              f'{len(found)} minutes paging')
        for t, names in episodes:
            print(f'    day {(t - warm) // DAY + 1} {(t % DAY) // 60:02}:{t % 60:02}: {", ".join(names)}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('mode', choices=['incidents', 'normal'])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--days', type=int, default=30)
    parser.add_argument('--volumes', default='low,medium,high')
    parser.add_argument('--rules', default=os.path.join(ROOT, 'deploy', 'prometheus', 'rules.yml'))
    args = parser.parse_args()
    args.volumes = args.volumes.split(',')
    for v in args.volumes:
        if v not in VOLUMES:
            sys.exit(f'unknown volume {v!r}: give low, medium or high')
    incidents(args) if args.mode == 'incidents' else normal(args)


if __name__ == '__main__':
    main()
