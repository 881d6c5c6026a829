#!/usr/bin/env python3
"""Writes dashboards/touchstream.json, the provisioned touchstream dashboard.

Edit the panels here, then run `python3 generate.py`; `python3 generate.py --check` exits 1 when
the JSON is not what this script writes (the test suite runs it). tests/dashboard.rs runs every
query below against a real Prometheus scraping touchstream under traffic.

Panels name the default journey's stages (visit, product_view, add_to_cart, checkout, purchase),
as deploy/prometheus/rules.yml does; a shop with its own journey map renames them in STAGES.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name('dashboards') / 'touchstream.json'
STAGES = ['visit', 'product_view', 'add_to_cart', 'checkout', 'purchase']
DS = {'type': 'prometheus', 'uid': '${datasource}'}

# Selectors. Funnel, cart and order counters carry channel and device; the others only site.
SITE = 'site=~"$site"'
ALL = f'{SITE},channel=~"$channel",device=~"$device"'
INGEST = 'route="/v1/events"'
FAILED = INGEST + ',status=~"5.."'
VISITS = ALL + ',stage="visit"'
PURCHASES = ALL + ',stage="purchase"'


def sel(metric, labels, **extra):
    """`metric{labels,k="v"...}`."""
    more = ''.join(f',{k}="{v}"' for k, v in extra.items())
    return f'{metric}{{{labels}{more}}}'


def reached(stage, window='$window'):
    return f'sum(rate({sel("touchstream_funnel_sessions_total", ALL, stage=stage)}[{window}]))'


def series(metric, labels):
    return f'{metric}{{{labels}}}' if labels else metric


def rate(metric, labels, by='', window='$__rate_interval', scale=''):
    """The summed per-second rate of `metric{labels}`, optionally `by` labels and scaled."""
    grouping = f'sum by ({by}) ' if by else 'sum'
    return f'{grouping}(rate({series(metric, labels)}[{window}])){scale}'


def quantile(q, metric, labels='', by='le'):
    return f'histogram_quantile({q}, sum by ({by}) (rate({series(metric + "_bucket", labels)}[$__rate_interval])))'


def target(expr, legend, instant=False):
    t = {'datasource': DS, 'expr': expr, 'legendFormat': legend}
    if instant:
        t['instant'], t['range'], t['format'] = True, False, 'time_series'
    return t


def panel(kind, title, description, targets, unit='short', width=8, height=8, **options):
    """A panel; `options` go to the panel's `options`, except `stack`, `min` and `no_value`."""
    defaults = {'unit': unit}
    if 'min' in options:
        defaults['min'] = options.pop('min')
    if 'no_value' in options:
        defaults['noValue'] = options.pop('no_value')
    if kind == 'timeseries':
        stack = options.pop('stack', False)
        defaults['custom'] = {
            'drawStyle': 'line', 'lineWidth': 1, 'fillOpacity': 20 if stack else 0,
            'showPoints': 'never', 'spanNulls': True,
            'stacking': {'mode': 'normal' if stack else 'none', 'group': 'A'},
        }
        options.setdefault('legend', {'displayMode': 'list', 'placement': 'bottom', 'showLegend': True})
        options.setdefault('tooltip', {'mode': 'multi', 'sort': 'desc'})
    return {
        'type': kind, 'title': title, 'description': description, 'datasource': DS,
        'targets': [dict(t, refId=chr(ord('A') + i)) for i, t in enumerate(targets)],
        'fieldConfig': {'defaults': defaults, 'overrides': []},
        'options': options, 'width': width, 'height': height,
    }


def timeseries(title, description, targets, unit='short', **kw):
    return panel('timeseries', title, description, targets, unit, **kw)


def stat(title, description, targets, unit='short', **kw):
    kw.setdefault('reduceOptions', {'calcs': ['lastNotNull'], 'fields': '', 'values': False})
    kw.setdefault('colorMode', 'value')
    kw.setdefault('graphMode', 'area')
    return panel('stat', title, description, targets, unit, **kw)


