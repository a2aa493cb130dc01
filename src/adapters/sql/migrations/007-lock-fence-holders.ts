// Who used each resource's highest fence (raiseFence): an equal fence is accepted again only from
// the same holder (the same lease retrying its transaction), never from another one, so two
// holders that were handed one fence (a lock failover that lost an increment) cannot both write.
// Rows written before this migration get the empty holder: an equal fence then needs a new lease.
import type { SqlDialect } from '../dialect.ts';

export const lockFenceHolders = {
  name: '007-lock-fence-holders',
  statements(dialect: SqlDialect): string[] {
    return [`ALTER TABLE lock_fences ADD COLUMN holder ${dialect.types.id} NOT NULL DEFAULT ''`];
  },
};
