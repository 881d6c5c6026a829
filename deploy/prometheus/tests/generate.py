#!/usr/bin/env python3
"""Writes touchstream.test.yml, the promtool unit tests of ../rules.yml.

Run it after changing a scenario: `python3 generate.py && promtool test rules touchstream.test.yml`.
Series are built minute by minute from per-minute rates and written in promtool's `a+bxn`
notation. Times: minute 1500 (1d1h) is the breakage in the one-day scenarios.
"""

import json
import os
import sys
import zlib

# The traffic model is the step alerts' benchmark's (loadtests/alerts).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'loadtests', 'alerts'))
import scenarios  # noqa: E402
from series import FUNNEL, notation, shop  # noqa: E402

DAY = 1440
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


tests = []

# 1. The step alerts against incidents (RUNBOOK.md, "How the step alerts decide"). Shops with
#    6 hours of history (the baseline's fallback tier) meet an incident at minute 420; each is a
#    site of its own so one evaluation covers them all. Goals (issue 15): a checkout broken for
#    everyone pages within 5 minutes at 10 checkouts a minute and within 10 at 2; broken on
#    mobile only, or half the payments failing, within 15 at 10 a minute. (At 2 a minute no test
#    within the false-page budget can promise 10 every time: RUNBOOK.md puts the information
#    bound near 8.4 minutes, and loadtests/RESULTS.md gives the times over many shops.) Pages
#    name the right segment and spare the others; shops without an incident never page, through
#    scrape gaps and a stage added to the journey.
ONSET, END = 420, 460
PURCHASE, PRODUCT_VIEW = 4, 1
# site: (checkouts a minute, incident, pages that must fire, pages that must not, minutes allowed)
incidents = {
    'full_medium': (10, scenarios.Incident(ONSET, PURCHASE), 'scope="site",to="purchase"', None, 5),
    'full_low': (2, scenarios.Incident(ONSET, PURCHASE), 'scope="site",to="purchase"', None, 10),
    'mobile_medium': (10, scenarios.Incident(ONSET, PURCHASE, where=lambda c, d: d == 'mobile'),
                      'scope="device",device="mobile",to="purchase"', 'device="desktop"', 15),
    'half_payments_medium': (10, scenarios.Incident(ONSET, PURCHASE, share=0.5, friction=True),
                             'alertname="FrictionRateUp",kind="payment_failed"', None, 15),
    'half_payments_silent_medium': (10, scenarios.Incident(ONSET, PURCHASE, share=0.5),
                                    'scope="site",to="purchase"', None, 15),
    'paid_search_landing_medium': (10, scenarios.Incident(ONSET, PRODUCT_VIEW, where=lambda c, d: c == 'paid_search'),
                                   'scope="channel",channel="paid_search",to="product_view"', 'channel="direct"', 10),
}
# site: (checkouts a minute, scrape gap (start, minutes), stage added late (stage, minute),
# background payment_failed share, incident)
normal = {
    'normal_medium': (10, None, None, scenarios.PAYMENT_FAILED),
    'normal_low': (2, None, None, scenarios.PAYMENT_FAILED),
    # Prometheus cannot scrape for 2, 3 or 5 minutes (the counters go on), then catches up.
    'normal_gap2_low': (2, (ONSET + 5, 2), None, scenarios.PAYMENT_FAILED),
    'normal_gap3_medium': (10, (ONSET + 5, 3), None, scenarios.PAYMENT_FAILED),
    'normal_gap5_medium': (10, (ONSET + 5, 5), None, scenarios.PAYMENT_FAILED),
    # add_to_cart joined the journey 3 hours in: its history is shorter than its neighbours'.
    'normal_new_stage_medium': (10, None, ('add_to_cart', 180), scenarios.PAYMENT_FAILED),
}


def seed(site):
    """A seed of the site's own: adding a scenario changes no other's traffic."""
    return zlib.crc32(site.encode())


# payment_failed never happened on this shop before half the payments start failing: its
# friction series is at zero from start-up (the engine creates them), and the alert fires.
FIRST_FRICTION = 'first_payment_failure_medium'
incidents[FIRST_FRICTION] = (10, scenarios.Incident(ONSET, PURCHASE, share=0.5, friction=True),
                             'alertname="FrictionRateUp",kind="payment_failed"', None, 15)
# The dashboard's step-alert panels, which need hours of history, have data here.
with open('../../grafana/dashboards/touchstream.json') as f:
    board = json.load(f)
step_panels = [(p['title'], t['expr']) for p in board['panels'] for t in p.get('targets', [])
               if 'touchstream_step_' in t['expr']]
assert step_panels, 'the dashboard has step-alert panels'
PAGES = 'ALERTS{alertstate="firing",severity="page"}'
# Two groups: promtool refuses a query over 10,000 samples, and the score reads some 40 series
# per step, level and window of every shop.
incident_inputs = []
for site, (volume, incident, _, _, _) in incidents.items():
    background = 0 if site == FIRST_FRICTION else scenarios.PAYMENT_FAILED
    incident_inputs += shop(site, *scenarios.traffic(volume, END + 1, seed(site), [incident], payment_failed=background))
