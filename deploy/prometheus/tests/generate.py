#!/usr/bin/env python3
"""Writes touchstream.test.yml, the promtool unit tests of ../rules.yml.

Run it after changing a scenario: `python3 generate.py && promtool test rules touchstream.test.yml`.
Series are built minute by minute from per-minute rates and written in promtool's `a+bxn`
notation. Times: minute 1500 (1d1h) is the breakage in the one-day scenarios.
"""

DAY = 1440
SERIES = 'touchstream_funnel_sessions_total{{site="demo",journey="default",stage="{stage}",channel="direct",device="desktop"}}'
RECEIVED = 'touchstream_events_received_total{site="demo"}'


def counter(rates, resets=()):
    """Cumulative values of a counter growing by rates[m] in minute m, reset to 0 at `resets`."""
    values, v = [], 0.0
    for m, r in enumerate(rates):
        if m in resets:
            v = 0.0
        values.append(round(v, 3))
        v += r
    return values


def notation(values):
    """promtool's compact notation: runs of equal steps as `start+stepxcount`."""
    parts, i = [], 0
    while i < len(values):
        j = i + 1
        step = round(values[j] - values[i], 3) if j < len(values) else 0
        while j + 1 < len(values) and round(values[j + 1] - values[j], 3) == step:
            j += 1
        if j >= len(values):
            parts.append(f"{values[i]:g}")
            break
        sign = '+' if step >= 0 else '-'
        parts.append(f"{values[i]:g}{sign}{abs(step):g}x{j - i}")
        i = j + 1
    return ' '.join(parts)


def funnel(checkout_rates, purchase_rates, resets=()):
    return [
        {'series': SERIES.format(stage='checkout'), 'values': notation(counter(checkout_rates, resets))},
        {'series': SERIES.format(stage='purchase'), 'values': notation(counter(purchase_rates, resets))},
    ]


def seasonal(days):
    """Checkouts per minute through a day: 1 at night, 6 by day, 2 in the evening."""
    return [1 if (m % DAY) < 360 else 6 if (m % DAY) < 1080 else 2 for m in range(days * DAY)]


def silent(times):
    return [{'eval_time': f'{t}m', 'alertname': name, 'exp_alerts': []} for t in times for name in ('CheckoutDropoffSpike',)]


SPIKE_LABELS = {'severity': 'page', 'site': 'demo', 'journey': 'default', 'team': 'ecommerce'}


def spike(value_text):
    return {
        'exp_labels': SPIKE_LABELS,
        'exp_annotations': {
            'summary': 'Checkout conversion collapsed on demo (default)',
            'description': f"Only {value_text} of the sessions that reached the step before purchase in journey default on demo in the last 15 minutes bought, under half of the day's usual rate.",
            'runbook_url': 'deploy/prometheus/RUNBOOK.md#checkoutdropoffspike',
        },
    }


tests = []

# 1. Purchases stop at minute 1500 with 4 checkouts a minute: the condition first holds at 1508
#    (pending), the alert fires at 1518 (for: 10m) and not one evaluation earlier.
checkout = [4] * 1621
purchase = [2] * 1500 + [0] * 121
# (promtool 2.42 evaluates alerts differently when one test group mixes ALERTS queries with
# alert_rule_test, so the pending onset has a group of its own over the same input.)
tests.append({
    'name': 'checkout breakage: the condition first holds 8 minutes after it',
    'interval': '1m',
    'input_series': funnel(checkout, purchase),
    'promql_expr_test': [
        {'expr': 'ALERTS{alertname="CheckoutDropoffSpike"}', 'eval_time': '1507m', 'exp_samples': []},
        {'expr': 'ALERTS{alertname="CheckoutDropoffSpike"}', 'eval_time': '1508m',
         'exp_samples': [{'labels': 'ALERTS{alertname="CheckoutDropoffSpike",alertstate="pending",journey="default",severity="page",site="demo",team="ecommerce"}', 'value': 1}]},
    ],
})
tests.append({
    'name': 'checkout breakage fires at onset plus for, not earlier',
    'interval': '1m',
    'input_series': funnel(checkout, purchase),
    'alert_rule_test': [
        {'eval_time': '1517m', 'alertname': 'CheckoutDropoffSpike', 'exp_alerts': []},
        {'eval_time': '1518m', 'alertname': 'CheckoutDropoffSpike', 'exp_alerts': [spike('0%')]},
    ],
})

