// The lab's output side on made-up results: the terminal table, the JSON rows, the HTML's escaping
// and edge cases, and the progress line in CI (non-TTY) mode.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTable, toJsonRows, writeHtml, writeJson } from '../../src/lab/report.ts';
import { renderHtml } from '../../src/lab/html.ts';
import { createProgress } from '../../src/lab/progress.ts';
import type { LabReport, LabRow } from '../../src/lab/types.ts';

function row(over: Partial<LabRow>): LabRow {
  return {
    strategy: 'conditional',
    backend: 'postgres',
    requests: 1000,
    requestsPerSec: 400,
    ok: 100,
    soldOut: 880,
    userLimit: 20,
    oversold: 0,
    duplicates: 0,
    lostAcks: 0,
    retries: 0,
    claimsPerSec: 812.4,
    p50Ms: 4.2,
    p99Ms: 31.7,
    scenario: 'stampede',
    workers: 32,
    errors: 0,
    unknown: 0,
    stock: 100,
    issued: 100,
    claimsInDb: 100,
    durationMs: 1230,
    faults: [],
    unsafe: false,
    passed: true,
    checks: [{ name: 'issued<=stock', ok: true, violations: 0, message: '' }],
    timeline: [
      [100, 20],
      [600, 80],
      [1200, 100],
    ],
    ...over,
  };
}

const naive = row({
  strategy: 'naive',
  ok: 112,
  soldOut: 870,
  oversold: 12,
  duplicates: 3,
  retries: 0,
  claimsPerSec: 1500,
  issued: 100,
  claimsInDb: 112,
  unsafe: true,
  passed: false,
  checks: [
    { name: 'issued<=stock', ok: false, violations: 12, message: '12 claims beyond stock 100 (c_1, c_2, …)' },
    { name: 'per-user limit', ok: false, violations: 3, message: '3 users over their limit (u_7, …)' },
  ],
  timeline: [
    [50, 30],
    [400, 101],
    [900, 112],
  ],
});

const report: LabReport = {
  scenario: 'stampede',
  description: '1000 requests for 100 coupons',
  startedAt: '2025-01-02T03:04:05.000Z',
  rows: [naive, row({ strategy: 'local-mutex', retries: 5, p99Ms: 120.5 }), row({ strategy: 'conditional', backend: 'mariadb' })],
};

describe('formatTable', () => {
  it('lists every strategy with its verdict and explains the failed checks', () => {
    const out = formatTable(report, { color: false });
    const lines = out.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^strategy\s+backend\s+workers\s+requests\s+ok\s+sold out\s+limit\s+errors\s+unknown\s+oversold\s+duplicates\s+lost acks\s+retries\s+req\/s\s+claims\/s\s+p50 ms\s+p99 ms\s+verdict$/);
    const naiveLine = lines.find((l) => l.startsWith('naive '));
    assert.ok(naiveLine, out);
    assert.match(naiveLine, /violated \(expected: unsafe\)$/);
    assert.match(naiveLine, /\s12\s/);
    assert.ok(lines.some((l) => l.startsWith('local-mutex ') && l.endsWith(' ok')), out);
    assert.ok(lines.some((l) => l.startsWith('conditional ') && l.includes('mariadb') && l.endsWith(' ok')), out);
    assert.ok(out.includes('naive/postgres: issued<=stock: 12 claims beyond stock 100'), out);
    assert.ok(out.includes('naive/postgres: per-user limit: 3 users over their limit'), out);
    assert.ok(!out.includes('\x1b['), 'no ANSI codes without color');
    assert.ok(out.endsWith('\n'));
  });

  it('right-aligns numbers so the columns line up', () => {
    const lines = formatTable(report).split('\n');
    const header = lines[0] ?? '';
    const end = header.indexOf('oversold') + 'oversold'.length;
    for (const l of lines.slice(2, 5)) assert.match(l.slice(0, end), /\d$/, l);
  });

  it('marks an unexpected violation VIOLATED and colours only when asked', () => {
    const bad: LabReport = { ...report, rows: [...report.rows, row({ strategy: 'optimistic', passed: false, lostAcks: 2 })] };
    const plain = formatTable(bad, { color: false });
    assert.match(plain, /VIOLATED/);
    const colored = formatTable(bad, { color: true });
    assert.ok(colored.includes('\x1b[1;31m'), colored);
    assert.equal(colored.replace(/\x1b\[[0-9;]*m/g, ''), plain); // eslint-disable-line no-control-regex
  });

  it('prints a header and a note for an empty report', () => {
    const out = formatTable({ ...report, rows: [] });
    assert.match(out, /^strategy/);
    assert.match(out, /\(no rows\)/);
  });

  it('does not pass terminal escape sequences through from a strategy name', () => {
    const out = formatTable({ ...report, rows: [row({ strategy: 'evil\x1b[2J' })] });
    assert.ok(!out.includes('\x1b'), JSON.stringify(out));
  });
});

