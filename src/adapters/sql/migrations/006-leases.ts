// Named leases for background work that one instance at a time should do (the scheduled purge
// of idempotency keys): a row per job, taken with a guarded update (or the first insert), held
// by one holder until `expires_at` (ms since the epoch).
import type { SqlDialect } from '../dialect.ts';

export const leases = {
  name: '006-leases',
  statements(dialect: SqlDialect): string[] {
    const t = dialect.types;
    return [
      `CREATE TABLE allot_leases (
        name ${t.id} NOT NULL PRIMARY KEY,
        holder varchar(64) NOT NULL,
        expires_at bigint NOT NULL,
        taken bigint NOT NULL
      )${t.table}`,
    ];
  },
};
