// The snippet in real headless Chromium (Debian's, driven by playwright-core) against a running
// touchstream: every test starts its own server on 127.0.0.1:0 and checks exact /metrics figures.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BIN = resolve(process.env.TEST_TOUCHSTREAM_BIN || new URL('../../target/debug/touchstream', import.meta.url).pathname);
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36';
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    // Headless Chromium announces itself as HeadlessChrome, which touchstream filters as a bot;
    // a context's user-agent override does not reach beacons sent while a page unloads, so the
    // browser itself gets an ordinary one.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', `--user-agent=${UA}`],
  });
});
after(() => browser?.close());

/** A touchstream server on free ports, stopped with SIGTERM at the end of the test; site `demo`
 * takes posts from `origins`. */
async function server(t, { origins = ['*'] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'touchstream-'));
  const config = join(dir, 'touchstream.toml');
  // A file with its own sites turns the demo shop off unless it asks for it.
  writeFileSync(config, `[[sites]]\nid = "demo"\norigins = ${JSON.stringify(origins)}\n[snippet]\ndemo = true\n`);
  const child = spawn(BIN, ['--config', config, 'serve'], {
    env: { ...process.env, TOUCHSTREAM_LISTEN: '127.0.0.1:0', TOUCHSTREAM_ADMIN_LISTEN: '127.0.0.1:0', TOUCHSTREAM_STATE_DIR: join(dir, 'state'), RUST_LOG: 'info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => child.kill('SIGTERM'));
  const addr = {};
  for await (const line of createInterface({ input: child.stderr })) {
    const m = line.match(/(public|admin) listener up addr=(\S+)/);
    if (m) addr[m[1]] = m[2];
    if (addr.public && addr.admin) break;
  }
  child.stderr.resume();
  const base = `http://${addr.public}`;
  const metrics = async () => {
    const text = await (await fetch(`http://${addr.admin}/metrics`)).text();
    return (name, labels = {}) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
        .filter((l) => Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
        .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  };
  const until = async (what, ready, ms = 20000) => {
    const end = Date.now() + ms;
    for (;;) {
      const m = await metrics();
      if (ready(m)) return m;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return { base, metrics, until };
}

async function newPage(t) {
  const context = await browser.newContext({ userAgent: UA });
  t.after(() => context.close().catch(() => {}));
  return { context, page: await context.newPage() };
}

/** A test page on the server's origin: the stub, `init` with `options`, then the real /t.js. */
function testPage(page, base, options) {
  const html = `<!doctype html><title>test</title><button id="b">b</button>
<script>window.touchstream=window.touchstream||function(){(touchstream.q=touchstream.q||[]).push(arguments)};
touchstream('init', ${JSON.stringify({ site: 'demo', endpoint: base + '/v1/events', ...options })});</script>
<script async src="/t.js"></script>`;
  return page.route(base + '/test', (route) => route.fulfill({ contentType: 'text/html', body: html }));
}

/** A shop on an origin of its own, as in production: a tiny HTTP server on 127.0.0.1 answering
 * every GET with `html(query)`, stopped at the end of the test. Its origin names the host
 * `localhost` while the collector's names `127.0.0.1`, so the two differ in host and port. */
async function shop(t, html) {
  const http = createServer((req, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end(html(new URL(req.url, 'http://shop').searchParams)),
  );
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  t.after(() => {
    http.closeAllConnections();
    http.close();
  });
  return `http://localhost:${http.address().port}`;
}

/** Shop pages with the snippet pasted as the README has it: the stub, then the collector's /t.js
 * with data-site (the endpoint follows from the script's origin), pinned by `integrity` with
 * `crossorigin`. The page's `?flush=` query sets the flush interval through the stub. */
async function shopPages(base) {
  const script = Buffer.from(await (await fetch(base + '/t.js')).arrayBuffer());
  const integrity = 'sha384-' + createHash('sha384').update(script).digest('base64');
  return (query) => `<!doctype html><title>shop</title>
<script>window.touchstream=window.touchstream||function(){(touchstream.q=touchstream.q||[]).push(arguments)};
touchstream('init', { flush: ${Number(query.get('flush')) || 1000} });</script>
<script async src="${base}/t.js" data-site="demo" integrity="${integrity}" crossorigin="anonymous"></script>`;
}

/** The snippet has loaded and replayed the stub's calls. */
const loaded = (page) => page.waitForFunction(() => typeof window.touchstream == 'function' && !window.touchstream.q);

/** The snippet's persisted queue is empty: it forgets a batch only once it has read a 2xx answer. */
const drained = (page, what) =>
  page
    .waitForFunction(() => localStorage.getItem('touchstream_q') == '[]', null, { timeout: 10000 })
    .catch(() => assert.fail(`${what} stayed queued: the page never read an answer`));

/** Another visitor's page on `origin` (a context of its own) sends a marker, a `search`, and the
 * engine applies it. Whatever a page closed earlier sent as it unloaded (a beacon outlives the
 * page, and close() does not wait for it) was sent before the marker; the two travel on
 * different connections, so that order is not guaranteed on arrival, but the marker page's
 * load, the snippet's start and the engine's apply give the beacon that much head start, and in
 * every run here it had arrived. */
async function marker(t, until, goto) {
  const { page } = await newPage(t);
  await goto(page);
  await loaded(page);
  await page.evaluate(() => touchstream('track', 'search'));
  return until('the marker', (m) => m('touchstream_touchpoints_total', { touchpoint: 'search' }) == 1);
}

const STAGES = ['visit', 'product_view', 'add_to_cart', 'checkout', 'purchase'];

test('a shopper clicking through the demo shop moves every funnel figure exactly', async (t) => {
  const { base, until } = await server(t);
  const { page } = await newPage(t);
  await page.goto(base + '/demo');
  await page.click('#product-sku-1');
  await page.waitForURL('**/demo/product?id=sku-1');
  await page.click('#add');
  await page.click('#to-cart');
  await page.waitForURL('**/demo/cart');
  await page.click('#checkout');
  await page.waitForURL('**/demo/checkout');
  await page.click('#pay');
  await page.waitForURL('**/demo/thank-you');
  const m = await until('the purchase', (m) => m('touchstream_orders_total') == 1 && m('touchstream_touchpoints_total', { touchpoint: 'page_view' }) == 5);
  for (const stage of STAGES) assert.equal(m('touchstream_funnel_sessions_total', { stage }), 1, stage);
  assert.equal(m('touchstream_funnel_sessions_total', { stage: 'visit', channel: 'direct', device: 'desktop' }), 1);
  assert.equal(m('touchstream_revenue_total', { currency: 'PLN' }), 129.99);
  assert.equal(m('touchstream_order_value_count', { currency: 'PLN' }), 1);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'add_to_cart' }), 1);
  assert.equal(m('touchstream_events_filtered_total'), 0);
  assert.equal(m('touchstream_events_rejected_total'), 0);
  assert.equal(m('touchstream_funnel_active_sessions', { stage: 'purchase' }), 1);
});

test('events still pending when the tab closes arrive', async (t) => {
  const { base, until } = await server(t);
  const { page } = await newPage(t);
  await testPage(page, base, { flush: 600000 });
  await page.goto(base + '/test');
  await page.waitForFunction(() => typeof window.touchstream == 'function' && !window.touchstream.q);
  await page.evaluate(() => ['view_item', 'view_item', 'add_to_cart'].forEach((type) => touchstream('track', type)));
  await page.close({ runBeforeUnload: true });
  // The engine's count, not the collector's: a batch is accepted before the engine applies it.
  const m = await until('the beaconed events', (m) => m('touchstream_engine_events_applied_total') == 4);
  assert.equal(m('touchstream_events_accepted_total'), 4);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 2);
  assert.equal(m('touchstream_funnel_sessions_total', { stage: 'add_to_cart' }), 1);
});

test('events made offline wait in the queue and are sent once the browser is back online', async (t) => {
  const { base, until, metrics } = await server(t);
  const { context, page } = await newPage(t);
  await testPage(page, base, { flush: 50 });
  await page.goto(base + '/test');
  await until('the page view', (m) => m('touchstream_events_accepted_total') == 1);
  await context.setOffline(true);
  await page.evaluate(() => {
    for (let i = 0; i < 5; i++) touchstream('track', 'view_item', { i });
  });
  await page.waitForTimeout(500);
  assert.equal((await metrics())('touchstream_events_received_total'), 1, 'nothing arrives while offline');
  await context.setOffline(false);
  const m = await until('the offline events', (m) => m('touchstream_touchpoints_total', { touchpoint: 'view_item' }) == 5);
  await page.waitForTimeout(500);
  // Offline, a request never reaches the collector, so no duplicate can arise here: received
  // counts each event sent exactly once. A retry the collector did see is the next test's.
  const later = await metrics();
  assert.equal(later('touchstream_events_received_total'), 6, 'each event sent once');
  assert.equal(later('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 5);
  assert.equal(m('touchstream_events_accepted_total'), 6);
});

test('a batch whose answer is lost after the collector took it is sent again and counted once', async (t) => {
  const { base, until, metrics } = await server(t);
  const { context, page } = await newPage(t);
  await testPage(page, base, { flush: 50 });
  await page.goto(base + '/test');
  await until('the page view', (m) => m('touchstream_events_accepted_total') == 1);
  // From here every post reaches the collector (route.fetch: the collector takes the batch and
  // answers 200), but the first answer is lost on its way back, as when the connection drops
  // after the request went out: the page sees a network error, keeps the batch and retries it
  // with the same ids. The snippet sends with fetch while the page lives; only beacons at unload
  // get past the route, and there are none here.
  const posts = [];
  await context.route(base + '/v1/events', async (route) => {
    const request = route.request();
    posts.push({ type: request.resourceType(), events: request.postDataJSON().events.length });
    const response = await route.fetch();
    if (posts.length == 1) return route.abort('connectionreset');
    return route.fulfill({ response });
  });
  await page.evaluate(() => {
    for (let i = 0; i < 5; i++) touchstream('track', 'view_item', { i });
  });
  // The queue empties once an answer got through; the engine applies duplicates too.
  await drained(page, 'the batch');
  const posted = posts.reduce((n, p) => n + p.events, 1);
  await until('every event posted', (m) => m('touchstream_engine_events_applied_total') == posted);
  await page.waitForTimeout(500);
  const m = await metrics();
  assert.deepEqual(posts, [{ type: 'fetch', events: 5 }, { type: 'fetch', events: 5 }], 'the lost batch, then its retry');
  assert.equal(m('touchstream_events_received_total'), 11, 'the collector took the batch twice');
  assert.equal(m('touchstream_events_accepted_total'), 11);
  assert.equal(m('touchstream_events_filtered_total', { reason: 'duplicate' }), 5, 'the retry is all duplicates');
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 5, 'each event counted once');
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'page_view' }), 1);
  assert.equal(m('touchstream_funnel_sessions_total', { stage: 'visit' }), 1);
});