# 2. The same breakage at one checkout a minute (15 in the window, under the guard of 20).
tests.append({
    'name': 'low volume stays silent',
    'interval': '1m',
    'input_series': funnel([1] * 1621, [0.5] * 1500 + [0] * 121),
    'alert_rule_test': silent([1510, 1518, 1530, 1560, 1620]),
})

# 3. A restart resets both counters at minute 1500; conversion is unchanged.
tests.append({
    'name': 'a counter reset (restart) stays silent',
    'interval': '1m',
    'input_series': funnel([4] * 1621, [2] * 1621, resets={1500}),
    'alert_rule_test': silent([1501, 1505, 1510, 1515, 1520, 1530, 1560, 1620]),
})

# 4. Eight days of normal traffic with a daily rhythm, conversion steady at one half.
week = seasonal(8)
tests.append({
    'name': 'a week of normal traffic with daily seasonality stays silent',
    'interval': '1m',
    'input_series': funnel(week, [r / 2 for r in week]),
    'alert_rule_test': silent(range(DAY + 30, 8 * DAY, 90)),
})

# 5. The same week, then checkout breaks at noon on day 8: with a week-ago baseline present,
#    the alert still fires, 18 minutes after the breakage as in scenario 1.
noon = 7 * DAY + 720
rates = seasonal(8)
tests.append({
    'name': 'with a week of history, a breakage still fires',
    'interval': '1m',
    'input_series': funnel(rates, [r / 2 if m < noon else 0 for m, r in enumerate(rates)]),
    'alert_rule_test': [
        {'eval_time': f'{noon + 17}m', 'alertname': 'CheckoutDropoffSpike', 'exp_alerts': []},
        {'eval_time': f'{noon + 18}m', 'alertname': 'CheckoutDropoffSpike', 'exp_alerts': [spike('0%')]},
    ],
})

# 6. The session store fills at minute 60 and evicts a session a minute from then on: the
#    warning fires once that has lasted the rate window and 10 minutes. The same for refused
#    new sessions, per site.
EVICTED = 'touchstream_engine_sessions_evicted_total'
REFUSED = 'touchstream_events_filtered_total{site="demo",reason="session_rate"}'
DESCRIPTION = 'For 10 minutes the engine has been forgetting sessions because its store is full, refusing new sessions from clients that open them too fast while it is over half full, or refusing events of long sessions because the stored ids are spent: a flood, or engine.max_open_sessions or engine.max_stored_ids too small for the traffic.'
PRESSURE = {
    'summary': "touchstream's session store is under pressure",
    'description': DESCRIPTION,
    'runbook_url': 'deploy/prometheus/RUNBOOK.md#sessionstoreunderpressure',
}
tests.append({
    'name': 'new sessions refused for 10 minutes warn, per site',
    'interval': '1m',
    'input_series': [{'series': REFUSED, 'values': notation(counter([0] * 60 + [5] * 40))}],
    'alert_rule_test': [
        {'eval_time': '60m', 'alertname': 'SessionStoreUnderPressure', 'exp_alerts': []},
        {'eval_time': '72m', 'alertname': 'SessionStoreUnderPressure', 'exp_alerts': [
            {'exp_labels': {'severity': 'warning', 'team': 'platform', 'site': 'demo'}, 'exp_annotations': PRESSURE}]},
    ],
})
tests.append({
    'name': 'a full session store warns after 10 minutes',
    'interval': '1m',
    'input_series': [{'series': EVICTED, 'values': notation(counter([0] * 60 + [1] * 40))}],
    'alert_rule_test': [
        {'eval_time': '60m', 'alertname': 'SessionStoreUnderPressure', 'exp_alerts': []},
        {'eval_time': '72m', 'alertname': 'SessionStoreUnderPressure', 'exp_alerts': [
            {'exp_labels': {'severity': 'warning', 'team': 'platform'}, 'exp_annotations': PRESSURE}]},
    ],
})

