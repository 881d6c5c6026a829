"""promtool input series from per-minute counts: its `a+bxn` notation and touchstream's funnel
and friction counters of one shop. Shared by the step alerts' benchmark and
deploy/prometheus/tests/generate.py."""

FUNNEL = 'touchstream_funnel_sessions_total{{site="{site}",journey="default",stage="{stage}",channel="{channel}",device="{device}"}}'
FRICTION = 'touchstream_friction_total{{site="{site}",journey="default",stage="checkout",kind="payment_failed"}}'


def number(x):
    """Exact for whole numbers of any size (`:g` would round a million to 6 digits)."""
    return str(int(x)) if float(x).is_integer() else f'{x:g}'


def notation(values):
    """promtool's compact notation: runs of equal steps as `start+stepxcount`."""
    parts, i = [], 0
    while i < len(values):
        j = i + 1
        step = round(values[j] - values[i], 3) if j < len(values) else 0
        while j + 1 < len(values) and round(values[j + 1] - values[j], 3) == step:
            j += 1
        if j >= len(values):
            parts.append(number(values[i]))
            break
        sign = '+' if step >= 0 else '-'
        parts.append(f"{number(values[i])}{sign}{number(abs(step))}x{j - i}")
        i = j + 1
    return ' '.join(parts)


def cumulative(counts):
    values, v = [], 0
    for c in counts:
        v += c
        values.append(v)
    return values


def shop(site, reached, friction, gap=None, late=None):
    """The funnel and friction counters of `site` from per-minute counts; `gap`: (first minute,
    minutes) with no scrape; `late`: (stage, minute) a stage added to the journey then (its
    series begin at zero there)."""
    def values(counts, stage=None):
        v = cumulative(counts)
        if late and stage == late[0]:
            start = late[1]
            v = [None] * start + [x - v[start - 1] for x in v[start:]]
        if gap:
            start, length = gap
            v = v[:start] + [None] * length + v[start + length:]
        parts, run = [], []
        for i, x in enumerate(v + [None]):
            if x is None:
                if run:
                    parts.append(notation(run))
                    run = []
                if i < len(v):
                    parts.append('_')
            else:
                run.append(x)
        return ' '.join(parts)
    series = [{'series': FUNNEL.format(site=site, stage=s, channel=c, device=d), 'values': values(v, s)}
              for (s, c, d), v in reached.items()]
    series.append({'series': FRICTION.format(site=site), 'values': values(friction)})
    return series
