// What the HTTP-level benchmarks share: `allot serve` started as its own process (the load
// generator must not share its event loop), its admin API, and autocannon runs against
// /healthz and against one campaign's claims, every request from a new user (optionally with
// an Idempotency-Key of its own).
import { spawn, type ChildProcess } from 'node:child_process';
import autocannon from 'autocannon';
import { freePort } from '../src/lab/servers.ts';

export const TOKEN = 'bench-token-0123456789abcdefghij';
const ROOT = new URL('..', import.meta.url).pathname;

export interface Served {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
  /** what the service wrote (LOG_LEVEL=warn: its warnings and errors), last 64 KiB */
  log(): string;
}

/** Starts `allot serve` (the compiled CLI: `npm run build` first) on a free port. */
export async function startService(opts: { databaseUrl?: string; dataDir: string; pool: number; redisUrl?: string }): Promise<Served> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ALLOT_DATA_DIR: opts.dataDir, ALLOT_ADMIN_TOKEN: TOKEN, LOG_LEVEL: 'warn', DB_POOL_SIZE: String(opts.pool) };
  if (opts.redisUrl) env.REDIS_URL = opts.redisUrl; // the redis-lock strategy's locks
  else delete env.REDIS_URL;
  delete env.LOCKS_URL;
  if (opts.databaseUrl) env.DATABASE_URL = opts.databaseUrl;
  else delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['bin/allot.js', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const keep = (d: unknown) => {
    err += String(d);
    if (err.length > 65_536) err = err.slice(-65_536);
  };
  child.stdout!.on('data', keep); // the JSON log lines
  child.stderr!.on('data', keep);
  const log = () => err;
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`allot serve exited: ${err}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return { url, child, stop, log };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`allot serve did not become ready: ${err}`);
}

export async function api(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export type Load = autocannon.Result;

let seq = 0;

/** Claims on `campaignId`, each from a new user; with `keys`, each with its own Idempotency-Key. */
export function loadClaims(url: string, campaignId: string, o: { connections: number; seconds: number; prefix: string; keys?: boolean }): Promise<Load> {
  return autocannon({
    url: `${url}/v1/campaigns/${campaignId}/claims`,
    connections: o.connections,
    duration: o.seconds,
    requests: [{
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      // autocannon's idReplacement sends nothing in this version, hence setupRequest.
      setupRequest: (req) => {
        const n = seq++;
        return { ...req, body: `{"userId":"${o.prefix}-${n}"}`, ...(o.keys ? { headers: { ...req.headers, 'idempotency-key': `${o.prefix}-k-${n}` } } : {}) };
      },
    }],
  });
}

/** GET /healthz: what the HTTP layer alone carries on this machine, for scale. */
export function loadHealthz(url: string, o: { connections: number; seconds: number }): Promise<Load> {
  return autocannon({ url: `${url}/healthz`, connections: o.connections, duration: o.seconds });
}
