// A process that uses a provider and then closes it (and its Redis client) exits by itself: no
// renewal loop, wake-up subscription, sweeper or expiry timer keeps it alive. Runs the README's
// usage in a child process (test/lock/fixtures/lifecycle.ts) on both Redis clients and in-process.
// Nor does an idle Redis provider that was never closed (test/lock/fixtures/lifecycle-no-close.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { redisUrl, uniquePrefix } from './redis-harness.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/lifecycle.ts', import.meta.url));
const NO_CLOSE_FIXTURE = fileURLToPath(new URL('./fixtures/lifecycle-no-close.ts', import.meta.url));
/** generous: an exit held up by a timer or a connection takes at least the lease's TTL (60 s) or forever */
const EXIT_WITHIN_MS = 5_000;

/** Runs the fixture; resolves how long the process took to exit after printing "done". */
function runFixture(args: string[], fixture = FIXTURE): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let doneAt: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (doneAt === undefined && out.includes('done\n')) {
        doneAt = Date.now();
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`the process was still running ${EXIT_WITHIN_MS} ms after closing its provider (killed)`));
        }, EXIT_WITHIN_MS);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (doneAt === undefined || code !== 0) reject(new Error(`fixture ${args[0]} exited with ${code ?? signal} before finishing:\n${err}`));
      else resolve(Date.now() - doneAt);
    });
  });
}

// The three child processes run at once (each spends most of its time starting up).
describe('lock lifecycle', { concurrency: true }, () => {
  let srv: { url: string; stop(): Promise<void> };
  before(async () => {
    srv = await redisUrl();
  });
  after(async () => {
    await srv.stop();
  });

  for (const kind of ['ioredis', 'node-redis'] as const) {
    it(`a process exits by itself after close() (Redis through ${kind})`, async () => {
      const ms = await runFixture([kind, srv.url, uniquePrefix(`life-${kind}`)]);
      assert.ok(ms < EXIT_WITHIN_MS, `exited ${ms} ms after close()`);
    });
  }

  it('an idle in-process provider and an unreleased lease do not keep a process up, even without close()', async () => {
    const ms = await runFixture(['memory']);
    assert.ok(ms < EXIT_WITHIN_MS, `exited ${ms} ms after its last call`);
  });
});

// Apart from the group above (five child processes starting at once overload a small machine).
// The pub/sub connection a waiter opened closes once idle (after the channel's linger, 2 s).
describe('lock lifecycle without close()', { concurrency: true }, () => {
  let srv: { url: string; stop(): Promise<void> };
  before(async () => {
    srv = await redisUrl();
  });
  after(async () => {
    await srv.stop();
  });

  for (const kind of ['ioredis', 'node-redis'] as const) {
    it(`a process that waited for a lock exits by itself without close() (Redis through ${kind})`, async () => {
      const ms = await runFixture([kind, srv.url, uniquePrefix(`noclose-${kind}`)], NO_CLOSE_FIXTURE);
      assert.ok(ms < EXIT_WITHIN_MS, `exited ${ms} ms after its last call`);
    });
  }
});