describe('toJsonRows / writeJson', () => {
  it('carries the JSON contract fields with the row values', () => {
    const rows = toJsonRows(report);
    assert.equal(rows.length, 3);
    const first = rows[0];
    assert.ok(first);
    const contract = ['strategy', 'backend', 'requests', 'ok', 'soldOut', 'userLimit', 'oversold', 'duplicates', 'lostAcks', 'retries', 'claimsPerSec', 'p50Ms', 'p99Ms'];
    assert.deepEqual(Object.keys(first).slice(0, contract.length), contract);
    assert.deepEqual(
      contract.map((k) => (first as unknown as Record<string, unknown>)[k]),
      ['naive', 'postgres', 1000, 112, 870, 20, 12, 3, 0, 0, 1500, 4.2, 31.7],
    );
    assert.equal(first.scenario, 'stampede');
    assert.equal(first.workers, 32);
    assert.equal(first.passed, false);
    assert.equal(first.unsafe, true);
    assert.equal(first.verdict, 'violated (expected: unsafe)');
    assert.equal(first.checks.length, 2);
    assert.deepEqual(first.timeline, naive.timeline);
    for (const k of Object.keys(naive)) assert.ok(k in first, `missing ${k}`);
    assert.equal(rows[1]?.verdict, 'ok');
  });

  it('writes the rows pretty-printed, and the HTML file, creating the directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'allot-lab-report-'));
    try {
      const file = join(dir, 'out', 'lab.json');
      await writeJson(file, report);
      const text = await readFile(file, 'utf8');
      assert.match(text, /^\[\n {2}\{\n {4}"strategy": "naive",/);
      assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(toJsonRows(report))));
      const html = join(dir, 'out', 'lab.html');
      await writeHtml(html, report);
      assert.equal(await readFile(html, 'utf8'), renderHtml(report));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('renderHtml', () => {
  it('is self-contained and has the three charts and the marked table', () => {
    const html = renderHtml(report);
    assert.match(html, /^<!doctype html>/);
    assert.ok(!/<script|<link|@import|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i.test(html), 'no external resources');
    for (const kind of ['throughput', 'latency', 'issued']) assert.ok(html.includes(`data-chart="${kind}"`), kind);
    assert.match(html, /<tr class="violated expected"[^>]*><td>naive<\/td>/);
    assert.match(html, /class="stock-line"/);
    assert.ok(html.includes('2025-01-02T03:04:05.000Z'));
    assert.ok(html.includes('1000 requests for 100 coupons'));
  });

  it('escapes every string from the report', () => {
    const evil = '<img src=x onerror=alert(1)>';
    const html = renderHtml({
      scenario: `"><script>alert(2)</script>`,
      description: evil,
      startedAt: `' onmouseover='x`,
      rows: [row({ strategy: evil, backend: '<b>pg</b>', faults: [evil], passed: false, checks: [{ name: evil, ok: false, violations: 1, message: evil }] })],
    });
    assert.ok(!html.includes('<img'), 'the img tag is escaped');
    assert.ok(!html.includes('<script'), 'the script tag is escaped');
    assert.ok(!html.includes('<b>pg'), 'the bold tag is escaped');
    assert.ok(!html.includes(`' onmouseover`), 'quotes are escaped');
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  });

  it('draws no NaN or Infinity for an empty report, empty timelines or all-zero values', () => {
    const zero = row({ requests: 0, ok: 0, soldOut: 0, userLimit: 0, claimsPerSec: 0, p50Ms: 0, p99Ms: 0, stock: 0, issued: 0, claimsInDb: 0, durationMs: 0, timeline: [] });
    const cases: LabReport[] = [
      { ...report, rows: [] },
      { ...report, rows: [zero] },
      { ...report, rows: [zero, row({ strategy: 'one-point', timeline: [[0, 0]] })] },
      { ...report, rows: [row({ claimsPerSec: Number.NaN, p50Ms: Number.POSITIVE_INFINITY, timeline: [[Number.NaN, 3]] })] },
    ];
    for (const c of cases) {
      const html = renderHtml(c);
      // Only attributes and drawn text matter: the table may print '-' for a non-finite value.
      assert.ok(!/NaN|Infinity/.test(html), `${c.rows.length} rows: ${html.match(/.{60}(NaN|Infinity).{20}/)?.[0]}`);
      assert.equal((html.match(/<svg /g) ?? []).length, 3);
    }
  });
});

describe('createProgress', () => {
  function fakeStream(): { stream: NodeJS.WritableStream; text: () => string } {
    const chunks: string[] = [];
    const stream = { write: (chunk: string | Uint8Array) => (chunks.push(String(chunk)), true) } as unknown as NodeJS.WritableStream;
    return { stream, text: () => chunks.join('') };
  }

  it('writes plain lines at the quarters, no carriage return, and ends with a newline', () => {
    const { stream, text } = fakeStream();
    const p = createProgress({ total: 100, label: 'naive/postgres', stream, isTTY: false });
    for (let i = 0; i < 100; i++) p.tick();
    p.done('12 oversold');
    const out = text();
    assert.ok(!out.includes('\r'), JSON.stringify(out));
    assert.ok(out.endsWith('\n'));
    const lines = out.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => l.match(/\d+\/100 \(\d+%\)/)?.[0]),
      ['25/100 (25%)', '50/100 (50%)', '75/100 (75%)', '100/100 (100%)', '100/100 (100%)'],
    );
    assert.match(lines[4] ?? '', /12 oversold$/);
    p.tick();
    p.done();
    assert.equal(text(), out, 'nothing after done');
  });

  it('ends with a final line even when done() comes before any quarter', () => {
    const { stream, text } = fakeStream();
    const p = createProgress({ total: 1000, label: 'x', stream, isTTY: false });
    p.tick(3);
    p.done();
    assert.equal(text().split('\n').length, 2);
    assert.match(text(), /^x: 3\/1000 \(0%\) \d+\/s \d+\.\ds\n$/);
  });

  it('on a TTY redraws one line with a bar and ends it on done', () => {
    const { stream, text } = fakeStream();
    const p = createProgress({ total: 10, label: 'run', stream, isTTY: true, intervalMs: 10 });
    p.tick(5);
    p.done('finished');
    const out = text();
    assert.match(out, /^\rrun \[\.{24}\] 0\/10 /);
    assert.match(out, /\rrun \[#{12}\.{12}\] 5\/10 \d+\/s \d+\.\ds\x1b\[K finished\n$/); // eslint-disable-line no-control-regex
    assert.equal((out.match(/\n/g) ?? []).length, 1);
  });
});
