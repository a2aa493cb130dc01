// Campaigns, claims, per-user counters and idempotency keys: the durable guards of issue #2.
import type { MigrationOptions } from './index.ts';
import type { SqlDialect } from '../dialect.ts';

export const initial = {
  name: '001-initial',
  statements(dialect: SqlDialect, opts: MigrationOptions = {}): string[] {
    const t = dialect.types;
    return [
      `CREATE TABLE campaigns (
        id ${t.id} NOT NULL PRIMARY KEY,
        kind varchar(16) NOT NULL,
        name varchar(200) NOT NULL,
        strategy varchar(32) NOT NULL,
        stock bigint NOT NULL,
        issued bigint NOT NULL DEFAULT 0,
        per_user_limit integer NOT NULL,
        per_user_daily_limit integer NULL,
        starts_at bigint NULL,
        ends_at bigint NULL,
        created_at bigint NOT NULL${
          // The race lab's schema leaves the backstop out, to show the oversell it would refuse.
          opts.stockBackstop === false ? '' : ',\n        CONSTRAINT campaigns_issued_within_stock CHECK (issued >= 0 AND issued <= stock)'
        }
      )${t.table}`,
      `CREATE TABLE claims (
        id ${t.id} NOT NULL PRIMARY KEY,
        campaign_id ${t.id} NOT NULL,
        user_id ${t.id} NOT NULL,
        prize_id ${t.id} NULL,
        utc_day char(10) NOT NULL,
        created_at bigint NOT NULL,
        idem_key ${t.key} NULL
      )${t.table}`,
      'CREATE INDEX claims_campaign_user ON claims (campaign_id, user_id)',
      // At most one claim per idempotency key, enforced by the database itself.
      'CREATE UNIQUE INDEX claims_campaign_idem_key ON claims (campaign_id, idem_key)',
      `CREATE TABLE user_claims (
        campaign_id ${t.id} NOT NULL,
        user_id ${t.id} NOT NULL,
        total integer NOT NULL,
        utc_day char(10) NOT NULL,
        day_count integer NOT NULL,
        PRIMARY KEY (campaign_id, user_id),
        CONSTRAINT user_claims_nonnegative CHECK (total >= 0 AND day_count >= 0)
      )${t.table}`,
      `CREATE TABLE idempotency_keys (
        campaign_id ${t.id} NOT NULL,
        idem_key ${t.key} NOT NULL,
        fingerprint char(64) NOT NULL,
        state varchar(16) NOT NULL,
        owner varchar(64) NOT NULL,
        locked_until bigint NOT NULL,
        status_code integer NULL,
        response ${t.text} NULL,
        claim_id ${t.id} NULL,
        created_at bigint NOT NULL,
        PRIMARY KEY (campaign_id, idem_key)
      )${t.table}`,
      'CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)',
    ];
  },
};
