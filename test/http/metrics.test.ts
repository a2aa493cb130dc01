// GET /metrics of a real app: the exposition is valid (a strict parser here, and promtool when the
// Debian package `prometheus` is installed), Node's default metrics carry their standard names,
// and the figures move with the claims: per-campaign stock/issued/remaining (bounded, most recent
// activity first), claims by result and strategy, the pool, statement latency, lock hold time,
// keys awaiting purge, build info and readiness. On PGlite, and on PostgreSQL and MariaDB.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeApp, TestClock, uid, type TestApp } from '../helpers/app.ts';
import { dialects } from '../helpers/dialects.ts';
import { CAMPAIGN_SERIES_LIMIT, FIGURES_TTL_MS } from '../../src/service/metrics.ts';

// ---- a strict parser of the Prometheus text format (0.0.4) ---------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    assert.ok(eq > i, `label without a name in: ${line}`);
    const name = text.slice(i, eq);
    assert.match(name, LABEL_NAME, `label name in: ${line}`);
    assert.ok(!name.startsWith('__'), `reserved label name ${name} in: ${line}`);
    assert.equal(text[eq + 1], '"', `label value must be quoted in: ${line}`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      assert.ok(j < text.length, `unterminated label value in: ${line}`);
      const ch = text[j]!;
      if (ch === '\\') {
        const next = text[j + 1];
        assert.ok(next === '\\' || next === '"' || next === 'n', `bad escape \\${next} in: ${line}`);
        value += next === 'n' ? '\n' : next;
        j += 2;
      } else if (ch === '"') {
        j++;
        break;
      } else {
        assert.notEqual(ch, '\n', `newline in a label value: ${line}`);
        value += ch;
        j++;
      }
    }
    assert.ok(!(name in labels), `label ${name} twice in: ${line}`);
    labels[name] = value;
    if (j === text.length) break;
    assert.equal(text[j], ',', `labels must be separated by commas in: ${line}`);
    i = j + 1;
  }
  return labels;
}

function parseValue(raw: string, line: string): number {
  // As Prometheus reads them (Go's ParseFloat): Inf and NaN in any case; prom-client writes Nan.
  if (/^[-+]?inf(inity)?$/i.test(raw)) return raw.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(raw)) return NaN;
  assert.match(raw, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value in: ${line}`);
  return Number(raw);
}

/** Parses an exposition, asserting the rules promtool and Prometheus enforce. */
function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | null = null;
  const familyOf = (sample: string): Family | undefined => {
    if (current && (sample === current.name || (['histogram', 'summary'].includes(current.type) && [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`].includes(sample)))) return current;
    return undefined;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      assert.match(name, METRIC_NAME, `metric name: ${line}`);
      if (kind === 'HELP') {
        assert.ok(!families.has(name), `${name}: HELP twice, or a family split in two`);
        assert.ok(rest.length > 0, `${name}: empty HELP`);
        current = { name, type: '', help: rest, samples: [] };
        families.set(name, current);
      } else {
        assert.ok(current && current.name === name, `${name}: TYPE must follow its HELP`);
        assert.equal(current.type, '', `${name}: TYPE twice`);
        assert.ok(TYPES.has(rest), `${name}: unknown type ${rest}`);
        current.type = rest;
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, raw] = m as unknown as [string, string, string | undefined, string];
    const family = familyOf(name);
    assert.ok(family, `${name}: sample outside its family (HELP and TYPE must come first, samples together)`);
    assert.ok(family.type !== '', `${family.name}: samples before TYPE`);
    const labels = labelText ? parseLabels(labelText, line) : {};
    const value = parseValue(raw, line);
    const key = `${name}{${Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    assert.ok(!seen.has(key), `duplicate series ${key}`);
    seen.add(key);
    if (family.type === 'counter') assert.ok(value >= 0, `${key}: a counter is never negative`);
    family.samples.push({ name, labels, value });
  }
  for (const f of families.values()) {
    assert.notEqual(f.type, '', `${f.name}: no TYPE`);
    if (f.type === 'counter') assert.ok(f.name.endsWith('_total') || f.name.startsWith('nodejs_') || f.name.startsWith('process_'), `${f.name}: a counter's name ends in _total`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const e = series.get(key) ?? { buckets: [] };
    series.set(key, e);
    if (s.name.endsWith('_bucket')) {
      assert.ok(le !== undefined, `${f.name}: a bucket without le`);
      e.buckets.push([parseValue(le, s.name), s.value]);
    } else if (s.name.endsWith('_sum')) e.sum = s.value;
    else if (s.name.endsWith('_count')) e.count = s.value;
  }
  for (const [key, e] of series) {
    assert.ok(e.count !== undefined && e.sum !== undefined, `${f.name}${key}: _sum and _count`);
    const last = e.buckets[e.buckets.length - 1];
    assert.ok(last && last[0] === Infinity, `${f.name}${key}: the last bucket is +Inf`);
    assert.equal(last[1], e.count, `${f.name}${key}: the +Inf bucket equals _count`);
    for (let i = 1; i < e.buckets.length; i++) {
      assert.ok(e.buckets[i]![0] > e.buckets[i - 1]![0], `${f.name}${key}: bucket bounds increase`);
      assert.ok(e.buckets[i]![1] >= e.buckets[i - 1]![1], `${f.name}${key}: buckets are cumulative`);
    }
  }
}

