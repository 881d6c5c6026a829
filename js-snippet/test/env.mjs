// A small fake browser for unit tests: storage, history, listeners, fetch and sendBeacon that
// record what the snippet sends. Each `load` imports a fresh copy of the module.
let copies = 0;
const loaded = [];

/** Silences every loaded copy, so no timer of an earlier test acts in a later one. */
export function quiesce() {
  for (const m of loaded.splice(0)) m.consent(false);
}

export async function load({ href = 'https://shop.example/p/1', referrer = '', storage, fetchStatus = () => 200, beacon = true, online = true, navigatorExtra = {} } = {}) {
  const listeners = {};
  const sent = [];
  const store = storage || new Map();
  const on = (type, f) => (listeners[type] ||= []).push(f);
  const url = new URL(href);
  Object.assign(globalThis, {
    window: globalThis,
    addEventListener: on,
    document: { referrer, visibilityState: 'visible', addEventListener: on },
    location: { get href() { return url.href; }, get search() { return url.search; } },
    history: {
      pushState(_s, _t, to) { url.href = new URL(to, url).href; },
      replaceState(_s, _t, to) { url.href = new URL(to, url).href; },
    },
    localStorage: {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => {
        if (store.quota && String(v).length > store.quota) throw new Error('QuotaExceededError');
        store.set(k, String(v));
      },
      removeItem: (k) => store.delete(k),
    },
    fetch: async (endpoint, init) => {
      sent.push({ via: 'fetch', endpoint, body: JSON.parse(init.body) });
      const status = fetchStatus(sent.length);
      if (status === 0) throw new TypeError('network error');
      return { status };
    },
  });
  Object.defineProperty(globalThis, 'navigator', {
    configurable: true,
    value: {
      onLine: online,
      sendBeacon: beacon ? (endpoint, body) => (sent.push({ via: 'beacon', endpoint, body: JSON.parse(body) }), true) : undefined,
      ...navigatorExtra,
    },
  });
  delete globalThis.dataLayer;
  const mod = await import(`../src/index.js?copy=${++copies}`);
  loaded.push(mod);
  const fire = (type, event = {}) => (listeners[type] || []).forEach((f) => f(event));
  const events = () => sent.flatMap((s) => s.body.events);
  return { mod, sent, store, fire, events, url, setHref: (h) => (url.href = h) };
}

/** Resolves once `ready()` holds; fails after `ms`. */
export async function until(ready, ms = 4000) {
  const end = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));
