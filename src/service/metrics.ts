// Prometheus metrics of one service instance, in a registry of its own (never the global one,
// so several instances in one process, as in tests, do not collide). Counters and histograms
// move as things happen; the gauges that need the database (campaign figures, keys awaiting
// purge, readiness) are read when scraped, from a short cache, so scrapes and dashboards cannot
// add more than a few cheap statements a second whatever their number. docs/operations.md,
// "Metrics", lists every metric.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { SqlConnection } from '../adapters/sql/connect.ts';
import { activeCampaigns, keysAwaitingPurge, openTransfers, type CampaignFigures, type OpenTransfers } from '../adapters/sql/sql-metrics.ts';
import type { ClaimResult } from './claim-engine.ts';

/** At most this many campaigns get series of their own (see campaignFigures). */
/** redis-atomic fast mode's write-behind figures (AllotService.redisAtomicFast()). */
type FastStats = { pending: number; lost: number; replayed: number; waited: number };

export const CAMPAIGN_SERIES_LIMIT = 100;
/** How long a scrape-time database read is reused. */
export const FIGURES_TTL_MS = 1_000;
export const KEYS_TTL_MS = 30_000;
/** A scrape-time read that takes longer is given up (its gauges are left out of that scrape). */
export const SOURCE_TIMEOUT_MS = 2_000;
/** keys awaiting purge are counted up to this many */
export const KEYS_COUNT_CAP = 100_000;
/** open transfer orders are counted up to this many per state */
export const TRANSFERS_COUNT_CAP = 10_000;
/** The age `allot keys purge` deletes by default, used unless the service says otherwise. */
export const DEFAULT_KEY_RETENTION_MS = 7 * 24 * 3600 * 1000;
/** Campaigns whose last claim on this instance is remembered (oldest forgotten first). */
const ACTIVITY_LIMIT = 1_000;

const SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const DB_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const VERSION = (() => {
  try {
    // src/service/ and dist/service/ both sit two levels below the package root.
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();

/** What the scrape-time gauges read: the service's backends. */
export interface MetricSources {
  dialect: string;
  conn: Pick<SqlConnection, 'db' | 'stats'>;
  /** the lock backend's kind ('redis', 'redis-sentinel', …, 'in-process', 'none') */
  locksKind: string;
  /** LOCKS_DOWN: with 'degrade' (the default) an instance whose lock backend is down is still
   * ready (/readyz answers 200 "degraded"); with 'refuse' it is not */
  locksDown?: 'degrade' | 'refuse';
  pingDatabase(): Promise<void>;
  pingLocks(): Promise<void>;
  /** the age past which idempotency keys are due for purging */
  keyRetentionMs?: () => number;
  /** redis-atomic `fast` mode's write-behind (null: not in fast mode) */
  redisAtomicFast?: () => FastStats | null;
  now?: () => number;
}

export interface Health {
  ready: boolean;
  database: 'up' | 'down';
  locks: 'up' | 'down';
  /** epoch ms of the check */
  checkedAt: number;
}

export interface CampaignsView {
  /** active campaigns in all (those shown are at most CAMPAIGN_SERIES_LIMIT of them); null when unknown */
  activeTotal: number | null;
  items: (CampaignFigures & { remaining: number })[];
  /** why the figures could not be read, when they could not */
  error?: string;
}

export interface HistogramView {
  count: number;
  sum: number;
  /** [upper bound in seconds, cumulative count], +Inf last as null */
  buckets: [number | null, number][];
}

/** What GET /dashboard/snapshot returns: cumulative counters (the page derives rates from two
 * snapshots) and the current gauges. */
export interface DashboardSnapshot {
  time: number;
  instance: { version: string; node: string; dialect: string; locks: string; startedAt: number; uptimeSeconds: number };
  health: Health;
  campaigns: CampaignsView;
  claims: { byResult: Record<string, number>; byStrategy: Record<string, number>; duration: HistogramView };
  db: { pool: { max: number; open: number; inUse: number; idle: number; waiting: number } | null; query: HistogramView; queryErrors: number; acquire: HistogramView };
  locks: { acquire: HistogramView; wait: HistogramView; hold: HistogramView; timeouts: number; losses: number; renewFailures: number };
  keys: { awaitingPurge: number | null; cappedAt: number; retentionMs: number };
  http: { byStatusClass: Record<string, number> };
}

export interface ClaimInfo {
  campaignId: string;
  /** the campaign's strategy; null when the claim did not get that far (campaign not found) */
  strategy: string | null;
}

export interface ServiceMetrics {
  registry: Registry;
  observeClaim(result: ClaimResult, durationMs: number, info?: ClaimInfo): void;
  observeHttp(method: string, route: string, status: number, durationMs: number): void;
  /** a transfer order reached a state */
  observeTransfer(state: string): void;
  /** a background payout task (executor, recovery sweep) failed */
  observePayoutError(): void;
  /** Connects the scrape-time gauges to the service's backends (once, when the service opens). */
  bind(sources: MetricSources): void;
  /** Readiness as /readyz decides it (every backend answers), cached FIGURES_TTL_MS. */
  health(): Promise<Health>;
  /** The campaign figures of allot_campaign_*, cached FIGURES_TTL_MS. */
  campaigns(): Promise<CampaignsView>;
  snapshot(): Promise<DashboardSnapshot>;
}

/** A value read at most once per ttl (a failure too: an outage is not retried by every scrape),
 * shared by concurrent callers, each of whom gives up after SOURCE_TIMEOUT_MS. */
function cached<T>(ttlMs: number, read: () => Promise<T>): () => Promise<T> {
  let last: { p: Promise<T>; at: number } | null = null;
  let inflight: Promise<T> | null = null;
  return () => {
    if (last && performance.now() - last.at < ttlMs) return last.p;
    if (!inflight) {
      const p = read();
      inflight = p;
      p.catch(() => undefined).finally(() => {
        last = { p, at: performance.now() };
        inflight = null;
      });
    }
    return withTimeout(inflight, SOURCE_TIMEOUT_MS);
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function createMetrics(): ServiceMetrics {
  const registry = new Registry();
  const registers = [registry];
  // Node's own metrics under their standard names (process_cpu_seconds_total, nodejs_*), as
  // every Node dashboard expects them.
  collectDefaultMetrics({ register: registry });
  const startedAt = Date.now();
  let sources: MetricSources | null = null;
  const lastActivity = new Map<string, number>();

  const claims = new Counter({
    name: 'allot_claims_total',
    help: 'Claims by result (issued, or refused by reason: sold_out, user_limit, not_active, not_found, replayed, idempotency_conflict, unavailable, error) and campaign strategy (none when the campaign was not found).',
    labelNames: ['result', 'strategy'],
    registers,
  });
  const claimSeconds = new Histogram({ name: 'allot_claim_duration_seconds', help: 'Time to decide one claim, by result.', labelNames: ['result'], buckets: SECONDS_BUCKETS, registers });
  const http = new Histogram({ name: 'allot_http_request_duration_seconds', help: 'HTTP requests by method, route and status code.', labelNames: ['method', 'route', 'status'], buckets: SECONDS_BUCKETS, registers });
  const transfers = new Counter({
    name: 'allot_transfer_transitions_total',
    help: 'Transfer orders reaching a state on this instance (received, executing, succeeded, failed, unknown). Orders waiting for a person: GET /v1/transfers?state=unknown.',
    labelNames: ['state'],
    registers,
  });
  const payoutErrors = new Counter({ name: 'allot_payout_background_errors_total', help: 'Errors in the transfer executor or its recovery sweep (each is logged; the order is retried by the next sweep).', registers });

  const query = new Histogram({ name: 'allot_db_query_duration_seconds', help: 'Duration of each SQL statement (BEGIN and COMMIT included), from sending it to its answer; outcome ok or error.', labelNames: ['outcome'], buckets: DB_BUCKETS, registers });
  const acquire = new Histogram({ name: 'allot_db_pool_acquire_seconds', help: 'Time a query or transaction waited for a pooled connection (PGlite: for its one session).', buckets: DB_BUCKETS, registers });
  new Gauge({
    name: 'allot_db_pool_connections',
    help: 'Pooled database connections by state: in_use (checked out by a query or transaction) or idle (open, free).',
    labelNames: ['state'],
    registers,
    collect() {
      const p = sources?.conn.stats?.pool();
      if (!p) return;
      this.set({ state: 'in_use' }, p.inUse);
      this.set({ state: 'idle' }, Math.max(0, p.open - p.inUse));
    },
  });
  new Gauge({
    name: 'allot_redis_atomic_writebehind_pending',
    help: 'redis-atomic fast mode: claims answered 201 and not yet written to SQL by this instance.',
    registers,
    collect() {
      const f = sources?.redisAtomicFast?.();
      if (f) this.set(f.pending);
    },
  });
  // Counters that mirror the fast mode's own totals at each scrape.
  const fastTotal = (name: string, help: string, pick: (f: FastStats) => number) => new Counter({
    name,
    help,
    registers,
    collect() {
      const f = sources?.redisAtomicFast?.();
      if (!f) return;
      this.reset();
      this.inc(pick(f));
    },
  });
  fastTotal('allot_redis_atomic_lost_acks_total', 'redis-atomic fast mode: claims answered 201 that SQL then refused (Redis had handed out a unit, a count or a key SQL did not have); each is an acknowledged claim lost.', (f) => f.lost);
  fastTotal('allot_redis_atomic_writebehind_full_total', 'redis-atomic fast mode: claims that waited for room because this instance already had ALLOT_REDIS_ATOMIC_WRITE_BEHIND_MAX claims answered and not yet in SQL (SQL does not keep up with Redis).', (f) => f.waited);
  fastTotal('allot_redis_atomic_replayed_total', 'redis-atomic fast mode: write-behind entries of dead instances this instance replayed into SQL.', (f) => f.replayed);
  new Gauge({
    name: 'allot_db_pool_waiting',
    help: 'Queries or transactions waiting for a pooled connection now.',
    registers,
    collect() {
      const p = sources?.conn.stats?.pool();
      if (p) this.set(p.waiting);
    },
  });
  new Gauge({
    name: 'allot_db_pool_max_connections',
    help: 'Connections the pool may open (DB_POOL_SIZE; 1 for PGlite).',
    registers,
    collect() {
      const p = sources?.conn.stats?.pool();
      if (p) this.set(p.max);
    },
  });
  const buildInfo = new Gauge({ name: 'allot_build_info', help: 'Always 1; the labels say which allot, Node and database dialect this instance runs.', labelNames: ['version', 'node', 'dialect'], registers });
  const refreshErrors = new Counter({
    name: 'allot_metrics_source_errors_total',
    help: 'Scrape-time reads (campaigns, keys) that failed or timed out; their gauges were left out of that scrape.',
    labelNames: ['source'],
    registers,
    // The reads of this scrape count in this scrape (they are cached: no extra statement).
    async collect() {
      await Promise.all([campaigns(), keys(), openOrders()]);
    },
  });

  const now = () => sources?.now?.() ?? Date.now();
  const retentionMs = () => sources?.keyRetentionMs?.() ?? DEFAULT_KEY_RETENTION_MS;

  const health = cached(FIGURES_TTL_MS, async (): Promise<Health> => {
    if (!sources) return { ready: false, database: 'down', locks: 'down', checkedAt: now() };
    const s = sources;
    const up = (ping: () => Promise<void>) => withTimeout(ping(), SOURCE_TIMEOUT_MS).then(() => 'up' as const, () => 'down' as const);
    const [database, locks] = await Promise.all([up(() => s.pingDatabase()), up(() => s.pingLocks())]);
    return { ready: database === 'up' && (locks === 'up' || (s.locksDown ?? 'degrade') === 'degrade'), database, locks, checkedAt: now() };
  });

  // The campaigns with series: active ones, most recent activity first, where activity is the
  // last claim this instance saw or else the campaign's creation; at most CAMPAIGN_SERIES_LIMIT.
  const readCampaigns = cached(FIGURES_TTL_MS, async (): Promise<CampaignsView> => {
    if (!sources) return { activeTotal: null, items: [] };
    const db = sources.conn.db;
    const t = now();
    const newest = await activeCampaigns(db, t, { limit: CAMPAIGN_SERIES_LIMIT });
    const have = new Set(newest.campaigns.map((c) => c.id));
    const recent = [...lastActivity.keys()].reverse().slice(0, CAMPAIGN_SERIES_LIMIT).filter((id) => !have.has(id));
    const more = recent.length > 0 ? (await activeCampaigns(db, t, { limit: CAMPAIGN_SERIES_LIMIT, ids: recent })).campaigns : [];
    const activity = (c: CampaignFigures) => Math.max(lastActivity.get(c.id) ?? 0, c.createdAt);
    const items = [...newest.campaigns, ...more]
      .sort((a, b) => activity(b) - activity(a) || (a.id < b.id ? -1 : 1))
      .slice(0, CAMPAIGN_SERIES_LIMIT)
      .map((c) => ({ ...c, remaining: Math.max(0, c.stock - c.issued) }));
    return { activeTotal: newest.activeTotal, items };
  });
  const campaigns = async (): Promise<CampaignsView> => {
    try {
      return await readCampaigns();
    } catch (err) {
      refreshErrors.inc({ source: 'campaigns' });
      return { activeTotal: null, items: [], error: (err as Error).message };
    }
  };

  const readKeys = cached(KEYS_TTL_MS, async (): Promise<number | null> => {
    if (!sources) return null;
    const t = now();
    return keysAwaitingPurge(sources.conn.db, t - retentionMs(), t, KEYS_COUNT_CAP);
  });
  const keys = async (): Promise<number | null> => {
    try {
      return await readKeys();
    } catch {
      refreshErrors.inc({ source: 'keys' });
      return null;
    }
  };

  const readTransfers = cached(FIGURES_TTL_MS, async (): Promise<OpenTransfers[] | null> => (sources ? openTransfers(sources.conn.db, TRANSFERS_COUNT_CAP) : null));
  const openOrders = async (): Promise<OpenTransfers[] | null> => {
    try {
      return await readTransfers();
    } catch {
      refreshErrors.inc({ source: 'transfers' });
      return null;
    }
  };
  new Gauge({
    name: 'allot_transfers_open',
    help: `Transfer orders waiting in a state, across all instances (counted up to ${TRANSFERS_COUNT_CAP} per state): received (not yet sent), executing (at the rail), unknown (waiting for a person: allot transfers list --state unknown).`,
    labelNames: ['state'],
    registers,
    async collect() {
      this.reset();
      for (const t of (await openOrders()) ?? []) this.set({ state: t.state }, t.count);
    },
  });
  new Gauge({
    name: 'allot_transfer_oldest_open_seconds',
    help: `Seconds since the oldest order waiting in a state last changed state (0 when none waits; among the first ${TRANSFERS_COUNT_CAP} by order id when more wait): an executing order far past the rail timeout, or any unknown order, needs a look.`,
    labelNames: ['state'],
    registers,
    async collect() {
      this.reset();
      const t0 = now();
      for (const t of (await openOrders()) ?? []) this.set({ state: t.state }, t.oldestUpdatedAt === null ? 0 : Math.max(0, (t0 - t.oldestUpdatedAt) / 1000));
    },
  });

  // One gauge per figure; all three read the same cached campaign list.
  const campaignGauge = (name: string, help: string, pick: (c: CampaignsView['items'][number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['campaign'],
      registers,
      async collect() {
        this.reset();
        for (const c of (await campaigns()).items) this.set({ campaign: c.id }, pick(c));
      },
    });
  campaignGauge('allot_campaign_stock', `Stock of each active campaign (a lottery: the sum over its prizes); at most ${CAMPAIGN_SERIES_LIMIT} campaigns, most recent activity first.`, (c) => c.stock);
  campaignGauge('allot_campaign_issued', 'Units issued so far, per active campaign (same campaigns as allot_campaign_stock).', (c) => c.issued);
  campaignGauge('allot_campaign_remaining', 'Stock minus issued, per active campaign (same campaigns as allot_campaign_stock).', (c) => c.remaining);
  new Gauge({
    name: 'allot_campaigns_active',
    help: `Active campaigns (not paused, started, not ended) in all; when above ${CAMPAIGN_SERIES_LIMIT}, only ${CAMPAIGN_SERIES_LIMIT} have allot_campaign_* series.`,
    registers,
    async collect() {
      this.reset();
      const v = await campaigns();
      if (v.activeTotal !== null) this.set(v.activeTotal);
    },
  });
  new Gauge({
    name: 'allot_idempotency_keys_awaiting_purge',
    help: `Idempotency keys older than the retention that a purge would delete (counted up to ${KEYS_COUNT_CAP}).`,
    registers,
    async collect() {
      this.reset();
      const n = await keys();
      if (n !== null) this.set(n);
    },
  });
  new Gauge({
    name: 'allot_ready',
    help: '1 when GET /readyz answers 200 (the database answers, and the lock backend does or LOCKS_DOWN=degrade), else 0.',
    registers,
    async collect() {
      this.set((await health()).ready ? 1 : 0);
    },
  });
  new Gauge({
    name: 'allot_backend_up',
    help: 'Whether a backend answers: database, locks (the LOCKS_URL backend; always 1 for in-process locks).',
    labelNames: ['backend'],
    registers,
    async collect() {
      const h = await health();
      this.set({ backend: 'database' }, h.database === 'up' ? 1 : 0);
      this.set({ backend: 'locks' }, h.locks === 'up' ? 1 : 0);
    },
  });

  const metric = (name: string) => registry.getSingleMetric(name) as { get(): Promise<MetricObjectWithValues<MetricValue<string>>> } | undefined;
  const histogramView = async (name: string): Promise<HistogramView> => {
    const m = await metric(name)?.get();
    const view: HistogramView = { count: 0, sum: 0, buckets: [] };
    if (!m) return view;
    const byLe = new Map<string, number>();
    for (const v of m.values) {
      const n = (v as { metricName?: string }).metricName ?? '';
      if (n.endsWith('_count')) view.count += v.value;
      else if (n.endsWith('_sum')) view.sum += v.value;
      else if (n.endsWith('_bucket')) byLe.set(String(v.labels.le), (byLe.get(String(v.labels.le)) ?? 0) + v.value);
    }
    view.buckets = [...byLe].map(([le, n]): [number | null, number] => [le === '+Inf' ? null : Number(le), n]).sort((a, b) => (a[0] ?? Infinity) - (b[0] ?? Infinity));
    return view;
  };
  const counterBy = async (name: string, label: string | null): Promise<Record<string, number>> => {
    const out: Record<string, number> = {};
    for (const v of (await metric(name)?.get())?.values ?? []) {
      const k = label === null ? 'total' : String(v.labels[label] ?? '');
      out[k] = (out[k] ?? 0) + v.value;
    }
    return out;
  };

  return {
    registry,
    observeTransfer(state) {
      transfers.inc({ state });
    },
    observePayoutError() {
      payoutErrors.inc();
    },
    observeClaim(result, durationMs, info) {
      claims.inc({ result, strategy: info?.strategy ?? 'none' });
      claimSeconds.observe({ result }, durationMs / 1000);
      if (info && info.strategy !== null) {
        lastActivity.delete(info.campaignId);
        lastActivity.set(info.campaignId, now());
        if (lastActivity.size > ACTIVITY_LIMIT) lastActivity.delete(lastActivity.keys().next().value!);
      }
    },
    observeHttp(method, route, status, durationMs) {
      http.observe({ method, route, status: String(status) }, durationMs / 1000);
    },
    bind(s) {
      sources = s;
      buildInfo.reset();
      buildInfo.set({ version: VERSION, node: process.version, dialect: s.dialect }, 1);
      if (s.conn.stats) {
        s.conn.stats.onQuery = (ms, failed) => query.observe({ outcome: failed ? 'error' : 'ok' }, ms / 1000);
        s.conn.stats.onAcquire = (ms) => acquire.observe(ms / 1000);
      }
    },
    health,
    campaigns,
    async snapshot() {
      const [h, c, k] = await Promise.all([health(), campaigns(), keys()]);
      const p = sources?.conn.stats?.pool() ?? null;
      const httpByClass: Record<string, number> = {};
      for (const v of (await metric('allot_http_request_duration_seconds')?.get())?.values ?? []) {
        if (!String((v as { metricName?: string }).metricName).endsWith('_count')) continue;
        const cls = `${String(v.labels.status ?? '?').charAt(0)}xx`;
        httpByClass[cls] = (httpByClass[cls] ?? 0) + v.value;
      }
      const queryErrors = (await metric('allot_db_query_duration_seconds')?.get())?.values
        .filter((v) => String((v as { metricName?: string }).metricName).endsWith('_count') && v.labels.outcome === 'error')
        .reduce((a, v) => a + v.value, 0) ?? 0;
      return {
        time: now(),
        instance: { version: VERSION, node: process.version, dialect: sources?.dialect ?? 'unknown', locks: sources?.locksKind ?? 'unknown', startedAt, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) },
        health: h,
        campaigns: c,
        claims: {
          byResult: await counterBy('allot_claims_total', 'result'),
          byStrategy: await counterBy('allot_claims_total', 'strategy'),
          duration: await histogramView('allot_claim_duration_seconds'),
        },
        db: {
          pool: p ? { max: p.max, open: p.open, inUse: p.inUse, idle: Math.max(0, p.open - p.inUse), waiting: p.waiting } : null,
          query: await histogramView('allot_db_query_duration_seconds'),
          queryErrors,
          acquire: await histogramView('allot_db_pool_acquire_seconds'),
        },
        locks: {
          acquire: await histogramView('allot_lock_acquire_seconds'),
          wait: await histogramView('allot_lock_wait_seconds'),
          hold: await histogramView('allot_lock_hold_seconds'),
          timeouts: (await counterBy('allot_lock_timeouts_total', null)).total ?? 0,
          losses: (await counterBy('allot_lock_losses_total', null)).total ?? 0,
          renewFailures: (await counterBy('allot_lock_renew_failures_total', null)).total ?? 0,
        },
        keys: { awaitingPurge: k, cappedAt: KEYS_COUNT_CAP, retentionMs: retentionMs() },
        http: { byStatusClass: httpByClass },
      };
    },
  };
}