test('a GTM dataLayer purchase is counted with its value', async (t) => {
  const { base, until } = await server(t);
  const { page } = await newPage(t);
  await testPage(page, base, { flush: 50, datalayer: true });
  await page.goto(base + '/test');
  await page.evaluate(() => {
    window.dataLayer = window.dataLayer || [];
    dataLayer.push({ event: 'purchase', ecommerce: { transaction_id: 'T-9', value: 59.5, currency: 'EUR', items: [{ item_id: 'sku-2', price: 59.5, quantity: 1 }] } });
  });
  const m = await until('the order', (m) => m('touchstream_orders_total') == 1);
  assert.equal(m('touchstream_revenue_total', { currency: 'EUR' }), 59.5);
  assert.equal(m('touchstream_funnel_sessions_total', { stage: 'purchase' }), 1);
});

test('with consent required and refused, nothing is sent, not even as the page closes', async (t) => {
  const { base, until } = await server(t);
  const { page } = await newPage(t);
  const posts = [];
  page.on('request', (r) => r.method() == 'POST' && posts.push(r.url()));
  await testPage(page, base, { flush: 50, consent: 'send' });
  await page.goto(base + '/test');
  await loaded(page);
  await page.evaluate(() => {
    touchstream('track', 'view_item');
    touchstream('consent', false);
    touchstream('track', 'add_to_cart');
  });
  await page.waitForTimeout(1000);
  const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('touchstream')));
  await page.close({ runBeforeUnload: true });
  // A beacon from the unload would arrive after close() returns, and the page's request events
  // do not show it: read the figures only once a marker sent after it has been applied.
  const m = await marker(t, until, async (p) => {
    await testPage(p, base, { flush: 50 });
    await p.goto(base + '/test');
  });
  assert.deepEqual(stored, []);
  assert.deepEqual(posts, []);
  assert.equal(m('touchstream_events_received_total'), 2, "only the marker page's page view and search");
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'page_view' }), 1);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 0);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'add_to_cart' }), 0);
});

