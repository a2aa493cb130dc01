// Several instances starting at once on an empty database: the migration lock lets exactly one
// apply each migration, and all of them come up.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { connectSql } from '../../../src/adapters/sql/connect.ts';
import { MIGRATIONS } from '../../../src/adapters/sql/migrations/index.ts';
import { AllotService } from '../../../src/service/service.ts';
import { startMariadb, startPostgres, type TestServer } from '../../helpers/servers.ts';

for (const [name, start] of [['postgres', startPostgres], ['mariadb', startMariadb]] as const) {
  describe(`migrations on a fresh ${name}`, () => {
    let server: TestServer | undefined;
    after(async () => {
      await server?.destroy();
    });

    test('4 instances start at once; each migration is applied once', async () => {
      server = await start();
      const config = { databaseUrl: server.url, dbPoolSize: 2, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false };
      const services = await Promise.all(Array.from({ length: 4 }, () => AllotService.open({ config })));
      try {
        const applied = services.flatMap((s) => s.migrations.applied);
        assert.deepEqual(applied, MIGRATIONS.map((m) => m.name), 'every migration applied by exactly one instance');
        const conn = await connectSql({ url: server.url, poolSize: 1, timeoutMs: 5000 });
        const rows = (await sql`SELECT name FROM allot_migrations`.execute(conn.db)).rows;
        await conn.db.destroy();
        assert.equal(rows.length, MIGRATIONS.length);
        // And the schema works from every instance.
        const c = await services[0]!.createCampaign({ kind: 'coupon', name: 'm', stock: 1 });
        assert.equal((await services[3]!.claim(c.id, 'u', null)).status, 201);
      } finally {
        await Promise.all(services.map((s) => s.close()));
      }
    });
  });
}

describe('migrations on PostgreSQL with another schema already migrated', () => {
  // Kysely's migrator looks its tables up in every schema unless told which: the race lab's
  // lab_<id> schema made a later migration of the service's own schema skip creating its lock
  // table and fail.
  test('each schema gets its own migration tables', { skip: process.env.DATABASE_URL_PG ? false : 'DATABASE_URL_PG is not set (npm test sets it)' }, async () => {
    const base = process.env.DATABASE_URL_PG!;
    const admin = await connectSql({ url: base, poolSize: 1, timeoutMs: 5000 });
    const names = [`mig_a_${process.pid}_${Date.now().toString(36)}`, `mig_b_${process.pid}_${Date.now().toString(36)}`];
    try {
      for (const name of names) {
        await sql.raw(`CREATE SCHEMA ${name}`).execute(admin.db);
        const url = `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${name}`)}`;
        const service = await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 1, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false } });
        try {
          assert.deepEqual(service.migrations.applied, MIGRATIONS.map((m) => m.name), `${name} migrated in full`);
          const c = await service.createCampaign({ kind: 'coupon', name: 'm', stock: 1 });
          assert.equal((await service.claim(c.id, 'u', null)).status, 201);
        } finally {
          await service.close();
        }
      }
    } finally {
      for (const name of names) await sql.raw(`DROP SCHEMA IF EXISTS ${name} CASCADE`).execute(admin.db);
      await admin.db.destroy();
    }
  });
});
