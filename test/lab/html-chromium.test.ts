// The HTML report in a real browser (the Debian `chromium` package via playwright-core, never a
// downloaded one): the charts render with a size and shapes, the oversell shows above the stock
// line, the violated row is marked, and the page logs no errors and fetches nothing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderHtml } from '../../src/lab/html.ts';
import type { LabReport, LabRow } from '../../src/lab/types.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (install the Debian package: apt-get install chromium)`;

function row(strategy: string, over: Partial<LabRow>): LabRow {
  return {
    strategy,
    backend: 'postgres',
    requests: 1000,
    requestsPerSec: 400,
    ok: 100,
    soldOut: 900,
    userLimit: 0,
    oversold: 0,
    duplicates: 0,
    lostAcks: 0,
    retries: 0,
    claimsPerSec: 900,
    p50Ms: 3.5,
    p99Ms: 28,
    scenario: 'stampede',
    workers: 64,
    errors: 0,
    unknown: 0,
    stock: 100,
    issued: 100,
    claimsInDb: 100,
    durationMs: 1100,
    faults: [],
    unsafe: false,
    passed: true,
    checks: [{ name: 'issued<=stock', ok: true, violations: 0, message: '' }],
    timeline: Array.from({ length: 12 }, (_, i): [number, number] => [(i + 1) * 90, Math.min(100, Math.round(((i + 1) / 10) * 100))]),
    ...over,
  };
}

const report: LabReport = {
  scenario: 'stampede',
  description: '64 workers race for 100 coupons; 1000 requests in total',
  startedAt: '2025-06-01T12:00:00.000Z',
  rows: [
    row('naive', {
      ok: 112,
      soldOut: 888,
      oversold: 12,
      claimsInDb: 112,
      claimsPerSec: 1480.5,
      p50Ms: 1.8,
      p99Ms: 14.2,
      unsafe: true,
      passed: false,
      checks: [{ name: 'issued<=stock', ok: false, violations: 12, message: '12 claims beyond stock 100 (c_101, c_102, …)' }],
      timeline: Array.from({ length: 15 }, (_, i): [number, number] => [(i + 1) * 50, Math.min(112, (i + 1) * 9)]),
    }),
    row('local-mutex', {
      claimsPerSec: 610.2,
      p50Ms: 9.7,
      p99Ms: 61.3,
      durationMs: 1700,
      timeline: Array.from({ length: 17 }, (_, i): [number, number] => [(i + 1) * 100, Math.min(100, (i + 1) * 7)]),
    }),
    row('conditional', { claimsPerSec: 1130, p50Ms: 2.4, p99Ms: 19.9, retries: 0 }),
  ],
};

/** The few DOM members the page functions use: the project compiles without the DOM lib, and adding
 * it for one test would put browser globals in scope for every server file. */
interface DomElement {
  textContent: string | null;
  children: ArrayLike<DomElement>;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { width: number; height: number };
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement> & Iterable<DomElement>;
}
interface DomWindow {
  document: DomElement;
  getComputedStyle(el: DomElement): { backgroundColor: string };
}

interface PageFacts {
  charts: Array<{ kind: string | null; width: number; height: number; shapes: number }>;
  topOfLines: number[];
  stockY: number | null;
  violated: Array<{ text: string; oversold: string; background: string }>;
}

describe('lab HTML report in Chromium', { skip }, () => {
  let dir: string;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];
  const requests: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'allot-lab-html-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('request', (req) => requests.push(req.url()));
  });

  after(async () => {
    await browser?.close();
    // ALLOT_LAB_KEEP=1 keeps the page and screenshot to look at.
    if (dir && process.env.ALLOT_LAB_KEEP !== '1') await rm(dir, { recursive: true, force: true });
  });

  async function open(r: LabReport, name: string): Promise<string> {
    const file = join(dir, `${name}.html`);
    await writeFile(file, renderHtml(r), 'utf8');
    const url = pathToFileURL(file).href;
    problems.length = 0;
    requests.length = 0;
    await page.goto(url, { waitUntil: 'load' });
    return url;
  }

  it('renders three charts, the oversell above the stock line and the violated row', async (t) => {
    const url = await open(report, 'report');
    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);

    const facts: PageFacts = await page.evaluate(() => {
      const { document, getComputedStyle } = globalThis as unknown as DomWindow;
      const charts = [...document.querySelectorAll('svg[data-chart]')].map((svg) => {
        const box = svg.getBoundingClientRect();
        return { kind: svg.getAttribute('data-chart'), width: box.width, height: box.height, shapes: svg.querySelectorAll('rect, polyline, path').length };
      });
      const issued = document.querySelector('svg[data-chart="issued"]');
      const topOfLines = [...(issued?.querySelectorAll('polyline') ?? [])].map((pl) =>
        Math.min(...(pl.getAttribute('points') ?? '').trim().split(/\s+/).map((p: string) => Number(p.split(',')[1]))),
      );
      const stock = issued?.querySelector('line.stock-line');
      const headers = [...document.querySelectorAll('table.results thead th')].map((th) => th.textContent);
      const oversoldCol = headers.indexOf('oversold');
      const violated = [...document.querySelectorAll('table.results tbody tr.violated')].map((tr) => ({
        text: tr.textContent ?? '',
        oversold: tr.children[oversoldCol]?.textContent ?? '',
        background: tr.children[0] ? getComputedStyle(tr.children[0]).backgroundColor : '',
      }));
      return { charts, topOfLines, stockY: stock ? Number(stock.getAttribute('y1')) : null, violated };
    });

    assert.deepEqual(facts.charts.map((c) => c.kind).sort(), ['issued', 'latency', 'throughput']);
    for (const c of facts.charts) {
      assert.ok(c.width > 100 && c.height > 100, `${c.kind} is ${c.width}x${c.height}`);
      assert.ok(c.shapes > 0, `${c.kind} draws shapes`);
    }
    assert.equal(facts.topOfLines.length, 3, 'one line per row');
    assert.ok(facts.stockY !== null && Number.isFinite(facts.stockY), 'a stock line');
    // SVG y grows downwards: above the line means a smaller y.
    assert.ok(Math.min(...facts.topOfLines) < facts.stockY, `a line tops out at y=${Math.min(...facts.topOfLines)}, stock at y=${facts.stockY}`);
    assert.equal(facts.topOfLines.filter((y) => y < (facts.stockY ?? 0)).length, 1, 'only naive crosses the stock');

    assert.equal(facts.violated.length, 1);
    const v = facts.violated[0];
    assert.ok(v);
    assert.match(v.text, /naive/);
    assert.equal(v.oversold, '12');
    assert.notEqual(v.background, 'rgba(0, 0, 0, 0)', 'a violated row has a background');
    const [r, g, b] = (v.background.match(/\d+/g) ?? []).map(Number);
    assert.ok((r ?? 0) > (g ?? 0) && (r ?? 0) > (b ?? 0), `reddish background: ${v.background}`);

    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [url], 'the page fetches nothing but itself');
  });

  it('renders an empty report without errors', async () => {
    const url = await open({ ...report, rows: [] }, 'empty');
    const kinds = await page.$$eval('svg[data-chart]', (svgs) => svgs.map((s) => s.getAttribute('data-chart')));
    assert.equal(kinds.length, 3);
    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [url]);
  });
});
