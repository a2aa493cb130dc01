// Nothing a metrics or event hook does may crash the process: with every hook throwing (or
// returning a rejected promise), a child process (test/lock/fixtures/throwing-hooks.ts) acquires,
// waits, times out, renews, fails to renew, expires and releases on the in-process provider and on
// Redis, then exits 0 having reported each failing hook exactly once.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { redisUrl, uniquePrefix } from './redis-harness.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/throwing-hooks.ts', import.meta.url));
const KILL_AFTER_MS = 20_000;
/** the hooks the library calls (fenceRejected is the fenced store's, not the provider's) */
const HOOKS = ['acquired', 'handover', 'renewed', 'renewFailed', 'lost', 'timedOut', 'onEvent'];

interface Summary {
  calls: Record<string, number>;
  reported: string[];
}

function runFixture(args: string[]): Promise<Summary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`throwing-hooks ${args.slice(0, 2).join(' ')} exited with ${code ?? signal}:\n${err}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Summary);
      } catch {
        reject(new Error(`no summary from the fixture; stdout:\n${out}\nstderr:\n${err}`));
      }
    });
  });
}

function check(s: Summary): void {
  for (const h of HOOKS) assert.ok((s.calls[h] ?? 0) > 0, `the ${h} hook was never called: ${JSON.stringify(s.calls)}`);
  assert.deepEqual([...s.reported].sort(), [...HOOKS].sort(), 'each failing hook is reported exactly once');
}

// The child processes run at once (each spends most of its time starting up).
describe('failing metrics and event hooks', { concurrency: true }, () => {
  let srv: { url: string; stop(): Promise<void> };
  before(async () => {
    srv = await redisUrl();
  });
  after(async () => {
    await srv.stop();
  });

  for (const mode of ['sync', 'async'] as const) {
    it(`in-process provider: hooks that ${mode === 'sync' ? 'throw' : 'reject'} never crash the process`, async () => {
      check(await runFixture(['memory', mode]));
    });
    it(`Redis provider: hooks that ${mode === 'sync' ? 'throw' : 'reject'} never crash the process`, async () => {
      check(await runFixture(['redis', mode, srv.url, uniquePrefix(`hooks-${mode}`)]));
    });
  }
});
