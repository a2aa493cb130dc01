// A new embedded database is a copy of a cached template (connect.ts): the first new data dir
// builds the template in the cache dir, later ones copy it (or move a spare copy into place);
// copies are independent databases; a template with a schema is migrated once; a copy cut short
// (no PG_VERSION yet) is copied again on the next open; a directory of other files is refused.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { buildPgliteTemplatesInBackground, connectSql, defaultPgliteCacheDir, preparePgliteSpare, type PgliteSchema } from '../../../src/adapters/sql/connect.ts';
import { defaultPgliteSchema } from '../../../src/adapters/sql/migrate.ts';

describe('PGlite data dirs from a cached template', () => {
  const root = mkdtempSync(join(tmpdir(), 'allot-template-test-'));
  const cacheDir = join(root, 'cache');
  after(() => rmSync(root, { recursive: true, force: true }));

  const open = (dir: string, schema?: PgliteSchema) => connectSql({ url: `pglite://${dir}`, poolSize: 1, timeoutMs: 5000, pgliteCacheDir: cacheDir, ...(schema ? { pgliteSchema: schema } : {}) });
  const tables = async (db: Awaited<ReturnType<typeof open>>['db']) =>
    (await sql<{ t: string }>`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`.execute(db)).rows.map((r) => r.t);

  test("'later' (allot serve): no template yet, so initdb in place; the template and a spare are built by another process", async () => {
    const cache = join(root, 'bg-cache');
    const schema = defaultPgliteSchema();
    const openLater = (dir: string) => connectSql({ url: `pglite://${dir}`, poolSize: 1, timeoutMs: 5000, pgliteCacheDir: cache, pgliteSchema: schema, pgliteBuildTemplate: 'later' });
    // The builder runs on the other core while this process initialises its own data dir.
    const building = buildPgliteTemplatesInBackground(cache);
    const first = await openLater(join(root, 'bg-1'));
    try {
      assert.equal(first.pglite?.opened, 'initdb');
      assert.equal(first.pglite?.template, undefined);
    } finally {
      await sql`SELECT 1`.execute(first.db);
      await first.db.destroy();
    }
    await building;
    const built = readdirSync(cache).sort();
    assert.equal(built.length, 2, built.join(', '));
    assert.match(built[0]!, new RegExp(`^pglite-\\d+\\.\\d+\\.\\d+-schema-${schema.key}$`));
    assert.match(built[1]!, new RegExp(`^spare-${built[0]}-[0-9a-f]{8}$`));
    for (const [name, how] of [['bg-2', 'spare'], ['bg-3', 'template']] as const) {
      const c = await openLater(join(root, name));
      try {
        assert.equal(c.pglite?.opened, how, name);
        assert.equal(c.pglite?.template, join(cache, built[0]!));
        // The template carries the service's schema (allot_leases is its latest table), and
        // each copy is a database of its own.
        assert.ok((await tables(c.db)).includes('allot_leases'), name);
        assert.ok(!(await tables(c.db)).includes('only_in_bg2'), name);
        if (name === 'bg-2') await sql`CREATE TABLE only_in_bg2 (x int)`.execute(c.db);
      } finally {
        await c.db.destroy();
      }
    }
    const again = await openLater(join(root, 'bg-2'));
    try {
      assert.equal(again.pglite?.opened, 'existing');
      assert.ok((await tables(again.db)).includes('only_in_bg2'));
    } finally {
      await again.db.destroy();
    }
  });

  const openBg = (dir: string) => connectSql({ url: `pglite://${dir}`, poolSize: 1, timeoutMs: 5000, pgliteCacheDir: join(root, 'bg-cache'), pgliteSchema: defaultPgliteSchema() });

  test('a copy cut short (no PG_VERSION, a file left empty) is copied again', async () => {
    const dir = join(root, 'cut');
    const first = await openBg(dir);
    await sql`SELECT 1`.execute(first.db); // Kysely closes (and unlocks) only a database it has used
    await first.db.destroy();
    rmSync(join(dir, 'PG_VERSION'));
    truncateSync(join(dir, 'global', 'pg_control'), 0);
    const c = await openBg(dir);
    try {
      assert.equal(c.pglite?.opened, 'template');
      await sql`CREATE TABLE t (x int)`.execute(c.db);
      assert.ok((await tables(c.db)).includes('t'));
    } finally {
      await c.db.destroy();
    }
    assert.ok(existsSync(join(dir, 'PG_VERSION')));
  });

  test('a schema template is migrated once; a spare copy is moved into place, once', async () => {
    let setups = 0;
    const schema: PgliteSchema = {
      key: 'test-v1',
      setup: async (c) => {
        setups++;
        await sql`CREATE TABLE from_schema (x int)`.execute(c.db);
      },
    };
    const c1 = await open(join(root, 's1'), schema);
    const template = c1.pglite!.template!;
    try {
      assert.equal(c1.pglite?.opened, 'template');
      assert.match(template, /pglite-.*-schema-test-v1$/);
      assert.deepEqual(await tables(c1.db), ['from_schema']);
    } finally {
      await c1.db.destroy();
    }
    await preparePgliteSpare(template);
    await preparePgliteSpare(template); // one spare is enough
    assert.equal(readdirSync(cacheDir).filter((e) => e.startsWith('spare-')).length, 1);
    for (const [name, how] of [['s2', 'spare'], ['s3', 'template']] as const) {
      const c = await open(join(root, name), schema);
      try {
        assert.equal(c.pglite?.opened, how, name);
        assert.deepEqual(await tables(c.db), ['from_schema']);
        await sql`INSERT INTO from_schema VALUES (1)`.execute(c.db);
      } finally {
        await c.db.destroy();
      }
    }
    assert.equal(setups, 1, 'the schema was set up more than once');
    assert.deepEqual(readdirSync(cacheDir).filter((e) => e.startsWith('spare-') || e.startsWith('.')), [], 'a spare or a temp dir left over');
  });

  test('a directory that holds other files is refused, not filled', async () => {
    const dir = join(root, 'docs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await assert.rejects(openBg(dir), /holds files but no database \(no PG_VERSION; notes\.txt\): point the embedded database at an empty or new directory/);
    assert.deepEqual(readdirSync(dir), ['notes.txt']);
  });

  test('where the cache is: ALLOT_CACHE_DIR, else $XDG_CACHE_HOME/allot, else ~/.cache/allot; "off" keeps none', () => {
    assert.equal(defaultPgliteCacheDir({ ALLOT_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' }), '/c');
    assert.equal(defaultPgliteCacheDir({ XDG_CACHE_HOME: '/x' }), join('/x', 'allot'));
    assert.match(defaultPgliteCacheDir({})!, /[/\\]\.cache[/\\]allot$/);
    for (const off of ['off', 'OFF', 'none', '0']) assert.equal(defaultPgliteCacheDir({ ALLOT_CACHE_DIR: off }), null);
  });
});
