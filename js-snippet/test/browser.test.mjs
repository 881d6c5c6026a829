// The snippet in real headless Chromium (Debian's, driven by playwright-core) against a running
// touchstream: every test starts its own server on 127.0.0.1:0 and checks exact /metrics figures.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
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

/** A touchstream server on free ports, stopped with SIGTERM at the end of the test. */
async function server(t) {
  const dir = mkdtempSync(join(tmpdir(), 'touchstream-'));
  const config = join(dir, 'touchstream.toml');
  writeFileSync(config, '[[sites]]\nid = "demo"\norigins = ["*"]\n');
  const child = spawn(BIN, ['--config', config, 'serve'], {
    env: { ...process.env, TOUCHSTREAM_LISTEN: '127.0.0.1:0', TOUCHSTREAM_ADMIN_LISTEN: '127.0.0.1:0', RUST_LOG: 'info' },
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

test('events made offline arrive once the browser is back online, each exactly once', async (t) => {
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
  const later = await metrics();
  assert.equal(later('touchstream_touchpoints_total', { touchpoint: 'view_item' }), 5);
  assert.equal(later('touchstream_events_filtered_total', { reason: 'duplicate' }), 0);
  assert.equal(m('touchstream_events_accepted_total'), 6);
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

test('with consent required and refused, nothing is sent', async (t) => {
  const { base, metrics } = await server(t);
  const { page } = await newPage(t);
  const posts = [];
  page.on('request', (r) => r.method() == 'POST' && posts.push(r.url()));
  await testPage(page, base, { flush: 50, consent: 'send' });
  await page.goto(base + '/test');
  await page.evaluate(() => {
    touchstream('track', 'view_item');
    touchstream('consent', false);
    touchstream('track', 'add_to_cart');
  });
  await page.waitForTimeout(1000);
  const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('touchstream')));
  await page.close({ runBeforeUnload: true });
  assert.deepEqual(stored, []);
  assert.deepEqual(posts, []);
  assert.equal((await metrics())('touchstream_events_received_total'), 0);
});
