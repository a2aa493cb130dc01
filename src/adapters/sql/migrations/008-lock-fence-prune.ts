// Bounded fencing state (pruneFences): when each lock_fences row was last raised (used_at, ms since
// the epoch, indexed for the prune's scan) and the prune floor: the highest fence of every row ever
// pruned. A resource without a row accepts only fences above the floor, so a stale holder of a
// pruned resource stays refused. Rows written before this migration count as unused since 1970.
import type { SqlDialect } from '../dialect.ts';

export const lockFencePrune = {
  name: '008-lock-fence-prune',
  statements(dialect: SqlDialect): string[] {
    const t = dialect.types;
    return [
      `ALTER TABLE lock_fences ADD COLUMN used_at bigint NOT NULL DEFAULT 0`,
      `CREATE INDEX lock_fences_used_at ON lock_fences (used_at)`,
      `CREATE TABLE lock_fence_floor (
        name ${t.id} NOT NULL PRIMARY KEY,
        floor decimal(39,0) NOT NULL
      )${t.table}`,
      `INSERT INTO lock_fence_floor (name, floor) VALUES ('default', 0)`,
    ];
  },
};
