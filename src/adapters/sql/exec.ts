// Small helpers shared by the SQL stores: run a raw statement for its rows or its affected-row
// count, and the row a unit's stock lives in (a campaign's, or one lottery prize's).
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { StockUnit } from '../../ports/claim-store.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Db = Kysely<any> | Transaction<any>;
export type Row = Record<string, unknown>;

export async function rows(db: Db, q: RawBuilder<unknown>): Promise<Row[]> {
  return (await q.execute(db)).rows as Row[];
}

export async function affected(db: Db, q: RawBuilder<unknown>): Promise<number> {
  return Number((await q.execute(db)).numAffectedRows ?? 0n);
}

/** The row a unit's stock lives in: the campaign's, or one prize's. */
export function stockTarget(u: StockUnit): { table: RawBuilder<unknown>; where: RawBuilder<unknown> } {
  return u.prizeId === null
    ? { table: sql.raw('campaigns'), where: sql`id = ${u.campaignId}` }
    : { table: sql.raw('prizes'), where: sql`campaign_id = ${u.campaignId} AND id = ${u.prizeId}` };
}