/** The value of one series; undefined when absent. */
function value(f: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = f.get(name) ?? f.get(name.replace(/_(bucket|sum|count)$/, ''));
  const s = family?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

/** Asserts a series is at least `min` (with a message: Node's generated one re-parses this file). */
function atLeast(f: Map<string, Family>, name: string, labels: Record<string, string>, min: number): void {
  const v = value(f, name, labels) ?? 0;
  assert.ok(v >= min, `${name}${JSON.stringify(labels)} is ${v}, expected at least ${min}`);
}

async function scrape(t: TestApp): Promise<{ text: string; families: Map<string, Family> }> {
  const r = await t.app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(r.statusCode, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: r.body, families: parseExposition(r.body) };
}

async function claim(t: TestApp, campaignId: string, userId: string, key?: string): Promise<number> {
  const r = await t.app.inject({ method: 'POST', url: `/v1/campaigns/${campaignId}/claims`, headers: { ...t.auth, ...(key ? { 'idempotency-key': key } : {}) }, payload: { userId } });
  return r.statusCode;
}

async function createCampaign(t: TestApp, id: string, stock: number, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await t.app.inject({ method: 'POST', url: '/v1/campaigns', headers: t.auth, payload: { id, kind: 'coupon', name: `metrics ${id}`, stock, perUserLimit: 1, ...extra } });
  assert.equal(r.statusCode, 201, r.body);
}

/** Puts one order in `executing` (a lease of an hour: no sweep takes it over) and one in
 * `unknown`, both last changed `ageMs` ago, straight through the payout store. */
async function waitingOrders(t: TestApp, ageMs: number): Promise<void> {
  const store = (t.service.payouts as unknown as { store: import('../../src/ports/payout-store.ts').PayoutStore }).store;
  const user = uid('mu');
  await t.service.payouts.fund({ fundingId: uid('mf'), userId: user, asset: 'MT', amount: 100n });
  const at = Date.now() - ageMs;
  for (const [i, unknown] of [[0, false], [1, true]] as const) {
    const orderId = uid(`mo${i}`);
    await store.receiveTransfer({ orderId, userId: user, asset: 'MT', amount: 10n, destination: 'd', state: 'received', attempts: 0, attemptId: null, leaseUntil: null, railRef: null, reason: null, resolution: null, createdAt: at, updatedAt: at });
    assert.ok(await store.startExecution(orderId, `att-${orderId}`, at, Date.now() + 3_600_000));
    if (unknown) assert.ok(await store.markUnknown(orderId, `att-${orderId}`, 'test', at));
  }
}

/** Scrape-time figures are cached FIGURES_TTL_MS: wait that long for the next read. */
const pastCache = () => sleep(FIGURES_TTL_MS + 100);

// promtool lints names too; prom-client's default Node metrics have three gauges named *_total
// (nodejs_active_handles_total, …), which every Node exporter exposes under those names.
const PROM_CLIENT_LINT = /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

describe('the exposition parser of this test', () => {
  it('refuses what Prometheus or promtool would', () => {
    assert.equal(parseExposition('# HELP a_total x\n# TYPE a_total counter\na_total{k="v\\"q"} 1\n').get('a_total')?.samples[0]?.labels.k, 'v"q');
    const cases: [string, RegExp][] = [
      ['# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n', /duplicate series/],
      ['a_total 1\n', /outside its family/],
      ['# HELP a x\n# TYPE a gauge\na{b="1} 1\n', /unterminated/],
      ['# HELP a x\n# TYPE a gauge\na{1b="1"} 1\n', /label name/],
      ['# HELP a x\n# TYPE a gauge\na one\n', /bad value/],
      ['# HELP a x\na 1\n', /samples before TYPE/],
      ['# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\na 1\n', /outside its family/],
      ['# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', /cumulative/],
      ['# HELP h x\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n', /last bucket is \+Inf/],
      ['# HELP c x\n# TYPE c counter\nc 1\n', /ends in _total/],
    ];
    for (const [text, why] of cases) assert.throws(() => parseExposition(text), why, text);
  });
});

describe('GET /metrics on PGlite', () => {
  let t: TestApp;
  const clock = new TestClock();
  before(async () => {
    t = await makeApp({ clock });
  });
  after(async () => {
    await t?.close().catch(() => undefined);
  });

  // First: the keys count is cached 30 s, so the first scrape of this app must be this one.
  it('counts idempotency keys past the retention (7 days unless configured)', async () => {
    const id = uid('mk');
    await createCampaign(t, id, 10);
    for (let i = 0; i < 3; i++) assert.equal(await claim(t, id, `k${i}`, `key-${i}`), 201);
    clock.set(Date.now() + 8 * 24 * 3600 * 1000);
    try {
      const f = (await scrape(t)).families;
      assert.equal(value(f, 'allot_idempotency_keys_awaiting_purge'), 3);
    } finally {
      clock.set(null);
    }
  });

  it('counts transfer orders waiting in each open state, with the age of the oldest', async () => {
    let f = (await scrape(t)).families;
    for (const state of ['received', 'executing', 'unknown']) {
      assert.equal(value(f, 'allot_transfers_open', { state }), 0, state);
      assert.equal(value(f, 'allot_transfer_oldest_open_seconds', { state }), 0, state);
    }
    await waitingOrders(t, 90_000);
    await pastCache();
    f = (await scrape(t)).families;
    assert.equal(value(f, 'allot_transfers_open', { state: 'received' }), 0);
    assert.equal(value(f, 'allot_transfers_open', { state: 'executing' }), 1);
    assert.equal(value(f, 'allot_transfers_open', { state: 'unknown' }), 1);
    const age = value(f, 'allot_transfer_oldest_open_seconds', { state: 'unknown' }) ?? 0;
    assert.ok(age >= 89 && age < 300, `oldest unknown order ${age} s`);
    assert.equal(value(f, 'allot_transfer_oldest_open_seconds', { state: 'received' }), 0);
  });

  it('is a valid exposition with Node default metrics under their standard names and build info', async () => {
    const { text, families } = await scrape(t);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_version_info']) {
      assert.ok(families.has(name), `${name} is exported`);
    }
    assert.doesNotMatch(text, /allot_process_/, 'no prefixed default metrics');
    for (const name of families.keys()) assert.match(name, /^(allot_|process_|nodejs_)/, `${name} is allot's or a Node default`);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(value(families, 'allot_build_info', { version: pkg.version, node: process.version, dialect: 'pglite' }), 1);
    assert.equal(families.get('allot_build_info')?.samples.length, 1);
    assert.equal(value(families, 'allot_ready'), 1);
    assert.equal(value(families, 'allot_backend_up', { backend: 'database' }), 1);
    assert.equal(value(families, 'allot_backend_up', { backend: 'locks' }), 1);
    assert.equal(value(families, 'allot_db_pool_max_connections'), 1, 'PGlite is one session');
    assert.equal(families.get('allot_db_pool_connections')?.type, 'gauge');
    assert.equal(families.get('allot_db_query_duration_seconds')?.type, 'histogram');
    assert.equal(families.get('allot_claims_total')?.type, 'counter');
  });

  it('counts claims by result and strategy and moves the campaign gauges and statement timings', async () => {
    const id = uid('m');
    await createCampaign(t, id, 3);
    await pastCache();
    const before = (await scrape(t)).families;
    assert.equal(value(before, 'allot_campaign_stock', { campaign: id }), 3);
    assert.equal(value(before, 'allot_campaign_issued', { campaign: id }), 0);
    assert.equal(value(before, 'allot_campaign_remaining', { campaign: id }), 3);
    const issuedBefore = value(before, 'allot_claims_total', { result: 'issued', strategy: 'conditional' }) ?? 0;
    const queriesBefore = value(before, 'allot_db_query_duration_seconds_count', { outcome: 'ok' }) ?? 0;

    assert.deepEqual([await claim(t, id, 'a'), await claim(t, id, 'b'), await claim(t, id, 'a'), await claim(t, id, 'c'), await claim(t, id, 'd')], [201, 201, 409, 201, 409]);
    assert.equal(await claim(t, uid('missing'), 'a'), 404);
    await pastCache();
    const after = (await scrape(t)).families;
    assert.equal(value(after, 'allot_campaign_issued', { campaign: id }), 3);
    assert.equal(value(after, 'allot_campaign_remaining', { campaign: id }), 0);
    assert.equal(value(after, 'allot_campaign_stock', { campaign: id }), 3);
    assert.equal((value(after, 'allot_claims_total', { result: 'issued', strategy: 'conditional' }) ?? 0) - issuedBefore, 3);
    atLeast(after, 'allot_claims_total', { result: 'sold_out', strategy: 'conditional' }, 1);
    atLeast(after, 'allot_claims_total', { result: 'user_limit', strategy: 'conditional' }, 1);
    atLeast(after, 'allot_claims_total', { result: 'not_found', strategy: 'none' }, 1);
    atLeast(after, 'allot_db_query_duration_seconds_count', { outcome: 'ok' }, queriesBefore + 5 + 1);
    atLeast(after, 'allot_db_pool_acquire_seconds_count', {}, 1);
    assert.equal((value(after, 'allot_db_pool_connections', { state: 'in_use' }) ?? -1) + (value(after, 'allot_db_pool_connections', { state: 'idle' }) ?? -1), 1);
    assert.equal(value(after, 'allot_db_pool_waiting'), 0);
  });

  it('times lock holds (redis-lock strategy on in-process locks)', async () => {
    const id = uid('ml');
    await createCampaign(t, id, 5, { strategy: 'redis-lock' });
    const before = value((await scrape(t)).families, 'allot_lock_hold_seconds_count', { backend: 'memory' }) ?? 0;
    assert.equal(await claim(t, id, 'u1'), 201);
    assert.equal(await claim(t, id, 'u2'), 201);
    const f = (await scrape(t)).families;
    // Each claim holds at least its user's lock.
    atLeast(f, 'allot_lock_hold_seconds_count', { backend: 'memory' }, before + 2);
    atLeast(f, 'allot_lock_acquire_seconds_count', { backend: 'memory', fair: 'true' }, 2);
    atLeast(f, 'allot_claims_total', { result: 'issued', strategy: 'redis-lock' }, 2);
  });

  it('exports at most 100 active campaigns, most recent activity first, and counts them all', async () => {
    const old = uid('mold');
    await createCampaign(t, old, 10);
    const paused = uid('mpaused');
    await createCampaign(t, paused, 10);
    assert.equal((await t.app.inject({ method: 'POST', url: `/v1/campaigns/${paused}/pause`, headers: t.auth })).statusCode, 200);
    const ended = uid('mended');
    await createCampaign(t, ended, 10, { endsAt: new Date(Date.now() + 60_000).toISOString() });
    // 105 newer campaigns push `old` out of the newest 100; a claim brings it back in.
    for (let i = 0; i < CAMPAIGN_SERIES_LIMIT + 5; i++) await createCampaign(t, uid(`mbulk${i}`), 1);
    clock.set(Date.now() + 120_000); // `ended` has ended
    try {
      await pastCache();
      let f = (await scrape(t)).families;
      assert.equal(f.get('allot_campaign_stock')?.samples.length, CAMPAIGN_SERIES_LIMIT);
      assert.equal(f.get('allot_campaign_issued')?.samples.length, CAMPAIGN_SERIES_LIMIT);
      assert.equal(f.get('allot_campaign_remaining')?.samples.length, CAMPAIGN_SERIES_LIMIT);
      assert.equal(value(f, 'allot_campaign_stock', { campaign: old }), undefined, 'the oldest idle campaign is left out');
      assert.equal(value(f, 'allot_campaign_stock', { campaign: paused }), undefined, 'paused: not active');
      assert.equal(value(f, 'allot_campaign_stock', { campaign: ended }), undefined, 'ended: not active');
      const active = value(f, 'allot_campaigns_active') ?? 0;
      assert.ok(active >= CAMPAIGN_SERIES_LIMIT + 6, `all active campaigns are counted (${active})`);

      assert.equal(await claim(t, old, 'someone'), 201);
      await pastCache();
      f = (await scrape(t)).families;
      assert.equal(f.get('allot_campaign_stock')?.samples.length, CAMPAIGN_SERIES_LIMIT);
      assert.equal(value(f, 'allot_campaign_issued', { campaign: old }), 1, 'a claim makes it the most recently active');
      assert.equal(f.get('allot_campaign_stock')?.samples[0]?.labels.campaign, old, 'listed first');
    } finally {
      clock.set(null);
    }
  });

  it('passes `promtool check metrics` (Debian package prometheus)', { skip: promtool ? false : 'promtool not found (apt-get install prometheus)' }, async () => {
    const { text } = await scrape(t);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    const problems = `${r.stdout}${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
    assert.deepEqual(problems.filter((p) => !PROM_CLIENT_LINT.test(p)), [], 'promtool reports nothing but prom-client\'s three default gauges');
    // 0: clean; 3: lint findings only (a parse error is 1).
    assert.ok(r.status === 0 || r.status === 3, `promtool exit ${r.status}`);
  });

  it('reports the database down: allot_ready 0 like /readyz, campaign gauges left out', async () => {
    assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
    await t.service.db.destroy();
    await pastCache();
    const { families } = await scrape(t);
    assert.equal(value(families, 'allot_ready'), 0);
    assert.equal(value(families, 'allot_backend_up', { backend: 'database' }), 0);
    assert.equal(value(families, 'allot_backend_up', { backend: 'locks' }), 1);
    assert.equal(families.get('allot_campaign_stock')?.samples.length ?? 0, 0);
    atLeast(families, 'allot_metrics_source_errors_total', { source: 'campaigns' }, 1);
    assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503);
  });
});

// The pool figures and the scrape-time statements on the server databases (MariaDB's window
// function and LIMIT-in-subquery included), with Redis locks.
for (const d of dialects({ servers: true })) {
  describe(`GET /metrics on ${d.name}`, () => {
    let t: TestApp;
    before(async () => {
      t = await makeApp({ databaseUrl: d.url() });
    });
    after(async () => {
      await t?.close();
    });

    it('exports the pool, statement timings and campaign figures', async () => {
      const id = uid('ms');
      await createCampaign(t, id, 2);
      for (const u of ['a', 'b', 'c']) await claim(t, id, u);
      await pastCache();
      const { families } = await scrape(t);
      assert.equal(value(families, 'allot_build_info', { dialect: d.backend }), 1);
      assert.equal(value(families, 'allot_db_pool_max_connections'), 4, 'DB_POOL_SIZE of the test app');
      const open = (value(families, 'allot_db_pool_connections', { state: 'in_use' }) ?? 0) + (value(families, 'allot_db_pool_connections', { state: 'idle' }) ?? 0);
      assert.ok(open >= 1 && open <= 4, `open connections ${open}`);
      atLeast(families, 'allot_db_query_duration_seconds_count', { outcome: 'ok' }, 6);
      assert.equal(value(families, 'allot_campaign_issued', { campaign: id }), 2);
      assert.equal(value(families, 'allot_campaign_remaining', { campaign: id }), 0);
      atLeast(families, 'allot_campaigns_active', {}, 1);
      assert.ok(value(families, 'allot_idempotency_keys_awaiting_purge') !== undefined, 'the keys count runs on this dialect');
      // Open transfer orders (the database is shared with other test files: at least ours).
      await waitingOrders(t, 90_000);
      await pastCache();
      const f2 = (await scrape(t)).families;
      atLeast(f2, 'allot_transfers_open', { state: 'executing' }, 1);
      atLeast(f2, 'allot_transfers_open', { state: 'unknown' }, 1);
      atLeast(f2, 'allot_transfer_oldest_open_seconds', { state: 'unknown' }, 89);
      assert.equal(value(families, 'allot_ready'), 1);
    });
  });
}
