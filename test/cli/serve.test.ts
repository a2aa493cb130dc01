// Start-up and shutdown of the real CLI (`node bin/allot.js …`) as a user runs it: embedded
// PGlite in a fresh data dir, a generated admin token, HTTP through fetch, graceful SIGTERM with
// requests in flight, and the one-shot commands and their error messages.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STARTUP_MS = 45_000;

interface Proc {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Proc>();
const tempDirs: string[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'allot-cli-test-'));
  tempDirs.push(dir);
  return dir;
}

/** The parent's environment without anything that configures allot or the test runner. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(ALLOT_|DATABASE_URL|DB_|PORT$|HOST$|LOG_LEVEL$|NODE_TEST|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function allot(args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['bin/allot.js', ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  assert.ok(child.pid, 'spawn failed');
  const proc: Proc = {
    child,
    pid: child.pid,
    stdout: () => out,
    stderr: () => err,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        running.delete(proc);
        resolve({ code, signal });
      });
    }),
  };
  running.add(proc);
  return proc;
}

/** Runs a one-shot command to its end. */
async function run(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = allot(args, { ALLOT_DATA_DIR: freshDir(), ...env });
  const { code } = await within(p.exited, timeoutMs, `allot ${args.join(' ')} did not exit`);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitUntil(cond: () => boolean, ms: number, what: string, proc?: Proc): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${proc ? `\nstderr:\n${proc.stderr()}\nstdout:\n${proc.stdout().slice(-2000)}` : ''}`);
    if (proc && proc.child.exitCode !== null) throw new Error(`process exited (${proc.child.exitCode}) while waiting for ${what}\nstderr:\n${proc.stderr()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Starts `allot serve` and waits for its banner; returns the base URL. */
async function startServer(dataDir: string): Promise<{ proc: Proc; base: string }> {
  const proc = allot(['serve'], { ALLOT_DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'info' });
  await waitUntil(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(proc.stderr()) && /try {8}curl/.test(proc.stderr()), STARTUP_MS, 'the startup banner', proc);
  const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(proc.stderr())![1];
  return { proc, base: `http://127.0.0.1:${port}` };
}

interface RawResult {
  id: string;
  status?: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: string;
  error?: string;
}

/** A POST over its own connection (no agent), so each request is a separate in-flight one. */
function rawPost(base: string, path: string, token: string, body: unknown, requestId: string): Promise<RawResult> {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = request(`${base}${path}`, {
      method: 'POST',
      agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-request-id': requestId },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => resolve({ id: requestId, status: res.statusCode, headers: res.headers, body: text }));
      res.on('error', (err) => resolve({ id: requestId, status: res.statusCode, error: `${(err as NodeJS.ErrnoException).code ?? err.message} (mid-response)` }));
    });
    req.on('error', (err) => resolve({ id: requestId, error: (err as NodeJS.ErrnoException).code ?? err.message }));
    req.end(data);
  });
}

function logLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`stdout line is not JSON: ${l}`);
      }
    });
}