# 7. The state directory's disk fills at minute 30: every batch after gets 503 (the log cannot
#    take it). The page fires once that has lasted the rate window and 5 minutes; the same for
#    checkpoints that fail.
NOT_DURABLE = {
    'summary': 'touchstream cannot write its state',
    'description': 'For 5 minutes batches could not be written to the log (clients get 503 and retry, nothing is counted), engine checkpoints failed, or none was written for 10 minutes (a restart would replay all since): the state directory\'s disk is full or failing, or over Kafka the state topic cannot be written.',
    'runbook_url': 'deploy/prometheus/RUNBOOK.md#statenotdurable',
}
for series in ['touchstream_transport_send_failures_total{reason="disk_full"}',
               'touchstream_state_checkpoint_failures_total']:
    tests.append({
        'name': f'{series} for 5 minutes pages',
        'interval': '1m',
        'input_series': [{'series': series, 'values': notation(counter([0] * 30 + [3] * 30))}],
        'alert_rule_test': [
            {'eval_time': '30m', 'alertname': 'StateNotDurable', 'exp_alerts': []},
            {'eval_time': '36m', 'alertname': 'StateNotDurable', 'exp_alerts': [
                {'exp_labels': {'severity': 'page', 'team': 'platform'}, 'exp_annotations': NOT_DURABLE}]},
        ],
    })

# A checkpoint each minute until minute 20 (taken at 21 minutes on the test's clock), then
# none: the age passes 10 minutes at minute 32 and the page fires 5 minutes later. A process that never checkpoints (over Kafka: 0) never fires it.
stale = [str(60 + (m if m <= 20 else 20) * 60) for m in range(60)]
tests.append({
    'name': 'no checkpoint for 10 minutes pages; a process without checkpoints does not',
    'interval': '1m',
    'input_series': [
        {'series': 'touchstream_state_checkpoint_timestamp_seconds{instance="serve"}', 'values': ' '.join(stale)},
        {'series': 'touchstream_state_checkpoint_timestamp_seconds{instance="engine"}', 'values': '0x59'},
    ],
    'alert_rule_test': [
        {'eval_time': '36m', 'alertname': 'StateNotDurable', 'exp_alerts': []},
        {'eval_time': '38m', 'alertname': 'StateNotDurable', 'exp_alerts': [
            {'exp_labels': {'severity': 'page', 'team': 'platform'}, 'exp_annotations': NOT_DURABLE}]},
    ],
})

