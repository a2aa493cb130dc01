// Fencing state for the lock library: durable epochs (SqlFenceAnchor) and the highest fence
// seen per resource (raiseFence). Fences are DECIMAL(39,0): with the Redis TIME anchor they
// exceed 64 bits (epoch in ms << 40).
import type { SqlDialect } from '../dialect.ts';

export const lockFences = {
  name: '002-lock-fences',
  statements(dialect: SqlDialect): string[] {
    const t = dialect.types;
    return [
      `CREATE TABLE lock_epochs (
        name ${t.id} NOT NULL PRIMARY KEY,
        epoch bigint NOT NULL,
        CONSTRAINT lock_epochs_positive CHECK (epoch > 0)
      )${t.table}`,
      `CREATE TABLE lock_fences (
        resource ${t.key} NOT NULL PRIMARY KEY,
        fence decimal(39,0) NOT NULL
      )${t.table}`,
    ];
  },
};