after(async () => {
  for (const p of [...running]) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('allot CLI', () => {
  describe('allot serve on an embedded database', () => {
    const dataDir = freshDir();
    let token = '';
    let campaignId = '';
    let issued = 0;
    let refusedWhileClosing: RawResult[] = [];

    test('first start: banner with the generated token (also in <dataDir>/admin-token), health, a campaign and a claim over HTTP, graceful SIGTERM with requests in flight', async (t) => {
      const { proc, base } = await startServer(dataDir);
      try {
        const banner = proc.stderr();
        const m = /admin token (allot_[A-Za-z0-9_-]+)/.exec(banner);
        assert.ok(m, `no token in the banner:\n${banner}`);
        token = m[1]!;
        assert.equal(readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(), token);
        assert.match(banner, /generated now and stored in/);
        assert.match(banner, /database\s+pglite/);
        // The embedded default pays transfer orders with the in-process simulated rail, and says so.
        assert.match(banner, /rail\s+simulated \(in-process\)\s+\(transfer orders are paid by a simulation; set ALLOT_RAIL_URL for a real rail\)/);
        // A progress line per start-up step, in order, each with its time.
        const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const steps = [
          /^allot: checking port 0 on 127\.0\.0\.1… \d+\.\d\d s \(any free port\)$/m,
          new RegExp(`^allot: opening the database \\(pglite, ${esc(join(dataDir, 'pgdata'))}\\)… \\d+\\.\\d\\d s \\(new: (a ready copy of the template .+, moved into place|a copy of the template .+|initialised by initdb .+)\\)$`, 'm'),
          // A new data dir is a copy of a template migrated once: its schema is already current.
          /^allot: migrating the schema… \d+\.\d\d s \((up to date|applied 001-initial, .*006-leases)\)$/m,
          /^allot: starting the HTTP app… \d+\.\d\d s$/m,
          /^allot: listening on 127\.0\.0\.1:0… \d+\.\d\d s$/m,
          /listening on http:\/\/127\.0\.0\.1:\d+ {3}\(ready \d+\.\d\d s after the process started\)/,
        ];
        let at = 0;
        for (const re of steps) {
          const m = re.exec(banner.slice(at));
          assert.ok(m, `no progress line ${re} after offset ${at} in:\n${banner}`);
          at += m.index + m[0].length;
        }
        t.diagnostic(`first start on a fresh data dir: ${/ready (\d+\.\d\d s) after the process started/.exec(banner)![1]} to listening`);

        const health = await fetch(`${base}/healthz`);
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), { status: 'ok' });
        assert.equal((await fetch(`${base}/readyz`)).status, 200);
        assert.equal((await fetch(`${base}/v1/campaigns`)).status, 401);
        assert.equal((await fetch(`${base}/v1/campaigns`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);

        const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        const created = await fetch(`${base}/v1/campaigns`, { method: 'POST', headers: auth, body: JSON.stringify({ id: 'cli-shutdown', name: 'shutdown', stock: 20 }) });
        assert.equal(created.status, 201, await created.clone().text());
        campaignId = ((await created.json()) as { id: string }).id;
        const first = await fetch(`${base}/v1/campaigns/${campaignId}/claims`, { method: 'POST', headers: auth, body: JSON.stringify({ userId: 'first' }) });
        assert.equal(first.status, 201, await first.clone().text());
        assert.equal(((await first.json()) as { claim: { userId: string } }).claim.userId, 'first');

        // Requests in flight: 40 claims on their own connections; SIGTERM as soon as the server
        // has started handling one of them.
        const N = 40;
        const pending = Array.from({ length: N }, (_, i) => rawPost(base, `/v1/campaigns/${campaignId}/claims`, token, { userId: `sd-u${i}` }, `sd-${i}`));
        await waitUntil(() => /"requestId":"sd-\d+"[^\n]*"msg":"incoming request"/.test(proc.stdout()), 10_000, 'an in-flight claim', proc);
        const signalled = Date.now();
        assert.ok(proc.child.kill('SIGTERM'));
        const { code, signal } = await within(proc.exited, 15_000, 'allot serve did not exit after SIGTERM');
        assert.equal(signal, null);
        assert.equal(code, 0, `exit code ${code}\nstderr:\n${proc.stderr()}`);
        assert.ok(Date.now() - signalled < 15_000);
        const results = await within(Promise.all(pending), 15_000, 'the in-flight requests did not settle');

        const logs = logLines(proc.stdout());
        const started = new Set(logs.filter((l) => l.msg === 'incoming request' && typeof l.requestId === 'string' && (l.requestId as string).startsWith('sd-')).map((l) => l.requestId as string));
        assert.ok(started.size >= 1, 'no claim was in flight at SIGTERM');
        for (const r of results) {
          if (started.has(r.id)) {
            // The server saw it: it must answer it, either fully (201/409) or, when it arrived
            // after the shutdown began, with 503 UNAVAILABLE "nothing-issued" (the second start
            // below proves those issued nothing: issued = the 201s received).
            const refusedAtClose = r.status === 503 && (JSON.parse(r.body!) as { error: { outcome?: string } }).error.outcome === 'nothing-issued';
            assert.ok(r.status === 201 || r.status === 409 || refusedAtClose, `in-flight request ${r.id} was cut off: ${JSON.stringify(r)}`);
          }
          if (r.status !== undefined) {
            assert.ok(r.status === 201 || r.status === 409 || r.status === 503, `request ${r.id}: ${JSON.stringify(r)}`);
            assert.equal(r.error, undefined, `request ${r.id} broke mid-response: ${JSON.stringify(r)}`);
            if (r.status === 201) assert.equal((JSON.parse(r.body!) as { claim: { campaignId: string } }).claim.campaignId, campaignId);
            if (r.status === 409) assert.equal((JSON.parse(r.body!) as { error: { code: string } }).error.code, 'SOLD_OUT');
          }
        }
        refusedWhileClosing = results.filter((r) => r.status === 503);
        const ok = results.filter((r) => r.status === 201).length;
        const count = (f: (r: RawResult) => boolean) => results.filter(f).length;
        t.diagnostic(`at SIGTERM ${started.size} of ${N} claims were in flight; answers: 201 x${ok}, 409 x${count((r) => r.status === 409)}, 503 x${count((r) => r.status === 503)}, no answer x${count((r) => r.status === undefined)} (${[...new Set(results.map((r) => r.error).filter(Boolean))].join(', ')})`);
        assert.ok(ok <= 19, `stock 20 with one claimed already, but ${ok} more were issued`);
        issued = 1 + ok;

        // structured logs: JSON lines that carry the request id, and the shutdown
        assert.ok(logs.some((l) => typeof l.requestId === 'string'), 'no log line has a requestId');
        assert.ok(logs.some((l) => l.msg === 'stopped'), 'no "stopped" log line');
        assert.match(proc.stdout(), /"requestId":/);
      } finally {
        if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
      }
    });

    test('a request refused while shutting down gets 503 UNAVAILABLE in the API error shape, with Retry-After', () => {
      for (const r of refusedWhileClosing) {
        const body = JSON.parse(r.body!) as { error: { code?: unknown; message?: unknown } };
        assert.equal(body.error.code, 'UNAVAILABLE', `${r.id}: ${r.body}`);
        assert.equal(typeof body.error.message, 'string');
        assert.ok(r.headers?.['retry-after'], `${r.id}: no Retry-After`);
      }
    });

    test('second start on the same data dir: the token is not printed again, data and token persist', async () => {
      assert.ok(token, 'depends on the first start');
      const { proc, base } = await startServer(dataDir);
      try {
        const banner = proc.stderr();
        assert.ok(!banner.includes(token), 'the token was printed again');
        assert.match(banner, /^allot: opening the database \(pglite, .*\)… \d+\.\d\d s$/m);
        assert.match(banner, /^allot: migrating the schema… \d+\.\d\d s \(up to date\)$/m);
        assert.match(banner, new RegExp(`admin token stored in ${join(dataDir, 'admin-token').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        const res = await fetch(`${base}/v1/campaigns/${campaignId}`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(res.status, 200);
        const c = (await res.json()) as { issued: number; remaining: number; stock: number };
        assert.equal(c.issued, issued, 'issued does not match the 201s the clients received');
        assert.equal(c.remaining, 20 - issued);
        const audit = await fetch(`${base}/v1/campaigns/${campaignId}/audit`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(((await audit.json()) as { ok: boolean }).ok, true);
        assert.ok(proc.child.kill('SIGTERM'));
        assert.equal((await within(proc.exited, 15_000, 'allot serve did not exit after SIGTERM')).code, 0);
      } finally {
        if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
      }
    });
  });

  // Two at a time: each is a cold Node + tsx start, and CI machines may have two cores.
  describe('one-shot commands and configuration errors', { concurrency: 2 }, () => {
    function assertOneLineError(stderr: string, pattern: RegExp): void {
      const lines = stderr.trim().split('\n');
      assert.ok(!/^\s+at /m.test(stderr), `stack trace on stderr:\n${stderr}`);
      assert.equal(lines.filter((l) => pattern.test(l)).length, 1, `expected one line matching ${pattern}:\n${stderr}`);
      assert.ok(lines.length <= 3, `too much on stderr:\n${stderr}`);
    }

    for (const [name, env, variable] of [
      ['PORT=abc', { PORT: 'abc' }, /PORT=abc/],
      ['LOG_LEVEL=loud', { LOG_LEVEL: 'loud' }, /LOG_LEVEL=loud/],
      ['DATABASE_URL=redis://x', { DATABASE_URL: 'redis://x' }, /DATABASE_URL/],
    ] as const) {
      test(`serve with ${name} exits 2 (usage) with a clear message naming the variable`, async () => {
        const r = await run(['serve'], { ...env });
        assert.equal(r.code, 2, r.stderr);
        assertOneLineError(r.stderr, variable);
        assert.match(r.stderr, /^allot: /);
        assert.doesNotMatch(r.stderr, /listening/);
      });
    }

    test('--help exits 0 and lists the commands', async () => {
      const r = await run(['--help']);
      assert.equal(r.code, 0, r.stderr);
      for (const cmd of ['serve', 'migrate', 'audit', 'campaign']) assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`), `--help does not mention ${cmd}`);
    });

    test('campaign create --help exits 0 and lists the options', async () => {
      const r = await run(['campaign', 'create', '--help']);
      assert.equal(r.code, 0, r.stderr);
      for (const opt of ['--name', '--stock', '--id', '--per-user-limit', '--per-user-daily-limit', '--starts-at', '--ends-at', '--strategy', '--database-url', '--data-dir']) {
        assert.ok(r.stdout.includes(opt), `campaign create --help does not mention ${opt}:\n${r.stdout}`);
      }
    });

    test('campaign create --name x --stock 5 --database-url memory:// prints the campaign JSON', async () => {
      const r = await run(['campaign', 'create', '--name', 'x', '--stock', '5', '--database-url', 'memory://']);
      assert.equal(r.code, 0, r.stderr);
      const c = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(c.name, 'x');
      assert.equal(c.kind, 'coupon');
      assert.equal(c.stock, 5);
      assert.equal(c.issued, 0);
      assert.equal(c.remaining, 5);
      assert.equal(c.perUserLimit, 1);
      assert.match(String(c.id), /^[A-Za-z0-9_.:-]{1,128}$/);
      assert.match(String(c.createdAt), /^\d{4}-\d{2}-\d{2}T/);
    });

    test('audit of an unknown campaign exits 3 (not found) with a one-line CAMPAIGN_NOT_FOUND', async () => {
      const r = await run(['audit', 'nope']);
      assert.equal(r.code, 3, r.stderr);
      assertOneLineError(r.stderr, /CAMPAIGN_NOT_FOUND/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '');
    });

    test('campaign create --stock abc exits 2 (usage) with a one-line VALIDATION_FAILED', async () => {
      const r = await run(['campaign', 'create', '--name', 'x', '--stock', 'abc', '--database-url', 'memory://']);
      assert.equal(r.code, 2, r.stderr);
      assertOneLineError(r.stderr, /VALIDATION_FAILED.*--stock/);
    });

    test('campaign create without --stock exits 2 (usage) naming the option', async () => {
      const r = await run(['campaign', 'create', '--name', 'x', '--database-url', 'memory://']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--stock/);
    });

    test('a lottery from the CLI: create with --prize, stock, pause, resume, reveal, claim proof (verified)', async () => {
      const dataDir = freshDir();
      const env = { ALLOT_DATA_DIR: dataDir };
      // Each step is a cold start on an embedded database: generous on a busy machine.
      const CLI_MS = 120_000;
      const created = await run(['campaign', 'create', '--kind', 'lottery', '--name', 'Autumn draw', '--id', 'autumn', '--prize', 'p1:Phone:3:1', '--prize', 'p2:Mug:50:20', '--miss-weight', '30', '--fallback', 'p2'], env, CLI_MS);
      assert.equal(created.code, 0, created.stderr);
      const c = JSON.parse(created.stdout) as { kind: string; stock: number; missWeight: number; fallback: string; seedCommitment: string; prizes: Array<{ id: string; name: string; stock: number; weight: number }> };
      assert.equal(c.kind, 'lottery');
      assert.equal(c.stock, 53);
      assert.equal(c.missWeight, 30);
      assert.equal(c.fallback, 'p2');
      assert.match(c.seedCommitment, /^[0-9a-f]{64}$/);
      assert.deepEqual(c.prizes.map((p) => [p.id, p.name, p.stock, p.weight]), [['p1', 'Phone', 3, 1], ['p2', 'Mug', 50, 20]]);

      // A draw, through the service on the same embedded database (the CLI has no claim command).
      const { AllotService } = await import('../../src/service/service.ts');
      const service = await AllotService.open({ config: { databaseUrl: `pglite://${join(dataDir, 'pgdata')}`, dbPoolSize: 1, dbTimeoutMs: 10_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false } });
      let claimId: string;
      try {
        const out = await service.claim('autumn', 'u-1', null);
        assert.equal(out.status, 201, JSON.stringify(out.body));
        claimId = (out.body as { claim: { id: string } }).claim.id;
      } finally {
        await service.close();
      }

      const stocked = await run(['campaign', 'stock', 'autumn', '--prize', 'p1', '--add', '2'], env, CLI_MS);
      assert.equal(stocked.code, 0, stocked.stderr);
      const sv = JSON.parse(stocked.stdout) as { stock: number; prizes: Array<{ id: string; stock: number }> };
      assert.equal(sv.prizes.find((p) => p.id === 'p1')?.stock, 5);
      assert.equal(sv.stock, 55);

      for (const [cmd, paused] of [['pause', true], ['pause', true], ['resume', false]] as const) {
        const r = await run(['campaign', cmd, 'autumn'], env, CLI_MS);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((JSON.parse(r.stdout) as { paused: boolean }).paused, paused, `${cmd}: ${r.stdout}`);
      }

      const early = await run(['claim', 'proof', claimId], env, CLI_MS);
      assert.equal(early.code, 1, early.stderr);
      assertOneLineError(early.stderr, /SEED_NOT_REVEALED/);

      const revealed = await run(['campaign', 'reveal', 'autumn'], env, CLI_MS);
      assert.equal(revealed.code, 0, revealed.stderr);
      const rv = JSON.parse(revealed.stdout) as { campaignId: string; seed: string; seedCommitment: string };
      assert.equal(rv.campaignId, 'autumn');
      assert.equal(rv.seedCommitment, c.seedCommitment);
      assert.match(rv.seed, /^[0-9a-f]{64}$/);

      const proof = await run(['claim', 'proof', claimId], env, CLI_MS);
      assert.equal(proof.code, 0, proof.stderr);
      const pv = JSON.parse(proof.stdout) as { proof: { claimId: string; seed: string; seedCommitment: string; attempts: unknown[] }; verified: boolean };
      assert.equal(pv.verified, true);
      assert.equal(pv.proof.claimId, claimId);
      assert.equal(pv.proof.seed, rv.seed);
      assert.equal(pv.proof.seedCommitment, c.seedCommitment);
      assert.ok(pv.proof.attempts.length >= 1);
      assert.match(proof.stderr, /proof verified/);
    });

    test('campaign create with a malformed --prize exits non-zero with one clear line', async () => {
      for (const prize of ['p1:Phone:x:1', 'p1:Phone:3', 'p1::3:1', 'p1:Phone:3:-1']) {
        const r = await run(['campaign', 'create', '--kind', 'lottery', '--name', 'x', '--prize', prize, '--database-url', 'memory://']);
        assert.equal(r.code, 2, `${prize}: ${r.stdout}`);
        assertOneLineError(r.stderr, /VALIDATION_FAILED.*--prize.*ID:NAME:STOCK:WEIGHT/);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.equal(r.stdout, '');
      }
    });

    test('an unknown command exits 2 (usage)', async () => {
      const r = await run(['frobnicate']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /unknown command/i);
    });
  });
});
