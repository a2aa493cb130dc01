// The reads behind the scrape-time gauges (/metrics, the dashboard): each is one statement,
// bounded in the rows it returns or counts, and the callers cache it.
import { sql, type RawBuilder } from 'kysely';
import { guarded } from './translate.ts';
import { rows, type Db } from './exec.ts';

export interface CampaignFigures {
  id: string;
  name: string;
  kind: string;
  strategy: string;
  createdAt: number;
  /** a lottery's are its prizes' sums */
  stock: number;
  issued: number;
}

/** Active campaigns (not paused, started, not ended): the newest `limit` by creation, or those
 * among `ids`; with how many are active in all (null when `ids` is given). */
export function activeCampaigns(db: Db, nowMs: number, opts: { limit: number; ids?: string[] }): Promise<{ campaigns: CampaignFigures[]; activeTotal: number | null }> {
  return guarded(async () => {
    const active = sql`c.paused = 0 AND (c.starts_at IS NULL OR c.starts_at <= ${nowMs}) AND (c.ends_at IS NULL OR c.ends_at > ${nowMs})`;
    const prizeSum = (col: 'stock' | 'issued'): RawBuilder<unknown> =>
      sql`CASE WHEN c.kind = 'lottery' THEN (SELECT COALESCE(SUM(p.${sql.raw(col)}), 0) FROM prizes p WHERE p.campaign_id = c.id) ELSE c.${sql.raw(col)} END`;
    const cols = sql`c.id, c.name, c.kind, c.strategy, c.created_at, ${prizeSum('stock')} AS stock, ${prizeSum('issued')} AS issued`;
    const r = opts.ids
      ? opts.ids.length === 0
        ? []
        : await rows(db, sql`SELECT ${cols} FROM campaigns c WHERE ${active} AND c.id IN (${sql.join(opts.ids)}) LIMIT ${opts.limit}`)
      : await rows(db, sql`SELECT ${cols}, COUNT(*) OVER () AS active_total FROM campaigns c WHERE ${active} ORDER BY c.created_at DESC, c.id LIMIT ${opts.limit}`);
    const campaigns = r.map((x) => ({
      id: String(x.id),
      name: String(x.name),
      kind: String(x.kind),
      strategy: String(x.strategy),
      createdAt: Number(x.created_at),
      stock: Number(x.stock),
      issued: Number(x.issued),
    }));
    return { campaigns, activeTotal: opts.ids ? null : Number(r[0]?.active_total ?? 0) };
  });
}

/** Idempotency keys a purge of keys created before `beforeMs` would delete (the same condition
 * as SqlIdempotencyStore.purge), counted up to `cap` so a long-unpurged table costs no more. */
export function keysAwaitingPurge(db: Db, beforeMs: number, nowMs: number, cap: number): Promise<number> {
  return guarded(async () => {
    const r = await rows(db, sql`SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM idempotency_keys
      WHERE created_at < ${beforeMs} AND (state = 'done' OR locked_until <= ${nowMs}) LIMIT ${cap}) k`);
    return Number(r[0]?.n ?? 0);
  });
}

/** The transfer states an order can wait in (received, executing, unknown). */
export const OPEN_TRANSFER_STATES = ['received', 'executing', 'unknown'] as const;

export interface OpenTransfers {
  state: (typeof OPEN_TRANSFER_STATES)[number];
  /** orders in the state, counted up to the cap */
  count: number;
  /** the earliest updated_at (epoch ms) among those counted; null when none */
  oldestUpdatedAt: number | null;
}

/** Transfer orders waiting in each open state, each counted up to `cap` (the state index's
 * range, so a backlog costs no more than the cap) with the oldest last change among them. */
export function openTransfers(db: Db, cap: number): Promise<OpenTransfers[]> {
  return guarded(async () => {
    const out: OpenTransfers[] = [];
    for (const state of OPEN_TRANSFER_STATES) {
      const r = await rows(db, sql`SELECT COUNT(*) AS n, MIN(updated_at) AS oldest FROM (SELECT updated_at FROM transfers WHERE state = ${state} ORDER BY order_id LIMIT ${cap}) t`);
      const oldest = r[0]?.oldest;
      out.push({ state, count: Number(r[0]?.n ?? 0), oldestUpdatedAt: oldest === null || oldest === undefined ? null : Number(oldest) });
    }
    return out;
  });
}
