// The packages as a user gets them: `npm pack` (allot and @allot/lock), installed into fresh
// projects from the tarballs. Plain `node` imports every entry point, the installed CLI runs, a
// strict NodeNext `tsc` consumer (no skipLibCheck) compiles against the shipped .d.ts, the lock
// library alone installs with a Redis client and nothing of SQL, HTTP or PGlite and takes a real
// lock on Redis, and the tarballs hold the build, LICENSE and README but no tests or tooling.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { redisUrl, uniquePrefix } from '../lock/redis-harness.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/.bin/tsc');
const version = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** The parent's environment without what the outer `npm test` (its project's prefix, scripts), the
 * test runner or allot's configuration set; npm's cache, registry and user config stay. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_config_(cache|registry|userconfig)$/i.test(k)) env[k] = v;
    else if (/^(npm_|NODE_TEST|NODE_OPTIONS$|ALLOT_|DATABASE_URL|REDIS_URL|LOCKS_URL)/i.test(k)) continue;
    else env[k] = v;
  }
  return env;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr: error && typeof error.code !== 'number' ? `${stderr}\n${error.message}` : stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Packed {
  name: string;
  filename: string;
  files: { path: string }[];
}

/** A fresh project (not inside any other npm project) with these files. */
function project(dir: string, files: Record<string, string>): string {
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const STRICT_TSCONFIG = JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] },
  files: ['consumer.ts'],
});

const FULL_CONSUMER = `
import { Redis } from 'ioredis';
import { AllotService, AllotError, buildApp, loadConfig, createStrategies, SqlFenceAnchor, type CampaignView, type ClaimResult } from 'allot';
import { createMemoryLockProvider, createRedisLockProvider, fromIoredis, registerLockMetrics, LockTimeoutError, type Lease, type LockProvider } from 'allot/lock';

const locks: LockProvider = createMemoryLockProvider();
const lease: Lease = await locks.acquire('k', { ttlMs: 1_000 });
const fence: bigint = lease.fence;
await lease.release();
await locks.close();
const redisLocks = createRedisLockProvider({ client: fromIoredis(new Redis({ lazyConnect: true })) });
export type Views = [CampaignView, ClaimResult];
export { AllotService, AllotError, buildApp, loadConfig, createStrategies, SqlFenceAnchor, registerLockMetrics, LockTimeoutError, fence, redisLocks };
`;

const LOCK_CONSUMER = `
import { createClient } from 'redis';
import { createRedisLockProvider, fromNodeRedis, MemoryFenceAnchor, LockTimeoutError, type Lease } from '@allot/lock';
import { Mutex } from '@allot/lock/compat';

const redis = await createClient({ url: process.env.REDIS_URL }).connect();
const locks = createRedisLockProvider({ client: fromNodeRedis(redis), fenceAnchor: new MemoryFenceAnchor() });
export const fence: bigint = await locks.using('k', { ttlMs: 1_000 }, async (_signal: AbortSignal, lease: Lease) => lease.fence);
await locks.close();
await redis.close();
export const mutex: Mutex = new Mutex(redis, 'k', { lockTimeout: 1_000 });
export { LockTimeoutError };
`;

// What the lock-only project runs: a real lock on Redis through the installed package (its Lua
// scripts are files read at run time), then exits by itself.
const LOCK_RUN = `
import { createClient } from 'redis';
import { createRedisLockProvider, fromNodeRedis } from '@allot/lock';
const redis = await createClient({ url: process.argv[1] }).connect();
const locks = createRedisLockProvider({ client: fromNodeRedis(redis), prefix: process.argv[2] });
const fence = await locks.using('k', { ttlMs: 2_000 }, async (_signal, lease) => lease.fence);
await locks.close();
await redis.close();
console.log('fence ' + fence);
`;