def bars(title, description, targets, unit='short', **kw):
    kw.setdefault('reduceOptions', {'calcs': ['lastNotNull'], 'fields': '', 'values': False})
    kw.setdefault('orientation', 'horizontal')
    kw.setdefault('displayMode', 'gradient')
    kw.setdefault('showUnfilled', True)
    return panel('bargauge', title, description, targets, unit, **kw)


FUNNEL = [
    bars('Funnel: sessions reaching each stage',
         'Sessions that reached each stage (or a later one) in the selected time range.',
         [target(f'sum(increase({sel("touchstream_funnel_sessions_total", ALL, stage=s)}[$__range]))',
                 s, instant=True) for s in STAGES], width=12, height=9),
    bars('Share of visits reaching each stage',
         'Sessions reaching the stage per session that visited, over the selected time range.',
         [target(f'sum(increase({sel("touchstream_funnel_sessions_total", ALL, stage=s)}[$__range]))'
                 f' / sum(increase({sel("touchstream_funnel_sessions_total", ALL, stage=STAGES[0])}[$__range]))',
                 s, instant=True) for s in STAGES[1:]], unit='percentunit', width=12, height=9, min=0),
    timeseries('Step conversion',
               'Sessions reaching a stage per session reaching the one before, over $window.',
               [target(f'{reached(b)} / {reached(a)}', f'{a} → {b}')
                for a, b in zip(STAGES, STAGES[1:])], unit='percentunit', min=0),
    timeseries('Drop-off by stage',
               'Sessions that closed with the stage as their furthest, per session reaching it, over $window.',
               [target(f'{rate("touchstream_funnel_dropoffs_total", ALL, by="stage", window="$window")}'
                       f' / {rate("touchstream_funnel_sessions_total", ALL, by="stage", window="$window")}',
                       '{{stage}}')], unit='percentunit', min=0),
    timeseries('Checkout conversion: last 15 minutes and the day',
               'Checkout to purchase, all channels and devices (recording rules of deploy/prometheus). '
               'CheckoutDropoffSpike pages when the 15-minute line stays under half of the day line.',
               [target(f'site:touchstream_checkout_conversion:ratio15m{{{SITE}}}', '{{site}} last 15 min'),
                target(f'site:touchstream_checkout_conversion:ratio1d{{{SITE}}}', '{{site}} last day')],
               unit='percentunit', min=0),
    timeseries('Open sessions by stage',
               'Sessions open now, by the furthest stage they reached (all channels and devices).',
               [target(f'sum by (stage) (touchstream_funnel_active_sessions{{{SITE}}})', '{{stage}}')],
               stack=True, width=12),
    timeseries('Time from session start to stage',
               'Median and 90th percentile time from a session\'s first event to reaching each stage, over $window.',
               [target(f'histogram_quantile({q}, sum by (le, stage) (rate(touchstream_stage_reached_seconds_bucket{{{SITE}}}[$window])))',
                       f'{{{{stage}}}} p{int(q * 100)}') for q in (0.5, 0.9)], unit='s', width=12),
]

