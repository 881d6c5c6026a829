/**
 * touchstream's page snippet (CONTRACT.md sections 1 and 5).
 *
 * Invariants: nothing here throws into the host page (every entry point and listener is
 * guarded); events are written to a bounded persistent queue before any send, and leave it only
 * when the collector answered (2xx, or a 4xx other than 429, which no retry can fix) or the
 * browser took them for delivery with sendBeacon on page hide; every event carries a random id,
 * so a retry can never be counted twice.
 */

const IDLE = 18e5; // a session rotates after 30 idle minutes
const MAX_EVENTS = 500; // persisted queue bounds: oldest out first
const MAX_BYTES = 2e5;
const BATCH = 20;
const KEY = 'touchstream_';
/** GA4 ecommerce events that map to touchpoints. */
const GA4 = /^(view_item(_list)?|select_item|search|(add_to|remove_from|view)_cart|begin_checkout|add_(shipping|payment)_info|purchase|refund)$/;

let cfg; // set by init
let started;
let queue = [];
let memory = {}; // storage when localStorage is not allowed or not there
let stored; // may write localStorage
let granted; // consent answer, when asked
let off; // Do Not Track, GPC or consent refused
let lastUrl;
let timer;
let busy = []; // the batch a fetch is sending
let backoff = 0;
let clicked; // rage clicks: the element, when its run began, how many clicks
let clickedAt;
let clickCount;

const guard = (f, a, b) => {
  try {
    return f(a, b);
  } catch (e) {
    /* never into the page */
  }
};

const rid = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => (b + 256).toString(16).slice(1)).join('');

function get(k) {
  if (stored) {
    try {
      const v = localStorage.getItem(KEY + k);
      if (v) return JSON.parse(v);
    } catch (e) {}
  }
  return memory[k];
}

function set(k, v) {
  memory[k] = v;
  if (stored) {
    try {
      localStorage.setItem(KEY + k, JSON.stringify(v));
    } catch (e) {}
  }
}

/** Persists the queue within its bounds; on a quota error, drops the oldest half and retries. */
function save() {
  if (queue.length > MAX_EVENTS) queue = queue.slice(-MAX_EVENTS);
  let text = JSON.stringify(queue);
  while (text.length > MAX_BYTES) {
    queue = queue.slice(queue.length >> 2 || 1);
    text = JSON.stringify(queue);
  }
  memory.q = queue;
  while (stored) {
    try {
      return localStorage.setItem(KEY + 'q', text);
    } catch (e) {
      if (!queue.length) return;
      queue = queue.slice((queue.length + 1) >> 1);
      text = JSON.stringify(queue);
    }
  }
}

const sendable = () => !off && (cfg.consent != 'send' || granted);

/** Queues one touchpoint. */
function trackNow(type, props) {
  if (!cfg || off) return;
  const now = Date.now();
  let s = get('s');
  const landing = !s || now - s.t > IDLE;
  if (landing) s = { id: rid() };
  s.t = now;
  set('s', s);
  let visitor = get('v');
  if (!visitor) set('v', (visitor = rid()));
  const e = { id: rid(), type, ts: now, session: s.id, visitor, url: location.href };
  if (landing) {
    if (document.referrer) e.referrer = document.referrer;
    const p = new URLSearchParams(location.search);
    const utm = {};
    for (const k of ['source', 'medium', 'campaign']) utm[k] = p.get('utm_' + k) || undefined;
    if (utm.source || utm.medium) e.utm = utm;
  }
  if (props) e.props = props;
  queue.push(e);
  save();
  schedule(queue.length >= BATCH ? 0 : cfg.flush);
}

/** A page_view for the current URL, once per URL. */
function pageNow() {
  if (cfg && location.href != lastUrl) {
    lastUrl = location.href;
    trackNow('page_view');
  }
}

function schedule(ms) {
  if (!timer) timer = setTimeout(flush, ms);
}

function drop(sent) {
  queue = queue.filter((e) => !sent.includes(e));
  save();
}

/** Sends a batch; with `hiding`, hands everything to the browser before the page goes away. */
function flush(hiding) {
  clearTimeout(timer);
  timer = 0;
  if (!cfg || !queue.length || !sendable()) return;
  const body = (events) => JSON.stringify({ site: cfg.site, sent_at: Date.now(), events });
  if (hiding === true) {
    // The batch in flight goes on with keepalive (and stays queued until answered).
    const rest = queue.filter((e) => !busy.includes(e));
    for (let i = 0; i < rest.length; i += BATCH) {
      const events = rest.slice(i, i + BATCH);
      if (navigator.sendBeacon?.(cfg.endpoint, body(events))) drop(events);
      else post(body(events));
    }
    return;
  }
  if (busy.length || navigator.onLine === false) return;
  const events = (busy = queue.slice(0, BATCH));
  post(body(events))
    .then((r) => {
      if (r.status == 429 || r.status > 499) throw 0;
      backoff = 0;
      drop(events);
    })
    .catch(() => {
      backoff = Math.min(6e4, backoff * 2 || 1e3);
    })
    .finally(() => {
      busy = [];
      if (queue.length) schedule(backoff * (0.5 + Math.random()));
    });
}

