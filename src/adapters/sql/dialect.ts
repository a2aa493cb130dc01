// Everything that differs between the SQL families, in one object with declared capabilities:
// stores and migrations ask the dialect for a statement's text instead of branching on names.
import { sql, type RawBuilder } from 'kysely';
import type { SqlFamily } from './connect.ts';

export interface SqlCapabilities {
  /** INSERT/UPDATE … RETURNING */
  returning: boolean;
  /** how an insert meets an existing key: ON CONFLICT (PostgreSQL) or ON DUPLICATE KEY (MySQL) */
  onConflict: 'on-conflict' | 'on-duplicate-key';
  /** an upsert whose update half has its own WHERE guard (ON CONFLICT … DO UPDATE … WHERE) */
  guardedUpsert: boolean;
  /** SELECT … FOR UPDATE SKIP LOCKED */
  skipLocked: boolean;
  /** SAVEPOINT / ROLLBACK TO SAVEPOINT inside a transaction */
  savepoints: boolean;
  /** DELETE … ORDER BY … LIMIT (MySQL); PostgreSQL needs a subquery */
  deleteWithLimit: boolean;
  /** an UPDATE that changes nothing reports the rows it matched (PostgreSQL) rather than the rows it changed (MySQL) */
  affectedCountsMatched: boolean;
  /** data-modifying statements (INSERT/UPDATE … RETURNING) in WITH, so one statement can chain
   * guarded writes (PostgreSQL) */
  writableCte: boolean;
  /** UPDATE t1, t2 SET … WHERE …: one statement writing rows of several tables (MySQL) */
  multiTableUpdate: boolean;
}

export interface SqlDialect {
  readonly family: SqlFamily;
  readonly capabilities: Readonly<SqlCapabilities>;
  /** INSERT INTO table (cols) VALUES (…), changing nothing when `key` already exists. */
  insertIgnore(table: string, columns: readonly string[], values: readonly unknown[], key: readonly string[]): RawBuilder<unknown>;
  /** INSERT, or when `key` exists, set `update` columns to the inserted values. */
  upsert(table: string, columns: readonly string[], values: readonly unknown[], key: readonly string[], update: readonly string[]): RawBuilder<unknown>;
  /** DROP INDEX, which MySQL scopes to a table. */
  dropIndex(name: string, table: string): string;
  /** A 64-bit integer parameter, exact on every driver (sent as text, cast by the server: a
   * MySQL string in arithmetic would otherwise become a double). */
  int64(v: bigint): RawBuilder<unknown>;
  /** An expression read back as decimal text, so no driver turns a 64-bit value (or a SUM of
   * them) into a float. */
  int64Text(expr: string): RawBuilder<unknown>;
  /** Column types: ids compare bytewise (case-sensitive) on both families. */
  readonly types: { id: string; key: string; text: string; table: string };
}

function columnList(columns: readonly string[]): RawBuilder<unknown> {
  return sql.raw(columns.join(', '));
}

function valueList(values: readonly unknown[]): RawBuilder<unknown> {
  return sql.join(values.map((v) => sql`${v}`));
}

const pg: SqlDialect = {
  family: 'pg',
  capabilities: Object.freeze({ returning: true, onConflict: 'on-conflict', guardedUpsert: true, skipLocked: true, savepoints: true, deleteWithLimit: false, affectedCountsMatched: true, writableCte: true, multiTableUpdate: false }),
  insertIgnore(table, columns, values, key) {
    return sql`INSERT INTO ${sql.raw(table)} (${columnList(columns)}) VALUES (${valueList(values)}) ON CONFLICT (${columnList(key)}) DO NOTHING`;
  },
  upsert(table, columns, values, key, update) {
    const set = sql.raw(update.map((c) => `${c} = EXCLUDED.${c}`).join(', '));
    return sql`INSERT INTO ${sql.raw(table)} (${columnList(columns)}) VALUES (${valueList(values)}) ON CONFLICT (${columnList(key)}) DO UPDATE SET ${set}`;
  },
  dropIndex: (name) => `DROP INDEX ${name}`,
  int64: (v) => sql`CAST(${v.toString()} AS bigint)`,
  int64Text: (expr) => sql.raw(`CAST(${expr} AS text)`),
  types: { id: 'varchar(128) COLLATE "C"', key: 'varchar(255) COLLATE "C"', text: 'text', table: '' },
};

const mysql: SqlDialect = {
  family: 'mysql',
  capabilities: Object.freeze({ returning: false, onConflict: 'on-duplicate-key', guardedUpsert: false, skipLocked: true, savepoints: true, deleteWithLimit: true, affectedCountsMatched: false, writableCte: false, multiTableUpdate: true }),
  insertIgnore(table, columns, values, key) {
    // A no-op assignment rather than INSERT IGNORE, which would also swallow other errors.
    const first = key[0]!;
    return sql`INSERT INTO ${sql.raw(table)} (${columnList(columns)}) VALUES (${valueList(values)}) ON DUPLICATE KEY UPDATE ${sql.raw(first)} = ${sql.raw(first)}`;
  },
  upsert(table, columns, values, _key, update) {
    const set = sql.raw(update.map((c) => `${c} = VALUES(${c})`).join(', '));
    return sql`INSERT INTO ${sql.raw(table)} (${columnList(columns)}) VALUES (${valueList(values)}) ON DUPLICATE KEY UPDATE ${set}`;
  },
  dropIndex: (name, table) => `DROP INDEX ${name} ON ${table}`,
  int64: (v) => sql`CAST(${v.toString()} AS SIGNED)`,
  int64Text: (expr) => sql.raw(`CAST(${expr} AS CHAR)`),
  types: {
    id: 'varchar(128) CHARACTER SET ascii COLLATE ascii_bin',
    key: 'varchar(255) CHARACTER SET ascii COLLATE ascii_bin',
    text: 'mediumtext',
    table: ' ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin',
  },
};

export function sqlDialect(family: SqlFamily): SqlDialect {
  return family === 'pg' ? pg : mysql;
}
