// Lottery prize pools (issue #7): prizes with their own stock and weight, the campaign's miss
// weight, fallback prize, pause flag and seed (secret until revealed; its SHA-256 commitment is
// public), and each claim's draw record (the proof of the draw).
import type { MigrationOptions } from './index.ts';
import type { SqlDialect } from '../dialect.ts';

export const lottery = {
  name: '004-lottery',
  statements(dialect: SqlDialect, opts: MigrationOptions = {}): string[] {
    const t = dialect.types;
    return [
      'ALTER TABLE campaigns ADD COLUMN paused integer NOT NULL DEFAULT 0',
      'ALTER TABLE campaigns ADD COLUMN miss_weight bigint NOT NULL DEFAULT 0',
      `ALTER TABLE campaigns ADD COLUMN fallback_prize_id ${t.id} NULL`,
      'ALTER TABLE campaigns ADD COLUMN seed char(64) NULL',
      'ALTER TABLE campaigns ADD COLUMN seed_commitment char(64) NULL',
      'ALTER TABLE campaigns ADD COLUMN seed_revealed_at bigint NULL',
      `CREATE TABLE prizes (
        campaign_id ${t.id} NOT NULL,
        id ${t.id} NOT NULL,
        name varchar(200) NOT NULL,
        stock bigint NOT NULL,
        issued bigint NOT NULL DEFAULT 0,
        weight bigint NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (campaign_id, id)${
          // The race lab's schema leaves the backstop out, to show the oversell it would refuse.
          opts.stockBackstop === false ? '' : ',\n        CONSTRAINT prizes_issued_within_stock CHECK (issued >= 0 AND issued <= stock)'
        }
      )${t.table}`,
      `ALTER TABLE claims ADD COLUMN draw ${t.text} NULL`,
      'CREATE INDEX claims_campaign_prize ON claims (campaign_id, prize_id)',
    ];
  },
};