CARTS = [
    stat('Open carts', 'Open sessions with a cart and no order.',
         [target(f'sum(touchstream_carts_open{{{SITE}}})', 'carts')], width=4),
    stat('Value in open carts', 'What the open carts hold, per currency.',
         [target(f'sum by (currency) (touchstream_carts_open_value{{{SITE}}})', '{{currency}}')], width=4),
    timeseries('Abandoned carts per hour',
               'Sessions that reached the cart and closed without an order, by channel.',
               [target(rate('touchstream_carts_abandoned_total', ALL, by='channel', scale=' * 3600'), '{{channel}}')],
               stack=True),
    timeseries('Abandoned cart value per hour', 'Value left in abandoned carts, per currency.',
               [target(rate('touchstream_carts_abandoned_value_total', SITE, by='currency', scale=' * 3600'),
                       '{{currency}}')]),
    timeseries('Cart abandonment rate', 'Abandoned carts per session reaching the cart, over $window.',
               [target(f'{rate("touchstream_carts_abandoned_total", ALL, window="$window")}'
                       f' / {reached("add_to_cart")}', 'abandoned')], unit='percentunit', min=0),
    timeseries('Orders per hour', 'Orders (an order id counted once), by channel.',
               [target(rate('touchstream_orders_total', ALL, by='channel', scale=' * 3600'), '{{channel}}')],
               stack=True),
    timeseries('Revenue per hour', 'Revenue of orders, per currency.',
               [target(rate('touchstream_revenue_total', SITE, by='currency', scale=' * 3600'), '{{currency}}')]),
    timeseries('Average order value', 'Revenue per order, per currency, over $window.',
               [target(f'{rate("touchstream_order_value_sum", SITE, by="currency", window="$window")}'
                       f' / {rate("touchstream_order_value_count", SITE, by="currency", window="$window")}',
                       '{{currency}}')]),
]

BREAKDOWNS = [
    panel
    for label in ('channel', 'device')
    for panel in (
        timeseries(f'Sessions per minute by {label}', f'New sessions (visits), by {label}.',
                   [target(rate('touchstream_funnel_sessions_total', VISITS, by=label, scale=' * 60'),
                           f'{{{{{label}}}}}')], stack=True, width=12),
        timeseries(f'Conversion by {label}', f'Purchases per visit, by {label}, over $window.',
                   [target(f'{rate("touchstream_funnel_sessions_total", PURCHASES, by=label, window="$window")}'
                           f' / {rate("touchstream_funnel_sessions_total", VISITS, by=label, window="$window")}',
                           f'{{{{{label}}}}}')], unit='percentunit', width=12, min=0),
    )
]

FRICTION = [
    timeseries('Friction per minute by stage',
               'Errors, failed payments, form errors, rage clicks and out-of-stock hits, by the stage the session stood at.',
               [target(rate('touchstream_friction_total', SITE, by='stage', scale=' * 60'), '{{stage}}')],
               stack=True),
    timeseries('Friction per minute by kind', 'The same touchpoints by kind.',
               [target(rate('touchstream_friction_total', SITE, by='kind', scale=' * 60'), '{{kind}}')], stack=True),
    timeseries('Touchpoints per minute by phase', 'Every counted touchpoint, by journey phase.',
               [target(rate('touchstream_touchpoints_total', SITE, by='phase', scale=' * 60'), '{{phase}}')],
               stack=True),
]