# 8. The effective dedup horizon: stuck at 1 hour (the remembered ids are spent) warns after 7
#    hours; growing from 0 after an upgrade from a state that kept none (it reaches 6 hours
#    after 6) never does.
HORIZON = 'touchstream_engine_dedup_horizon_seconds{instance="engine"}'
tests.append({
    'name': 'a short dedup horizon warns after 7 hours; one growing after an upgrade does not',
    'interval': '1m',
    'input_series': [
        {'series': HORIZON, 'values': '3600+0x600'},
        {'series': 'touchstream_engine_dedup_horizon_seconds{instance="upgraded"}', 'values': '0+60x600'},
    ],
    'alert_rule_test': [
        {'eval_time': '6h50m', 'alertname': 'DedupHorizonShort', 'exp_alerts': []},
        {'eval_time': '7h10m', 'alertname': 'DedupHorizonShort', 'exp_alerts': [
            {'exp_labels': {'severity': 'warning', 'team': 'platform'}, 'exp_annotations': {
                'summary': "touchstream remembers closed sessions' ids for less than 6 hours",
                'description': 'For 7 hours the effective dedup horizon has been under 6 hours: engine.max_remembered_ids is too small for the traffic, so a retry or an offline queue flushed later than that after its session closed counts twice (a second visit, a second order).',
                'runbook_url': 'deploy/prometheus/RUNBOOK.md#deduphorizonshort',
            }}]},
    ],
})
tests.append({
    'name': 'a dedup horizon growing after an upgrade never warns',
    'interval': '1m',
    'input_series': [{'series': HORIZON, 'values': '0+60x600'}],
    'alert_rule_test': [
        {'eval_time': '7h10m', 'alertname': 'DedupHorizonShort', 'exp_alerts': []},
        {'eval_time': '9h', 'alertname': 'DedupHorizonShort', 'exp_alerts': []},
    ],
})

# 9. Events flow at 10 a minute for a day, then stop at minute 1500.
tests.append({
    'name': 'no touchpoints fires after its window',
    'interval': '1m',
    'input_series': [{'series': RECEIVED, 'values': notation(counter([10] * 1500 + [0] * 61))}],
    'alert_rule_test': [
        {'eval_time': 'NOT_BEFORE', 'alertname': 'NoTouchpointsReceived', 'exp_alerts': []},
        {'eval_time': 'FIRES', 'alertname': 'NoTouchpointsReceived', 'exp_alerts': [{
            'exp_labels': {'severity': 'page', 'site': 'demo', 'team': 'platform'},
            'exp_annotations': {
                'summary': 'No touchpoints from demo for 15 minutes',
                'description': 'touchstream received no events for demo in the last 15 minutes; yesterday at this time it did.',
                'runbook_url': 'deploy/prometheus/RUNBOOK.md#notouchpointsreceived',
            },
        }]},
    ],
})

# 10. Exact totals over Kafka engines: partition 0 moves from engine a to engine b (restored
#     from its checkpoint, it goes on from a's figure after a minute unowned), partition 1 stays
#     on b. The total counts every order once and never goes down; a plain sum over the
#     engines would count partition 0 twice while a's last sample is fresh.
ORDERS = 'touchstream_orders_total{{site="demo",channel="direct",device="desktop",partition="{p}",instance="{i}"}}'
tests.append({
    'name': 'exact totals take each partition once across engines',
    'interval': '1m',
    'input_series': [
        {'series': ORDERS.format(p=0, i='a'), 'values': '0+1x10'},
        {'series': ORDERS.format(p=0, i='b'), 'values': '_x12 12+1x17'},
        {'series': ORDERS.format(p=1, i='b'), 'values': '0+2x30'},
    ],
    'promql_expr_test': [
        {'expr': 'site:touchstream_orders:total', 'eval_time': f'{t}m',
         'exp_samples': [{'labels': 'site:touchstream_orders:total{site="demo"}', 'value': v}]}
        for t, v in [(5, 15), (10, 30), (11, 32), (12, 36), (20, 60), (29, 87)]
    ],
})

import json, sys
NO_TRAFFIC_FIRES = int(sys.argv[1]) if len(sys.argv) > 1 else 1520
no_traffic = next(t for t in tests if t['name'] == 'no touchpoints fires after its window')
no_traffic['alert_rule_test'][0]['eval_time'] = f'{NO_TRAFFIC_FIRES - 1}m'
no_traffic['alert_rule_test'][1]['eval_time'] = f'{NO_TRAFFIC_FIRES}m'

with open('touchstream.test.yml', 'w') as f:
    f.write('# Generated by generate.py: edit that, then run it.\n')
    f.write(json.dumps({'rule_files': ['../rules.yml'], 'evaluation_interval': '1m', 'tests': tests}, indent=1))
    f.write('\n')