describe('package', () => {
  let tmp: string;
  let packed: Packed[];
  let full: string;
  let lockOnly: string;
  let redis: { url: string; stop(): Promise<void> };
  // the two tsc runs, started as soon as the projects are installed (they take the longest)
  let tscFull: Promise<Run>;
  let tscLock: Promise<Run>;

  before(async () => {
    redis = await redisUrl();
    tmp = mkdtempSync(join(tmpdir(), 'allot-pack-test-'));
    // Packing runs the packages' prepare/prepack scripts, i.e. the build.
    const pack = ok(await run('npm', ['pack', '--json', '--pack-destination', tmp, '--workspaces', '--include-workspace-root'], ROOT), 'npm pack');
    // the JSON report follows whatever the build scripts printed
    packed = JSON.parse(pack.stdout.slice(pack.stdout.search(/^\[/m))) as Packed[];
    const tarball = (name: string) => join(tmp, packed.find((p) => p.name === name)!.filename);
    const pkg = JSON.stringify({ name: 'consumer', private: true, type: 'module' });
    full = project(join(tmp, 'full'), { 'package.json': pkg, 'tsconfig.json': STRICT_TSCONFIG, 'consumer.ts': FULL_CONSUMER });
    lockOnly = project(join(tmp, 'lock-only'), { 'package.json': pkg, 'tsconfig.json': STRICT_TSCONFIG, 'consumer.ts': LOCK_CONSUMER });
    const install = ['install', '--prefer-offline', '--no-audit', '--no-fund'];
    const typesNode = `@types/node@${version('@types/node')}`;
    // Both at once: npm's cache has every dependency.
    const [a, b] = await Promise.all([
      run('npm', [...install, tarball('allot'), tarball('@allot/lock'), typesNode], full),
      run('npm', [...install, tarball('@allot/lock'), `redis@${version('redis')}`, typesNode], lockOnly),
    ]);
    ok(a, 'npm install of allot');
    ok(b, 'npm install of @allot/lock');
    tscFull = run(TSC, ['-p', '.'], full);
    tscLock = run(TSC, ['-p', '.'], lockOnly);
  });

  after(async () => {
    await Promise.allSettled([tscFull, tscLock]);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    await redis?.stop();
  });

  it('ships the build, LICENSE and README, and no sources, tests or tooling', () => {
    assert.deepEqual(packed.map((p) => p.name).sort(), ['@allot/lock', 'allot']);
    for (const p of packed) {
      const files = p.files.map((f) => f.path);
      for (const must of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts']) assert.ok(files.includes(must), `${p.name} lacks ${must}`);
      const stray = files.filter((f) => !/^(dist\/|bin\/allot\.js$|LICENSE$|README\.md$|package\.json$)/.test(f) || /\.tsbuildinfo$/.test(f));
      assert.deepEqual(stray, [], `${p.name} holds files outside dist/`);
      for (const js of files.filter((f) => f.endsWith('.js') && f.startsWith('dist/'))) assert.ok(files.includes(js.replace(/\.js$/, '.d.ts')), `${p.name}: ${js} has no .d.ts`);
    }
    const allot = packed.find((p) => p.name === 'allot')!.files.map((f) => f.path);
    for (const must of ['bin/allot.js', 'dist/lock.js', 'dist/lock.d.ts', 'dist/cli/main.js']) assert.ok(allot.includes(must), `allot lacks ${must}`);
    const lock = packed.find((p) => p.name === '@allot/lock')!.files.map((f) => f.path);
    assert.ok(lock.includes('dist/prometheus.d.ts'));
    assert.ok(lock.filter((f) => /^dist\/redis\/lua\/\w+-\d\.lua$/.test(f)).length >= 7, 'the Lua scripts are shipped');
    assert.ok(lock.includes('dist/redis/lua/includes/wakeNext.lua'));
  });

  it('plain node imports allot and allot/lock, and the installed CLI runs', async () => {
    const script = `
      const allot = await import('allot');
      const lock = await import('allot/lock');
      const compat = await import('allot/lock/compat');
      const names = ['AllotService', 'buildApp', 'loadConfig', 'createRedisLockProvider'].filter((n) => typeof allot[n] !== 'function');
      names.push(...['createRedisLockProvider', 'createMemoryLockProvider', 'fromIoredis', 'fromNodeRedis', 'registerLockMetrics'].filter((n) => typeof lock[n] !== 'function'));
      names.push(...['Mutex', 'TimeoutError', 'LostLockError'].filter((n) => typeof compat[n] !== 'function').map((n) => 'compat.' + n));
      if (names.length) throw new Error('missing exports: ' + names.join(', '));
      console.log('ok');`;
    const r = ok(await run(process.execPath, ['--input-type=module', '-e', script], full), 'node import');
    assert.equal(r.stdout.trim(), 'ok');
    const cli = ok(await run(join(full, 'node_modules/.bin/allot'), ['--help'], full), 'allot --help');
    assert.match(cli.stdout, /Usage: allot/);
    assert.ok(!existsSync(join(full, 'node_modules/tsx')), 'tsx is a development dependency only');
    assert.ok(!existsSync(join(full, 'node_modules/redis')), 'node-redis is a development dependency only');
  });

  it('a strict NodeNext tsc consumer (no skipLibCheck) compiles against allot and allot/lock', async () => {
    const r = await tscFull;
    assert.equal(r.code, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
  });

  it('the lock library installs alone with a Redis client and nothing of SQL, HTTP or PGlite', async () => {
    const installed = readdirSync(join(lockOnly, 'node_modules')).flatMap((d) => (d.startsWith('@') ? readdirSync(join(lockOnly, 'node_modules', d)).map((s) => `${d}/${s}`) : [d]));
    for (const heavy of ['allot', 'pg', 'mysql2', '@electric-sql/pglite', 'kysely', 'fastify', 'pino', 'prom-client', 'tsx', 'ioredis']) {
      assert.ok(!installed.includes(heavy), `${heavy} was installed with @allot/lock`);
    }
    assert.ok(installed.includes('@allot/lock') && installed.includes('redis'));
    const r = ok(await run(process.execPath, ['--input-type=module', '-e', LOCK_RUN, redis.url, uniquePrefix('pack')], lockOnly, 30_000), 'a lock through the installed package');
    assert.match(r.stdout, /^fence \d+$/m);
    const t = await tscLock;
    assert.equal(t.code, 0, `tsc reported:\n${t.stdout}${t.stderr}`);
  });
});
