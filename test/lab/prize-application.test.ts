// Field report 1 in the race lab: once per user (and N per day) with no unique index on the
// claims table, on MariaDB at REPEATABLE READ and PostgreSQL at READ COMMITTED.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { holds, lab, row } from './helpers.ts';

describe('race lab: prize application', () => {
  test('prize-application on MariaDB at REPEATABLE READ: naive exceeds the limits, the safe strategies never do', async () => {
    const report = await lab({ scenario: 'prize-application', backends: ['mysql'], strategies: ['naive', 'conditional', 'optimistic', 'redis-lock'] });
    assert.ok(row(report.rows, 'naive').duplicates > 0);
    for (const s of ['conditional', 'optimistic', 'redis-lock']) holds(row(report.rows, s));
    // Every user got at most 2 today: with 200 users that is at most 400 claims.
    assert.ok(row(report.rows, 'conditional').claimsInDb <= 400);
  });

  test('prize-application on PostgreSQL at READ COMMITTED: conditional and redis-lock hold', async () => {
    const report = await lab({ scenario: 'prize-application', backends: ['postgres'], strategies: ['conditional', 'redis-lock'] });
    for (const r of report.rows) holds(r);
  });
});
