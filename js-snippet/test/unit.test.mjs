import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { load, quiesce, until, tick } from './env.mjs';

afterEach(quiesce);

const BUDGET = 2000;

test('the script stays within its size budget (min + gzip)', () => {
  const size = gzipSync(readFileSync('dist/t.js'), { level: 9 }).length;
  const esm = gzipSync(readFileSync('dist/touchstream.mjs'), { level: 9 }).length;
  console.log(`dist/t.js: ${size} bytes min+gzip (budget ${BUDGET}); dist/touchstream.mjs: ${esm}`);
  assert.ok(size <= BUDGET, `${size} > ${BUDGET}`);
});

test('the committed build is what the sources build to', () => {
  execFileSync(process.execPath, ['build.mjs', '--check'], { stdio: 'inherit' });
});

test("the README's install snippet carries the build's integrity hash", () => {
  const hash = 'sha384-' + createHash('sha384').update(readFileSync('dist/t.js')).digest('base64');
  assert.ok(readFileSync('../README.md', 'utf8').includes(`integrity="${hash}"`), `README lacks integrity="${hash}"`);
});

test('the type declarations name every export', async () => {
  const dts = readFileSync('dist/touchstream.d.ts', 'utf8');
  const mod = await import('../dist/touchstream.mjs');
  for (const name of Object.keys(mod).filter((n) => n != 'default')) assert.match(dts, new RegExp(`\\b${name}\\b`));
});

test('a landing page view carries ids, url, referrer and utm; later events do not', async () => {
  const b = await load({ href: 'https://shop.example/?utm_source=news&utm_medium=email&x=1', referrer: 'https://mail.example/' });
  b.mod.init({ site: 'demo', endpoint: 'https://c.example/v1/events', flush: 5 });
  b.mod.track('add_to_cart', { value: 5 });
  await until(() => b.events().length == 2);
  const [view, add] = b.events();
  assert.equal(b.sent[0].body.site, 'demo');
  assert.equal(b.sent[0].endpoint, 'https://c.example/v1/events');
  assert.equal(view.type, 'page_view');
  assert.match(view.id, /^[0-9a-f]{32}$/);
  assert.equal(view.session, add.session);
  assert.equal(view.visitor, add.visitor);
  assert.deepEqual(view.utm, { source: 'news', medium: 'email' });
  assert.equal(view.referrer, 'https://mail.example/');
  assert.equal(add.utm, undefined);
  assert.deepEqual(add.props, { value: 5 });
});

test('single-page navigation makes one page_view per URL', async () => {
  const b = await load();
  b.mod.init({ site: 'demo', flush: 5 });
  history.pushState({}, '', '/cart');
  history.replaceState({}, '', '/cart');
  history.pushState({}, '', '/checkout');
  b.fire('popstate');
  await until(() => b.events().length == 3);
  await tick();
  assert.deepEqual(b.events().map((e) => new URL(e.url).pathname), ['/p/1', '/cart', '/checkout']);
});

test('5xx and network errors are retried with the same ids; other 4xx are not', async () => {
  const statuses = [503, 0, 200];
  const b = await load({ fetchStatus: (n) => statuses[n - 1] ?? 200 });
  b.mod.init({ site: 'demo', flush: 5 });
  await until(() => b.sent.length == 3, 8000);
  const ids = b.sent.map((s) => s.body.events[0].id);
  assert.equal(new Set(ids).size, 1, 'a retry resends the same event id');
  assert.equal(JSON.parse(b.store.get('touchstream_q')).length, 0);

  const c = await load({ fetchStatus: () => 400 });
  c.mod.init({ site: 'demo', flush: 5 });
  await until(() => c.sent.length == 1);
  await tick(100);
  assert.equal(c.sent.length, 1);
  assert.equal(JSON.parse(c.store.get('touchstream_q')).length, 0, 'a 400 batch is dropped, not retried');
});

test('unsent events survive a reload, and hiding the page hands them to sendBeacon', async () => {
  const storage = new Map();
  const a = await load({ storage, online: false });
  a.mod.init({ site: 'demo', flush: 5 });
  a.mod.track('view_item');
  await tick();
  assert.equal(a.sent.length, 0, 'nothing sent while offline');
  assert.equal(JSON.parse(storage.get('touchstream_q')).length, 2);

  const b = await load({ storage, online: false });
  b.mod.init({ site: 'demo', flush: 60000 });
  b.fire('pagehide');
  assert.equal(b.sent.length, 1);
  assert.equal(b.sent[0].via, 'beacon');
  // The reload's own page_view joins the two left from before.
  assert.deepEqual(b.events().map((e) => e.type), ['page_view', 'view_item', 'page_view']);
  assert.equal(JSON.parse(storage.get('touchstream_q')).length, 0);
});

