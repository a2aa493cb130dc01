// The strategy catalogue (issue #6): a version column for the optimistic strategy, and the
// unique index on claims (campaign_id, idem_key) made plain. That index outlived purged keys,
// so a key reused after its retention failed with a duplicate; at most one claim per key is
// guarded by the key row itself (its owner-checked completion commits with the claim).
import type { SqlDialect } from '../dialect.ts';

export const strategyCatalogue = {
  name: '003-strategy-catalogue',
  statements(dialect: SqlDialect): string[] {
    return [
      'ALTER TABLE campaigns ADD COLUMN version bigint NOT NULL DEFAULT 0',
      dialect.dropIndex('claims_campaign_idem_key', 'claims'),
      'CREATE INDEX claims_campaign_idem_key ON claims (campaign_id, idem_key)',
    ];
  },
};