/** A string body goes as text/plain: a CORS "simple" request, no preflight. Keepalive lets it
 * outlive the page, within the browser's 64 KB budget. */
const post = (body) => fetch(cfg.endpoint, { method: 'POST', body, keepalive: body.length < 6e4 });

/** GA4 ecommerce parameters as touchstream props (JSON drops the undefined ones). */
const props = (p) => ({
  value: p.value && +p.value,
  currency: p.currency,
  order_id: p.transaction_id && '' + p.transaction_id,
  items: p.items?.map((i) => ({ id: i.item_id, price: +i.price || 0, quantity: +i.quantity || 1 })),
});

/** One dataLayer entry: gtag's `('event', name, params)` or GTM's `{event, ecommerce}`. */
function layer(x) {
  const gtag = x?.[0] == 'event';
  const name = gtag ? x[1] : x?.event;
  if (GA4.test(name)) trackNow(name, props((gtag ? x[2] : x.ecommerce) || {}));
}

function listen(target, type, f, capture) {
  target.addEventListener(type, (e) => guard(f, e), capture);
}

function start() {
  started = 1;
  queue = get('q') || [];
  listen(window, 'pagehide', () => flush(true));
  listen(document, 'visibilitychange', () => document.visibilityState == 'hidden' && flush(true));
  listen(window, 'online', flush);
  listen(window, 'popstate', pageNow);
  for (const m of ['pushState', 'replaceState']) {
    const original = history[m];
    history[m] = function () {
      const r = original.apply(this, arguments);
      guard(pageNow);
      return r;
    };
  }
  listen(window, 'error', () => trackNow('error'));
  listen(window, 'unhandledrejection', () => trackNow('error'));
  listen(
    document,
    'click',
    (e) => {
      const now = Date.now();
      if (e.target != clicked || now - clickedAt > 1e3) {
        clicked = e.target;
        clickedAt = now;
        clickCount = 0;
      }
      if (++clickCount == 3) trackNow('rage_click');
    },
    true,
  );
  if (cfg.datalayer) {
    const dl = (window.dataLayer = window.dataLayer || []);
    dl.forEach((x) => guard(layer, x));
    const push = dl.push;
    dl.push = function () {
      for (const x of arguments) guard(layer, x);
      return push.apply(this, arguments);
    };
  }
  pageNow();
  flush();
}

/**
 * Starts tracking. Options: site (required), endpoint, consent ('send': nothing sent or stored
 * until consent; 'store': sent, but nothing stored until consent), datalayer (capture GA4
 * ecommerce events), dnt (honour Do Not Track and Global Privacy Control), flush (ms).
 */
function initNow(options) {
  cfg = Object.assign({ flush: 1e3, endpoint: '/v1/events' }, cfg, options);
  off = cfg.dnt && (navigator.doNotTrack == '1' || navigator.globalPrivacyControl);
  stored = !off && (!cfg.consent || granted);
  if (!started && !off) start();
}

/** Records the visitor's consent: true starts storing (and sending), false forgets everything. */
function consentNow(yes) {
  granted = !!yes;
  if (!cfg) return;
  if (yes) {
    off = 0;
    stored = 1;
    for (const k of 'sv') if (memory[k]) set(k, memory[k]);
    save();
    if (!started) start();
    flush();
  } else {
    queue = [];
    memory = {};
    stored = 0;
    off = cfg.consent != 'store';
    for (const k of 'qsv') guard(() => localStorage.removeItem(KEY + k));
  }
}

const api = { init: initNow, track: trackNow, page: pageNow, consent: consentNow };

/** The page API: `touchstream('init' | 'track' | 'page' | 'consent', ...)`. Never throws. */
export function touchstream(command, a, b) {
  return api[command] && guard(api[command], a, b);
}

/** The same calls as functions, for bundlers; none of them throws. */
export const init = (options) => touchstream('init', options);
export const track = (type, props) => touchstream('track', type, props);
export const page = () => touchstream('page');
export const consent = (granted) => touchstream('consent', granted);

export default touchstream;