HEALTH = [
    timeseries('Events per second', 'Received = accepted + rejected; filtered events are accepted but kept out of the funnel.',
               [target(rate(f'touchstream_events_{kind}_total', SITE), kind)
                for kind in ('received', 'accepted', 'rejected', 'filtered')]),
    timeseries('Rejected events by reason', 'Events the collector refused (see the README for each reason).',
               [target(rate('touchstream_events_rejected_total', SITE, by='reason'), '{{reason}}')], stack=True),
    timeseries('Filtered events by reason', 'Accepted events kept out of the funnel: bot, consent, duplicate.',
               [target(rate('touchstream_events_filtered_total', SITE, by='reason'), '{{reason}}')], stack=True),
    timeseries('Ingest latency', 'Time to answer a batch on /v1/events (over Kafka: until every event is delivered).',
               [target(quantile(q, 'touchstream_http_request_duration_seconds', INGEST), f'p{q * 100:g}')
                for q in (0.5, 0.99, 0.999)], unit='s'),
    timeseries('Ingest responses by status', '503 means the transport could not take the batch; clients retry.',
               [target(rate('touchstream_http_requests_total', INGEST, by='status'), '{{status}}')], unit='reqps',
               stack=True),
    stat('Failing ingest requests', 'Share of /v1/events requests answered 5xx; IngestErrors warns above 1 %.',
         [target(f'{rate("touchstream_http_requests_total", FAILED)}'
                 f' / {rate("touchstream_http_requests_total", INGEST)}', '5xx')],
         unit='percentunit', no_value='0'),
    timeseries('Engine lag p99', 'Time from the collector receiving an event to the engine applying it; EngineLagging warns above 30 s.',
               [target(quantile(0.99, 'touchstream_engine_event_lag_seconds', by='le, instance'), '{{instance}}')],
               unit='s'),
    timeseries('Backlog', 'Events waiting for an engine: Kafka consumer lag per engine, or the in-memory queue of `serve`.',
               [target('sum by (instance) (touchstream_kafka_consumer_lag_messages)', '{{instance}} Kafka'),
                target('sum by (instance) (touchstream_transport_queue_events)', '{{instance}} in-memory queue')]),
    timeseries('Open sessions in memory', 'Sessions each engine holds; sessions forgotten because the store was full (not drop-offs), and their open carts (not abandoned); events refused because a session was full, the stored ids were spent or a client opened new sessions too fast under pressure; and the stored ids (engine.max_stored_ids).',
               [target('sum by (instance) (touchstream_engine_open_sessions)', '{{instance}}'),
                target(rate('touchstream_engine_sessions_evicted_total', '', scale=' * 60'), 'evicted per minute'),
                target(rate('touchstream_engine_carts_evicted_total', '', scale=' * 60'), 'carts evicted per minute'),
                target(rate('touchstream_events_filtered_total', 'reason=~"session_limit|session_memory|session_rate"', by='reason', scale=' * 60'), '{{reason}} per minute'),
                target('sum by (instance) (touchstream_engine_stored_ids)', '{{instance}} stored ids')]),
    timeseries('Dedup memory and late events', 'Ids of closed sessions each engine remembers (engine.max_remembered_ids), the effective dedup horizon in hours (engine.dedup_horizon, less once ids were forgotten to make room: retries older than it may count twice; DedupHorizonShort warns), and late events per minute: new events of closed sessions (offline queues flushed late), counted against them without a second visit.',
               [target('sum by (instance) (touchstream_engine_remembered_ids)', '{{instance}} ids remembered'),
                target('min by (instance) (touchstream_engine_dedup_horizon_seconds) / 3600', '{{instance}} horizon (h)'),
                target(rate('touchstream_engine_late_events_total', '', by='site', scale=' * 60'), '{{site}} late per minute')], no_value='0'),
    timeseries('Connections', 'Connections held by each process, and those closed at once because a listener was full (limits.max_connections).',
               [target('sum by (instance) (touchstream_http_connections_open)', '{{instance}} open'),
                target(rate('touchstream_http_connections_refused_total', '', scale=' * 60'), 'refused per minute')]),
    timeseries('State directory', 'serve without Kafka: the log of accepted batches on disk, the age of the newest engine checkpoint (a restart replays the log since), batches answered 503 because the log could not take them, and failed checkpoints; StateNotDurable pages after 5 minutes of either.',
               [target('sum by (instance) (touchstream_state_log_bytes) / 1048576', '{{instance}} log MiB'),
                target('time() - max by (instance) (touchstream_state_checkpoint_timestamp_seconds > 0)', '{{instance}} checkpoint age (s)'),
                target(rate('touchstream_transport_send_failures_total', 'reason=~"disk_full|disk"', by='reason', scale=' * 60'), '{{reason}} 503 per minute'),
                target(rate('touchstream_state_checkpoint_failures_total', '', scale=' * 60'), 'failed checkpoints per minute')], no_value='0'),
    timeseries('Kafka produce latency p99', 'A batch\'s produce until its last delivery report.',
               [target(quantile(0.99, 'touchstream_kafka_produce_seconds', by='le, instance'), '{{instance}}')], unit='s'),
    timeseries('Kafka delivery errors', 'Delivery failures by kind; KafkaDeliveryFailures pages after 5 minutes of them.',
               [target(rate('touchstream_kafka_delivery_errors_total', '', by='kind'), '{{kind}}')], no_value='0'),
    timeseries('Kafka partitions and commits', 'Partitions each engine owns, and offset commits per minute (after each checkpoint).',
               [target('sum by (instance) (touchstream_kafka_assigned_partitions)', '{{instance}} partitions'),
                target(rate('touchstream_kafka_commits_total', '', by='result', scale=' * 60'), 'commits {{result}}')]),
]

