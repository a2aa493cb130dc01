// Lua script files, their versioned registration and the EVALSHA -> NOSCRIPT fallback, on both clients.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startRedis, type TestServer } from '../../helpers/servers.ts';
import { connect } from '../../lock/redis-harness.ts';
import { lockScript, lockScripts, runScript, LOCK_SCRIPTS_VERSION } from '../../../packages/lock/src/redis/scripts.ts';
import { isNoScriptError } from '../../../packages/lock/src/redis/client.ts';

const LUA = fileURLToPath(new URL('../../../packages/lock/src/redis/lua/', import.meta.url));

describe('lock Lua scripts', () => {
  it('one file per operation, named <verbNoun>-<numKeys>.lua, with a KEYS/ARGV/Returns header', () => {
    const files = readdirSync(LUA).filter((f) => f.endsWith('.lua'));
    assert.ok(files.length >= 6);
    for (const f of files) {
      const m = /^([a-z][A-Za-z]+)-(\d+)\.lua$/.exec(f);
      assert.ok(m, f);
      const src = readFileSync(LUA + f, 'utf8');
      const header = src.slice(0, src.indexOf(']]'));
      assert.match(header, /Returns/, f);
      assert.match(header, /ARGV\[1\]/, f);
      for (let i = 1; i <= Number(m[2]); i++) assert.match(header, new RegExp(`KEYS\\[${i}\\]`), `${f} documents KEYS[${i}]`);
      assert.doesNotMatch(header, new RegExp(`KEYS\\[${Number(m[2]) + 1}\\]`), f);
      assert.doesNotMatch(src, /allot:lock/, `${f} hard-codes no prefix`);
    }
  });

  it('inlines includes and stamps the package version into every script', () => {
    const version = (JSON.parse(readFileSync(new URL('../../../packages/lock/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    assert.equal(LOCK_SCRIPTS_VERSION, version);
    for (const s of lockScripts().values()) {
      assert.ok(s.name.endsWith(`:${version}`));
      assert.ok(s.source.startsWith(`-- allot ${s.name}\n`));
      assert.doesNotMatch(s.source, /--@include/);
      assert.match(s.sha, /^[0-9a-f]{40}$/);
    }
    assert.match(lockScript('releaseLock').source, /local function wakeNext/);
  });

  for (const kind of ['ioredis', 'node-redis'] as const) {
    describe(`EVALSHA with NOSCRIPT fallback (${kind})`, () => {
      let server: TestServer;
      before(async () => {
        server = await startRedis();
      });
      after(async () => {
        await server.destroy();
      });

      it('runs by hash, reloads after SCRIPT FLUSH, and maps NOSCRIPT', async () => {
        const client = await connect(kind, server.url);
        try {
          // ARGV: the epoch, no failover guard ('0'), no TTL ('0')
          const s = lockScript('installEpoch');
          await assert.rejects(client.evalsha(s.sha, ['e'], ['5', '0', '0']), (e: unknown) => isNoScriptError(e));
          assert.deepEqual(await runScript(client, s, ['e'], ['5', '0', '0']), [1, '5']);
          assert.deepEqual(await client.evalsha(s.sha, ['e'], ['4', '0', '0']), [0, '5']);
          await client.command(['SCRIPT', 'FLUSH']);
          assert.deepEqual(await runScript(client, s, ['e'], ['12', '0', '0']), [1, '12']);
          assert.deepEqual(await runScript(client, s, ['e'], ['9', '0', '0']), [0, '12'], 'digit-string compare: 9 < 12');
          await assert.rejects(runScript(client, s, ['a', 'b'], ['1']), /takes 1 keys/);
        } finally {
          await client.quit();
        }
      });
    });
  }
});
