// Small helpers shared by the SQL stores: run a raw statement for its rows or its affected-row
// count, and the row a unit's stock lives in (a campaign's, or one lottery prize's).
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { StockUnit } from '../../ports/claim-store.ts';
import type { SqlFamily } from './connect.ts';

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

/**
 * The rows of `table` whose `prefix.col = prefix.value AND keyCol = k`, for each k of `keys`
 * (`cols` selected; `where` added to each lookup; `forUpdate` locks them, in the order of `keys`
 * on PostgreSQL, of keyCol on MySQL: pass them sorted). `keyIsUnique`: keyCol alone is the
 * primary key (claims.id), and the prefix is only checked on the row found.
 * PostgreSQL: one index probe per key (`unnest … CROSS JOIN LATERAL (… LIMIT 1)`). A campaign that
 * grew by tens of thousands of rows since the last ANALYZE looks empty to the planner, and the
 * same lookup written as `IN (…)`, `= ANY (…)` or a join may then be planned as a read of every
 * row of the campaign, filtered (50,000 rows for 3 keys: test/adapters/sql/stale-stats.test.ts).
 * A LATERAL subquery with LIMIT is not flattened into a join: each key is an equality lookup on
 * the primary key (with the campaign in it, the planner could still prefer another index that
 * starts with the campaign: hence keyIsUnique).
 * MySQL: an IN list (InnoDB looks each value up in the index).
 */
export function byKeys(family: SqlFamily, table: string, cols: readonly string[], prefix: { col: string; value: string }, keyCol: string, keys: readonly string[], opts: { where?: RawBuilder<unknown>; forUpdate?: boolean; keyIsUnique?: boolean } = {}): RawBuilder<unknown> {
  const t = sql.id(table);
  const where = opts.where ? sql` AND ${opts.where}` : sql``;
  const lock = opts.forUpdate ? sql` FOR UPDATE` : sql``;
  if (family === 'pg') {
    const outer = sql.join(cols.map((c) => sql`t.${sql.id(c)}`));
    if (opts.keyIsUnique) {
      const inner = sql.join([...new Set([...cols, prefix.col])].map((c) => sql.id(c)));
      return sql`SELECT ${outer} FROM unnest(${[...keys]}::text[]) WITH ORDINALITY AS x(k, n) CROSS JOIN LATERAL (
        SELECT ${inner} FROM ${t} WHERE ${sql.id(keyCol)} = x.k${where} LIMIT 1${lock}) AS t WHERE t.${sql.id(prefix.col)} = ${prefix.value} ORDER BY x.n`;
    }
    const inner = sql.join(cols.map((c) => sql.id(c)));
    return sql`SELECT ${outer} FROM unnest(${[...keys]}::text[]) WITH ORDINALITY AS x(k, n) CROSS JOIN LATERAL (
      SELECT ${inner} FROM ${t} WHERE ${sql.id(prefix.col)} = ${prefix.value} AND ${sql.id(keyCol)} = x.k${where} LIMIT 1${lock}) AS t ORDER BY x.n`;
  }
  const list = sql.join(keys.map((k) => sql`${k}`));
  return sql`SELECT ${sql.join(cols.map((c) => sql.id(c)))} FROM ${t} WHERE ${sql.id(prefix.col)} = ${prefix.value} AND ${sql.id(keyCol)} IN (${list})${where} ORDER BY ${sql.id(keyCol)}${lock}`;
}
