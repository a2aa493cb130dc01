// Payouts (issue #8): a double-entry ledger (per-user accounts with a CHECK that no bucket goes
// below zero; journal entries whose lines sum to zero per asset, each entry id naming the one
// state change it belongs to, so a phase cannot be journaled twice), fundings, withdrawals
// (once per user and key, forever), transfer orders (id unique forever, never deleted) and the
// outbox of orders received but not yet sent to the rail.
import type { SqlDialect } from '../dialect.ts';

export const payouts = {
  name: '005-payouts',
  statements(dialect: SqlDialect): string[] {
    const t = dialect.types;
    const asset = dialect.family === 'pg' ? 'varchar(32) COLLATE "C"' : 'varchar(32) CHARACTER SET ascii COLLATE ascii_bin';
    const text = (n: number): string => (dialect.family === 'pg' ? `varchar(${n})` : `varchar(${n}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
    return [
      `CREATE TABLE ledger_accounts (
        user_id ${t.id} NOT NULL,
        asset ${asset} NOT NULL,
        available bigint NOT NULL DEFAULT 0,
        held bigint NOT NULL DEFAULT 0,
        paid_out bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, asset),
        CONSTRAINT ledger_accounts_nonnegative CHECK (available >= 0 AND held >= 0 AND paid_out >= 0)
      )${t.table}`,
      `CREATE TABLE ledger_entries (
        id ${t.key} NOT NULL PRIMARY KEY,
        kind varchar(16) NOT NULL,
        ref ${t.id} NOT NULL,
        asset ${asset} NOT NULL,
        created_at bigint NOT NULL
      )${t.table}`,
      // holder: a user id, or '@funding' (the system account money enters by; its balance is
      // derived from these lines, so no system row is updated by every funding).
      `CREATE TABLE ledger_lines (
        entry_id ${t.key} NOT NULL,
        holder ${t.id} NOT NULL,
        bucket varchar(16) NOT NULL,
        asset ${asset} NOT NULL,
        amount bigint NOT NULL,
        PRIMARY KEY (entry_id, holder, bucket)
      )${t.table}`,
      'CREATE INDEX ledger_lines_holder ON ledger_lines (holder, asset)',
      `CREATE TABLE fundings (
        id ${t.id} NOT NULL PRIMARY KEY,
        user_id ${t.id} NOT NULL,
        asset ${asset} NOT NULL,
        amount bigint NOT NULL,
        created_at bigint NOT NULL,
        CONSTRAINT fundings_positive CHECK (amount > 0)
      )${t.table}`,
      `CREATE TABLE withdrawals (
        id ${t.id} NOT NULL PRIMARY KEY,
        user_id ${t.id} NOT NULL,
        idem_key ${t.key} NOT NULL,
        asset ${asset} NOT NULL,
        amount bigint NOT NULL,
        state varchar(16) NOT NULL,
        created_at bigint NOT NULL,
        CONSTRAINT withdrawals_positive CHECK (amount > 0)
      )${t.table}`,
      // Once per user and key, forever: a key purged from idempotency_keys still cannot pay twice.
      'CREATE UNIQUE INDEX withdrawals_user_key ON withdrawals (user_id, idem_key)',
      `CREATE TABLE transfers (
        order_id ${t.id} NOT NULL PRIMARY KEY,
        user_id ${t.id} NOT NULL,
        asset ${asset} NOT NULL,
        amount bigint NOT NULL,
        destination ${text(256)} NOT NULL,
        state varchar(16) NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        attempt_id varchar(64) NULL,
        lease_until bigint NULL,
        rail_ref ${text(256)} NULL,
        reason ${text(512)} NULL,
        resolution varchar(16) NULL,
        resolution_note ${text(1000)} NULL,
        resolved_at bigint NULL,
        created_at bigint NOT NULL,
        updated_at bigint NOT NULL,
        CONSTRAINT transfers_positive CHECK (amount > 0)
      )${t.table}`,
      'CREATE INDEX transfers_state ON transfers (state, order_id)',
      `CREATE TABLE transfer_outbox (
        order_id ${t.id} NOT NULL PRIMARY KEY,
        created_at bigint NOT NULL
      )${t.table}`,
      'CREATE INDEX transfer_outbox_created ON transfer_outbox (created_at)',
    ];
  },
};
