// The `redis-atomic` strategy's leases (issue #9): Redis only issues units that SQL granted it in
// blocks. `campaigns.leased` counts the units granted to open leases and not yet claimed, so that
// issued + leased <= stock; each instance's block is a `redis_leases` row whose fence is bumped
// whenever it is closed or reclaimed, so a claim written under a stale lease is refused.
import type { MigrationOptions } from './index.ts';
import type { SqlDialect } from '../dialect.ts';

export const redisAtomicLeases = {
  name: '009-redis-atomic-leases',
  statements(dialect: SqlDialect, opts: MigrationOptions = {}): string[] {
    const t = dialect.types;
    return [
      'ALTER TABLE campaigns ADD COLUMN leased bigint NOT NULL DEFAULT 0',
      // The race lab's schema leaves the stock backstops out (see 001-initial).
      ...(opts.stockBackstop === false ? [] : ['ALTER TABLE campaigns ADD CONSTRAINT campaigns_leased_within_stock CHECK (leased >= 0 AND issued + leased <= stock)']),
      `CREATE TABLE redis_leases (
        id varchar(64) NOT NULL PRIMARY KEY,
        campaign_id ${t.id} NOT NULL,
        fence bigint NOT NULL,
        granted bigint NOT NULL DEFAULT 0,
        used bigint NOT NULL DEFAULT 0,
        state varchar(8) NOT NULL,
        expires_at bigint NOT NULL,
        created_at bigint NOT NULL,
        CONSTRAINT redis_leases_used_within_granted CHECK (used >= 0 AND used <= granted)
      )${t.table}`,
      'CREATE INDEX redis_leases_campaign_state ON redis_leases (campaign_id, state)',
    ];
  },
};