ROWS = [
    ('Funnel', FUNNEL),
    ('Carts, orders and revenue', CARTS),
    ('Channels and devices', BREAKDOWNS),
    ('Friction', FRICTION),
    ('Ingest and engine health', HEALTH),
]


def variable(name, label, query):
    return {
        'name': name, 'label': label, 'type': 'query', 'datasource': DS,
        'query': {'query': query, 'refId': f'{name}-values'}, 'definition': query,
        'includeAll': True, 'multi': True, 'allValue': '.*',
        'current': {'selected': True, 'text': ['All'], 'value': ['$__all']},
        'refresh': 2, 'sort': 1, 'hide': 0,
    }


def dashboard():
    panels, y, next_id = [], 0, 1
    for title, row in ROWS:
        panels.append({'type': 'row', 'title': title, 'collapsed': False, 'panels': [], 'id': next_id,
                       'gridPos': {'h': 1, 'w': 24, 'x': 0, 'y': y}})
        next_id, y, x, line_height = next_id + 1, y + 1, 0, 0
        for p in row:
            w, h = p.pop('width'), p.pop('height')
            if x + w > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append(dict(p, id=next_id, gridPos={'h': h, 'w': w, 'x': x, 'y': y}))
            next_id, x, line_height = next_id + 1, x + w, max(line_height, h)
        y += line_height
    return {
        'uid': 'touchstream', 'title': 'touchstream: customer journey', 'tags': ['touchstream', 'e-commerce'],
        'description': 'Live funnel, carts, revenue and friction from touchstream, and its ingest health.',
        'timezone': 'browser', 'editable': True, 'graphTooltip': 1, 'refresh': '30s',
        'schemaVersion': 39, 'version': 1, 'time': {'from': 'now-6h', 'to': 'now'},
        'templating': {'list': [
            {'name': 'datasource', 'label': 'Data source', 'type': 'datasource', 'query': 'prometheus',
             'current': {}, 'hide': 0, 'refresh': 1},
            variable('site', 'Site', 'label_values(touchstream_funnel_sessions_total, site)'),
            variable('channel', 'Channel', 'label_values(touchstream_funnel_sessions_total{site=~"$site"}, channel)'),
            variable('device', 'Device', 'label_values(touchstream_funnel_sessions_total{site=~"$site"}, device)'),
            {'name': 'window', 'label': 'Ratio window', 'type': 'custom', 'query': '15m,1h,6h,1d',
             'current': {'selected': True, 'text': '1h', 'value': '1h'}, 'hide': 0, 'multi': False,
             'includeAll': False,
             'options': [{'selected': v == '1h', 'text': v, 'value': v} for v in ('15m', '1h', '6h', '1d')]},
        ]},
        'annotations': {'list': [
            {'name': 'Funnel alerts', 'datasource': DS, 'enable': True, 'iconColor': 'red',
             'expr': 'ALERTS{alertstate="firing", team="ecommerce", site=~"$site"}',
             'titleFormat': '{{alertname}}', 'textFormat': '{{site}}', 'step': '60s'},
        ]},
        'panels': panels,
    }


def main():
    text = json.dumps(dashboard(), indent=2, ensure_ascii=False) + '\n'
    if sys.argv[1:] == ['--check']:
        if not OUT.exists() or OUT.read_text() != text:
            print(f'{OUT} is stale: run python3 {Path(__file__).name}', file=sys.stderr)
            sys.exit(1)
        return
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)


if __name__ == '__main__':
    main()