test('a shop on another origin than the collector sends by fetch and, as the page closes, by beacon', async (t) => {
  let pages;
  const origin = await shop(t, (query) => pages(query));
  // The site allows exactly the shop's origin, as a production configuration does: not "*".
  const { base, until, metrics } = await server(t, { origins: [origin] });
  pages = await shopPages(base);
  const { page } = await newPage(t);
  await page.goto(origin + '/?flush=600000');
  await loaded(page);
  await until('the page view', (m) => m('touchstream_engine_events_applied_total') == 1);
  // Reading the answer across origins needs the collector's Access-Control-Allow-Origin; without
  // it the page view would stay queued and be sent again. Nothing of the collector's traffic is
  // routed in this test: Playwright's route.fulfill adds that header itself when it is missing.
  await drained(page, 'the page view');
  // The flush interval is long: these go only with the beacon on pagehide.
  await page.evaluate(() => ['view_item', 'view_item', 'add_to_cart'].forEach((type) => touchstream('track', type)));
  await page.close({ runBeforeUnload: true });
  await until('the beaconed events', (m) => m('touchstream_engine_events_applied_total') == 4);
  await new Promise((r) => setTimeout(r, 500));
  const m = await metrics();
  assert.equal(m('touchstream_events_received_total'), 4, 'each event once: the page view was not retried');
  assert.equal(m('touchstream_events_accepted_total'), 4);
  assert.equal(m('touchstream_events_filtered_total'), 0);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 2);
  assert.equal(m('touchstream_funnel_sessions_total', { stage: 'add_to_cart' }), 1);
  // Plain-text bodies are CORS simple requests: no preflight (it would count as a 204).
  assert.equal(m('touchstream_http_requests_total', { route: '/v1/events', status: '204' }), 0, 'no preflight');
  assert.equal(m('touchstream_http_requests_total', { route: '/v1/events', status: '200' }), 2, 'the fetch and the beacon');
});

test('a page on an origin the site does not allow gets nothing counted', async (t) => {
  let pages;
  const origin = await shop(t, (query) => pages(query));
  const stranger = await shop(t, (query) => pages(query));
  const { base, until } = await server(t, { origins: [origin] });
  pages = await shopPages(base);
  const { page } = await newPage(t);
  await page.goto(stranger + '/?flush=600000');
  await loaded(page);
  const refused = (m) => m('touchstream_http_requests_total', { route: '/v1/events', status: '403' });
  await until('the refused page view', (m) => refused(m) >= 1);
  await page.evaluate(() => touchstream('track', 'view_item'));
  await page.close({ runBeforeUnload: true });
  const m = await marker(t, until, (p) => p.goto(origin + '/?flush=50'));
  assert.equal(m('touchstream_events_received_total'), 2, "only the allowed page's page view and search");
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'page_view' }), 1);
  assert.equal(m('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 0);
  // The stranger's requests did reach the collector: the page view by fetch, then at least the
  // beacon at unload (a retry of the page view may come between), each refused with 403.
  assert.ok(refused(m) >= 2, `refused requests: ${refused(m)}`);
});
