// The dashboard (GET /dashboard, data from GET /dashboard/snapshot) in a real browser: the Debian
// `chromium` package through playwright-core, never a downloaded one. The page asks for the admin
// token, refuses a wrong one, shows a campaign the test created, and its figures and charts move
// when the test claims; no console errors, nothing fetched from anywhere but the service.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { makeApp, uid, type TestApp } from '../helpers/app.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (install the Debian package: apt-get install chromium)`;

/** Polls `read` until `ok` holds (the page polls every second); fails with the last value. */
async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > until) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await sleep(150);
  }
}

// One app for both parts, on the test PostgreSQL when there is one (it starts in a fraction of
// the seconds PGlite takes).
const databaseUrl = process.env.DATABASE_URL_PG ?? 'memory://';
const dialect = databaseUrl.startsWith('memory:') ? 'pglite' : 'postgres';
let t: TestApp;
before(async () => {
  t = await makeApp({ databaseUrl });
});
after(async () => {
  await t?.close();
});

describe('GET /dashboard/snapshot', () => {
  it('requires the admin token; the page itself loads without one, under a strict CSP', async () => {
    const none = await t.app.inject({ method: 'GET', url: '/dashboard/snapshot' });
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    assert.equal(none.json().error.code, 'UNAUTHORIZED');
    const wrong = await t.app.inject({ method: 'GET', url: '/dashboard/snapshot', headers: { authorization: 'Bearer not-the-token-at-all' } });
    assert.equal(wrong.statusCode, 401);

    const ok = await t.app.inject({ method: 'GET', url: '/dashboard/snapshot', headers: t.auth });
    assert.equal(ok.statusCode, 200);
    const s = ok.json();
    assert.equal(s.instance.dialect, dialect);
    assert.equal(s.health.ready, true);
    assert.ok(Array.isArray(s.campaigns.items), 'campaigns listed');
    assert.equal(typeof s.claims.duration.count, 'number');
    assert.equal(s.db.pool.max, dialect === 'pglite' ? 1 : 4);

    const page = await t.app.inject({ method: 'GET', url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/=]+'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(page.body, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'nothing external');
  });
});

describe('the dashboard in Chromium', { skip }, () => {
  let base: string;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const requests: string[] = [];

  before(async () => {
    base = (await t.app.listen({ port: 0, host: '127.0.0.1' })).replace('localhost', '127.0.0.1');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('request', (req) => requests.push(req.url()));
  });

  after(async () => {
    await browser?.close();
  });

  const text = (selector: string) => page.locator(selector).first().textContent({ timeout: 2_000 }).catch(() => null);
  const claim = (campaignId: string, userId: string) => t.app.inject({ method: 'POST', url: `/v1/campaigns/${campaignId}/claims`, headers: t.auth, payload: { userId } }).then((r) => r.statusCode);

  it('asks for the token, refuses a wrong one, then shows a campaign whose figures move with claims', async () => {
    const id = uid('dash');
    const created = await t.app.inject({ method: 'POST', url: '/v1/campaigns', headers: t.auth, payload: { id, kind: 'coupon', name: 'Dashboard test', stock: 3, perUserLimit: 1 } });
    assert.equal(created.statusCode, 201);

    await page.goto(`${base}/dashboard`, { waitUntil: 'load' });
    await page.locator('#login').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#board').isVisible(), false, 'no figures before the token');

    // A wrong token: the snapshot answers 401 (which Chromium logs as a failed resource), the form says so.
    await page.fill('#token', 'wrong-token-0123456789');
    await page.click('#login button[type=submit]');
    await eventually('the refusal', () => text('#login-error'), (v) => /401/.test(v ?? ''));
    assert.ok(problems.every((p) => /401/.test(p)), `only the refused request is logged: ${problems.join('; ')}`);
    problems.length = 0;
    requests.length = 0;

    await page.fill('#token', t.token);
    await page.click('#login button[type=submit]');
    const row = `#campaigns tr[data-campaign="${id}"]`;
    await page.locator(row).waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await text(`${row} td[data-field="name"]`), 'Dashboard test');
    assert.equal(await text(`${row} td[data-field="stock"]`), '3');
    assert.equal(await text(`${row} td[data-field="issued"]`), '0');
    assert.equal(await text('#health-database'), 'database up');
    assert.equal(await text('#health-locks'), 'locks up');
    assert.equal(await text('#health-ready'), 'ready');

    // Claims: 3 issued, then sold out.
    assert.deepEqual([await claim(id, 'a'), await claim(id, 'b'), await claim(id, 'c'), await claim(id, 'd')], [201, 201, 201, 409]);
    await eventually('issued', () => text(`${row} td[data-field="issued"]`), (v) => v === '3');
    assert.equal(await text(`${row} td[data-field="remaining"]`), '0');
    // The charts: the campaign's issued and stock lines, a claim rate above zero, the refusal by reason.
    assert.equal(await page.locator(`svg[data-chart="stock"] polyline[data-series="${id} issued"]`).count(), 1);
    assert.equal(await page.locator(`svg[data-chart="stock"] polyline[data-series="${id} stock"]`).count(), 1);
    await eventually('the issued rate', () => text('#legend-claims [data-series="issued"]'), (v) => /^issued [0-9.]+ \/s$/.test(v ?? '') && Number(/([0-9.]+)/.exec(v ?? '')?.[1]) > 0);
    assert.equal(await page.locator('#legend-claims [data-series="sold_out"]').count(), 1, 'refusals by reason: sold_out');
    await eventually('the claim latency', () => text('#legend-latency [data-series="claim p50"]'), (v) => /^claim p50 [0-9.]+ ms$/.test(v ?? ''));
    for (const chart of ['stock', 'claims', 'latency', 'locks']) {
      const box = await page.locator(`svg[data-chart="${chart}"]`).boundingBox();
      assert.ok(box && box.width > 200 && box.height > 100, `${chart} chart has a size: ${JSON.stringify(box)}`);
    }
    assert.match((await text('[data-figure="pool in use"] .v')) ?? '', dialect === 'pglite' ? /^\d \/ 1$/ : /^\d \/ 4$/);

    // ALLOT_DASHBOARD_SHOT=file.png keeps a screenshot to look at.
    if (process.env.ALLOT_DASHBOARD_SHOT) await page.screenshot({ path: process.env.ALLOT_DASHBOARD_SHOT, fullPage: true });

    // The token stays for this tab: a reload goes straight to the figures.
    await page.reload({ waitUntil: 'load' });
    await page.locator(row).waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await page.locator('#login').isVisible(), false);

    assert.deepEqual(problems, []);
    const foreign = requests.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith('data:'));
    assert.deepEqual(foreign, [], 'the page fetches nothing from elsewhere');
    assert.ok(requests.some((u) => u === `${base}/dashboard/snapshot`), 'it polls the snapshot');
  });
});