tests.append({
    'name': 'step alerts: every incident pages within its goal and spares the other segments',
    'interval': '1m',
    'input_series': incident_inputs,
    'promql_expr_test': [
        {'expr': PAGES, 'eval_time': f'{t}m', 'exp_samples': []} for t in range(60, ONSET)
    ] + [
        {'expr': f'max by (site) ({PAGES[:-1]},site="{site}",{selector}}})', 'eval_time': f'{ONSET + goal}m',
         'exp_samples': [{'labels': f'{{site="{site}"}}', 'value': 1}]}
        for site, (_, _, selector, _, goal) in incidents.items()
    ] + [
        {'expr': f'{PAGES[:-1]},site="{site}",{spared}}}', 'eval_time': f'{t}m', 'exp_samples': []}
        for site, (_, _, _, spared, _) in incidents.items() if spared for t in range(ONSET, END + 1)
    ] + [
        {'expr': 'count(({0}) == ({0})) > bool 0'.format(expr.replace('$site', 'full_medium')), 'eval_time': f'{END}m',
         'exp_samples': [{'labels': '{}', 'value': 1}]}
        for _, expr in step_panels
    ],
})
normal_inputs = []
for site, (volume, gap, late, failed) in normal.items():
    normal_inputs += shop(site, *scenarios.traffic(volume, END + 1, seed(site), payment_failed=failed), gap=gap, late=late)
tests.append({
    'name': 'step alerts: normal traffic never pages, through scrape gaps and a stage added late',
    'interval': '1m',
    'input_series': normal_inputs,
    'promql_expr_test': [{'expr': PAGES, 'eval_time': f'{t}m', 'exp_samples': []} for t in range(60, END + 1)],
})

# 2. The baseline tiers, at 10-minute resolution over 8 days (baseline.test.yml): 10 checkouts a
#    minute, 93 % buying, but 60 % on Mondays from 12:00 to 14:00 (the shop's weekly batch job).
#    On the second Monday at 13:00 the baseline is last Monday's hour (the same hour of the
#    week), not the other days'; on Wednesday (no week of history yet) the same hour of the days
#    before, Monday's included; two hours after start, the hour before the last.
def conversion(minute):
    return 0.6 if minute % (7 * DAY) in range(720, 840) else 0.93


week_minutes = range(0, 8 * DAY + 1, 10)
baseline_tests = [{
    'name': 'the baseline is the same hour of the week, else of the day, else the hour before the last',
    'interval': '10m',
    'input_series': [
        {'series': FUNNEL.format(site='demo', stage='checkout', channel='direct', device='desktop'), 'values': notation([10 * m for m in week_minutes])},
        {'series': FUNNEL.format(site='demo', stage='purchase', channel='direct', device='desktop'),
         'values': notation([round(sum(10 * conversion(x) for x in range(m)), 3) for m in week_minutes])},
    ],
    'promql_expr_test': [
        {'expr': 'round(site_journey_step_segment:touchstream_step_conversion:baseline{scope="site"}, 0.001)',
         'eval_time': f'{t}m',
         'exp_samples': [{'labels': '{site="demo",journey="default",step="checkout_to_purchase",from="checkout",to="purchase",scope="site"}', 'value': v}]}
        for t, v in [(7 * DAY + 780, 0.6), (7 * DAY + 600, 0.93), (2 * DAY + 780, 0.765), (130, 0.93)]
    ],
}, {
    # The purchase stage joined the journey on day 5: only the days both stages have count, on
    # Monday at 13:00 Saturday's and Sunday's same hour (the week has no purchase yet).
    'name': 'a stage added later: the baseline counts only the periods both stages have',
    'interval': '10m',
    'input_series': [
        {'series': FUNNEL.format(site='late', stage='checkout', channel='direct', device='desktop'),
         'values': notation([10 * m for m in week_minutes])},
        {'series': FUNNEL.format(site='late', stage='purchase', channel='direct', device='desktop'),
         'values': ' '.join(['_'] * (5 * DAY // 10)) + ' ' + notation(
             [round(sum(10 * conversion(x) for x in range(5 * DAY, m)), 3) for m in week_minutes if m >= 5 * DAY])},
    ],
    'promql_expr_test': [
        {'expr': f'round({metric}{{scope="site"}}, 0.001)', 'eval_time': f'{7 * DAY + 780}m',
         'exp_samples': [{'labels': '{site="late",journey="default",step="checkout_to_purchase",from="checkout",to="purchase",scope="site"}', 'value': v}]}
        for metric, v in [('site_journey_step_segment:touchstream_step_conversion:baseline', 0.93),
                          ('site_journey_step_segment:touchstream_step_entrants:baseline', 1200)]
    ],
}]

# 2. The session store fills at minute 60 and evicts a session a minute from then on: the
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

# 3. The state directory's disk fills at minute 30: every batch after gets 503 (the log cannot
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

# 4. The effective dedup horizon: stuck at 1 hour (the remembered ids are spent) warns after 7
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

# 5. Events flow at 10 a minute for a day, then stop at minute 1500.
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

# 6. Exact totals over Kafka engines: partition 0 moves from engine a to engine b (restored
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

NO_TRAFFIC_FIRES = int(sys.argv[1]) if len(sys.argv) > 1 else 1520
no_traffic = next(t for t in tests if t['name'] == 'no touchpoints fires after its window')
no_traffic['alert_rule_test'][0]['eval_time'] = f'{NO_TRAFFIC_FIRES - 1}m'
no_traffic['alert_rule_test'][1]['eval_time'] = f'{NO_TRAFFIC_FIRES}m'

for name, interval, group in [('touchstream.test.yml', '1m', tests), ('baseline.test.yml', '10m', baseline_tests)]:
    with open(name, 'w') as f:
        f.write('# Generated by generate.py: edit that, then run it.\n')
        f.write(json.dumps({'rule_files': ['../rules.yml'], 'evaluation_interval': interval, 'tests': group}, indent=1))
        f.write('\n')