test('the persistent queue is bounded and survives a full storage', async () => {
  const storage = new Map();
  const b = await load({ storage, online: false });
  b.mod.init({ site: 'demo', flush: 5 });
  for (let i = 0; i < 600; i++) b.mod.track('view_item', { i });
  const queued = JSON.parse(storage.get('touchstream_q'));
  assert.equal(queued.length, 500);
  assert.equal(queued[499].props.i, 599, 'the oldest go first');
  storage.quota = 20000;
  assert.doesNotThrow(() => b.mod.track('view_item', { i: 600 }));
  assert.ok(storage.get('touchstream_q').length <= 20000);
});

test('consent "send": nothing is sent or stored until consent, and refusal forgets everything', async () => {
  const b = await load();
  b.mod.init({ site: 'demo', consent: 'send', flush: 5 });
  b.mod.track('view_item');
  await tick(50);
  assert.equal(b.sent.length, 0);
  assert.equal(b.store.size, 0);
  b.mod.consent(true);
  await until(() => b.events().length == 2);
  assert.ok(b.store.get('touchstream_v'));

  const c = await load();
  c.mod.init({ site: 'demo', consent: 'send', flush: 5 });
  c.mod.consent(false);
  c.mod.track('purchase');
  await tick(50);
  assert.equal(c.sent.length, 0);
  assert.equal(c.store.size, 0);
});

test('consent "store": events are sent but nothing is stored until consent', async () => {
  const b = await load();
  b.mod.init({ site: 'demo', consent: 'store', flush: 5 });
  await until(() => b.events().length == 1);
  assert.equal(b.store.size, 0);
});

test('Do Not Track and Global Privacy Control are honoured when asked', async () => {
  for (const extra of [{ doNotTrack: '1' }, { globalPrivacyControl: true }]) {
    const b = await load({ navigatorExtra: extra });
    b.mod.init({ site: 'demo', dnt: true, flush: 5 });
    b.mod.track('view_item');
    await tick(50);
    assert.equal(b.sent.length, 0);
    assert.equal(b.store.size, 0);
  }
});

test('GA4 dataLayer events in gtag and GTM shapes become touchpoints', async () => {
  const b = await load();
  globalThis.dataLayer = [{ event: 'gtm.js' }];
  b.mod.init({ site: 'demo', datalayer: true, flush: 5 });
  (function gtag() {
    dataLayer.push(arguments);
  })('event', 'purchase', { transaction_id: 1001, value: '129.99', currency: 'PLN', items: [{ item_id: 'sku-1', price: 129.99, quantity: 1 }] });
  dataLayer.push({ event: 'add_to_cart', ecommerce: { value: 5, currency: 'EUR', items: [{ item_id: 'a', price: 5 }] } });
  dataLayer.push({ ecommerce: null });
  await until(() => b.events().length == 3);
  const [, purchase, add] = b.events();
  assert.equal(purchase.type, 'purchase');
  assert.deepEqual(purchase.props, { value: 129.99, currency: 'PLN', order_id: '1001', items: [{ id: 'sku-1', price: 129.99, quantity: 1 }] });
  assert.equal(add.type, 'add_to_cart');
  assert.equal(add.props.items[0].quantity, 1);
});

test('three clicks on one element within a second are a rage click; errors are friction', async () => {
  const b = await load();
  b.mod.init({ site: 'demo', flush: 5 });
  const button = {};
  for (let i = 0; i < 3; i++) b.fire('click', { target: button });
  b.fire('click', { target: {} });
  b.fire('error');
  await until(() => b.events().length == 3);
  assert.deepEqual(b.events().map((e) => e.type), ['page_view', 'rage_click', 'error']);
});

test('a session rotates after 30 idle minutes; the visitor stays', async () => {
  const storage = new Map();
  const b = await load({ storage });
  b.mod.init({ site: 'demo', flush: 5 });
  const first = JSON.parse(storage.get('touchstream_s'));
  storage.set('touchstream_s', JSON.stringify({ ...first, t: first.t - 31 * 60e3 }));
  b.mod.track('view_item');
  await until(() => b.events().length == 2);
  const [a, c] = b.events();
  assert.notEqual(a.session, c.session);
  assert.equal(a.visitor, c.visitor);
});

test('nothing throws into the page', async () => {
  const b = await load();
  const circular = {};
  circular.self = circular;
  assert.doesNotThrow(() => {
    b.mod.track('view_item');
    b.mod.touchstream('nope');
    b.mod.init({ site: 'demo' });
    b.mod.track('view_item', circular);
    b.mod.consent(true);
  });
  globalThis.localStorage.getItem = () => {
    throw new Error('SecurityError');
  };
  assert.doesNotThrow(() => b.mod.track('view_item'));
});
